//! Which packed variant runs for a given CPU level.

use crate::cpu::aarch64::{self, Hwcaps};
use crate::cpu::riscv64::{self, Extensions};

/// Index of the highest level not above `cap`; the first of equal levels wins. `None` when every
/// packed level is above `cap`.
pub fn highest_at_most(levels: impl Iterator<Item = u32>, cap: u32) -> Option<usize> {
    best_fit(levels, &X86_64Limit(cap))
}

/// What a variant must fit to be chosen: the CPU's abilities, or the level an override names.
/// One implementation per architecture, so that a launcher carries only its own.
pub trait Limit: Sized {
    /// The limit an override (`GOAMD64`, `GOARM64`) sets: exactly the levels `level` includes.
    fn forced(level: u32) -> Self;
    /// Whether a variant built for `level` can run within this limit.
    fn fits(&self, level: u32) -> bool;
    /// The most preferred level that fits, which messages name as the CPU's level (0: none).
    fn level(&self) -> u32;
    /// What `MGODEBUG=log` should add to the CPU's level: why it may be lower than the CPU's.
    fn caveat(&self) -> Option<&'static str> {
        None
    }
}

/// x86-64: the highest level that may run. Levels are totally ordered: each includes the ones
/// below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct X86_64Limit(pub u32);

impl Limit for X86_64Limit {
    fn forced(level: u32) -> Self {
        X86_64Limit(level)
    }

    fn fits(&self, level: u32) -> bool {
        level <= self.0
    }

    fn level(&self) -> u32 {
        self.0
    }
}

/// arm64: the features (`AT_HWCAP`, `AT_HWCAP2`) a variant may require. Levels are only partially
/// ordered (`v8.0,lse` and `v8.0,crypto` do not include each other; v8.9 does not include v9.0),
/// so a level fits when every feature it requires is here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Aarch64Limit(pub Hwcaps);

impl Limit for Aarch64Limit {
    /// As if the CPU had just the features `level` requires: that admits exactly the levels
    /// `level` includes (`mgo_format::level::Aarch64Level::includes`). A code that is no arm64
    /// level admits nothing.
    fn forced(level: u32) -> Self {
        Aarch64Limit(aarch64::requirements(level).unwrap_or_default())
    }

    fn fits(&self, level: u32) -> bool {
        aarch64::satisfies(self.0, level)
    }

    fn level(&self) -> u32 {
        aarch64::best_level(self.0)
    }
}

/// 32-bit ARM: the highest `GOARM` level the CPU can run (0: none). The levels are totally
/// ordered, each including the ones below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArmLimit(pub u32);

impl Limit for ArmLimit {
    fn forced(level: u32) -> Self {
        ArmLimit(level)
    }

    fn fits(&self, level: u32) -> bool {
        mgo_format::level::ARM_LEVELS.contains(&level) && level <= self.0
    }

    fn level(&self) -> u32 {
        self.0
    }
}

/// riscv64: the extensions a variant may require. The profiles are totally ordered, but a CPU
/// is known by its extensions, so a level fits when it requires nothing the CPU lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Riscv64Limit(pub Extensions);

impl Limit for Riscv64Limit {
    /// As if the CPU had just what `level` requires: exactly the profiles up to `level`.
    fn forced(level: u32) -> Self {
        Riscv64Limit(Extensions {
            bits: riscv64::requirements(level).unwrap_or(0),
            hwcap_only: false,
        })
    }

    fn fits(&self, level: u32) -> bool {
        riscv64::satisfies(self.0, level)
    }

    fn level(&self) -> u32 {
        riscv64::best_level(self.0)
    }

    fn caveat(&self) -> Option<&'static str> {
        self.0.hwcap_only.then_some(
            " (no riscv_hwprobe system call: AT_HWCAP cannot show Zba, Zbb or Zbs, so at most \
             rva20u64)",
        )
    }
}

/// ppc64le: the highest `GOPPC64` level the CPU's ISA version allows (0: none). The levels are
/// totally ordered, as x86-64's are; only codes of ppc64le levels fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ppc64leLimit(pub u32);

