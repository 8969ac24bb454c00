//! Removing a temporary file that has a name when a signal ends the process: SIGINT, SIGTERM,
//! SIGHUP, and every other signal that ends a process by default and can be caught without
//! being a fault of the program itself ([`SIGNALS`]).
//!
//! [`arm`] records the file's path in one of a fixed number of slots, before the file is created;
//! dropping the returned [`Armed`] clears the slot. The first [`arm`] installs a handler for each
//! of those signals whose disposition is still the default (a signal the host program ignores
//! or handles itself is left alone: Rust programs ignore SIGPIPE, `nohup` ignores SIGHUP). The handler does only what is safe in a signal
//! handler: it unlinks every recorded path, restores the default disposition and raises the
//! signal again, so the process ends as it would have, by that signal, with the files gone.
//! SIGKILL cannot be caught; [`crate::write_executable`] leaves nothing named behind for it
//! where the file system has `O_TMPFILE`.

use std::cell::UnsafeCell;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Once;

/// The signals whose default action ends the process (with a core dump for some) and that are
/// sent to it rather than caused by a fault: the three a terminal, a supervisor or a closed
/// session send, and the rest (SIGXFSZ comes from writing past `ulimit -f`).
const SIGNALS: [libc::c_int; 12] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGPIPE,
];

/// Files named at the same time by one process: one per thread writing a bundle.
const SLOTS: usize = 16;
/// The longest path a slot holds, its terminating NUL included (Linux's `PATH_MAX`).
const PATH_MAX: usize = 4096;

/// A slot's states: free; being filled by [`arm`]; recorded; taken by the handler.
const FREE: u8 = 0;
const FILLING: u8 = 1;
const ARMED: u8 = 2;
const TAKEN: u8 = 3;

struct Slot {
    state: AtomicU8,
    path: UnsafeCell<[u8; PATH_MAX]>,
}

// SAFETY: `path` is written only by the thread that moved `state` from FREE to FILLING, and read
// only by the handler that moved it from ARMED to TAKEN; the two states exclude each other.
unsafe impl Sync for Slot {}

static TABLE: [Slot; SLOTS] = [const {
    Slot {
        state: AtomicU8::new(FREE),
        path: UnsafeCell::new([0; PATH_MAX]),
    }
}; SLOTS];

/// A path recorded for removal on a signal, until dropped.
pub(crate) struct Armed(Option<usize>);

/// Records `path` (made absolute, so that a later change of directory does not matter) for
/// removal should one of [`SIGNALS`] end the process. Paths too long for a slot, and
/// paths beyond the slots' number, are not recorded.
pub(crate) fn arm(path: &Path) -> Armed {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(install);
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let bytes = OsStr::as_bytes(absolute.as_os_str());
    if bytes.len() >= PATH_MAX || bytes.contains(&0) {
        return Armed(None);
    }
    for (i, slot) in TABLE.iter().enumerate() {
        if slot
            .state
            .compare_exchange(FREE, FILLING, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            // SAFETY: FILLING makes this thread the slot's only user (see `Slot`).
            let buffer = unsafe { &mut *slot.path.get() };
            buffer[..bytes.len()].copy_from_slice(bytes);
            buffer[bytes.len()] = 0;
            slot.state.store(ARMED, Ordering::Release);
            return Armed(Some(i));
        }
    }
    Armed(None)
}

impl Drop for Armed {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            // Fails only when the handler took the slot: the process is ending then, and the slot
            // stays taken.
            let _ =
                TABLE[i]
                    .state
                    .compare_exchange(ARMED, FREE, Ordering::AcqRel, Ordering::Relaxed);
        }
    }
}

fn install() {
    for signal in SIGNALS {
        // SAFETY: sigaction with valid pointers; the handler is async-signal-safe (below).
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut old) != 0
                || old.sa_sigaction != libc::SIG_DFL
            {
                continue;
            }
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

/// Unlinks every recorded path, then ends the process by `signal` as the default disposition
/// would: atomics, `unlink`, `signal` and `raise` are all async-signal-safe.
extern "C" fn on_signal(signal: libc::c_int) {
    for slot in &TABLE {
        if slot
            .state
            .compare_exchange(ARMED, TAKEN, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            // SAFETY: TAKEN makes this handler the slot's only user; the path is NUL-terminated.
            unsafe { libc::unlink(slot.path.get().cast::<libc::c_char>()) };
        }
    }
    // SAFETY: restoring the default disposition and raising the signal again. It stays blocked
    // until the handler returns, and is then delivered: the process ends by it.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}
