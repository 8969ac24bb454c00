//! arm64 levels, the `GOARM64=v8.0` ... `v9.5` (with `,lse` and `,crypto`) of Go 1.23.
//!
//! Linux tells a program what its CPU can do through two words of the auxiliary vector,
//! `AT_HWCAP` and `AT_HWCAP2`: one bit per feature the kernel has checked in the ID registers and
//! enabled for user space. It does not report an architecture version, so each level is mapped to
//! the features it requires (docs/ARCHITECTURES.md, "arm64", gives the table and its sources):
//!
//! - a version requires the features Arm makes mandatory by that version (or that GCC and LLVM
//!   enable for `-march=armvX.Y-a`), counting only those user-space code can use outside the hint
//!   space and that Linux reports; a hint (BTI, for example) runs as a no-op on older CPUs, so a
//!   program built with it runs there anyway;
//! - v9.N requires what v8.(N+5) does, plus SVE, SVE2 and the FP16 arithmetic Armv9 compilers
//!   assume (Go's `buildcfg` also treats v9.N as including v8.(N+5));
//! - `,lse` requires `HWCAP_ATOMICS`, the bit Go's own start-up check reads (through
//!   `ID_AA64ISAR0_EL1.Atomic`); `,crypto` requires AES, PMULL, SHA1 and SHA2, the four features
//!   Go's `buildcfg` lists for it.
//!
//! A kernel too old to report a feature makes its CPU look older than it is: the launcher then
//! runs a lower variant, which is slower but starts. The opposite mistake would not start.
//!
//! Everything here is pure: the launcher reads the two words with `StartInfo::aux` and passes
//! them in, and the tests use the values real CPUs and QEMU models report.

use mgo_format::level::Aarch64Level;

pub const AT_HWCAP: usize = 16;
pub const AT_HWCAP2: usize = 26;

/// The CPU features Linux reports: `AT_HWCAP` and `AT_HWCAP2`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hwcaps {
    pub hwcap: u64,
    pub hwcap2: u64,
}

impl Hwcaps {
    pub const fn new(hwcap: u64, hwcap2: u64) -> Hwcaps {
        Hwcaps { hwcap, hwcap2 }
    }

    /// Reads both words through `aux` (a lookup in the auxiliary vector); a missing entry counts
    /// as no features.
    pub fn from_auxv(aux: impl Fn(usize) -> Option<usize>) -> Hwcaps {
        let word = |key| aux(key).unwrap_or(0) as u64;
        Hwcaps::new(word(AT_HWCAP), word(AT_HWCAP2))
    }

    /// Whether every feature of `needed` is here.
    pub const fn contains(self, needed: Hwcaps) -> bool {
        self.hwcap & needed.hwcap == needed.hwcap && self.hwcap2 & needed.hwcap2 == needed.hwcap2
    }

    const fn union(self, other: Hwcaps) -> Hwcaps {
        Hwcaps::new(self.hwcap | other.hwcap, self.hwcap2 | other.hwcap2)
    }
}

/// One feature: its `AT_HWCAP` (`word` 1) or `AT_HWCAP2` (`word` 2) bit, and the name Linux gives
/// it in /proc/cpuinfo.
struct Feature {
    word: u8,
    bit: u8,
    name: &'static str,
}

const fn hwcap(bit: u8, name: &'static str) -> Feature {
    Feature { word: 1, bit, name }
}

const fn hwcap2(bit: u8, name: &'static str) -> Feature {
    Feature { word: 2, bit, name }
}

impl Feature {
    const fn mask(&self) -> Hwcaps {
        if self.word == 1 {
            Hwcaps::new(1 << self.bit, 0)
        } else {
            Hwcaps::new(0, 1 << self.bit)
        }
    }
}

