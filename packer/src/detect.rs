//! What an input records about its own x86-64 level, so that levels need not be given by hand
//! and a mislabelled input is caught before it ships.
//!
//! Two records are read:
//! - Go build information (`go version -m` shows it): `build GOAMD64=vN` on x86-64, `build
//!   GOARM64=v8.2,lse` on arm64. Go 1.18 introduced `GOAMD64`; a Go program that records no such
//!   setting was built for v1. Go 1.23 introduced `GOARM64`; without it the level is unknown.
//! - The GNU property note (`.note.gnu.property`, segment `PT_GNU_PROPERTY`) with
//!   `GNU_PROPERTY_X86_ISA_1_NEEDED`: one bit per level the program needs. gcc 12 and binutils
//!   2.40 (Debian 12) put only the baseline bit there, whatever `-march` says, because it comes
//!   from glibc's start files; the real level appears only with `gcc -mneeded` or
//!   `-Wl,-z,x86-64-vN`. A note naming nothing above baseline therefore says nothing.
//!
//! Go build information wins when both are present: it is what the Go toolchain compiled for.

use std::fmt;

use goblin::elf::header::{EM_AARCH64, EM_ARM, EM_PPC64, EM_RISCV, EM_X86_64};
use goblin::elf::program_header::{PT_LOAD, PT_NOTE};
use goblin::elf::Elf;

/// `"\xff Go buildinf:"`: the first 14 bytes of Go's build information blob.
const GO_MAGIC: &[u8; 14] = b"\xff Go buildinf:";
/// The blob header is 32 bytes and starts on a 16-byte boundary of the data it sits in.
const GO_HEADER_LEN: usize = 32;
const GO_ALIGN: usize = 16;
/// Go's own reader looks no further than this into the data segment.
const GO_SEARCH_LEN: u64 = 64 * 1024;
/// Header flag: the version and module strings follow the header (Go 1.18 and later) rather
/// than sitting elsewhere behind pointers.
const GO_FLAG_INLINE: u8 = 0x2;
/// The module text is framed by 16-byte sentinels on both sides.
const GO_MODINFO_FRAME: usize = 16;

const PT_GNU_PROPERTY: u32 = 0x6474_e553;
const NT_GNU_PROPERTY_TYPE_0: u32 = 5;
const GNU_PROPERTY_X86_ISA_1_NEEDED: u32 = 0xc000_8002;

/// What an input says about its level, and where it says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Declared {
    /// The level the file records, 1..=4, or `None` when it records nothing usable.
    pub level: Option<u32>,
    pub source: Source,
}

/// Where a [`Declared`] level comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Go build information.
    GoBuildInfo {
        /// The toolchain, for example `go1.19.8`; empty before Go 1.18 (not read).
        go_version: String,
        /// The setting that names the level for the program's architecture: `GOAMD64` on
        /// x86-64, `GOARM64` on arm64.
        variable: &'static str,
        /// Its recorded value, if any.
        setting: Option<String>,
    },
    /// A GNU property note with `GNU_PROPERTY_X86_ISA_1_NEEDED`: bit 0 baseline, 1 v2, 2 v3, 3 v4.
    IsaNeeded { bits: u32 },
    /// Neither record.
    Nothing,
}

impl Declared {
    const fn nothing() -> Declared {
        Declared {
            level: None,
            source: Source::Nothing,
        }
    }
}

/// Reads what `program` (an ELF executable's bytes) records about its x86-64 level. Anything
/// unreadable counts as recording nothing; checking the file is [`crate::Variant::read`]'s job.
pub fn declared_level(program: &[u8]) -> Declared {
    let Ok(elf) = Elf::parse(program) else {
        return Declared::nothing();
    };
    let machine = elf.header.e_machine;
    if let Some(declared) = go_build_info(&elf, program, machine) {
        return declared;
    }
    if machine != EM_X86_64 {
        return Declared::nothing();
    }
    if let Some(bits) = isa_needed(&elf, program) {
        return Declared {
            level: level_from_isa_bits(bits),
            source: Source::IsaNeeded { bits },
        };
    }
    Declared::nothing()
}

