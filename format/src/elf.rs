//! Just enough ELF64 to find a bundle's payload segment and to fill the runtime image's spare
//! program header. Little-endian only: both supported machines are.

use crate::FormatError;

pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;
pub const EM_RISCV: u16 = 243;
pub const EM_PPC64: u16 = 21;
pub const PT_NULL: u32 = 0;
pub const PT_LOAD: u32 = 1;
pub const PF_R: u32 = 4;
pub const EHDR_LEN: usize = 64;
pub const PHDR_LEN: usize = 56;

/// The fields of an ELF64 program header.
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
    pub fn parse(b: &[u8; PHDR_LEN]) -> Self {
        ProgramHeader {
            p_type: u32_at(b, 0),
            p_flags: u32_at(b, 4),
            p_offset: u64_at(b, 8),
            p_vaddr: u64_at(b, 16),
            p_paddr: u64_at(b, 24),
            p_filesz: u64_at(b, 32),
            p_memsz: u64_at(b, 40),
            p_align: u64_at(b, 48),
        }
    }

    pub fn to_bytes(&self) -> [u8; PHDR_LEN] {
        let mut b = [0u8; PHDR_LEN];
        b[0..4].copy_from_slice(&self.p_type.to_le_bytes());
        b[4..8].copy_from_slice(&self.p_flags.to_le_bytes());
        b[8..16].copy_from_slice(&self.p_offset.to_le_bytes());
        b[16..24].copy_from_slice(&self.p_vaddr.to_le_bytes());
        b[24..32].copy_from_slice(&self.p_paddr.to_le_bytes());
        b[32..40].copy_from_slice(&self.p_filesz.to_le_bytes());
        b[40..48].copy_from_slice(&self.p_memsz.to_le_bytes());
        b[48..56].copy_from_slice(&self.p_align.to_le_bytes());
        b
    }
}

/// A validated view of an ELF64 little-endian file's header and program header table.
#[derive(Clone, Copy, Debug)]
pub struct Elf<'a> {
    bytes: &'a [u8],
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
        // EI_CLASS = 2 (64-bit), EI_DATA = 1 (little-endian).
        if bytes.len() < EHDR_LEN || bytes[4] != 2 || bytes[5] != 1 {
            return Err(FormatError::UnsupportedElf);
        }
        let elf_type = u16_at(bytes, 16);
        let machine = u16_at(bytes, 18);
        let phoff = u64_at(bytes, 32);
        let phentsize = u16_at(bytes, 54) as usize;
        let phnum = u16_at(bytes, 56) as usize;
        if phentsize != PHDR_LEN {
            return Err(FormatError::UnsupportedElf);
        }
        let table_end = (phnum as u64)
            .checked_mul(PHDR_LEN as u64)
            .and_then(|len| len.checked_add(phoff))
            .ok_or(FormatError::Truncated)?;
        if table_end > bytes.len() as u64 {
            return Err(FormatError::Truncated);
        }
        Ok(Elf {
            bytes,
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
        self.phoff + index * PHDR_LEN
    }

    pub fn phdr(&self, index: usize) -> ProgramHeader {
        let at = self.phdr_offset(index);
        let mut b = [0u8; PHDR_LEN];
        b.copy_from_slice(&self.bytes[at..at + PHDR_LEN]);
        ProgramHeader::parse(&b)
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
