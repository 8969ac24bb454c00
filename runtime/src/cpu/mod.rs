//! Which microarchitecture level this CPU can run.
//!
//! Each architecture is split in two: a pure part that turns register values into a level, tested
//! on any host with the values of real CPU models, and a thin part that reads the registers.
//! arm64's registers are the kernel's `AT_HWCAP` words, which the launcher reads from its
//! auxiliary vector and passes in, so all of `aarch64` is pure and built on every host.

pub mod aarch64;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;

#[cfg(target_arch = "x86_64")]
pub use x86_64::detect_level;

use mgo_format::Arch;

#[cfg(target_arch = "aarch64")]
use crate::select::Aarch64Limit;
#[cfg(target_arch = "x86_64")]
use crate::select::X86_64Limit;

/// The architecture this code runs on, whose bundles the launcher reads.
#[cfg(not(target_arch = "aarch64"))]
pub const NATIVE: Arch = Arch::X86_64;
#[cfg(target_arch = "aarch64")]
pub const NATIVE: Arch = Arch::Aarch64;

/// What this CPU can run. `aux` looks up an entry of the auxiliary vector (arm64 reads its
/// `AT_HWCAP` words there; x86-64 asks CPUID instead).
#[cfg(target_arch = "x86_64")]
pub fn detect(_aux: impl Fn(usize) -> Option<usize>) -> X86_64Limit {
    X86_64Limit(detect_level())
}

/// What this CPU can run. `aux` looks up an entry of the auxiliary vector (arm64 reads its
/// `AT_HWCAP` words there; x86-64 asks CPUID instead).
#[cfg(target_arch = "aarch64")]
pub fn detect(aux: impl Fn(usize) -> Option<usize>) -> Aarch64Limit {
    Aarch64Limit(aarch64::Hwcaps::from_auxv(aux))
}
