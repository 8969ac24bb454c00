//! Finding and mapping the launcher's own executable, where the payloads are.

use core::ffi::CStr;
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::start::StartInfo;

/// The bundle file, mapped read-only for the life of the launcher.
pub struct Mapped {
    pub bytes: &'static [u8],
}

/// Opens the launcher's own file: `/proc/self/exe` names exactly the inode the kernel executed;
/// without `/proc`, the path given to execve (`AT_EXECFN`); failing that, `argv[0]` resolved the
/// way a shell would have found it.
pub fn open(start: &StartInfo) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC;
    let first = match rustix::fs::open(c"/proc/self/exe", flags, Mode::empty()) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    if let Some(path) = start.execfn() {
        if let Ok(fd) = rustix::fs::open(path, flags, Mode::empty()) {
            return Ok(fd);
        }
    }
    if let Some(argv0) = start.argv0() {
        if let Some(fd) = open_like_shell(argv0, start, flags) {
            return Ok(fd);
        }
    }
    Err(first)
}

/// A name with a slash is a path; a bare name is looked up in each `PATH` directory in turn
/// (an empty entry meaning the current directory), as execvp does.
fn open_like_shell(name: &CStr, start: &StartInfo, flags: OFlags) -> Option<OwnedFd> {
    let name = name.to_bytes();
    if name.is_empty() {
        return None;
    }
    if name.contains(&b'/') {
        let mut buf = [0u8; 4096];
        return open_joined(&mut buf, &[name], flags);
    }
    let path = start.env().find_map(|e| e.strip_prefix(b"PATH="))?;
    path.split(|&b| b == b':').find_map(|dir| {
        let mut buf = [0u8; 4096];
        let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
        open_joined(&mut buf, &[dir, b"/", name], flags)
    })
}

fn open_joined(buf: &mut [u8; 4096], parts: &[&[u8]], flags: OFlags) -> Option<OwnedFd> {
    let mut len = 0;
    for part in parts {
        buf.get_mut(len..len + part.len())?.copy_from_slice(part);
        len += part.len();
    }
    *buf.get_mut(len)? = 0;
    let path = CStr::from_bytes_with_nul(&buf[..=len]).ok()?;
    rustix::fs::open(path, flags, Mode::empty()).ok()
}

/// Maps the whole file read-only. The mapping is never unmapped: exec replaces it.
pub fn map(fd: &OwnedFd) -> Result<Mapped, Errno> {
    let size = rustix::fs::fstat(fd)?.st_size;
    let len = usize::try_from(size).map_err(|_| Errno::FBIG)?;
    if len == 0 {
        return Ok(Mapped { bytes: &[] });
    }
    // SAFETY: a fresh private read-only mapping of `len` bytes of `fd`, which the kernel places
    // where nothing else lives. It is never unmapped or written, so a 'static shared borrow of it
    // is sound as long as the file is not truncated while the launcher runs (a bundle being
    // rewritten in place under a running launcher is outside what any loader can guard against).
    unsafe {
        let ptr = rustix::mm::mmap(
            core::ptr::null_mut(),
            len,
            rustix::mm::ProtFlags::READ,
            rustix::mm::MapFlags::PRIVATE,
            fd,
            0,
        )?;
        Ok(Mapped {
            bytes: core::slice::from_raw_parts(ptr as *const u8, len),
        })
    }
}
