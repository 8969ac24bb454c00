//! The payload region: header, variant data, index. All integers little-endian.

use crate::elf::{self, u16_at, u32_at, u64_at, Class, Elf, ProgramHeader, PF_R, PT_LOAD};
use crate::{content_hash, FormatError};

pub const MAGIC: [u8; 8] = *b"MGO-PACK";
pub const FORMAT_VERSION: u16 = 1;
pub const HEADER_LEN: usize = 64;
pub const ENTRY_LEN: usize = 48;
/// [`Entry::dictionary`] value for "compressed without a dictionary".
pub const NO_DICTIONARY: u8 = 0xff;
/// More variants than this is surely a corrupted count (x86-64 has 4 levels, arm64 a few dozen).
const MAX_VARIANTS: u16 = 256;

/// A machine mgo-pack has a runtime image for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    X86_64,
    Aarch64,
    Riscv64,
    /// 32-bit ARM (`GOARCH=arm`), little-endian, EABI: the one ELF32 machine.
    Arm,
    /// 64-bit PowerPC, little-endian, ELFv2 (`ppc64le`).
    Ppc64le,
}

impl Arch {
    /// Every architecture a bundle can be for, so that code checking all of them (the fuzz
    /// targets, tests) gains a new one where it is added here.
    pub const ALL: [Arch; 5] = [
        Arch::X86_64,
        Arch::Aarch64,
        Arch::Riscv64,
        Arch::Arm,
        Arch::Ppc64le,
    ];

    pub fn from_elf_machine(machine: u16) -> Option<Arch> {
        match machine {
            elf::EM_X86_64 => Some(Arch::X86_64),
            elf::EM_AARCH64 => Some(Arch::Aarch64),
            elf::EM_RISCV => Some(Arch::Riscv64),
            elf::EM_ARM => Some(Arch::Arm),
            elf::EM_PPC64 => Some(Arch::Ppc64le),
            _ => None,
        }
    }

    pub const fn elf_machine(self) -> u16 {
        match self {
            Arch::X86_64 => elf::EM_X86_64,
            Arch::Aarch64 => elf::EM_AARCH64,
            Arch::Riscv64 => elf::EM_RISCV,
            Arch::Arm => elf::EM_ARM,
            Arch::Ppc64le => elf::EM_PPC64,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::Riscv64 => "riscv64",
            Arch::Arm => "arm",
            Arch::Ppc64le => "ppc64le",
        }
    }

    /// The ELF class of the architecture's executables, bundles included.
    pub const fn class(self) -> Class {
        match self {
            Arch::Arm => Class::Elf32,
            Arch::X86_64 | Arch::Aarch64 | Arch::Riscv64 | Arch::Ppc64le => Class::Elf64,
        }
    }

    /// What the payload program header's `p_paddr` holds of a launcher hash
    /// ([`crate::launcher_hash_in_phdr`]): all of it in ELF64, its low 32 bits in ELF32, whose
    /// field is that wide.
    pub const fn hash_in_phdr(self, hash: u64) -> u64 {
        match self.class() {
            Class::Elf32 => hash & 0xffff_ffff,
            Class::Elf64 => hash,
        }
    }

    /// Alignment of the payload region and of each variant inside it: the largest page size the
    /// architecture's Linux kernels use, so that a variant's file offsets can be mapped directly.
    pub const fn page_align(self) -> u64 {
        match self {
            Arch::X86_64 => 0x1000,
            Arch::Aarch64 => 0x10000,
            // riscv64 and 32-bit ARM Linux have only 4 KiB base pages.
            Arch::Riscv64 | Arch::Arm => 0x1000,
            // ppc64le kernels use 4 or 64 KiB pages (Debian's and most distributions' 64 KiB).
            Arch::Ppc64le => 0x10000,
        }
    }

