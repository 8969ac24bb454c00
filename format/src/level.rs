//! Level codes stored in [`crate::Entry::level`].
//!
//! x86-64: the microarchitecture level `N` of `GOAMD64=vN`, 1 to 4.
//!
//! arm64: `GOARM64=vMAJOR.MINOR[,lse][,crypto]` (Go 1.23: v8.0 to v8.9, v9.0 to v9.5) as
//! `MAJOR << 16 | MINOR << 8 | LSE | CRYPTO`, with [`AARCH64_LSE`] = 2 and [`AARCH64_CRYPTO`] = 1
//! and every other bit 0. From v8.1 on LSE is part of the architecture, so Go sets `lse` itself
//! (`GOARM64=v8.2` builds exactly what `v8.2,lse` builds): a code for v8.1 or later always has the
//! LSE bit, and its name always says `,lse`, as Go's own spelling of the setting does. Codes of
//! the two architectures never collide (1..4 against 0x8_0000 and above), and a larger arm64 code
//! is a preferred one: higher version first, then `lse`, then `crypto` (docs/ARCHITECTURES.md, "arm64").
//!
//! riscv64: `GORISCV64=rva20u64`, `rva22u64`, `rva23u64` (Go 1.23; rva23u64 from Go 1.25) as the
//! profile's year, 20, 22 or 23, the number Go's own `internal/buildcfg` keeps for it. The
//! profiles are totally ordered, each including the ones before it (docs/ARCHITECTURES.md, "riscv64").
//!
//! 32-bit ARM: `GOARM=5`, `6`, `7` as the number itself, as Go's `internal/buildcfg` keeps it.
//! Totally ordered too, and clear of the others (x86-64's 1..4, riscv64's 20..23, ppc64le's
//! 0x108..0x10a).
//! ppc64le: `GOPPC64=power8`, `power9`, `power10` as `0x100 + N` for POWERN: 0x108, 0x109,
//! 0x10a. Not plain 8, 9, 10, which no other architecture uses today but which sit next to
//! the small numbers other settings are made of (x86-64's 1..4, riscv64's 20..23): the `0x100`
//! keeps ppc64le's codes in a range of their own. The levels are totally ordered, each
//! including the ones before it (docs/ARCHITECTURES.md, "ppc64le").

use crate::Arch;

pub const X86_64_MIN: u32 = 1;
pub const X86_64_MAX: u32 = 4;

/// The `,lse` bit of an arm64 level code.
pub const AARCH64_LSE: u32 = 2;
/// The `,crypto` bit of an arm64 level code.
pub const AARCH64_CRYPTO: u32 = 1;
/// The longest arm64 level name, `v9.5,lse,crypto`.
pub const AARCH64_NAME_MAX: usize = 15;

/// The riscv64 level codes, in order: each profile includes the ones before it.
pub const RISCV64_LEVELS: [u32; 3] = [20, 22, 23];

/// The 32-bit ARM level codes, in order: each level includes the ones before it.
pub const ARM_LEVELS: [u32; 3] = [5, 6, 7];

/// `"5"`, `"6"`, `"7"` for a 32-bit ARM level code, as `GOARM` spells it; `"?"` for anything
/// else.
pub const fn arm_name(level: u32) -> &'static str {
    match level {
        5 => "5",
        6 => "6",
        7 => "7",
        _ => "?",
    }
}

/// Parses `5`, `6`, `7` as `GOARM` spells them. Go 1.22's `,softfloat` and `,hardfloat`
/// suffixes say how floating point is done, which the levels here cannot express: refused.
pub fn parse_arm(text: &[u8]) -> Option<u32> {
    match text {
        b"5" => Some(5),
        b"6" => Some(6),
        b"7" => Some(7),
        _ => None,
    }
}

/// `"rva20u64"`.. for a riscv64 level code, `"rva?"` for anything else.
pub const fn riscv64_name(level: u32) -> &'static str {
    match level {
        20 => "rva20u64",
        22 => "rva22u64",
        23 => "rva23u64",
        _ => "rva?",
    }
}

/// Parses `rva20u64`, `rva22u64`, `rva23u64` as `GORISCV64` spells them. Go's newer
/// `,extension` suffixes are not levels mgo-pack knows, so they are refused.
pub fn parse_riscv64(text: &[u8]) -> Option<u32> {
    match text {
        b"rva20u64" => Some(20),
        b"rva22u64" => Some(22),
        b"rva23u64" => Some(23),
        _ => None,
    }
}