impl fmt::Display for Declared {
    /// How the file records its level, for messages: "its Go build info says GOAMD64=v3".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::GoBuildInfo {
                variable,
                setting: Some(v),
                ..
            } => match self.level {
                Some(_) => write!(f, "its Go build info says {variable}={v}"),
                None => write!(
                    f,
                    "its Go build info says {variable}={v}, which mgo-pack does not know as a level"
                ),
            },
            Source::GoBuildInfo {
                variable,
                setting: None,
                go_version,
            } => {
                if go_version.is_empty() {
                    write!(f, "it is a Go program from before Go 1.18")?;
                } else {
                    write!(f, "its Go build info has no {variable} setting")?;
                }
                if self.level.is_none() && *variable == "GOARM64" {
                    write!(f, " (Go records one since 1.23)")?;
                }
                match self.level {
                    Some(level) => write!(f, ", so {}", crate::level_name(level)),
                    None => Ok(()),
                }
            }
            Source::IsaNeeded { bits } => match self.level {
                Some(level) => write!(
                    f,
                    "its GNU property note says it needs x86-64-{}",
                    crate::level_name(level)
                ),
                None if bits & 1 != 0 => write!(
                    f,
                    "its GNU property note names only x86-64-baseline, which gcc records whatever \
                     -march says"
                ),
                None => write!(f, "its GNU property note names no x86-64 level"),
            },
            Source::Nothing => write!(f, "it records no level (no Go build info, no GNU ISA note)"),
        }
    }
}

/// The highest level bit above baseline; baseline alone is what every gcc build carries.
fn level_from_isa_bits(bits: u32) -> Option<u32> {
    (2..=4).rev().find(|&level| bits & (1 << (level - 1)) != 0)
}

/// Go build information, found as Go's own reader finds it: at the `.go.buildinfo` section, or
/// failing that (section headers stripped) in the first writable, non-executable segment.
fn go_build_info(elf: &Elf, program: &[u8], machine: u16) -> Option<Declared> {
    let variable = match machine {
        EM_X86_64 => "GOAMD64",
        EM_AARCH64 => "GOARM64",
        EM_RISCV => "GORISCV64",
        // Recorded by every Go that records settings (1.18 on), `GOARM=7`.
        EM_ARM => "GOARM",
        EM_PPC64 => "GOPPC64",
        _ => return None,
    };
    let by_section = elf
        .section_headers
        .iter()
        .find(|sh| elf.shdr_strtab.get_at(sh.sh_name) == Some(".go.buildinfo"))
        .map(|sh| sh.sh_addr);
    let by_segment = || {
        elf.program_headers
            .iter()
            .find(|ph| ph.p_type == PT_LOAD && ph.is_write() && !ph.is_executable())
            .map(|ph| ph.p_vaddr)
    };
    let start = by_section.or_else(by_segment)?;
    let data = read_at_vaddr(elf, program, start, GO_SEARCH_LEN)?;
    let blob = (0..data.len().saturating_sub(GO_HEADER_LEN - 1))
        .step_by(GO_ALIGN)
        .map(|at| &data[at..])
        .find(|rest| rest.starts_with(GO_MAGIC))?;
    if blob[15] & GO_FLAG_INLINE == 0 {
        // Before Go 1.18 the strings sit behind pointers; neither setting existed yet, so the
        // program is at its architecture's baseline whatever they say.
        return Some(Declared {
            level: default_level(machine),
            source: Source::GoBuildInfo {
                go_version: String::new(),
                variable,
                setting: None,
            },
        });
    }
    let (version, rest) = uvarint_string(&blob[GO_HEADER_LEN..])?;
    let (modinfo, _) = uvarint_string(rest)?;
    if version.is_empty() {
        return None;
    }
    let setting = go_setting(modinfo, variable);
    let level = match setting {
        None => default_level(machine),
        Some(value) => parse_setting(machine, value),
    };
    Some(Declared {
        level,
        source: Source::GoBuildInfo {
            go_version: String::from_utf8_lossy(version).into_owned(),
            variable,
            setting: setting.map(|v| String::from_utf8_lossy(v).into_owned()),
        },
    })
}

/// The level of a Go program that records no setting. On x86-64 that is v1: Go records GOAMD64
/// since it introduced it (1.18), and before that there was only v1 code. On arm64 it is unknown:
/// Go before 1.23 records no GOARM64 because it had none, so its builds may be given any level.
/// ppc64le is like x86-64: Go records `GOPPC64` since 1.18, and before that its only ppc64le
/// code was POWER8's.
fn default_level(machine: u16) -> Option<u32> {
    match machine {
        EM_X86_64 => Some(1),
        EM_PPC64 => mgo_format::level::parse_ppc64le(b"power8"),
        _ => None,
    }
}

/// A recorded `GOAMD64` or `GOARM64` value (`v3`, `v8.2,lse`) as a level code.
fn parse_setting(machine: u16, value: &[u8]) -> Option<u32> {
    match machine {
        EM_X86_64 => mgo_format::level::parse_x86_64(value),
        EM_AARCH64 => mgo_format::level::parse_aarch64(value),
        EM_RISCV => mgo_format::level::parse_riscv64(value),
        EM_ARM => mgo_format::level::parse_arm(value),
        EM_PPC64 => mgo_format::level::parse_ppc64le(value),
        _ => None,
    }
}