    /// Virtual address at which the kernel maps the payload region: 48 MiB above the launcher
    /// (linked at 0x1000000000), both clear of where programs usually live (0x400000, PIE bases,
    /// Go's heap hints from 0xc000000000, the mmap area) and below 2^39 so that 39-bit arm64
    /// kernels map them too (and riscv64's Sv39, whose user half is 2^38 = 256 GiB: the payload
    /// region ends far below it, 0x1003000000 being 64 GiB). Close to the launcher on purpose: qemu-user reserves the whole span
    /// between an executable's lowest and highest segment (64 GiB cost it 400 MB per start). Not
    /// 0x1001000000: a single flipped bit of that `p_vaddr` (bit 24) lands on the launcher's own text,
    /// and the kernel would map the payload over it and kill the process before the launcher runs;
    /// no single bit flip of 0x1003000000 reaches the launcher's range.
    ///
    /// 32-bit ARM has 4 GiB at most (3 or 2 GiB under the usual kernel splits): its launcher is
    /// linked at 16 MiB (0x1000000), above `mmap_min_addr` and clear of where ARM linkers put
    /// programs (0x10000), and the region 48 MiB above it at 0x4000000, leaving nearly all the
    /// space above for the region (a variant shares the launcher's process only on the direct
    /// path, which 32-bit ARM does not take). A single bit flip of 0x4000000 gives 0 or an
    /// address above it, never the launcher's.
    pub const fn payload_vaddr(self) -> u64 {
        match self {
            Arch::Arm => 0x0400_0000,
            Arch::X86_64 | Arch::Aarch64 | Arch::Riscv64 | Arch::Ppc64le => 0x10_0300_0000,
        }
    }

    /// Whether `ph` is the program header that maps a bundle's payload region: the read-only
    /// `PT_LOAD` at [`Arch::payload_vaddr`]. Every other `PT_LOAD` is the launcher's own.
    pub fn is_payload_segment(self, ph: &ProgramHeader) -> bool {
        ph.p_type == PT_LOAD && ph.p_vaddr == self.payload_vaddr() && ph.p_flags == PF_R
    }
}

/// How a variant's bytes are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Stored,
    /// Gzip members, each an independent frame ([`crate::gzip`]); named `gzip`.
    Deflate,
    Zstd,
    /// Zstandard with another stored variant's original bytes as a raw-content dictionary.
    ZstdDictionary,
}

impl Encoding {
    pub fn from_code(code: u8) -> Option<Encoding> {
        Some(match code {
            0 => Encoding::Stored,
            1 => Encoding::Deflate,
            2 => Encoding::Zstd,
            3 => Encoding::ZstdDictionary,
            _ => return None,
        })
    }

    pub const fn code(self) -> u8 {
        match self {
            Encoding::Stored => 0,
            Encoding::Deflate => 1,
            Encoding::Zstd => 2,
            Encoding::ZstdDictionary => 3,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Encoding::Stored => "stored",
            Encoding::Deflate => "gzip",
            Encoding::Zstd => "zstd",
            Encoding::ZstdDictionary => "zstd-dict",
        }
    }
}

/// The fixed header at the start of the payload region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u16,
    pub machine: u16,
    pub variant_count: u16,
    pub flags: u16,
    pub region_len: u64,
    pub index_offset: u64,
    pub index_len: u64,
    pub index_hash: u64,
    /// [`crate::launcher_hash`] of the launcher image as packed, or 0 if the packer did not
    /// record it (bundles made before it existed): the launcher checks its own loaded segments
    /// against it before it trusts its own code's tables.
    pub launcher_hash: u64,
}

impl Header {
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&self.version.to_le_bytes());
        b[10..12].copy_from_slice(&self.machine.to_le_bytes());
        b[12..14].copy_from_slice(&self.variant_count.to_le_bytes());
        b[14..16].copy_from_slice(&self.flags.to_le_bytes());
        b[16..24].copy_from_slice(&self.region_len.to_le_bytes());
        b[24..32].copy_from_slice(&self.index_offset.to_le_bytes());
        b[32..40].copy_from_slice(&self.index_len.to_le_bytes());
        b[40..48].copy_from_slice(&self.index_hash.to_le_bytes());
        b[48..56].copy_from_slice(&self.launcher_hash.to_le_bytes());
        let hash = content_hash(&b[..56]);
        b[56..64].copy_from_slice(&hash.to_le_bytes());
        b
    }

    pub fn parse(b: &[u8]) -> Result<Header, FormatError> {
        if b.len() < HEADER_LEN {
            return Err(FormatError::Truncated);
        }
        if b[0..8] != MAGIC {
            return Err(FormatError::BadMagic);
        }
        let version = u16_at(b, 8);
        if version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion);
        }
        if content_hash(&b[..56]) != u64_at(b, 56) {
            return Err(FormatError::HeaderCorrupt);
        }
        Ok(Header {
            version,
            machine: u16_at(b, 10),
            variant_count: u16_at(b, 12),
            flags: u16_at(b, 14),
            region_len: u64_at(b, 16),
            index_offset: u64_at(b, 24),
            index_len: u64_at(b, 32),
            index_hash: u64_at(b, 40),
            launcher_hash: u64_at(b, 48),
        })
    }
}

