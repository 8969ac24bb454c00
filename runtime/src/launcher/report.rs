//! What the launcher says: whole lines on stderr (`mgo: ...` when it stops, `[mgo] launcher: ...`
//! with `MGODEBUG=log`), errno values by their names, variants by their levels' names.

use mgo_format::level::{self, LevelName};
use mgo_format::Arch;
use mgo_runtime::cpu::NATIVE;
use mgo_runtime::message::{errno_name, Line};
use rustix::fd::BorrowedFd;
use rustix::io::Errno;

/// A level's name as the launcher's own architecture spells it.
pub fn level_name(level: u32) -> LevelName {
    level::name(NATIVE, level)
}

/// `GOAMD64=` or `GOARM64=`, as one piece: messages name variants the way Go's setting does.
pub const SETTING: &str = match NATIVE {
    Arch::X86_64 => "GOAMD64=",
    Arch::Aarch64 => "GOARM64=",
    Arch::Riscv64 => "GORISCV64=",
    Arch::Arm => "GOARM=",
    Arch::Ppc64le => "GOPPC64=",
};

/// `EACCES`, or `errno N` for a value without a name.
pub fn errno(line: &mut Line, e: Errno) {
    let raw = e.raw_os_error();
    match errno_name(raw) {
        Some(name) => line.str(name),
        None => line.str("errno ").dec(raw as u64),
    };
}

pub fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> Result<(), Errno> {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(0) => return Err(Errno::IO),
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Descriptor 2, where every report goes.
pub fn stderr() -> BorrowedFd<'static> {
    // SAFETY: descriptor 2 is stderr, open for the whole process, or invalid (EBADF).
    unsafe { BorrowedFd::borrow_raw(2) }
}

pub fn write_stderr(bytes: &[u8]) {
    // A line the kernel cannot read (EFAULT) is one no correct code passes: damaged code, before
    // the self-check, that jumped into a report past the setting of its pointer. It ends on a
    // signal, never on a status without its line. Any other failure (stderr closed, a broken
    // pipe) is ignored on purpose: there is nowhere else to report it.
    if write_all(stderr(), bytes) == Err(Errno::FAULT) {
        crate::sys::trap();
    }
}

/// One `[mgo] launcher: ...` line.
pub fn log(text: impl FnOnce(&mut Line)) {
    let mut line = Line::new();
    line.str("[mgo] launcher: ");
    text(&mut line);
    write_stderr(line.finish());
}
