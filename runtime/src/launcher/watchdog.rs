//! A limit on the time the launcher may spend before its self-check has passed. Damage in the
//! code that runs before the check (the hash function, the header parser) can make it loop, or
//! turn a system call into one that waits for ever; two timers end it:
//!
//! - the real-time interval timer (`alarm`), set first, with nothing before it that damage could
//!   turn into a loop: its SIGALRM ends the process after ten seconds, spinning or blocked,
//!   unless the caller blocked or ignored that signal. Ten seconds of wall-clock time is far
//!   beyond what the check takes even on a loaded machine or under an emulator; a launcher
//!   stopped (SIGSTOP, a debugger) for longer in those microseconds is ended too. Interval timers
//!   survive an exec, so the caller's setting is put back;
//! - a POSIX timer sending SIGKILL, which nothing can block, after a second of CPU time; setting
//!   it up takes two calls and some code, which the first timer covers. POSIX timers do not
//!   survive an exec.
//!
//! Once the check has passed, every byte of the launcher is the packed one and both go, before
//! anything is started, so decoding a large program (for minutes, under an emulator) is never cut
//! short. Where the kernel refuses a timer, that one is not there.

use core::sync::atomic::AtomicBool;

use crate::sys;

/// Set by the first arming. Damage that sends the launcher back to its start in a loop must not
/// push the deadline on for ever: the timers are armed once per process.
static ARMED: AtomicBool = AtomicBool::new(false);

/// The timers, while armed.
pub struct Watchdog {
    /// The caller's real-time interval timer, to be put back.
    caller: Option<sys::ItimerVal>,
    timer: Option<i32>,
}

impl Watchdog {
    /// Called first thing in `entry`, before any code that could loop.
    pub fn arm() -> Watchdog {
        let Some(caller) = sys::alarm_once(&ARMED) else {
            return Watchdog {
                caller: None,
                timer: None,
            };
        };
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
            sys::set_real_timer(&caller);
        }
    }
}
