//! Starting the program: a cache entry by its path, or each exec target in turn (the memfd, then
//! a file in each temporary directory), each exec'd with `execveat` or, where that is refused,
//! `execve` through its `/proc/self/fd` link. When everything fails, one line names each path
//! tried and why it failed.

use core::ffi::CStr;

use mgo_format::Entry;
use mgo_runtime::message::Line;
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;

use crate::decode::Spoiled;
use crate::report::{self, errno};
use crate::start::StartInfo;
use crate::target::{self, proc_fd_path, Failed};
use crate::{sys, xfsz};

const AT_RANDOM: usize = 25;

/// Where a launch was tried: the memfd, or a file in a directory.
#[derive(Clone, Copy)]
enum Place {
    Memfd,
    Dir(&'static CStr),
}

const MAX_ATTEMPTS: usize = 1 + target::MAX_DIRS;

/// Every path tried, in order. Kept small, since it travels inside the launch's failure: a directory is
/// held as a thin pointer to its NUL-terminated name (the memfd as null).
#[derive(Clone, Copy)]
pub struct Attempts {
    places: [*const core::ffi::c_char; MAX_ATTEMPTS],
    failed: [Failed; MAX_ATTEMPTS],
    len: u8,
    /// Neither `execveat` nor `/proc` works, so no target can be exec'd and the rest were skipped.
    no_exec: bool,
}

impl Attempts {
    fn new() -> Attempts {
        Attempts {
            places: [core::ptr::null(); MAX_ATTEMPTS],
            failed: [Failed::Noexec; MAX_ATTEMPTS],
            len: 0,
            no_exec: false,
        }
    }

    fn push(&mut self, place: Place, failed: Failed) {
        let i = self.len as usize;
        if i < MAX_ATTEMPTS {
            self.places[i] = match place {
                Place::Memfd => core::ptr::null(),
                Place::Dir(dir) => dir.as_ptr(),
            };
            self.failed[i] = failed;
            self.len += 1;
        }
    }

    fn place(&self, i: usize) -> Place {
        let p = self.places[i];
        if p.is_null() {
            Place::Memfd
        } else {
            // SAFETY: `push` stored it from a `&'static CStr`.
            Place::Dir(unsafe { CStr::from_ptr(p) })
        }
    }

    /// `memfd: create: EACCES; file in /tmp: mounted noexec; ...`
    pub fn describe(&self, line: &mut Line) {
        for i in 0..self.len as usize {
            if i > 0 {
                line.str("; ");
            }
            describe_place(line, self.place(i));
            line.str(": ");
            describe_failed(line, self.failed[i]);
        }
        if self.no_exec {
            line.str("; without execveat or /proc no file can be started either");
        }
    }