/// [`Entry::flags`] bit: the packer chose the *cache* launch path for this variant
/// (docs/ARCHITECTURE.md, "Launch paths"): the launcher writes it once, hash-checked, as a real
/// file in the user's cache directory and executes that file, then and at every later start.
/// Any variant can take it; a launcher that cannot use the cache (secure-execution mode, no
/// usable cache directory) starts the variant as if the bit were clear.
pub const ENTRY_CACHE: u16 = 2;

/// One variant in the index. Offsets are relative to the start of the payload region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Architecture-specific level code, see [`crate::level`].
    pub level: u32,
    pub encoding: Encoding,
    /// Index of the entry whose original bytes are the dictionary, or [`NO_DICTIONARY`].
    pub dictionary: u8,
    /// Launch-path choices of the packer: [`crate::ENTRY_DIRECT`], [`ENTRY_CACHE`]; other bits 0.
    pub flags: u16,
    pub offset: u64,
    pub stored_len: u64,
    pub original_len: u64,
    /// [`content_hash`] of the original (decoded) bytes.
    pub content_hash: u64,
    /// [`content_hash`] of the stored bytes, or 0 if the packer did not record it. It lets a
    /// launcher that decodes only part of a compressed variant (the direct path skips what no
    /// segment loads) know that what it decodes is what was packed.
    pub stored_hash: u64,
}

impl Entry {
    pub fn to_bytes(&self) -> [u8; ENTRY_LEN] {
        let mut b = [0u8; ENTRY_LEN];
        b[0..4].copy_from_slice(&self.level.to_le_bytes());
        b[4] = self.encoding.code();
        b[5] = self.dictionary;
        b[6..8].copy_from_slice(&self.flags.to_le_bytes());
        b[8..16].copy_from_slice(&self.offset.to_le_bytes());
        b[16..24].copy_from_slice(&self.stored_len.to_le_bytes());
        b[24..32].copy_from_slice(&self.original_len.to_le_bytes());
        b[32..40].copy_from_slice(&self.content_hash.to_le_bytes());
        b[40..48].copy_from_slice(&self.stored_hash.to_le_bytes());
        b
    }

    fn parse(b: &[u8]) -> Result<Entry, FormatError> {
        Ok(Entry {
            level: u32_at(b, 0),
            encoding: Encoding::from_code(b[4]).ok_or(FormatError::UnknownEncoding)?,
            dictionary: b[5],
            flags: u16_at(b, 6),
            offset: u64_at(b, 8),
            stored_len: u64_at(b, 16),
            original_len: u64_at(b, 24),
            content_hash: u64_at(b, 32),
            stored_hash: u64_at(b, 40),
        })
    }
}

/// Where the payload region lies in a bundle file, as its program header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub arch: Arch,
    pub file_offset: u64,
    pub len: u64,
}

impl Region {
    /// Finds the payload region of a bundle from its ELF header and program headers, which must
    /// lie inside `file` (at least the first page of the file); the region itself is not read.
    pub fn locate(file: &[u8]) -> Result<Region, FormatError> {
        let elf = Elf::parse(file)?;
        let arch = Arch::from_elf_machine(elf.machine).ok_or(FormatError::UnknownArch)?;
        if elf.class != arch.class() {
            return Err(FormatError::UnsupportedElf);
        }
        let ph = elf
            .phdrs()
            .find(|ph| arch.is_payload_segment(ph))
            .ok_or(FormatError::NoPayloadSegment)?;
        Ok(Region {
            arch,
            file_offset: ph.p_offset,
            len: ph.p_filesz,
        })
    }
}

