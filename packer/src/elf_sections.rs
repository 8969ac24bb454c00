//! A section header table for the bundle, so that tools see what it holds.
//!
//! The runtime image's own table describes only the launcher. The packer appends a new table that
//! also names the payload region (`.mgo.payload`) and, for Go programs, a copy of the base
//! variant's `.go.buildinfo` placed inside the region, so that `go version -m`, govulncheck and
//! SBOM scanners read the packed program's build information. Because every byte of the region
//! then belongs to an allocated section inside a loadable segment, `strip` and `objcopy` keep it.

use goblin::elf::section_header::{SHF_ALLOC, SHT_PROGBITS, SHT_STRTAB};
use mgo_format::elf::Class;

use crate::PackError;

/// The magic that starts Go's build information blob.
const GO_BUILDINFO_MAGIC: &[u8] = b"\xff Go buildinf:";
/// Flag bit in the blob's header: the version and module strings follow the header inline
/// (Go 1.18 and later) instead of being pointers into the program's data.
const GO_BUILDINFO_INLINE: u8 = 0x2;

/// An allocated section of the bundle beyond the launcher's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Section {
    pub name: &'static str,
    pub offset: u64,
    pub addr: u64,
    pub size: u64,
    pub align: u64,
}

/// The `.go.buildinfo` blob of a Go executable, if it carries its strings inline (Go 1.18+) and
/// can therefore be copied to another address unchanged.
pub(crate) fn go_buildinfo(program: &[u8]) -> Option<Vec<u8>> {
    let elf = goblin::elf::Elf::parse(program).ok()?;
    let section = elf
        .section_headers
        .iter()
        .find(|sh| elf.shdr_strtab.get_at(sh.sh_name) == Some(".go.buildinfo"))?;
    let start = usize::try_from(section.sh_offset).ok()?;
    let end = start.checked_add(usize::try_from(section.sh_size).ok()?)?;
    let blob = program.get(start..end)?;
    let inline = blob.len() > 32
        && blob.starts_with(GO_BUILDINFO_MAGIC)
        && blob[15] & GO_BUILDINFO_INLINE != 0;
    inline.then(|| blob.to_vec())
}

/// Appends to `bundle` a section header table made of the runtime image's sections followed by
/// `extra` and a fresh `.shstrtab`, and points the ELF header at it.
pub(crate) fn append_section_table(
    bundle: &mut Vec<u8>,
    image: &[u8],
    extra: &[Section],
) -> Result<(), PackError> {
    let damaged = |reason| PackError::RuntimeImage {
        arch: "launcher",
        reason,
    };
    let elf =
        goblin::elf::Elf::parse(image).map_err(|_| damaged("cannot read its section headers"))?;
    let class = if elf.is_64 {
        Class::Elf64
    } else {
        Class::Elf32
    };
    let shdr = |name, kind, flags, addr, offset, size, align| {
        shdr(class, name, kind, flags, addr, offset, size, align)
    };

    let mut names = vec![0u8];
    let mut name = |text: &str| {
        let at = names.len() as u32;
        names.extend_from_slice(text.as_bytes());
        names.push(0);
        at
    };
    let mut table = vec![0u8; class.shdr_len()];
    for sh in elf.section_headers.iter().skip(1) {
        let text = elf.shdr_strtab.get_at(sh.sh_name).unwrap_or("");
        if sh.sh_type == SHT_STRTAB && text == ".shstrtab" {
            continue;
        }
        let entry = shdr(
            name(text),
            sh.sh_type,
            sh.sh_flags,
            sh.sh_addr,
            sh.sh_offset,
            sh.sh_size,
            sh.sh_addralign,
        );
        table.extend_from_slice(&entry);
    }
    for s in extra {
        let entry = shdr(
            name(s.name),
            SHT_PROGBITS,
            u64::from(SHF_ALLOC),
            s.addr,
            s.offset,
            s.size,
            s.align,
        );
        table.extend_from_slice(&entry);
    }
    let shstrtab_name = name(".shstrtab");
    let shstrtab_offset = bundle.len() as u64;
    bundle.extend_from_slice(&names);
    table.extend_from_slice(&shdr(
        shstrtab_name,
        SHT_STRTAB,
        0,
        0,
        shstrtab_offset,
        names.len() as u64,
        1,
    ));

    bundle.resize(bundle.len().div_ceil(8) * 8, 0);
    let table_offset = bundle.len() as u64;
    let count = table.len() / class.shdr_len();
    bundle.extend_from_slice(&table);
    let count = u16::try_from(count).map_err(|_| damaged("too many sections"))?;
    class.put_word(bundle, class.shoff_field().start, table_offset);
    // e_shentsize, e_shnum, e_shstrndx.
    let shape = class.section_shape_field().start;
    let shentsize = class.shdr_len() as u16;
    for (i, value) in [shentsize, count, count - 1].into_iter().enumerate() {
        bundle[shape + 2 * i..shape + 2 * i + 2].copy_from_slice(&value.to_le_bytes());
    }
    Ok(())
}

/// One section header of `class`: sh_link, sh_info and sh_entsize stay 0; the address-sized
/// fields (flags, address, offset, size, alignment) are words of the class.
#[allow(clippy::too_many_arguments)]
fn shdr(
    class: Class,
    name: u32,
    kind: u32,
    flags: u64,
    addr: u64,
    offset: u64,
    size: u64,
    align: u64,
) -> Vec<u8> {
    let mut b = vec![0u8; class.shdr_len()];
    b[0..4].copy_from_slice(&name.to_le_bytes());
    b[4..8].copy_from_slice(&kind.to_le_bytes());
    let word = match class {
        Class::Elf32 => 4,
        Class::Elf64 => 8,
    };
    for (i, value) in [flags, addr, offset, size].into_iter().enumerate() {
        class.put_word(&mut b, 8 + i * word, value);
    }
    // After sh_size: sh_link and sh_info (4 bytes each), then sh_addralign.
    class.put_word(&mut b, 8 + 4 * word + 8, align);
    b
}
