//! A limit on the CPU time the launcher may spend before its self-check has passed. Damage in the
//! code that runs before the check (the hash function, the header parser) can make it loop; a
//! POSIX timer on the process's CPU clock kills it (SIGKILL: nothing can ignore it) after a second
//! of CPU, a hundred thousand times what the check takes. Once the check has passed, every byte
//! of the launcher is the packed one and the timer goes, so decoding a large program (for
//! minutes, under an emulator) is never cut short. POSIX timers do not survive an exec, and the
//! timer is deleted before anything is started. Where `timer_create` is refused, there is no
//! watchdog.

use crate::sys;

/// The timer, while armed.
pub struct Watchdog(Option<i32>);

impl Watchdog {
    pub fn arm() -> Watchdog {
        Watchdog(sys::cpu_deadline(1))
    }

    pub fn disarm(self) {
        if let Some(timer) = self.0 {
            sys::timer_delete(timer);
        }
    }
}
