//! 32-bit ARM: which `GOARM` level a CPU can run, from what Linux reports of it.
//!
//! Go's runtime checks two hardware capability bits at start-up (`checkgoarm`): a GOARM=6 or 7
//! build exits unless `AT_HWCAP` has `HWCAP_VFP`, a GOARM=7 build unless it also has
//! `HWCAP_VFPv3`. Those bits say nothing of the architecture version, and Go's code assumes it
//! too: a GOARM=6 build uses ARMv6's `ldrex`/`strex` for its atomics, a GOARM=7 build ARMv7's
//! `dmb` barriers and `ldrexd`. An ARMv5 CPU with a VFP unit (ARM926EJ-S with VFP9, ARM1026)
//! passes Go's check and then dies of SIGILL. So the launcher also reads the architecture
//! version, from `AT_PLATFORM`: the kernel's `elf_platform`, `v5l`, `v6l`, `v7l`, `v8l` (the
//! digit is the version, the letter the byte order; arm64 kernels running 32-bit programs say
//! `v8l`).
//!
//! The rule (docs/ARCHITECTURES.md, "32-bit ARM"): level 6 needs VFP and ARMv6 or later; level 7
//! needs VFPv3 and ARMv7 or later; level 5 needs ARMv5 (what the launcher itself is built for).
//!
//! All of this is pure: the launcher reads the auxiliary vector and passes the values in.

use mgo_format::level::ARM_LEVELS;

/// `AT_HWCAP` bits (Linux `arch/arm/include/uapi/asm/hwcap.h`).
pub mod hwcap {
    pub const VFP: u32 = 1 << 6;
    pub const VFPV3: u32 = 1 << 13;
}

/// What a CPU reports: its `AT_HWCAP` word and the architecture version `AT_PLATFORM` names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cpu {
    pub hwcap: u32,
    pub version: u32,
}

impl Cpu {
    /// From `AT_HWCAP` and the bytes of the `AT_PLATFORM` string (`None` without one). Without
    /// a platform the version is taken as 5, the least the launcher itself runs on: every Linux
    /// kernel since 2.6 reports one, so this is a guess for odd sandboxes, and the safe one.
    pub fn from_auxv(hwcap: u32, platform: Option<&[u8]>) -> Cpu {
        Cpu {
            hwcap,
            version: platform.map_or(5, version),
        }
    }
}

/// The architecture version an `AT_PLATFORM` string names: `v7l` is 7; 0 for anything that does
/// not start with `v` and a version digit.
pub fn version(platform: &[u8]) -> u32 {
    match platform {
        [b'v', digit @ b'1'..=b'9', ..] => (digit - b'0') as u32,
        _ => 0,
    }
}

/// What a level requires: (architecture version, `AT_HWCAP` bits).
pub const fn requirements(level: u32) -> Option<(u32, u32)> {
    match level {
        5 => Some((5, 0)),
        6 => Some((6, hwcap::VFP)),
        7 => Some((7, hwcap::VFP | hwcap::VFPV3)),
        _ => None,
    }
}

/// Whether a CPU that reports `cpu` can run code built for `level`; an unknown code never fits.
pub const fn satisfies(cpu: Cpu, level: u32) -> bool {
    match requirements(level) {
        Some((version, bits)) => cpu.version >= version && cpu.hwcap & bits == bits,
        None => false,
    }
}

/// The highest level `cpu` satisfies, 0 when none does.
pub fn best_level(cpu: Cpu) -> u32 {
    let mut fitting = ARM_LEVELS.into_iter().rev();
    fitting.find(|&l| satisfies(cpu, l)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(platform: &str, hwcap: u32) -> Cpu {
        Cpu::from_auxv(hwcap, Some(platform.as_bytes()))
    }

    #[test]
    fn platform_strings_give_the_version() {
        assert_eq!(version(b"v5l"), 5);
        assert_eq!(version(b"v6l"), 6);
        assert_eq!(version(b"v7l"), 7);
        assert_eq!(version(b"v8l"), 8);
        assert_eq!(version(b"v7b"), 7);
        assert_eq!(version(b"aarch64"), 0);
        assert_eq!(version(b"v"), 0);
        assert_eq!(version(b""), 0);
    }

    #[test]
    fn each_level_needs_its_version_and_its_floating_point() {
        let (vfp, vfp3) = (hwcap::VFP, hwcap::VFP | hwcap::VFPV3);
        // An ARM926 with VFP: Go's own check would let GOARM=6 start, its ldrex would not.
        assert_eq!(best_level(cpu("v5l", vfp)), 5);
        assert_eq!(best_level(cpu("v5l", 0)), 5);
        // ARM1136 without VFP, ARM1176 with it.
        assert_eq!(best_level(cpu("v6l", 0)), 5);
        assert_eq!(best_level(cpu("v6l", vfp)), 6);
        // An ARMv6 reporting VFPv3 (no such CPU) is still an ARMv6.
        assert_eq!(best_level(cpu("v6l", vfp3)), 6);
        assert_eq!(best_level(cpu("v7l", vfp)), 6);
        assert_eq!(best_level(cpu("v7l", vfp3)), 7);
        assert_eq!(best_level(cpu("v7l", 0)), 5);
        assert_eq!(best_level(cpu("v8l", vfp3)), 7);
        // VFPv3 without the VFP bit (no kernel reports that): Go's check refuses GOARM=6 and 7.
        assert_eq!(best_level(cpu("v7l", hwcap::VFPV3)), 5);
        // No platform: the least the launcher runs on. An ARMv4, or a string that names no
        // version: nothing.
        assert_eq!(best_level(Cpu::from_auxv(vfp3, None)), 5);
        assert_eq!(best_level(cpu("v4l", vfp3)), 0);
        assert_eq!(best_level(cpu("armv7l", vfp3)), 0);
    }

    #[test]
    fn unknown_codes_never_fit() {
        let everything = cpu("v8l", u32::MAX);
        for code in [0, 1, 4, 8, 20, 0x8_0000] {
            assert!(!satisfies(everything, code));
        }
    }
}