/// The ppc64le level codes, in order: each POWER level includes the ones before it.
pub const PPC64LE_LEVELS: [u32; 3] = [0x108, 0x109, 0x10a];

/// `"power8"`.. for a ppc64le level code, `"power?"` for anything else.
pub const fn ppc64le_name(level: u32) -> &'static str {
    match level {
        0x108 => "power8",
        0x109 => "power9",
        0x10a => "power10",
        _ => "power?",
    }
}

/// Parses `power8`, `power9`, `power10` as `GOPPC64` spells them (Go's `internal/buildcfg`
/// takes nothing else for ppc64le: `ppc970` is big-endian `ppc64` only).
pub fn parse_ppc64le(text: &[u8]) -> Option<u32> {
    match text {
        b"power8" => Some(0x108),
        b"power9" => Some(0x109),
        b"power10" => Some(0x10a),
        _ => None,
    }
}

/// `"v1"`..`"v4"` for an x86-64 level code, `"v?"` for anything else.
pub const fn x86_64_name(level: u32) -> &'static str {
    match level {
        1 => "v1",
        2 => "v2",
        3 => "v3",
        4 => "v4",
        _ => "v?",
    }
}

/// Parses `v1`..`v4` as `GOAMD64` spells them.
pub fn parse_x86_64(text: &[u8]) -> Option<u32> {
    match text {
        b"v1" => Some(1),
        b"v2" => Some(2),
        b"v3" => Some(3),
        b"v4" => Some(4),
        _ => None,
    }
}

/// An arm64 level code taken apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Aarch64Level {
    /// 8 or 9.
    pub major: u8,
    /// 0..=9 for v8, 0..=5 for v9.
    pub minor: u8,
    pub lse: bool,
    pub crypto: bool,
}

impl Aarch64Level {
    /// The level, with `lse` forced on from v8.1 as Go does; `None` for a version Go does not
    /// define.
    pub const fn new(major: u8, minor: u8, lse: bool, crypto: bool) -> Option<Aarch64Level> {
        let known = match major {
            8 => minor <= 9,
            9 => minor <= 5,
            _ => false,
        };
        if !known {
            return None;
        }
        Some(Aarch64Level {
            major,
            minor,
            lse: lse || major > 8 || minor > 0,
            crypto,
        })
    }

    /// Takes a level code apart; `None` unless it is exactly what [`Aarch64Level::code`] makes.
    pub const fn from_code(code: u32) -> Option<Aarch64Level> {
        if code >> 24 != 0 {
            return None;
        }
        let (major, minor) = ((code >> 16) as u8, (code >> 8) as u8);
        let (lse, crypto) = (code & AARCH64_LSE != 0, code & AARCH64_CRYPTO != 0);
        match Aarch64Level::new(major, minor, lse, crypto) {
            Some(level) if level.code() == code => Some(level),
            _ => None,
        }
    }

    pub const fn code(self) -> u32 {
        (self.major as u32) << 16
            | (self.minor as u32) << 8
            | if self.lse { AARCH64_LSE } else { 0 }
            | if self.crypto { AARCH64_CRYPTO } else { 0 }
    }

    /// The version as the number of minor steps since v8.0 along the v8 line: v9.N includes
    /// v8.(N+5) (Go's `buildcfg.Goarm64Features.Supports`), so v9.0 counts as 5.
    const fn v8_equivalent(self) -> u8 {
        if self.major == 9 {
            self.minor + 5
        } else {
            self.minor
        }
    }

    /// Whether a CPU meeting `self` also meets `other`: `other`'s version is on the way to
    /// `self`'s (v8.x up to v8.y, v9.x up to v9.y, and v8.x up to v9.y when x <= y + 5), and
    /// `other` asks for no suffix `self` lacks. This is the order `GOARM64` overrides follow.
    pub const fn includes(self, other: Aarch64Level) -> bool {
        let version = match (self.major, other.major) {
            (8, 9) => false,
            (9, 9) | (8, 8) => other.minor <= self.minor,
            _ => other.v8_equivalent() <= self.v8_equivalent(),
        };
        version && (self.lse || !other.lse) && (self.crypto || !other.crypto)
    }
}