/// A build setting from Go's module text, whose lines read `build\tKEY=VALUE`.
fn go_setting<'a>(modinfo: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let framed = modinfo.len() > 2 * GO_MODINFO_FRAME
        && modinfo[modinfo.len() - GO_MODINFO_FRAME - 1] == b'\n';
    if !framed {
        return None;
    }
    let text = &modinfo[GO_MODINFO_FRAME..modinfo.len() - GO_MODINFO_FRAME];
    text.split(|&b| b == b'\n').find_map(|line| {
        let setting = line.strip_prefix(b"build\t")?;
        let value = setting.strip_prefix(key.as_bytes())?.strip_prefix(b"=")?;
        Some(value)
    })
}

/// A string preceded by its length as an unsigned LEB128 varint, and the bytes after it.
fn uvarint_string(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut len: u64 = 0;
    for (i, &byte) in data.iter().enumerate().take(10) {
        len |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let start = i + 1;
            let end = start.checked_add(usize::try_from(len).ok()?)?;
            return Some((data.get(start..end)?, &data[end..]));
        }
    }
    None
}

/// Up to `max` bytes of the file image starting at virtual address `addr`, within the one
/// loadable segment that holds it.
fn read_at_vaddr<'a>(elf: &Elf, program: &'a [u8], addr: u64, max: u64) -> Option<&'a [u8]> {
    let ph = elf
        .program_headers
        .iter()
        .find(|ph| ph.p_type == PT_LOAD && ph.p_vaddr <= addr && addr - ph.p_vaddr < ph.p_filesz)?;
    let offset = ph.p_offset.checked_add(addr - ph.p_vaddr)?;
    let len = (ph.p_filesz - (addr - ph.p_vaddr)).min(max);
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    program.get(start..end)
}

/// The `GNU_PROPERTY_X86_ISA_1_NEEDED` bits, from the note segments (present even when section
/// headers are stripped) or else the `.note.gnu.property` section.
fn isa_needed(elf: &Elf, program: &[u8]) -> Option<u32> {
    let from_segments = elf
        .program_headers
        .iter()
        .filter(|ph| ph.p_type == PT_GNU_PROPERTY || ph.p_type == PT_NOTE)
        .find_map(|ph| {
            let notes = file_range(program, ph.p_offset, ph.p_filesz)?;
            isa_needed_in_notes(notes, ph.p_align)
        });
    from_segments.or_else(|| {
        let sh = elf
            .section_headers
            .iter()
            .find(|sh| elf.shdr_strtab.get_at(sh.sh_name) == Some(".note.gnu.property"))?;
        isa_needed_in_notes(
            file_range(program, sh.sh_offset, sh.sh_size)?,
            sh.sh_addralign,
        )
    })
}

fn file_range(program: &[u8], offset: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    program.get(start..end)
}

/// Walks ELF notes (`namesz`, `descsz`, `type`, name, descriptor; the descriptor and the next
/// note start at multiples of the note alignment) for a GNU property note and its ISA-needed property.
fn isa_needed_in_notes(mut notes: &[u8], align: u64) -> Option<u32> {
    let align = if align == 8 { 8 } else { 4 };
    while notes.len() >= 12 {
        let namesz = u32_at(notes, 0)? as usize;
        let descsz = u32_at(notes, 4)? as usize;
        let kind = u32_at(notes, 8)?;
        let desc_at = 12usize.checked_add(namesz)?.next_multiple_of(align);
        let next = desc_at.checked_add(descsz)?.next_multiple_of(align);
        let name = notes.get(12..12 + namesz)?;
        let desc = notes.get(desc_at..desc_at + descsz)?;
        if kind == NT_GNU_PROPERTY_TYPE_0 && name == b"GNU\0" {
            if let Some(bits) = isa_needed_property(desc) {
                return Some(bits);
            }
        }
        notes = notes.get(next..).unwrap_or(&[]);
    }
    None
}

