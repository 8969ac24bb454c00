//! Starting the program from its filled exec target.

use mgo_runtime::message::Line;
use rustix::fd::{AsRawFd, BorrowedFd};
use rustix::io::Errno;

use crate::launch::Failure;
use crate::start::StartInfo;
use crate::sys;

/// Execs the memfd with the launcher's own argv and environment. Returns only on failure.
pub fn exec(start: &StartInfo, memfd: BorrowedFd<'_>) -> Failure {
    let fd = memfd.as_raw_fd();
    // SAFETY: argv and envp are the kernel's NULL-terminated arrays; the path is a C string.
    let execveat = unsafe {
        sys::execveat(
            fd,
            c"".as_ptr().cast(),
            start.argv,
            start.envp,
            sys::AT_EMPTY_PATH,
        )
    };
    // Emulators without execveat (qemu-user answers ENOSYS) still run the program through the
    // /proc/self/fd link to the memfd.
    if execveat != Errno::NOSYS && execveat != Errno::NOENT {
        return Failure::Exec {
            execveat,
            execve: None,
        };
    }
    let mut path = Line::new();
    path.str("/proc/self/fd/").dec(fd as u64);
    let bytes = path.finish();
    let last = bytes.len() - 1;
    let mut cpath = [0u8; 32];
    cpath[..last].copy_from_slice(&bytes[..last]);
    // SAFETY: cpath is NUL-terminated (zero-filled past the digits); argv/envp as above.
    let execve = unsafe { sys::execve(cpath.as_ptr(), start.argv, start.envp) };
    Failure::Exec {
        execveat,
        execve: Some(execve),
    }
}