/// Parses `GOARM64`'s syntax: `v8.0`..`v8.9` or `v9.0`..`v9.5`, then `,lse` and `,crypto` in
/// either order (Go strips them from the end, as often as they appear).
pub fn parse_aarch64(text: &[u8]) -> Option<u32> {
    let (mut rest, mut lse, mut crypto) = (text, false, false);
    loop {
        if let Some(r) = rest.strip_suffix(b",lse") {
            (rest, lse) = (r, true);
        } else if let Some(r) = rest.strip_suffix(b",crypto") {
            (rest, crypto) = (r, true);
        } else {
            break;
        }
    }
    match *rest {
        [b'v', major @ b'8'..=b'9', b'.', minor @ b'0'..=b'9'] => {
            Aarch64Level::new(major - b'0', minor - b'0', lse, crypto).map(Aarch64Level::code)
        }
        _ => None,
    }
}

/// Writes the name of an arm64 level code (`v8.2,lse`, as Go spells the setting) into `buf`
/// and returns its length; an invalid code is written as `v?`.
pub fn write_aarch64_name(code: u32, buf: &mut [u8; AARCH64_NAME_MAX]) -> usize {
    let Some(level) = Aarch64Level::from_code(code) else {
        buf[..2].copy_from_slice(b"v?");
        return 2;
    };
    buf[..4].copy_from_slice(&[b'v', b'0' + level.major, b'.', b'0' + level.minor]);
    let mut len = 4;
    for (on, suffix) in [(level.lse, &b",lse"[..]), (level.crypto, &b",crypto"[..])] {
        if on {
            buf[len..len + suffix.len()].copy_from_slice(suffix);
            len += suffix.len();
        }
    }
    len
}

/// A level's name, held on the stack: no allocation in the launcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LevelName {
    Static(&'static str),
    Formatted {
        bytes: [u8; AARCH64_NAME_MAX],
        len: u8,
    },
}

impl LevelName {
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            LevelName::Static(name) => name.as_bytes(),
            LevelName::Formatted { bytes, len } => &bytes[..*len as usize],
        }
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).unwrap_or("v?")
    }
}

/// The name of a level code as the architecture's Go setting spells it (`v3`, `v8.2,lse`).
#[inline]
pub fn name(arch: Arch, level: u32) -> LevelName {
    match arch {
        Arch::X86_64 => LevelName::Static(x86_64_name(level)),
        Arch::Aarch64 => {
            let mut bytes = [0u8; AARCH64_NAME_MAX];
            let len = write_aarch64_name(level, &mut bytes) as u8;
            LevelName::Formatted { bytes, len }
        }
        Arch::Riscv64 => LevelName::Static(riscv64_name(level)),
        Arch::Arm => LevelName::Static(arm_name(level)),
        Arch::Ppc64le => LevelName::Static(ppc64le_name(level)),
    }
}

/// Parses a level as the architecture's Go setting spells it.
pub fn parse(arch: Arch, text: &[u8]) -> Option<u32> {
    match arch {
        Arch::X86_64 => parse_x86_64(text),
        Arch::Aarch64 => parse_aarch64(text),
        Arch::Riscv64 => parse_riscv64(text),
        Arch::Arm => parse_arm(text),
        Arch::Ppc64le => parse_ppc64le(text),
    }
}

/// Whether `level` is a level code of `arch`.
pub fn is_valid(arch: Arch, level: u32) -> bool {
    match arch {
        Arch::X86_64 => (X86_64_MIN..=X86_64_MAX).contains(&level),
        Arch::Aarch64 => Aarch64Level::from_code(level).is_some(),
        Arch::Riscv64 => RISCV64_LEVELS.contains(&level),
        Arch::Arm => ARM_LEVELS.contains(&level),
        Arch::Ppc64le => PPC64LE_LEVELS.contains(&level),
    }
}

