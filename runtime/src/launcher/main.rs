//! The mgo-pack launcher: the program at the front of every bundle.
//!
//! It finds the payload region where the kernel mapped it, checks its own image, picks the
//! variant for this CPU and starts it: on the direct path by moving (or decoding) it into place
//! and jumping to it, or by copying it into a sealed memfd (checking its hash on the way) and
//! exec'ing that with the launcher's own argv and environment, so that the program starts as if
//! it had been run directly.

#![no_std]
#![no_main]

#[cfg(feature = "zstd")]
mod c_alloc;
mod decode;
#[cfg(feature = "deflate")]
mod deflate;
mod direct;
mod exec;
#[cfg(any(feature = "zstd", feature = "deflate"))]
mod frames;
mod launch;
mod mem;
mod moved;
mod own_image;
#[cfg(any(feature = "zstd", feature = "deflate"))]
mod par;
mod process_view;
mod start;
mod sys;
mod target;
#[cfg(any(feature = "zstd", feature = "deflate"))]
mod unpack;
mod xfsz;
#[cfg(feature = "zstd")]
mod zstd;

use launch::Failure;
use start::StartInfo;

/// Called by `_start` with the kernel's initial stack pointer.
///
/// # Safety
/// Only `_start` calls it, once, with the stack as the kernel laid it out.
unsafe extern "C" fn entry(sp: *const usize) -> ! {
    // SAFETY: `sp` is the kernel's initial stack pointer, as `_start` passes it.
    let start = unsafe { StartInfo::from_stack(sp) };
    let failure: Failure = match launch::run(&start) {
        Ok(code) => sys::exit(code),
        Err(failure) => failure,
    };
    let mut line = mgo_runtime::message::Line::new();
    failure.describe(&mut line);
    launch::write_stderr(line.finish());
    sys::exit(failure.exit_code())
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // Every error is handled as a value; a panic is a bug (or damaged code), reported without
    // formatting machinery (which would triple the image's size), once: a panic while reporting
    // one exits at once instead of going round for ever.
    static PANICKING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    if !PANICKING.swap(true, core::sync::atomic::Ordering::Relaxed) {
        launch::write_stderr(b"mgo: internal error in the launcher\n");
    }
    sys::exit(mgo_runtime::exit::CANNOT_EXECUTE)
}
