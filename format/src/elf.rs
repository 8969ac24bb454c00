//! Just enough ELF to find a bundle's payload segment and to fill the runtime image's spare
//! program header: ELF64 for x86-64, arm64 and riscv64, ELF32 for 32-bit ARM. Little-endian
//! only: every supported machine is. Program headers are read into one 64-bit shape whatever
//! the class, so that the rest of the crate has one type to deal with.

use core::ops::Range;

use crate::FormatError;

pub const EM_ARM: u16 = 40;
pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;
pub const EM_RISCV: u16 = 243;
pub const EM_PPC64: u16 = 21;
pub const PT_NULL: u32 = 0;
pub const PT_LOAD: u32 = 1;
pub const PF_X: u32 = 1;
pub const PF_R: u32 = 4;
/// The ELF64 header's and program header's sizes (the direct path reads ELF64 only).
pub const EHDR_LEN: usize = 64;
pub const PHDR_LEN: usize = 56;
/// The longest program header of either class, for buffers.
pub const PHDR_MAX: usize = PHDR_LEN;

/// An ELF file's class (`EI_CLASS`): the width of its addresses and offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    Elf32,
    Elf64,
}

impl Class {
    /// The class an `e_ident` names, if it is one.
    pub const fn from_ident(ei_class: u8) -> Option<Class> {
        match ei_class {
            1 => Some(Class::Elf32),
            2 => Some(Class::Elf64),
            _ => None,
        }
    }

    pub const fn ident(self) -> u8 {
        match self {
            Class::Elf32 => 1,
            Class::Elf64 => 2,
        }
    }

    /// The class of the machine this code runs on (the launcher reads its own headers in it).
    #[cfg(target_pointer_width = "32")]
    pub const NATIVE: Class = Class::Elf32;
    #[cfg(not(target_pointer_width = "32"))]
    pub const NATIVE: Class = Class::Elf64;

    pub const fn ehdr_len(self) -> usize {
        match self {
            Class::Elf32 => 52,
            Class::Elf64 => EHDR_LEN,
        }
    }

    pub const fn phdr_len(self) -> usize {
        match self {
            Class::Elf32 => 32,
            Class::Elf64 => PHDR_LEN,
        }
    }

    /// The size of one section header.
    pub const fn shdr_len(self) -> usize {
        match self {
            Class::Elf32 => 40,
            Class::Elf64 => 64,
        }
    }

    /// Where `e_entry` lies in the ELF header.
    pub const fn entry_field(self) -> Range<usize> {
        match self {
            Class::Elf32 => 24..28,
            Class::Elf64 => 24..32,
        }
    }

    /// Where `e_phoff` lies in the ELF header.
    pub const fn phoff_field(self) -> Range<usize> {
        match self {
            Class::Elf32 => 28..32,
            Class::Elf64 => 32..40,
        }
    }

    /// Where `e_shoff` lies in the ELF header.
    pub const fn shoff_field(self) -> Range<usize> {
        match self {
            Class::Elf32 => 32..36,
            Class::Elf64 => 40..48,
        }
    }

    /// `e_phentsize`; `e_phnum` follows it.
    pub const fn phentsize_at(self) -> usize {
        match self {
            Class::Elf32 => 42,
            Class::Elf64 => 54,
        }
    }

    /// `e_shentsize`, `e_shnum` and `e_shstrndx`, together (the section table's shape).
    pub const fn section_shape_field(self) -> Range<usize> {
        match self {
            Class::Elf32 => 46..52,
            Class::Elf64 => 58..64,
        }
    }

    /// Reads an address-sized field (`Elf32_Addr`/`Elf32_Off` or their 64-bit forms) at `at`.
    pub fn word_at(self, b: &[u8], at: usize) -> u64 {
        match self {
            Class::Elf32 => u32_at(b, at) as u64,
            Class::Elf64 => u64_at(b, at),
        }
    }

    /// Writes an address-sized field at `at`: the low 32 bits for ELF32 (callers keep ELF32
    /// values below 4 GiB).
    pub fn put_word(self, b: &mut [u8], at: usize, value: u64) {
        match self {
            Class::Elf32 => b[at..at + 4].copy_from_slice(&(value as u32).to_le_bytes()),
            Class::Elf64 => b[at..at + 8].copy_from_slice(&value.to_le_bytes()),
        }
    }
}

/// The fields of a program header, in their 64-bit widths whatever the class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ProgramHeader {
    pub p_type: u32,
    pub p_flags: u32,
    pub p_offset: u64,
    pub p_vaddr: u64,
    pub p_paddr: u64,
    pub p_filesz: u64,
    pub p_memsz: u64,
    pub p_align: u64,
}

impl ProgramHeader {
    /// An ELF64 program header.
    pub fn parse(b: &[u8; PHDR_LEN]) -> Self {
        Self::read(Class::Elf64, b)
    }

