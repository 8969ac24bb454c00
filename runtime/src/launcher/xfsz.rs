//! `SIGXFSZ` while the launcher writes the program somewhere (held from just before the first
//! write: a start that writes nothing, such as a warm start from the cache, leaves it alone). Under an `RLIMIT_FSIZE` smaller
//! than the program, a write past the limit raises it, and its default action would kill the
//! launcher without a word where the program itself would have run. Ignored, the write fails
//! with EFBIG instead and the launch moves on to the next place (in the end, the direct path).
//! The caller's disposition is back in place before anything is exec'd or jumped to, since the
//! program inherits it.

use core::sync::atomic::{AtomicU8, Ordering};

use crate::sys;

const SIGXFSZ: usize = 25;

/// What `hold` changed: nothing, or a default disposition into an ignored one (after an exec the
/// caller's disposition is one of those two: handlers do not survive it).
static STATE: AtomicU8 = AtomicU8::new(UNCHANGED);
const UNCHANGED: u8 = 0;
const WAS_DEFAULT: u8 = 1;

/// Ignores the signal from now on.
pub fn hold() {
    if let Ok(false) = sys::set_ignored(SIGXFSZ, true) {
        STATE.store(WAS_DEFAULT, Ordering::Relaxed);
    }
}

/// Gives the signal back its caller's disposition. Returns whether `hold` had changed it.
pub fn release() -> bool {
    let held = STATE.swap(UNCHANGED, Ordering::Relaxed) == WAS_DEFAULT;
    if held {
        let _ = sys::set_ignored(SIGXFSZ, false);
    }
    held
}
