//! Helpers shared by the command-line tests.

use std::os::fd::{FromRawFd, OwnedFd};

/// The writing end of a pipe whose reading end is already closed, as stdout of `mgo-pack ... |
/// head -0`: every write to it fails with EPIPE.
pub fn closed_pipe() -> OwnedFd {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills `fds` with two new descriptors, owned below.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: the descriptors were just made and nothing else owns them.
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(reader);
    writer
}