    /// A program header of `class` from the start of `b` (at least [`Class::phdr_len`] bytes).
    pub fn read(class: Class, b: &[u8]) -> Self {
        match class {
            Class::Elf64 => ProgramHeader {
                p_type: u32_at(b, 0),
                p_flags: u32_at(b, 4),
                p_offset: u64_at(b, 8),
                p_vaddr: u64_at(b, 16),
                p_paddr: u64_at(b, 24),
                p_filesz: u64_at(b, 32),
                p_memsz: u64_at(b, 40),
                p_align: u64_at(b, 48),
            },
            // ELF32 puts p_flags after p_memsz.
            Class::Elf32 => ProgramHeader {
                p_type: u32_at(b, 0),
                p_offset: u32_at(b, 4) as u64,
                p_vaddr: u32_at(b, 8) as u64,
                p_paddr: u32_at(b, 12) as u64,
                p_filesz: u32_at(b, 16) as u64,
                p_memsz: u32_at(b, 20) as u64,
                p_flags: u32_at(b, 24),
                p_align: u32_at(b, 28) as u64,
            },
        }
    }

    /// The ELF64 bytes of this header.
    pub fn to_bytes(&self) -> [u8; PHDR_LEN] {
        let mut b = [0u8; PHDR_LEN];
        self.write(Class::Elf64, &mut b);
        b
    }

    /// Writes this header as `class` lays it out to the start of `b` (at least
    /// [`Class::phdr_len`] bytes). ELF32 fields take the low 32 bits: a packer writes only
    /// values that fit (bundles of 32-bit programs are below 4 GiB).
    pub fn write(&self, class: Class, b: &mut [u8]) {
        b[0..4].copy_from_slice(&self.p_type.to_le_bytes());
        match class {
            Class::Elf64 => {
                b[4..8].copy_from_slice(&self.p_flags.to_le_bytes());
                b[8..16].copy_from_slice(&self.p_offset.to_le_bytes());
                b[16..24].copy_from_slice(&self.p_vaddr.to_le_bytes());
                b[24..32].copy_from_slice(&self.p_paddr.to_le_bytes());
                b[32..40].copy_from_slice(&self.p_filesz.to_le_bytes());
                b[40..48].copy_from_slice(&self.p_memsz.to_le_bytes());
                b[48..56].copy_from_slice(&self.p_align.to_le_bytes());
            }
            Class::Elf32 => {
                let words = [
                    self.p_offset,
                    self.p_vaddr,
                    self.p_paddr,
                    self.p_filesz,
                    self.p_memsz,
                ];
                for (i, word) in words.into_iter().enumerate() {
                    b[4 + 4 * i..8 + 4 * i].copy_from_slice(&(word as u32).to_le_bytes());
                }
                b[24..28].copy_from_slice(&self.p_flags.to_le_bytes());
                b[28..32].copy_from_slice(&(self.p_align as u32).to_le_bytes());
            }
        }
    }
}

/// A validated view of an ELF little-endian file's header and program header table.
#[derive(Clone, Copy, Debug)]
pub struct Elf<'a> {
    bytes: &'a [u8],
    pub class: Class,
    pub machine: u16,
    pub elf_type: u16,
    phoff: usize,
    phnum: usize,
}

impl<'a> Elf<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FormatError> {
        if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
            return Err(FormatError::NotElf);
        }
        // EI_CLASS 1 or 2, EI_DATA = 1 (little-endian).
        let class = bytes.get(4).and_then(|&c| Class::from_ident(c));
        let Some(class) = class.filter(|c| bytes.len() >= c.ehdr_len() && bytes[5] == 1) else {
            return Err(FormatError::UnsupportedElf);
        };
        let elf_type = u16_at(bytes, 16);
        let machine = u16_at(bytes, 18);
        let phoff = class.word_at(bytes, class.phoff_field().start);
        let phentsize = u16_at(bytes, class.phentsize_at()) as usize;
        let phnum = u16_at(bytes, class.phentsize_at() + 2) as usize;
        if phentsize != class.phdr_len() {
            return Err(FormatError::UnsupportedElf);
        }
        let table_end = (phnum as u64)
            .checked_mul(phentsize as u64)
            .and_then(|len| len.checked_add(phoff))
            .ok_or(FormatError::Truncated)?;
        if table_end > bytes.len() as u64 {
            return Err(FormatError::Truncated);
        }
        Ok(Elf {
            bytes,
            class,
            machine,
            elf_type,
            phoff: phoff as usize,
            phnum,
        })
    }

    pub fn phnum(&self) -> usize {
        self.phnum
    }

    /// File offset of program header `index` (which must be below [`Elf::phnum`]).
    pub fn phdr_offset(&self, index: usize) -> usize {
        self.phoff + index * self.class.phdr_len()
    }

    pub fn phdr(&self, index: usize) -> ProgramHeader {
        let at = self.phdr_offset(index);
        ProgramHeader::read(self.class, &self.bytes[at..at + self.class.phdr_len()])
    }

    pub fn phdrs(&self) -> impl Iterator<Item = ProgramHeader> + Clone + '_ {
        (0..self.phnum).map(move |i| self.phdr(i))
    }
}

pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}
