//! The mgo-pack launcher: the program at the front of every bundle.
//!
//! It finds the payload region where the kernel mapped it, checks its own image, picks the
//! variant for this CPU and starts it: on the direct path by moving (or decoding) it into place
//! and jumping to it, or by copying it into a sealed memfd (checking its hash on the way), or
//! into a file in the user's cache on the first start, and exec'ing that with the launcher's own
//! argv and environment, so that the program starts as if it had been run directly.

#![no_std]
#![no_main]
// Inline assembly for PowerPC is still unstable (rust-lang/rust#93335); the pinned stable
// toolchain accepts it for this crate alone because `cargo xtask runtime` sets RUSTC_BOOTSTRAP
// for it (and for rustix) when it builds the ppc64le launcher, and for nothing else.
#![cfg_attr(target_arch = "powerpc64", feature(asm_experimental_arch))]

// The process as the kernel started it, what the launcher says, and the kernel's layout rules.
mod aslr;
mod mem;
mod report;
mod start;
mod sys;

// 1. Find the bundle's bytes: where the kernel mapped them, checked (under a CPU-time limit
//    until the launcher's own bytes are known good).
mod damaged;
mod own_image;
mod watchdog;

// 2. Choose the variant.
mod choose;

// 3. Materialise it: its bytes into an exec target (a memfd, or an unnamed temporary file), or a
//    file in the user's cache, or its segments in place in this process (moved out of the region,
//    or decoded into them).
#[cfg(feature = "zstd")]
mod c_alloc;
mod cache;
mod decode;
#[cfg(feature = "deflate")]
mod deflate;
#[cfg(any(feature = "zstd", feature = "deflate"))]
mod frames;
mod moved;
#[cfg(any(feature = "zstd", feature = "deflate"))]
mod par;
mod refusal;
mod segments;
mod target;
#[cfg(any(feature = "zstd", feature = "deflate"))]
mod unpack;
#[cfg(feature = "zstd")]
mod zstd;

// 4. Start it: exec a target, or enter a program placed in memory.
mod enter;
mod exec;
mod process_view;
mod xfsz;

// 5. The launch paths, and the order they are tried in.
mod direct;
mod launch;

use launch::Failure;
use start::StartInfo;
use watchdog::Watchdog;

/// Called by `_start` with the kernel's initial stack pointer.
///
/// # Safety
/// Only `_start` calls it, once, with the stack as the kernel laid it out.
unsafe extern "C" fn entry(sp: *const usize) -> ! {
    // First of all, before any loop that damaged code could turn endless.
    let watchdog = Watchdog::arm();
    // SAFETY: `sp` is the kernel's initial stack pointer, as `_start` passes it.
    let start = unsafe { StartInfo::from_stack(sp) };
    let failure: Failure = match launch::run(&start, watchdog) {
        Ok(code) => sys::exit(code),
        Err(failure) => failure,
    };
    let mut line = mgo_runtime::message::Line::new();
    failure.describe(&mut line);
    report::write_stderr(line.finish());
    sys::exit(failure.exit_code())
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // Every error is handled as a value; a panic is a bug (or damaged code), reported without
    // formatting machinery (which would triple the image's size), once: a panic while reporting
    // one exits at once instead of going round for ever. A line that cannot be written ends on
    // a signal, never on a status without its line: damaged code that jumps into this handler
    // past the setting of its arguments fails the write (as a panic with stderr closed does,
    // which has no way left to say so either).
    static PANICKING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    let line = b"mgo: internal error in the launcher\n";
    if !PANICKING.swap(true, core::sync::atomic::Ordering::Relaxed)
        && report::write_all(report::stderr(), line).is_err()
    {
        sys::trap();
    }
    sys::exit(mgo_runtime::exit::CANNOT_EXECUTE)
}