/// A parsed, bounds-checked bundle: its region bytes and index. Variant data are not hashed here;
/// a reader checks [`Entry::content_hash`] on the bytes it is about to use.
#[derive(Clone, Copy, Debug)]
pub struct Bundle<'a> {
    pub arch: Arch,
    pub header: Header,
    region: &'a [u8],
    index: &'a [u8],
}

impl<'a> Bundle<'a> {
    /// Parses a whole bundle file.
    pub fn parse_file(file: &'a [u8]) -> Result<Bundle<'a>, FormatError> {
        let region = Region::locate(file)?;
        let end = region
            .file_offset
            .checked_add(region.len)
            .ok_or(FormatError::Truncated)?;
        if end > file.len() as u64 {
            return Err(FormatError::Truncated);
        }
        let bytes = &file[region.file_offset as usize..end as usize];
        Self::parse_region(region.arch, bytes)
    }

    /// Parses the payload region alone (for example as mapped in memory).
    pub fn parse_region(arch: Arch, region: &'a [u8]) -> Result<Bundle<'a>, FormatError> {
        let header = Header::parse(region)?;
        if header.machine != arch.elf_machine() {
            return Err(FormatError::HeaderCorrupt);
        }
        if header.region_len != region.len() as u64 {
            return Err(FormatError::Truncated);
        }
        let count = header.variant_count;
        if count == 0 {
            return Err(FormatError::Empty);
        }
        if count > MAX_VARIANTS || header.index_len != count as u64 * ENTRY_LEN as u64 {
            return Err(FormatError::IndexOutOfBounds);
        }
        let index = slice(region, header.index_offset, header.index_len)
            .ok_or(FormatError::IndexOutOfBounds)?;
        if content_hash(index) != header.index_hash {
            return Err(FormatError::IndexCorrupt);
        }
        let bundle = Bundle {
            arch,
            header,
            region,
            index,
        };
        for i in 0..bundle.len() {
            let entry = bundle.entry(i)?;
            if slice(region, entry.offset, entry.stored_len).is_none() {
                return Err(FormatError::EntryOutOfBounds);
            }
            let needs_dictionary = entry.encoding == Encoding::ZstdDictionary;
            let dictionary_ok = if needs_dictionary {
                (entry.dictionary as usize) < bundle.len() && entry.dictionary as usize != i
            } else {
                entry.dictionary == NO_DICTIONARY
            };
            if !dictionary_ok {
                return Err(FormatError::BadDictionary);
            }
        }
        Ok(bundle)
    }

    pub fn len(&self) -> usize {
        self.header.variant_count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn entry(&self, i: usize) -> Result<Entry, FormatError> {
        let at = i
            .checked_mul(ENTRY_LEN)
            .ok_or(FormatError::IndexOutOfBounds)?;
        let bytes = self
            .index
            .get(at..at + ENTRY_LEN)
            .ok_or(FormatError::IndexOutOfBounds)?;
        Entry::parse(bytes)
    }

    pub fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        (0..self.len()).filter_map(move |i| self.entry(i).ok())
    }

    /// The stored bytes of an entry (checked against the region when the bundle was parsed).
    pub fn stored(&self, entry: &Entry) -> &'a [u8] {
        slice(self.region, entry.offset, entry.stored_len).unwrap_or(&[])
    }
}

fn slice(bytes: &[u8], offset: u64, len: u64) -> Option<&[u8]> {
    let end = offset.checked_add(len)?;
    if end > bytes.len() as u64 {
        return None;
    }
    Some(&bytes[offset as usize..end as usize])
}

#[cfg(test)]
mod tests {
    use super::Arch;

    /// A new architecture fails to compile here until it is in [`Arch::ALL`] too.
    #[test]
    fn all_lists_every_architecture_once() {
        let position = |arch: Arch| match arch {
            Arch::X86_64 => 0,
            Arch::Aarch64 => 1,
            Arch::Riscv64 => 2,
            Arch::Arm => 3,
            Arch::Ppc64le => 4,
        };
        for (i, arch) in Arch::ALL.into_iter().enumerate() {
            assert_eq!(position(arch), i, "{arch:?}");
            assert_eq!(Arch::from_elf_machine(arch.elf_machine()), Some(arch));
        }
    }
}