impl Limit for Ppc64leLimit {
    fn forced(level: u32) -> Self {
        Ppc64leLimit(level)
    }

    fn fits(&self, level: u32) -> bool {
        mgo_format::level::is_valid(mgo_format::Arch::Ppc64le, level) && level <= self.0
    }

    fn level(&self) -> u32 {
        self.0
    }
}

/// Index of the most preferred packed level that fits `limit`; the first of equal levels wins.
/// Level codes are numbered so that a larger code is a preferred level (see mgo_format::level):
/// on arm64 a higher version first, then `lse`, then `crypto`. `None` when nothing fits.
pub fn best_fit(levels: impl Iterator<Item = u32>, limit: &impl Limit) -> Option<usize> {
    let mut best: Option<(usize, u32)> = None;
    for (i, level) in levels.enumerate() {
        if limit.fits(level) && best.is_none_or(|(_, b)| level > b) {
            best = Some((i, level));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mgo_format::level::parse_aarch64;

    #[test]
    fn picks_highest_fitting() {
        let packed = [1, 2, 3, 4];
        assert_eq!(highest_at_most(packed.into_iter(), 4), Some(3));
        assert_eq!(highest_at_most(packed.into_iter(), 3), Some(2));
        assert_eq!(highest_at_most([4, 1, 3].into_iter(), 2), Some(1));
        assert_eq!(highest_at_most([3, 4].into_iter(), 2), None);
        assert_eq!(highest_at_most([1, 3, 3].into_iter(), 4), Some(1));
    }

    fn codes(names: &[&str]) -> Vec<u32> {
        names
            .iter()
            .map(|n| parse_aarch64(n.as_bytes()).unwrap())
            .collect()
    }

    fn pick<'a>(names: &[&'a str], limit: Aarch64Limit) -> Option<&'a str> {
        best_fit(codes(names).into_iter(), &limit).map(|i| names[i])
    }

    // AT_HWCAP of QEMU's cortex-a53 (v8.0 with crypto, no LSE) and cortex-a76 (v8.2, LSE,
    // crypto), as qemu-aarch64 7.2 reports them.
    const A53: Aarch64Limit = Aarch64Limit(Hwcaps::new(0x8fb, 0));
    const A76: Aarch64Limit = Aarch64Limit(Hwcaps::new(0x11_9ffb, 0));

    #[test]
    fn arm64_picks_the_most_preferred_level_the_cpu_meets() {
        let packed = ["v8.0", "v8.0,lse", "v8.0,crypto", "v8.2", "v8.4"];
        assert_eq!(pick(&packed, A53), Some("v8.0,crypto"));
        assert_eq!(pick(&packed, A76), Some("v8.2"));
        // Order in the bundle does not matter.
        assert_eq!(pick(&["v8.2", "v8.0", "v8.0,lse"], A76), Some("v8.2"));
        // lse and crypto both fit: lse is preferred, and both together more.
        assert_eq!(pick(&["v8.0,crypto", "v8.0,lse"], A76), Some("v8.0,lse"));
        assert_eq!(
            pick(&["v8.0,crypto", "v8.0,lse,crypto", "v8.0,lse"], A76),
            Some("v8.0,lse,crypto")
        );
        // A higher version beats suffixes.
        assert_eq!(pick(&["v8.0,lse,crypto", "v8.1"], A76), Some("v8.1"));
        assert_eq!(pick(&["v8.1", "v8.3"], A53), None);
        // Codes that are no arm64 level (an x86-64 level here) never run.
        assert_eq!(best_fit([1, 2].into_iter(), &A76), None);
    }

    #[test]
    fn arm64_override_runs_what_the_named_level_includes() {
        let packed = ["v8.0", "v8.0,lse", "v8.1,crypto", "v8.5", "v8.6", "v9.0"];
        let forced = |name: &str| Aarch64Limit::forced(codes(&[name])[0]);
        assert_eq!(pick(&packed, forced("v8.0")), Some("v8.0"));
        assert_eq!(pick(&packed, forced("v8.0,crypto")), Some("v8.0"));
        assert_eq!(pick(&packed, forced("v8.0,lse")), Some("v8.0,lse"));
        assert_eq!(pick(&packed, forced("v8.4")), Some("v8.0,lse"));
        assert_eq!(pick(&packed, forced("v8.4,crypto")), Some("v8.1,crypto"));
        assert_eq!(pick(&packed, forced("v8.9")), Some("v8.6"));
        // v9.0 includes v8.5 but not v8.6.
        assert_eq!(pick(&packed, forced("v9.0")), Some("v9.0"));
        assert_eq!(pick(&packed[..5], forced("v9.0")), Some("v8.5"));
        // An override that is no level admits nothing (the launcher refuses it earlier).
        assert_eq!(
            best_fit([0x8_0000].into_iter(), &Aarch64Limit::forced(7)),
            None
        );
    }

    #[test]
    fn limits_name_their_level() {
        assert_eq!(X86_64Limit::forced(3).level(), 3);
        let v8_2 = codes(&["v8.2,crypto"])[0];
        assert_eq!(Aarch64Limit::forced(v8_2).level(), v8_2);
        assert_eq!(A53.level(), codes(&["v8.0,crypto"])[0]);
        assert!(A76.fits(v8_2) && !A53.fits(v8_2));
    }

    #[test]
    fn arm_levels_are_ordered() {
        use crate::cpu::arm::{best_level, hwcap, Cpu};
        let arm1176 = ArmLimit(best_level(Cpu::from_auxv(hwcap::VFP, Some(b"v6l"))));
        assert_eq!(arm1176.level(), 6);
        assert_eq!(best_fit([5, 6, 7].into_iter(), &arm1176), Some(1));
        assert_eq!(best_fit([7].into_iter(), &arm1176), None);
        assert_eq!(
            best_fit([5, 6, 7].into_iter(), &ArmLimit::forced(5)),
            Some(0)
        );
        assert!(!ArmLimit(7).fits(4) && !ArmLimit(7).fits(1));
    }

    #[test]
    fn riscv64_profiles_and_the_hwcap_caveat() {
        use crate::cpu::riscv64::requirements;
        let probed = |level| {
            Riscv64Limit(Extensions {
                bits: requirements(level).unwrap(),
                hwcap_only: false,
            })
        };
        let packed = [20, 22, 23];
        assert_eq!(best_fit(packed.into_iter(), &probed(22)), Some(1));
        assert_eq!(
            best_fit(packed.into_iter(), &Riscv64Limit::forced(23)),
            Some(2)
        );
        assert_eq!(best_fit([22, 23].into_iter(), &probed(20)), None);
        assert_eq!(probed(23).caveat(), None);
        let hwcap = Riscv64Limit(Extensions::from_hwcap(0x20_112d));
        assert_eq!(hwcap.level(), 20);
        assert!(hwcap.caveat().unwrap().contains("at most rva20u64"));
        assert_eq!(Riscv64Limit::forced(21).level(), 0);
    }

    #[test]
    fn ppc64le_picks_the_highest_level_the_isa_allows() {
        use crate::cpu::ppc64le::best_level;
        let packed = [0x108, 0x109, 0x10a];
        // qemu-ppc64le's power9 AT_HWCAP2.
        let power9 = Ppc64leLimit(best_level(0x8ee0_0000));
        assert_eq!(best_fit(packed.into_iter(), &power9), Some(1));
        assert_eq!(best_fit([0x10a, 0x108].into_iter(), &power9), Some(1));
        assert_eq!(best_fit([0x10a].into_iter(), &power9), None);
        assert_eq!(
            best_fit(packed.into_iter(), &Ppc64leLimit::forced(0x10a)),
            Some(2)
        );
        // Other architectures' codes never run, even those below the limit.
        assert_eq!(best_fit([1, 4, 23].into_iter(), &power9), None);
        assert_eq!(Ppc64leLimit(best_level(0)).level(), 0);
    }
}