    /// With `MGODEBUG=log`: `[mgo] launcher: fallback after ...; launch path PATH`.
    pub fn log_fallback(&self, path: &str) {
        report::log(|line| {
            line.str("fallback after ");
            self.describe(line);
            line.str("; launch path ").str(path);
        });
    }
}

fn describe_place(line: &mut Line, place: Place) {
    match place {
        Place::Memfd => line.str("memfd"),
        Place::Dir(dir) => line.str("file in ").push(dir.to_bytes()),
    };
}

fn describe_failed(line: &mut Line, failed: Failed) {
    let (what, e) = match failed {
        Failed::Create(e) => ("create: ", e),
        Failed::Noexec => {
            line.str("mounted noexec");
            return;
        }
        Failed::Copy(step, e) => {
            line.str(step.name()).str(": ");
            errno(line, e);
            return;
        }
        Failed::Fallocate(e) => ("fallocate: ", e),
        Failed::Fchmod(e) => ("fchmod: ", e),
        Failed::Seal(e) => ("seal: ", e),
        Failed::Reopen(e) => ("reopen read-only: ", e),
        Failed::Private(e) => ("private directory: ", e),
        Failed::Exec { execveat, execve } => {
            line.str("execveat: ");
            errno(line, execveat);
            if let Some(e) = execve {
                line.str(", execve /proc/self/fd: ");
                errno(line, e);
            }
            return;
        }
    };
    line.str(what);
    errno(line, e);
}

/// Why no target ran the program.
pub enum Stopped {
    /// The variant's bytes are not the packed ones (its level): no target may run them.
    Damaged(u32),
    /// Every target failed, as listed.
    Tried(Attempts),
}

/// Copies the variant into each target in turn (`fill` writes and checks it) and execs it.
/// `ready` runs once, just before the first exec; with `log`, each fallback is announced too.
/// Returns only on failure: a damaged variant stops at once, everything else moves on to the
/// next target, and when none is left the failure lists them all.
pub fn launch(
    start: &StartInfo,
    entry: &Entry,
    mut fill: impl FnMut(&OwnedFd) -> Result<(), Spoiled>,
    ready: impl FnOnce(),
    log: bool,
) -> Stopped {
    let mut tried = Attempts::new();
    let mut ready = Some(ready);
    let mut before_exec = |tried: &Attempts, place: Place| {
        if let Some(ready) = ready.take() {
            ready();
        }
        if log && tried.len > 0 {
            let mut name = Line::new();
            describe_place(&mut name, place);
            let name = name.finish();
            // `finish` ends the line; the path's name is what comes before.
            let name = core::str::from_utf8(&name[..name.len() - 1]).unwrap_or("file");
            tried.log_fallback(name);
        }
    };

    let failed = match target::memfd(start, entry) {
        Err(e) => Failed::Create(e),
        Ok(memfd) => match fill(&memfd) {
            Err(Spoiled::Copy(step, e)) => Failed::Copy(step, e),
            Err(Spoiled::Damaged(level)) => return Stopped::Damaged(level),
            Ok(()) => match target::seal(&memfd) {
                Err(e) => Failed::Seal(e),
                Ok(()) => {
                    before_exec(&tried, Place::Memfd);
                    exec(start, memfd.as_fd())
                }
            },
        },
    };
    tried.push(Place::Memfd, failed);
    if cannot_exec_any(failed) {
        tried.no_exec = true;
        return Stopped::Tried(tried);
    }

    let mut random = random_seed(start);
    for dir in target::temp_dirs(start).iter() {
        random = random.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(1);
        let failed = match target::temp_file(dir, random) {
            Err(failed) => failed,
            Ok(file) => match target::reserve(&file.write, entry).map_err(Failed::Fallocate) {
                Err(failed) => failed,
                Ok(()) => match fill(&file.write) {
                    Err(Spoiled::Copy(step, e)) => Failed::Copy(step, e),
                    Err(Spoiled::Damaged(level)) => return Stopped::Damaged(level),
                    Ok(()) => {
                        drop(file.write);
                        before_exec(&tried, Place::Dir(dir));
                        exec(start, file.exec.as_fd())
                    }
                },
            },
        };
        tried.push(Place::Dir(dir), failed);
        if cannot_exec_any(failed) {
            tried.no_exec = true;
            break;
        }
    }
    Stopped::Tried(tried)
}

/// execveat missing (an emulator) and execve of /proc/self/fd/N missing (no /proc): every other
/// target would fail the same way, after a copy each.
fn cannot_exec_any(failed: Failed) -> bool {
    matches!(
        failed,
        Failed::Exec {
            execveat: Errno::NOSYS | Errno::NOENT,
            execve: Some(Errno::NOENT),
        }
    )
}

/// The kernel's 16 random bytes for this exec (`AT_RANDOM`), folded; 0 if absent.
fn random_seed(start: &StartInfo) -> u64 {
    match start.aux(AT_RANDOM) {
        // SAFETY: AT_RANDOM points at 16 bytes on the initial stack, readable for the process.
        Some(p) if p != 0 => unsafe {
            let p = p as *const u64;
            p.read_unaligned() ^ p.add(1).read_unaligned()
        },
        _ => 0,
    }
}

/// Execs `fd` with the launcher's own argv and environment, the caller's signal dispositions back
/// in place. Returns only on failure.
fn exec(start: &StartInfo, fd: BorrowedFd<'_>) -> Failed {
    as_the_caller(|| exec_either(start, fd))
}

/// Execs the file at `path`, an absolute path, with the launcher's own argv and environment, the
/// caller's signal dispositions back in place: the kernel then records that path for the program
/// (`AT_EXECFN`, `/proc/PID/exe`) and names the process after its last component. Returns only
/// on failure.
pub fn exec_file(start: &StartInfo, path: &CStr) -> Errno {
    // SAFETY: argv and envp are the kernel's NULL-terminated arrays; the path is a C string.
    as_the_caller(|| unsafe { sys::execve(path.as_ptr().cast(), start.argv, start.envp) })
}

/// Runs `exec` with the caller's `SIGXFSZ` disposition, which the program inherits.
fn as_the_caller<T>(exec: impl FnOnce() -> T) -> T {
    let held = xfsz::release();
    let failed = exec();
    if held {
        xfsz::hold();
    }
    failed
}

fn exec_either(start: &StartInfo, fd: BorrowedFd<'_>) -> Failed {
    // SAFETY: argv and envp are the kernel's NULL-terminated arrays; the path is a C string.
    let execveat = unsafe {
        sys::execveat(
            fd.as_raw_fd(),
            c"".as_ptr().cast(),
            start.argv,
            start.envp,
            sys::AT_EMPTY_PATH,
        )
    };
    // Emulators without execveat (qemu-user answers ENOSYS, others ENOENT) and sandboxes that
    // refuse it (EPERM, EACCES) may still run the program through the /proc/self/fd link to the
    // target; whatever else failed, execve says so again at the cost of one system call.
    let mut buf = [0u8; 32];
    let path = proc_fd_path(&mut buf, &fd);
    // SAFETY: the path is a C string; argv/envp as above.
    let execve = unsafe { sys::execve(path.as_ptr().cast(), start.argv, start.envp) };
    Failed::Exec {
        execveat,
        execve: Some(execve),
    }
}
