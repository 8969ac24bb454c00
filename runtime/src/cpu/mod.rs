//! Which microarchitecture level this CPU can run.
//!
//! Each architecture is split in two: a pure part that turns register values into a level, tested
//! on any host with the values of real CPU models, and a thin part that reads the registers.
//! arm64's registers are the kernel's `AT_HWCAP` words, which the launcher reads from its
//! auxiliary vector and passes in, so all of `aarch64` is pure and built on every host.

pub mod aarch64;
pub mod arm;
pub mod ppc64le;
pub mod riscv64;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;

#[cfg(target_arch = "x86_64")]
pub use x86_64::detect_level;

use mgo_format::Arch;

#[cfg(target_arch = "aarch64")]
use crate::select::Aarch64Limit;
#[cfg(target_arch = "arm")]
use crate::select::ArmLimit;
#[cfg(target_arch = "powerpc64")]
use crate::select::Ppc64leLimit;
#[cfg(target_arch = "riscv64")]
use crate::select::Riscv64Limit;
#[cfg(target_arch = "x86_64")]
use crate::select::X86_64Limit;

/// The architecture this code runs on, whose bundles the launcher reads.
#[cfg(not(any(
    target_arch = "aarch64",
    target_arch = "riscv64",
    target_arch = "arm",
    target_arch = "powerpc64"
)))]
pub const NATIVE: Arch = Arch::X86_64;
#[cfg(target_arch = "aarch64")]
pub const NATIVE: Arch = Arch::Aarch64;
#[cfg(target_arch = "riscv64")]
pub const NATIVE: Arch = Arch::Riscv64;
#[cfg(target_arch = "arm")]
pub const NATIVE: Arch = Arch::Arm;
/// Little-endian only: the launcher is built for `powerpc64le-unknown-linux-gnu`.
#[cfg(target_arch = "powerpc64")]
pub const NATIVE: Arch = Arch::Ppc64le;

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

/// What this CPU can run: the kernel's `riscv_hwprobe` answer, or `AT_HWCAP` where the kernel
/// (or qemu-user before 8.2) has no such system call.
#[cfg(target_arch = "riscv64")]
pub fn detect(aux: impl Fn(usize) -> Option<usize>) -> Riscv64Limit {
    const AT_HWCAP: usize = 16;
    let cpu = match hwprobe() {
        Some((base, ext)) => riscv64::Extensions::from_hwprobe(base, ext),
        None => riscv64::Extensions::from_hwcap(aux(AT_HWCAP).unwrap_or(0) as u64),
    };
    Riscv64Limit(cpu)
}

/// `riscv_hwprobe` for the base behaviour and the first extension word, over all CPUs (so that
/// an extension counts only when every core has it); `None` when the call fails. A key the
/// kernel does not know comes back as -1, and its value as `None`.
#[cfg(target_arch = "riscv64")]
fn hwprobe() -> Option<(Option<u64>, Option<u64>)> {
    const RISCV_HWPROBE: usize = 258;
    let mut pairs: [(i64, u64); 2] = [(riscv64::KEY_BASE_BEHAVIOR, 0), (riscv64::KEY_IMA_EXT_0, 0)];
    let ret: isize;
    // SAFETY: `pairs` is an array of two `struct riscv_hwprobe` (an i64 key, a u64 value, no
    // padding) that the kernel fills; no CPU set is passed (size 0, NULL), which means all CPUs;
    // `ecall` returns in a0 and preserves every other register.
    unsafe {
        core::arch::asm!("ecall", in("a7") RISCV_HWPROBE,
            inlateout("a0") pairs.as_mut_ptr() as isize => ret, in("a1") pairs.len(),
            in("a2") 0usize, in("a3") 0usize, in("a4") 0usize, options(nostack));
    }
    if ret != 0 {
        return None;
    }
    let value = |(key, value): (i64, u64)| (key != -1).then_some(value);
    Some((value(pairs[0]), value(pairs[1])))
}

/// What this CPU can run: `AT_HWCAP`'s floating-point bits and the architecture version
/// `AT_PLATFORM` names (see `arm`).
#[cfg(target_arch = "arm")]
pub fn detect(aux: impl Fn(usize) -> Option<usize>) -> ArmLimit {
    const AT_PLATFORM: usize = 15;
    const AT_HWCAP: usize = 16;
    /// `elf_platform` is a handful of bytes; anything longer is not one.
    const PLATFORM_MAX: usize = 16;
    let platform = aux(AT_PLATFORM).filter(|&p| p != 0).map(|p| {
        let at = p as *const u8;
        let mut len = 0;
        // SAFETY: the kernel points AT_PLATFORM at a NUL-terminated string it copied onto the
        // initial stack, which lives as long as the process; the loop stops at the NUL (or after
        // PLATFORM_MAX bytes), so every byte read and the slice lie inside that string.
        unsafe {
            while len < PLATFORM_MAX && *at.add(len) != 0 {
                len += 1;
            }
            core::slice::from_raw_parts(at, len)
        }
    });
    let hwcap = aux(AT_HWCAP).unwrap_or(0) as u32;
    ArmLimit(arm::best_level(arm::Cpu::from_auxv(hwcap, platform)))
}

/// What this CPU can run: the Power ISA version in the auxiliary vector's `AT_HWCAP2`.
#[cfg(target_arch = "powerpc64")]
pub fn detect(aux: impl Fn(usize) -> Option<usize>) -> Ppc64leLimit {
    const AT_HWCAP2: usize = 26;
    Ppc64leLimit(ppc64le::best_level(aux(AT_HWCAP2).unwrap_or(0) as u64))
}
