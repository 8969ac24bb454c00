//! Where the program's bytes go before exec: a sealed, close-on-exec memfd.

use mgo_format::{level, Entry};
use mgo_runtime::name::{memfd_name, MEMFD_NAME_MAX};
use rustix::fd::OwnedFd;
use rustix::fs::{MemfdFlags, SealFlags};
use rustix::io::Errno;

use crate::start::StartInfo;

/// Creates the memfd that will hold the variant, named as mgo names it.
pub fn create(start: &StartInfo, entry: &Entry) -> Result<OwnedFd, Errno> {
    create_memfd(start, entry)
}

/// Seals the filled memfd: the bytes that were hashed are the bytes that run. Nobody holding the
/// memfd (it is close-on-exec, but /proc/PID/fd lets root reopen it) can change them afterwards.
pub fn seal(fd: &OwnedFd) -> Result<(), Errno> {
    let seals = SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE;
    rustix::fs::fcntl_add_seals(fd, seals)
}

fn create_memfd(start: &StartInfo, entry: &Entry) -> Result<OwnedFd, Errno> {
    let mut name = [0u8; MEMFD_NAME_MAX + 1];
    let path = start
        .execfn()
        .or_else(|| start.argv0())
        .map_or(&b"mgo"[..], |p| p.to_bytes());
    let len = memfd_name(&mut name, path, level::x86_64_name(entry.level));
    let name = core::ffi::CStr::from_bytes_with_nul(&name[..=len]).map_err(|_| Errno::INVAL)?;
    let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    match rustix::fs::memfd_create(name, flags | MemfdFlags::EXEC) {
        // Kernels before 6.3 do not know MFD_EXEC; there every memfd is executable anyway.
        Err(Errno::INVAL) => rustix::fs::memfd_create(name, flags),
        other => other,
    }
}
