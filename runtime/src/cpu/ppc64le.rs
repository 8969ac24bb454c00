//! ppc64le: which `GOPPC64` level a CPU can run, from the ISA level Linux reports.
//!
//! Linux states the Power ISA version a CPU implements as bits of `AT_HWCAP2`
//! (`arch/powerpc/include/uapi/asm/cputable.h`): `PPC_FEATURE2_ARCH_2_07` for ISA 2.07 (POWER8),
//! `PPC_FEATURE2_ARCH_3_00` for ISA 3.0 (POWER9), `PPC_FEATURE2_ARCH_3_1` for ISA 3.1 (POWER10),
//! each set together with the older ones. These are the bits Go's own `internal/cpu` reads for
//! `IsPOWER8`, `IsPOWER9` and `IsPOWER10`.
//!
//! The rule (docs/ARCHITECTURES.md, "ppc64le") is what Go's compiler and assembler emit for each
//! level: `GOPPC64=power9` code uses ISA 3.0 instructions without asking the CPU first (the
//! `GOPPC64_power9` assembly paths, the compiler's ISA 3.0 rules), `power10` code ISA 3.1 ones
//! (prefixed loads and stores). Go's runtime checks none of this at start-up: a power9 build on
//! a POWER8 dies of SIGILL on the first such instruction. power8 is the baseline of ppc64le
//! Linux, still required here, so that a kernel reporting an older ISA runs nothing.
//!
//! A guest running in a compatibility mode (a POWER9 partition in POWER8 mode) is reported as
//! the older CPU, and that is what it can run.
//!
//! All of this is pure: the launcher reads `AT_HWCAP2` from its auxiliary vector and passes it in.

use mgo_format::level::PPC64LE_LEVELS;

/// `AT_HWCAP2` bits (Linux `arch/powerpc/include/uapi/asm/cputable.h`).
pub mod hwcap2 {
    pub const ARCH_2_07: u64 = 0x8000_0000;
    pub const ARCH_3_00: u64 = 0x0080_0000;
    pub const ARCH_3_1: u64 = 0x0004_0000;
}

/// The `AT_HWCAP2` bits a level requires: its ISA version's and every older one's.
pub const fn requirements(level: u32) -> Option<u64> {
    const POWER8: u64 = hwcap2::ARCH_2_07;
    const POWER9: u64 = POWER8 | hwcap2::ARCH_3_00;
    const POWER10: u64 = POWER9 | hwcap2::ARCH_3_1;
    match level {
        0x108 => Some(POWER8),
        0x109 => Some(POWER9),
        0x10a => Some(POWER10),
        _ => None,
    }
}

/// Whether a CPU whose `AT_HWCAP2` is `hwcap2` can run code built for `level`; an unknown code
/// never fits.
pub const fn satisfies(hwcap2: u64, level: u32) -> bool {
    match requirements(level) {
        Some(need) => hwcap2 & need == need,
        None => false,
    }
}

/// The highest level a CPU with `hwcap2` satisfies, 0 when none does.
pub fn best_level(hwcap2: u64) -> u32 {
    PPC64LE_LEVELS
        .iter()
        .copied()
        .filter(|&l| satisfies(hwcap2, l))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_level_needs_its_isa_and_the_older_ones() {
        for level in PPC64LE_LEVELS {
            let need = requirements(level).unwrap();
            assert_eq!(best_level(need), level);
            // Any single bit missing drops the CPU below `level`.
            for bit in 0..64 {
                if need & (1 << bit) != 0 {
                    assert!(best_level(need & !(1 << bit)) < level, "{level:#x} {bit}");
                }
            }
        }
    }

    #[test]
    fn real_hwcap2_words() {
        // qemu-ppc64le 10's power8, power9 and power10: the ISA bits among feature bits (isel,
        // tar, vcrypto; darn, ieee128; mma).
        assert_eq!(best_level(0x8e00_0000), 0x108);
        assert_eq!(best_level(0x8ee0_0000), 0x109);
        assert_eq!(best_level(0x8ee6_0000), 0x10a);
        // A POWER9 machine as Linux reports it (with htm, dscr, ebb, scv...).
        assert_eq!(best_level(0xefb0_0000 | hwcap2::ARCH_3_00), 0x109);
        // ISA 3.0 without 2.07 (no real CPU): nothing, rather than a guess.
        assert_eq!(best_level(hwcap2::ARCH_3_00), 0);
        assert_eq!(best_level(0), 0);
    }

    #[test]
    fn unknown_codes_never_fit() {
        for code in [0, 1, 8, 9, 10, 20, 0x10b, 0x8_0000] {
            assert!(!satisfies(u64::MAX, code), "{code:#x}");
        }
    }
}