/// What each v8 version adds to the one before (bit numbers from Linux's
/// arch/arm64/include/uapi/asm/hwcap.h).
const V8_ADDS: [&[Feature]; 10] = [
    // v8.0: FEAT_FP, FEAT_AdvSIMD, which every arm64 compiler assumes.
    &[hwcap(0, "fp"), hwcap(1, "asimd")],
    // v8.1: FEAT_CRC32, FEAT_LSE, FEAT_RDM.
    &[
        hwcap(7, "crc32"),
        hwcap(8, "atomics"),
        hwcap(12, "asimdrdm"),
    ],
    // v8.2: FEAT_DPB (DC CVAP).
    &[hwcap(16, "dcpop")],
    // v8.3: FEAT_JSCVT, FEAT_FCMA, FEAT_LRCPC, FEAT_PAuth (address and generic keys).
    &[
        hwcap(13, "jscvt"),
        hwcap(14, "fcma"),
        hwcap(15, "lrcpc"),
        hwcap(30, "paca"),
        hwcap(31, "pacg"),
    ],
    // v8.4: FEAT_DotProd, FEAT_DIT, FEAT_LSE2, FEAT_LRCPC2, FEAT_FlagM.
    &[
        hwcap(20, "asimddp"),
        hwcap(24, "dit"),
        hwcap(25, "uscat"),
        hwcap(26, "ilrcpc"),
        hwcap(27, "flagm"),
    ],
    // v8.5: FEAT_SB, FEAT_DPB2, FEAT_FlagM2, FEAT_FRINTTS (FEAT_BTI is hints only).
    &[
        hwcap(29, "sb"),
        hwcap2(0, "dcpodp"),
        hwcap2(7, "flagm2"),
        hwcap2(8, "frint"),
    ],
    // v8.6: FEAT_I8MM, FEAT_BF16, FEAT_ECV.
    &[hwcap2(13, "i8mm"), hwcap2(14, "bf16"), hwcap2(19, "ecv")],
    // v8.7: FEAT_WFxT.
    &[hwcap2(31, "wfxt")],
    // v8.8: FEAT_MOPS, FEAT_HBC.
    &[hwcap2(43, "mops"), hwcap2(44, "hbc")],
    // v8.9: FEAT_CSSC.
    &[hwcap2(34, "cssc")],
];

/// What v9.N adds to v8.(N+5) and to v9.(N-1).
const V9_ADDS: [&[Feature]; 6] = [
    // v9.0: FEAT_SVE, FEAT_SVE2, and FEAT_FP16 with FEAT_FHM (enabled by GCC and LLVM for
    // armv9-a; FHM is mandatory from v8.4 wherever FP16 is implemented).
    &[
        hwcap(9, "fphp"),
        hwcap(10, "asimdhp"),
        hwcap(22, "sve"),
        hwcap(23, "asimdfhm"),
        hwcap2(1, "sve2"),
    ],
    // v9.1: the SVE forms of v8.6's I8MM and BF16.
    &[hwcap2(9, "svei8mm"), hwcap2(12, "svebf16")],
    &[],
    &[],
    // v9.4: FEAT_SVE2p1 (LLVM enables it for armv9.4-a).
    &[hwcap2(36, "sve2p1")],
    // v9.5: FEAT_LUT, FEAT_FAMINMAX (LLVM enables them for armv9.5-a).
    &[hwcap2(49, "lut"), hwcap2(50, "faminmax")],
];

/// `,lse`: FEAT_LSE.
const LSE: &[Feature] = &[hwcap(8, "atomics")];
/// `,crypto`: FEAT_AES (with PMULL), FEAT_SHA1, FEAT_SHA256.
const CRYPTO: &[Feature] = &[
    hwcap(3, "aes"),
    hwcap(4, "pmull"),
    hwcap(5, "sha1"),
    hwcap(6, "sha2"),
];

const fn mask_of(features: &[Feature]) -> Hwcaps {
    let mut mask = Hwcaps::new(0, 0);
    let mut i = 0;
    while i < features.len() {
        mask = mask.union(features[i].mask());
        i += 1;
    }
    mask
}

/// Everything v8.0 .. v8.`minor` require.
const fn v8_mask(minor: u8) -> Hwcaps {
    let mut mask = Hwcaps::new(0, 0);
    let mut m = 0;
    while m <= minor as usize {
        mask = mask.union(mask_of(V8_ADDS[m]));
        m += 1;
    }
    mask
}

/// Everything the version of `level` requires, suffixes aside.
const fn version_mask(major: u8, minor: u8) -> Hwcaps {
    if major == 8 {
        return v8_mask(minor);
    }
    let v8_minor = if minor + 5 > 9 { 9 } else { minor + 5 };
    let mut mask = v8_mask(v8_minor);
    let mut m = 0;
    while m <= minor as usize {
        mask = mask.union(mask_of(V9_ADDS[m]));
        m += 1;
    }
    mask
}