/// Properties are (`pr_type`, `pr_datasz`, data padded to 8 bytes on 64-bit ELF).
fn isa_needed_property(mut desc: &[u8]) -> Option<u32> {
    while desc.len() >= 8 {
        let kind = u32_at(desc, 0)?;
        let size = u32_at(desc, 4)? as usize;
        let data = desc.get(8..8 + size)?;
        if kind == GNU_PROPERTY_X86_ISA_1_NEEDED && size == 4 {
            return u32_at(data, 0);
        }
        desc = desc.get(8 + size.next_multiple_of(8)..).unwrap_or(&[]);
    }
    None
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isa_bits_name_the_highest_level_above_baseline() {
        assert_eq!(level_from_isa_bits(0b0001), None);
        assert_eq!(level_from_isa_bits(0), None);
        assert_eq!(level_from_isa_bits(0b0011), Some(2));
        assert_eq!(level_from_isa_bits(0b0101), Some(3));
        assert_eq!(level_from_isa_bits(0b1111), Some(4));
        assert_eq!(level_from_isa_bits(0b1000), Some(4));
    }

    #[test]
    fn settings_are_read_as_the_architecture_spells_them() {
        assert_eq!(parse_setting(EM_X86_64, b"v3"), Some(3));
        assert_eq!(parse_setting(EM_X86_64, b"v8.2,lse"), None);
        let arm = parse_setting(EM_AARCH64, b"v8.2,lse");
        assert!(arm.is_some());
        assert_eq!(arm, mgo_format::level::parse_aarch64(b"v8.2,lse"));
        assert_eq!(parse_setting(EM_AARCH64, b"v3"), None);
        assert_eq!(default_level(EM_X86_64), Some(1));
        assert_eq!(default_level(EM_AARCH64), None);
        assert_eq!(parse_setting(EM_RISCV, b"rva22u64"), Some(22));
        assert_eq!(parse_setting(EM_RISCV, b"v8.2,lse"), None);
        assert_eq!(default_level(EM_RISCV), None);
        assert_eq!(parse_setting(EM_ARM, b"6"), Some(6));
        assert_eq!(parse_setting(EM_ARM, b"7,softfloat"), None);
        assert_eq!(parse_setting(EM_ARM, b"v1"), None);
        assert_eq!(default_level(EM_ARM), None);
        assert_eq!(parse_setting(EM_PPC64, b"power9"), Some(0x109));
        assert_eq!(parse_setting(EM_PPC64, b"rva22u64"), None);
        assert_eq!(default_level(EM_PPC64), Some(0x108));
    }

    #[test]
    fn varint_strings() {
        assert_eq!(uvarint_string(b"\x03abcd"), Some((&b"abc"[..], &b"d"[..])));
        let mut long = vec![0x80 | 0x2c, 0x01];
        long.extend(std::iter::repeat_n(b'x', 300));
        assert_eq!(
            uvarint_string(&long).map(|(s, r)| (s.len(), r.len())),
            Some((172, 128))
        );
        assert_eq!(uvarint_string(b"\x05ab"), None);
        assert_eq!(uvarint_string(b""), None);
    }

    #[test]
    fn settings_come_from_framed_module_text() {
        let frame = [0x30u8; 16];
        let mut modinfo = frame.to_vec();
        modinfo.extend_from_slice(b"path\tx\nbuild\tGOAMD64=v3\nbuild\tGOOS=linux\n");
        modinfo.extend_from_slice(&frame);
        assert_eq!(go_setting(&modinfo, "GOAMD64"), Some(&b"v3"[..]));
        assert_eq!(go_setting(&modinfo, "GOOS"), Some(&b"linux"[..]));
        assert_eq!(go_setting(&modinfo, "GOARCH"), None);
        // Unframed text is not module information.
        assert_eq!(go_setting(b"build\tGOAMD64=v3\n", "GOAMD64"), None);
    }

    #[test]
    fn notes_with_the_isa_property() {
        // One GNU property note holding a feature property, then ISA needed = baseline|v3.
        let mut desc = Vec::new();
        desc.extend_from_slice(&0xc000_0002u32.to_le_bytes());
        desc.extend_from_slice(&4u32.to_le_bytes());
        desc.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        desc.extend_from_slice(&GNU_PROPERTY_X86_ISA_1_NEEDED.to_le_bytes());
        desc.extend_from_slice(&4u32.to_le_bytes());
        desc.extend_from_slice(&[0b101, 0, 0, 0, 0, 0, 0, 0]);
        let mut note = Vec::new();
        note.extend_from_slice(&4u32.to_le_bytes());
        note.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        note.extend_from_slice(&NT_GNU_PROPERTY_TYPE_0.to_le_bytes());
        note.extend_from_slice(b"GNU\0");
        note.extend_from_slice(&desc);
        assert_eq!(isa_needed_in_notes(&note, 8), Some(0b101));
        // A truncated note is ignored rather than read past its end.
        assert_eq!(isa_needed_in_notes(&note[..note.len() - 9], 8), None);
    }
}
