//! A limit on the CPU time the launcher may spend before its self-check has passed. Damage in the
//! code that runs before the check (the hash function, the header parser) can make it loop; two
//! timers on the process's CPU time end it after a second of CPU, a hundred thousand times what
//! the check takes:
//!
//! - the profiling interval timer, set by one system call with nothing before it that damage
//!   could turn into a loop; its SIGPROF ends the process unless the caller blocked or ignored
//!   that signal. Interval timers survive an exec, so the caller's setting is put back;
//! - a POSIX timer sending SIGKILL, which nothing can block; setting it up takes two calls and
//!   some code, which the first timer covers. POSIX timers do not survive an exec.
//!
//! Once the check has passed, every byte of the launcher is the packed one and both go, before
//! anything is started, so decoding a large program (for minutes, under an emulator) is never cut
//! short. Where the kernel refuses a timer, that one is not there.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::sys;

/// Set by the first arming. Damage that sends the launcher back to its start in a loop must not
/// push the deadline on for ever: the timer is armed once per process.
static ARMED: AtomicBool = AtomicBool::new(false);

/// The timers, while armed.
pub struct Watchdog {
    /// The caller's profiling timer, to be put back.
    caller: Option<sys::ItimerVal>,
    timer: Option<i32>,
}

impl Watchdog {
    /// Called first thing in `entry`, before any code that could loop.
    pub fn arm() -> Watchdog {
        if ARMED.swap(true, Ordering::Relaxed) {
            return Watchdog {
                caller: None,
                timer: None,
            };
        }
        let caller = sys::set_profiling_timer(&[0, 0, 1, 0]);
        Watchdog {
            caller: Some(caller),
            timer: sys::cpu_deadline(1),
        }
    }

    pub fn disarm(self) {
        if let Some(timer) = self.timer {
            sys::timer_delete(timer);
        }
        if let Some(caller) = self.caller {
            sys::set_profiling_timer(&caller);
        }
    }
}