/// The features a level code requires; `None` for a code that is no arm64 level.
pub fn requirements(level: u32) -> Option<Hwcaps> {
    let level = Aarch64Level::from_code(level)?;
    let mut mask = version_mask(level.major, level.minor);
    if level.lse {
        mask = mask.union(mask_of(LSE));
    }
    if level.crypto {
        mask = mask.union(mask_of(CRYPTO));
    }
    Some(mask)
}

/// Whether a CPU with `cpu`'s features can run a variant built for `level`. Never for a code that
/// is no arm64 level: the launcher cannot vouch for what it does not know.
pub fn satisfies(cpu: Hwcaps, level: u32) -> bool {
    requirements(level).is_some_and(|needed| cpu.contains(needed))
}

/// The versions from the most preferred down: v9.5 .. v9.0, then v8.9 .. v8.0.
fn versions_descending() -> impl Iterator<Item = (u8, u8)> {
    (0..=5u8)
        .rev()
        .map(|minor| (9, minor))
        .chain((0..=9u8).rev().map(|minor| (8, minor)))
}

/// The most preferred level code `cpu` satisfies (the largest, see mgo_format::level), which is
/// what messages call the CPU's level; 0 when it satisfies none (no FP/AdvSIMD).
pub fn best_level(cpu: Hwcaps) -> u32 {
    let has = |features| cpu.contains(mask_of(features));
    versions_descending()
        .find(|&(major, minor)| cpu.contains(version_mask(major, minor)))
        .and_then(|(major, minor)| Aarch64Level::new(major, minor, has(LSE), has(CRYPTO)))
        .map_or(0, Aarch64Level::code)
}

