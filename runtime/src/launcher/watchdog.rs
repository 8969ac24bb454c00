//! A limit on the CPU time the launcher may spend before its self-check has passed. Damage in the
//! code that runs before the check (the hash function, the header parser) can make it loop; a
//! POSIX timer on the process's CPU clock kills it (SIGKILL: nothing can ignore it) after a second
//! of CPU, a hundred thousand times what the check takes. Once the check has passed, every byte
//! of the launcher is the packed one and the timer goes, so decoding a large program (for
//! minutes, under an emulator) is never cut short. POSIX timers do not survive an exec, and the
//! timer is deleted before anything is started. Where `timer_create` is refused, there is no
//! watchdog.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::sys;

/// Set by the first arming. Damage that sends the launcher back to its start in a loop must not
/// push the deadline on for ever: the timer is armed once per process.
static ARMED: AtomicBool = AtomicBool::new(false);

/// The timer, while armed.
pub struct Watchdog(Option<i32>);

impl Watchdog {
    /// Called first thing in `entry`, before any code that could loop.
    pub fn arm() -> Watchdog {
        if ARMED.swap(true, Ordering::Relaxed) {
            return Watchdog(None);
        }
        Watchdog(sys::cpu_deadline(1))
    }

    pub fn disarm(self) {
        if let Some(timer) = self.0 {
            sys::timer_delete(timer);
        }
    }
}