/// The environment variable that sets the level at build time (Go) and overrides it at run
/// time (the launcher).
pub const fn variable(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "GOAMD64",
        Arch::Aarch64 => "GOARM64",
        Arch::Riscv64 => "GORISCV64",
        Arch::Arm => "GOARM",
        Arch::Ppc64le => "GOPPC64",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(code: u32) -> LevelName {
        name(Arch::Aarch64, code)
    }

    #[test]
    fn arm64_codes_pack_version_and_suffixes() {
        assert_eq!(parse_aarch64(b"v8.0"), Some(0x0008_0000));
        assert_eq!(parse_aarch64(b"v8.0,crypto"), Some(0x0008_0001));
        assert_eq!(parse_aarch64(b"v8.0,lse"), Some(0x0008_0002));
        assert_eq!(parse_aarch64(b"v8.0,lse,crypto"), Some(0x0008_0003));
        assert_eq!(parse_aarch64(b"v8.0,crypto,lse"), Some(0x0008_0003));
        // LSE is implied from v8.1 on, as in Go.
        assert_eq!(parse_aarch64(b"v8.1"), Some(0x0008_0102));
        assert_eq!(parse_aarch64(b"v8.1,lse"), Some(0x0008_0102));
        assert_eq!(parse_aarch64(b"v9.5,crypto"), Some(0x0009_0503));
        // Go strips suffixes as often as they appear.
        assert_eq!(parse_aarch64(b"v8.0,lse,lse"), Some(0x0008_0002));
    }

    #[test]
    fn arm64_parse_refuses_what_go_refuses() {
        for bad in [
            &b""[..],
            b"v8",
            b"v8.10",
            b"v9.6",
            b"v7.0",
            b"v10.0",
            b"8.0",
            b"v8.0,",
            b"v8.0,sve",
            b"lse,v8.0",
            b"V8.0",
            b"v8.0 ",
            b"v1",
        ] {
            assert_eq!(parse_aarch64(bad), None, "{:?}", core::str::from_utf8(bad));
        }
    }

    #[test]
    fn arm64_names_round_trip() {
        for major in 8..=9u8 {
            for minor in 0..=9u8 {
                for (lse, crypto) in [(false, false), (true, false), (false, true), (true, true)] {
                    let Some(level) = Aarch64Level::new(major, minor, lse, crypto) else {
                        assert!(major == 9 && minor > 5);
                        continue;
                    };
                    let code = level.code();
                    let mut buf = [0u8; AARCH64_NAME_MAX];
                    let len = write_aarch64_name(code, &mut buf);
                    assert_eq!(parse_aarch64(&buf[..len]), Some(code));
                    assert_eq!(Aarch64Level::from_code(code), Some(level));
                    assert!(is_valid(Arch::Aarch64, code));
                    assert!(!is_valid(Arch::X86_64, code));
                }
            }
        }
        assert_eq!(name_of(0x0008_0000).as_str(), "v8.0");
        assert_eq!(name_of(0x0008_0003).as_str(), "v8.0,lse,crypto");
        assert_eq!(name_of(0x0008_0202).as_str(), "v8.2,lse");
        assert_eq!(name_of(0x0009_0503).as_str(), "v9.5,lse,crypto");
    }

    #[test]
    fn arm64_codes_that_no_parse_makes_are_invalid() {
        // v8.1 without its implied LSE, unknown versions, stray bits, x86-64 codes.
        for code in [
            0x0008_0100,
            0x0009_0600,
            0x0007_0000,
            0x0008_0004,
            0x0108_0000,
            0,
            1,
            4,
        ] {
            assert_eq!(Aarch64Level::from_code(code), None, "{code:#x}");
            assert!(!is_valid(Arch::Aarch64, code));
            assert_eq!(name_of(code).as_str(), "v?");
        }
    }

    #[test]
    fn larger_codes_are_preferred_levels() {
        let order: [&[u8]; 8] = [
            b"v8.0",
            b"v8.0,crypto",
            b"v8.0,lse",
            b"v8.0,lse,crypto",
            b"v8.1",
            b"v8.1,crypto",
            b"v8.9,crypto",
            b"v9.0",
        ];
        for pair in order.windows(2) {
            assert!(parse_aarch64(pair[0]).unwrap() < parse_aarch64(pair[1]).unwrap());
        }
    }

    #[test]
    fn inclusion_follows_gos_supports() {
        let l = |t: &[u8]| Aarch64Level::from_code(parse_aarch64(t).unwrap()).unwrap();
        assert!(l(b"v8.2").includes(l(b"v8.1")));
        assert!(l(b"v8.2").includes(l(b"v8.0,lse")));
        assert!(!l(b"v8.2").includes(l(b"v8.0,crypto")));
        assert!(l(b"v8.2,crypto").includes(l(b"v8.0,lse,crypto")));
        assert!(!l(b"v8.1").includes(l(b"v8.2")));
        assert!(l(b"v9.0").includes(l(b"v8.5")));
        assert!(!l(b"v9.0").includes(l(b"v8.6")));
        assert!(l(b"v9.4").includes(l(b"v8.9")));
        assert!(l(b"v9.5").includes(l(b"v8.9")));
        assert!(!l(b"v8.9").includes(l(b"v9.0")));
        assert!(l(b"v8.0").includes(l(b"v8.0")));
        assert!(!l(b"v8.0").includes(l(b"v8.0,lse")));
    }

    #[test]
    fn x86_64_through_the_generic_functions() {
        assert_eq!(name(Arch::X86_64, 3).as_str(), "v3");
        assert_eq!(name(Arch::X86_64, 9).as_str(), "v?");
        assert_eq!(parse(Arch::X86_64, b"v4"), Some(4));
        assert_eq!(parse(Arch::X86_64, b"v8.0"), None);
        assert_eq!(parse(Arch::Aarch64, b"v4"), None);
        assert_eq!(variable(Arch::Aarch64), "GOARM64");
        assert!(is_valid(Arch::X86_64, 1) && !is_valid(Arch::X86_64, 5));
    }

    #[test]
    fn riscv64_levels_round_trip_and_strangers_are_refused() {
        for code in RISCV64_LEVELS {
            let text = name(Arch::Riscv64, code);
            assert_eq!(parse(Arch::Riscv64, text.as_bytes()), Some(code));
            assert!(is_valid(Arch::Riscv64, code));
        }
        for bad in [
            &b"rva21u64"[..],
            b"RVA20U64",
            b"rva22u64,zacas",
            b"rva23s64",
            b"rv64gc",
            b"",
            b"v1",
        ] {
            assert_eq!(parse_riscv64(bad), None, "{:?}", core::str::from_utf8(bad));
        }
        for code in [0, 1, 4, 21, 24, 0x8_0000] {
            assert!(!is_valid(Arch::Riscv64, code), "{code}");
        }
        assert_eq!(variable(Arch::Riscv64), "GORISCV64");
        assert_eq!(riscv64_name(21), "rva?");
    }

    #[test]
    fn arm_levels_round_trip_and_strangers_are_refused() {
        for code in ARM_LEVELS {
            let text = name(Arch::Arm, code);
            assert_eq!(parse(Arch::Arm, text.as_bytes()), Some(code));
            assert!(is_valid(Arch::Arm, code));
        }
        for bad in [
            &b"4"[..],
            b"8",
            b"v7",
            b"7,softfloat",
            b"6,hardfloat",
            b"",
            b"07",
        ] {
            assert_eq!(parse_arm(bad), None, "{:?}", core::str::from_utf8(bad));
        }
        for code in [0, 1, 4, 8, 20, 0x108, 0x8_0000] {
            assert!(!is_valid(Arch::Arm, code), "{code}");
        }
        assert_eq!(variable(Arch::Arm), "GOARM");
        assert_eq!(arm_name(8), "?");
    }

    #[test]
    fn ppc64le_levels_round_trip_and_collide_with_no_other_architecture() {
        for code in PPC64LE_LEVELS {
            let text = name(Arch::Ppc64le, code);
            assert_eq!(parse(Arch::Ppc64le, text.as_bytes()), Some(code));
            assert!(is_valid(Arch::Ppc64le, code));
            for other in [Arch::X86_64, Arch::Aarch64, Arch::Riscv64, Arch::Arm] {
                assert!(
                    !is_valid(other, code),
                    "{code:#x} is also a {other:?} level"
                );
            }
        }
        for other in [1, 4, 20, 22, 23, 0x8_0000, 0x8_0203] {
            assert!(!is_valid(Arch::Ppc64le, other), "{other:#x}");
        }
        for bad in [
            &b"power7"[..],
            b"POWER9",
            b"power11",
            b"ppc970",
            b"pwr9",
            b"",
            b"v1",
        ] {
            assert_eq!(parse_ppc64le(bad), None, "{:?}", core::str::from_utf8(bad));
        }
        assert_eq!(variable(Arch::Ppc64le), "GOPPC64");
        assert_eq!(ppc64le_name(8), "power?");
    }
}
