//! Which microarchitecture level this CPU can run.
//!
//! Each architecture is split in two: a pure part that turns register values into a level, tested
//! on any host with the values of real CPU models, and a thin part that reads the registers.

#[cfg(target_arch = "x86_64")]
pub mod x86_64;

#[cfg(target_arch = "x86_64")]
pub use x86_64::detect_level;