/// The name (as /proc/cpuinfo spells it) of the first feature `level` requires that `cpu` lacks,
/// in the order of the tables above: `None` when `cpu` satisfies `level`.
pub fn missing_for(cpu: Hwcaps, level: u32) -> Option<&'static str> {
    let Some(level) = Aarch64Level::from_code(level) else {
        return Some("no such arm64 level");
    };
    let v8_minor = if level.major == 8 {
        level.minor
    } else {
        (level.minor + 5).min(9)
    };
    let v9_adds: &[&[Feature]] = if level.major == 9 {
        &V9_ADDS[..=level.minor as usize]
    } else {
        &[]
    };
    let suffixes = [
        if level.lse { LSE } else { &[] },
        if level.crypto { CRYPTO } else { &[] },
    ];
    V8_ADDS[..=v8_minor as usize]
        .iter()
        .chain(v9_adds)
        .chain(suffixes.iter())
        .flat_map(|features| features.iter())
        .find(|f| !cpu.contains(f.mask()))
        .map(|f| f.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mgo_format::level::{parse_aarch64, write_aarch64_name, AARCH64_NAME_MAX};

    fn code(text: &str) -> u32 {
        parse_aarch64(text.as_bytes()).unwrap_or_else(|| panic!("{text} is no level"))
    }

    fn name(code: u32) -> String {
        let mut buf = [0u8; AARCH64_NAME_MAX];
        let len = write_aarch64_name(code, &mut buf);
        String::from_utf8(buf[..len].to_vec()).unwrap()
    }

    /// Every valid arm64 level code.
    fn all_levels() -> Vec<u32> {
        let mut all = Vec::new();
        for (major, minor) in versions_descending() {
            for (lse, crypto) in [(false, false), (false, true), (true, false), (true, true)] {
                let level = Aarch64Level::new(major, minor, lse, crypto).unwrap().code();
                if !all.contains(&level) {
                    all.push(level);
                }
            }
        }
        all
    }

    // AT_HWCAP / AT_HWCAP2 as reported to programs. QEMU rows: qemu-aarch64 7.2 (Debian 12),
    // read with getauxval under `-cpu MODEL`; QEMU 7.2 reports neither DIT nor USCAT for `max`.
    const QEMU_CORTEX_A53: Hwcaps = Hwcaps::new(0x8fb, 0);
    const QEMU_CORTEX_A76: Hwcaps = Hwcaps::new(0x11_9ffb, 0);
    const QEMU_A64FX: Hwcaps = Hwcaps::new(0x41_5ffb, 0);
    const QEMU_MAX: Hwcaps = Hwcaps::new(0xecff_fffb, 0x7f87_7fff);
    // Raspberry Pi 4 (Cortex-A72), Linux 6.1: fp asimd evtstrm crc32 cpuid; the SoC has no
    // crypto extension.
    const RASPBERRY_PI_4: Hwcaps = Hwcaps::new(0x87, 0);
    // AWS Graviton2 (Neoverse N1), Linux 6.1: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics
    // fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs.
    const GRAVITON2: Hwcaps = Hwcaps::new(0x1011_9fff, 0);
    // AWS Graviton3 (Neoverse V1, Armv8.4 with SVE, BF16 and I8MM), Linux 6.1: Graviton2's
    // features and jscvt fcma sha3 sm3 sm4 sha512 sve asimdfhm dit uscat ilrcpc flagm paca pacg
    // dcpodp svei8mm svebf16 i8mm bf16 dgh rng; no sb, flagm2 or frint.
    const GRAVITON3: Hwcaps = Hwcaps::new(0xdfff_ffff, 0x1_f201);
    // Graviton3 with the rest of v8.5 (sb, flagm2, frint) and SVE2: a v9.0 CPU.
    const V9_0: Hwcaps = Hwcaps::new(0xffff_ffff, 0x1_f383);

    struct Row {
        name: &'static str,
        cpu: Hwcaps,
        best: &'static str,
        /// What the first level above stops at: (level, missing feature).
        next: Option<(&'static str, &'static str)>,
    }

    const ROWS: &[Row] = &[
        Row {
            name: "QEMU cortex-a53",
            cpu: QEMU_CORTEX_A53,
            best: "v8.0,crypto",
            next: Some(("v8.1", "atomics")),
        },
        Row {
            name: "QEMU cortex-a76 / neoverse-n1",
            cpu: QEMU_CORTEX_A76,
            best: "v8.2,lse,crypto",
            next: Some(("v8.3", "jscvt")),
        },
        Row {
            name: "QEMU a64fx",
            cpu: QEMU_A64FX,
            best: "v8.2,lse,crypto",
            next: Some(("v8.3", "jscvt")),
        },
        Row {
            name: "QEMU 7.2 max",
            cpu: QEMU_MAX,
            best: "v8.3,lse,crypto",
            next: Some(("v8.4", "dit")),
        },
        Row {
            name: "Raspberry Pi 4",
            cpu: RASPBERRY_PI_4,
            best: "v8.0",
            next: Some(("v8.0,lse", "atomics")),
        },
        Row {
            name: "Graviton2",
            cpu: GRAVITON2,
            best: "v8.2,lse,crypto",
            next: Some(("v8.3", "jscvt")),
        },
        Row {
            name: "Graviton3",
            cpu: GRAVITON3,
            best: "v8.4,lse,crypto",
            next: Some(("v8.5", "sb")),
        },
        Row {
            name: "v9.0",
            cpu: V9_0,
            best: "v9.0,lse,crypto",
            next: Some(("v9.1", "ecv")),
        },
        Row {
            name: "no FP",
            cpu: Hwcaps::new(0x8fa, 0),
            best: "v?",
            next: Some(("v8.0", "fp")),
        },
    ];

    #[test]
    fn level_of_each_cpu() {
        for r in ROWS {
            assert_eq!(name(best_level(r.cpu)), r.best, "{}", r.name);
            if r.best != "v?" {
                assert!(satisfies(r.cpu, code(r.best)), "{}", r.name);
                assert_eq!(missing_for(r.cpu, code(r.best)), None, "{}", r.name);
            }
            if let Some((above, feature)) = r.next {
                assert!(!satisfies(r.cpu, code(above)), "{}", r.name);
                assert_eq!(missing_for(r.cpu, code(above)), Some(feature), "{}", r.name);
            }
        }
    }

    #[test]
    fn suffixes_are_independent_of_the_version() {
        // LSE without crypto and crypto without LSE.
        let lse_only = Hwcaps::new(0x103, 0);
        assert_eq!(name(best_level(lse_only)), "v8.0,lse");
        assert!(!satisfies(lse_only, code("v8.0,crypto")));
        assert_eq!(missing_for(lse_only, code("v8.0,crypto")), Some("aes"));
        assert_eq!(name(best_level(QEMU_CORTEX_A53)), "v8.0,crypto");
        assert!(!satisfies(QEMU_CORTEX_A53, code("v8.0,lse")));
        // A v8.2 CPU without the crypto extension (Cortex-A55 parts without it).
        let a76_no_crypto = Hwcaps::new(QEMU_CORTEX_A76.hwcap & !0x78, 0);
        assert_eq!(name(best_level(a76_no_crypto)), "v8.2,lse");
        assert_eq!(missing_for(a76_no_crypto, code("v8.2,crypto")), Some("aes"));
    }

    #[test]
    fn v9_needs_sve2_on_top_of_v8_5() {
        assert!(satisfies(V9_0, code("v8.5")));
        assert!(!satisfies(V9_0, code("v8.6")));
        let no_sve2 = Hwcaps::new(V9_0.hwcap, V9_0.hwcap2 & !0x2);
        assert_eq!(name(best_level(no_sve2)), "v8.5,lse,crypto");
        assert_eq!(missing_for(no_sve2, code("v9.0")), Some("sve2"));
        // A v8.9 CPU with SVE2 but without SVE's I8MM forms: v8.9 and v9.0 both fit, and v9.0,
        // the larger code, is what it is called.
        let v8_9 = Hwcaps::new(!0, v8_mask(9).hwcap2).union(version_mask(9, 0));
        assert!(satisfies(v8_9, code("v8.9")));
        assert!(satisfies(v8_9, code("v9.0")));
        assert!(!satisfies(v8_9, code("v9.1")));
        assert_eq!(name(best_level(v8_9)), "v9.0,lse,crypto");
    }

    #[test]
    fn every_level_needs_more_than_the_levels_it_includes() {
        // The masks follow the order of `includes` exactly, so a forced level can be treated as
        // a CPU with exactly the features it requires.
        let all = all_levels();
        for &outer in &all {
            let o = Aarch64Level::from_code(outer).unwrap();
            let forced = requirements(outer).unwrap();
            for &inner in &all {
                let i = Aarch64Level::from_code(inner).unwrap();
                assert_eq!(
                    satisfies(forced, inner),
                    o.includes(i),
                    "{} within {}",
                    name(inner),
                    name(outer)
                );
            }
            assert_eq!(best_level(forced), outer, "{}", name(outer));
        }
    }

    #[test]
    fn best_level_is_the_largest_code_satisfied() {
        let all = all_levels();
        let mut cpus: Vec<Hwcaps> = ROWS.iter().map(|r| r.cpu).collect();
        // Pseudo-random feature words: every combination the tables could meet.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let y = x.rotate_left(29);
            cpus.push(Hwcaps::new(x | 0x3, y));
            cpus.push(Hwcaps::new(!0, y));
            cpus.push(Hwcaps::new(x, !0));
        }
        for cpu in cpus {
            let expected = all
                .iter()
                .copied()
                .filter(|&l| satisfies(cpu, l))
                .max()
                .unwrap_or(0);
            assert_eq!(best_level(cpu), expected, "{cpu:x?}");
            for &l in &all {
                assert_eq!(missing_for(cpu, l).is_none(), satisfies(cpu, l));
            }
        }
    }

    #[test]
    fn codes_that_are_no_level_never_fit() {
        for bad in [0, 1, 4, 0x0008_0100, 0x0009_0600] {
            assert!(!satisfies(Hwcaps::new(!0, !0), bad));
            assert_eq!(requirements(bad), None);
            assert!(missing_for(Hwcaps::new(!0, !0), bad).is_some());
        }
    }

    #[test]
    fn auxv_lookup() {
        let auxv = [(AT_HWCAP, 0x8fb), (AT_HWCAP2, 0x2)];
        let lookup = |key| auxv.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        assert_eq!(Hwcaps::from_auxv(lookup), Hwcaps::new(0x8fb, 0x2));
        assert_eq!(Hwcaps::from_auxv(|_| None), Hwcaps::default());
    }

    #[test]
    fn table_bits_are_distinct_and_named_once() {
        let mut seen: Vec<(u8, u8, &str)> = Vec::new();
        for f in V8_ADDS.iter().chain(V9_ADDS.iter()).flat_map(|a| a.iter()) {
            assert!(f.word == 1 && f.bit < 32 || f.word == 2 && f.bit < 64);
            assert!(
                !seen
                    .iter()
                    .any(|&(w, b, n)| (w, b) == (f.word, f.bit) || n == f.name),
                "{} twice",
                f.name
            );
            seen.push((f.word, f.bit, f.name));
        }
    }
}
