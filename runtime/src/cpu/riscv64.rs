//! riscv64: which `GORISCV64` profiles a CPU can run, from what Linux reports of its extensions.
//!
//! Linux reports multi-letter extensions (Zba, Zbb, Zbs, Zicond, Zfa...) only through the
//! `riscv_hwprobe` system call (Linux 6.4). `AT_HWCAP` has one bit per single-letter extension
//! and nothing else, so a CPU seen only through it counts as rva20u64 at most: it cannot show
//! the bit-manipulation extensions rva22u64 needs. Its `V` bit does not help either: some
//! vendors set it for the incompatible draft 0.7.1 vector extension.
//!
//! The rule (docs/ARCHITECTURES.md, "riscv64") is what Go's compiler and assembler assume of each
//! profile: rva22u64 code may use Zba, Zbb and Zbs; rva23u64 code also V, Zfa and Zicond.
//! Zihintpause, which Go also assumes at rva23u64, is left out: `pause` is a hint, executed as
//! an ordinary fence where the extension is missing.
//!
//! All of this is pure: the launcher makes the system call and passes the answer in.

use mgo_format::level::RISCV64_LEVELS;

/// Bits of `RISCV_HWPROBE_KEY_IMA_EXT_0` (Linux `arch/riscv/include/uapi/asm/hwprobe.h`).
pub mod ext {
    pub const IMA_FD: u64 = 1 << 0;
    pub const IMA_C: u64 = 1 << 1;
    pub const IMA_V: u64 = 1 << 2;
    pub const ZBA: u64 = 1 << 3;
    pub const ZBB: u64 = 1 << 4;
    pub const ZBS: u64 = 1 << 5;
    pub const ZFA: u64 = 1 << 32;
    pub const ZICOND: u64 = 1 << 35;
}

/// `riscv_hwprobe` keys the launcher asks for.
pub const KEY_BASE_BEHAVIOR: i64 = 3;
pub const KEY_IMA_EXT_0: i64 = 4;
/// `RISCV_HWPROBE_BASE_BEHAVIOR_IMA`: the base integer ISA with M and A, as rva20u64 needs.
pub const BASE_BEHAVIOR_IMA: u64 = 1;

/// What a profile requires, as `RISCV_HWPROBE_KEY_IMA_EXT_0` bits (on top of the IMA base).
pub const fn requirements(level: u32) -> Option<u64> {
    const RVA20: u64 = ext::IMA_FD | ext::IMA_C;
    const RVA22: u64 = RVA20 | ext::ZBA | ext::ZBB | ext::ZBS;
    const RVA23: u64 = RVA22 | ext::IMA_V | ext::ZFA | ext::ZICOND;
    match level {
        20 => Some(RVA20),
        22 => Some(RVA22),
        23 => Some(RVA23),
        _ => None,
    }
}

/// A CPU's extensions, and where they were learnt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extensions {
    /// `RISCV_HWPROBE_KEY_IMA_EXT_0` bits; 0 when the base is not IMA.
    pub bits: u64,
    /// From `AT_HWCAP` only (no `riscv_hwprobe`): the bits above rva20u64's cannot be known.
    pub hwcap_only: bool,
}

impl Extensions {
    /// From a successful `riscv_hwprobe` answer: `base` and `ima_ext_0` are the values of the
    /// two keys, `None` where the kernel did not know the key.
    pub const fn from_hwprobe(base: Option<u64>, ima_ext_0: Option<u64>) -> Extensions {
        let bits = match (base, ima_ext_0) {
            (Some(b), Some(e)) if b & BASE_BEHAVIOR_IMA != 0 => e,
            _ => 0,
        };
        Extensions {
            bits,
            hwcap_only: false,
        }
    }

    /// From `AT_HWCAP` (bit `letter - 'a'` per single-letter extension): rva20u64 when I, M, A,
    /// F, D and C are all there, nothing otherwise.
    pub const fn from_hwcap(hwcap: u64) -> Extensions {
        const fn bit(letter: u8) -> u64 {
            1 << (letter - b'a')
        }
        let imafdc = bit(b'i') | bit(b'm') | bit(b'a') | bit(b'f') | bit(b'd') | bit(b'c');
        let bits = if hwcap & imafdc == imafdc {
            ext::IMA_FD | ext::IMA_C
        } else {
            0
        };
        Extensions {
            bits,
            hwcap_only: true,
        }
    }
}

/// Whether a CPU with `cpu` can run code built for `level`; an unknown code never fits.
pub const fn satisfies(cpu: Extensions, level: u32) -> bool {
    match requirements(level) {
        Some(need) => cpu.bits & need == need,
        None => false,
    }
}

/// The highest profile `cpu` satisfies, 0 when none does.
pub fn best_level(cpu: Extensions) -> u32 {
    RISCV64_LEVELS
        .iter()
        .copied()
        .filter(|&l| satisfies(cpu, l))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probed(bits: u64) -> Extensions {
        Extensions::from_hwprobe(Some(BASE_BEHAVIOR_IMA), Some(bits))
    }

    #[test]
    fn each_profile_needs_what_the_one_below_lacks() {
        let [a, b, c] = RISCV64_LEVELS.map(|l| requirements(l).unwrap());
        assert_eq!(a & !b, 0);
        assert_eq!(b & !c, 0);
        assert_ne!(a, b);
        assert_ne!(b, c);
        for level in RISCV64_LEVELS {
            let need = requirements(level).unwrap();
            assert_eq!(best_level(probed(need)), level);
            // Any single requirement missing drops the CPU below `level`.
            for bit in 0..64 {
                if need & (1 << bit) != 0 {
                    assert!(
                        best_level(probed(need & !(1 << bit))) < level,
                        "{level} {bit}"
                    );
                }
            }
        }
    }

    #[test]
    fn hwcap_alone_is_at_most_rva20u64() {
        // I M A F D C V, as qemu-riscv64 reports for a CPU with everything.
        let all = Extensions::from_hwcap(0x20_112d);
        assert_eq!(best_level(all), 20);
        assert!(all.hwcap_only);
        // Without D.
        assert_eq!(best_level(Extensions::from_hwcap(0x20_1125)), 0);
    }

    #[test]
    fn a_base_that_is_not_ima_runs_nothing() {
        let everything = requirements(23).unwrap();
        assert_eq!(
            best_level(Extensions::from_hwprobe(Some(0), Some(everything))),
            0
        );
        assert_eq!(
            best_level(Extensions::from_hwprobe(None, Some(everything))),
            0
        );
        assert_eq!(best_level(Extensions::from_hwprobe(Some(1), None)), 0);
    }

    #[test]
    fn unknown_codes_never_fit() {
        let cpu = probed(u64::MAX);
        for code in [0, 1, 21, 24, 0x8_0000] {
            assert!(!satisfies(cpu, code));
        }
    }
}
