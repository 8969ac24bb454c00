//! The launcher image's checksum ([`crate::Header::launcher_hash`]).
//!
//! It covers exactly what the kernel maps of the launcher: the file bytes of each of its own
//! loadable segments (every `PT_LOAD` but the payload region's), in program-header order. The
//! first segment holds the ELF header and the program headers themselves, so a damaged program
//! header changes the hash too. A launcher can compute it from memory, where the kernel put those
//! bytes, without reading its file; a reader computes it from the file.
//!
//! The ELF header's section-table fields (`e_shoff`, `e_shentsize`, `e_shnum`, `e_shstrndx`)
//! count as zero: the packer fills them in after the hash is taken, and `strip` rewrites them,
//! while nothing that runs reads them.

use crate::elf::{Elf, ProgramHeader, EHDR_LEN, PT_LOAD};
use crate::{Arch, ContentHasher, FormatError};

/// Hashes the launcher's segments: for each program header in `phdrs` that is a launcher
/// `PT_LOAD`, the bytes `bytes_of` gives for it (its `p_filesz` file bytes). `None` if one of
/// them cannot be had (out of the file's bounds).
pub fn launcher_hash<'a>(
    arch: Arch,
    phdrs: impl Iterator<Item = ProgramHeader>,
    mut bytes_of: impl FnMut(&ProgramHeader) -> Option<&'a [u8]>,
) -> Option<u64> {
    let mut hasher = ContentHasher::new();
    for ph in phdrs.filter(|ph| ph.p_type == PT_LOAD && !arch.is_payload_segment(ph)) {
        let mut bytes = bytes_of(&ph)?;
        if ph.p_offset == 0 && bytes.len() >= EHDR_LEN {
            let mut ehdr = [0u8; EHDR_LEN];
            ehdr.copy_from_slice(&bytes[..EHDR_LEN]);
            ehdr[SECTION_TABLE_OFFSET].fill(0);
            ehdr[SECTION_TABLE_SHAPE].fill(0);
            hasher.update(&ehdr);
            bytes = &bytes[EHDR_LEN..];
        }
        hasher.update(bytes);
    }
    Some(hasher.finish())
}

/// `e_shoff` in an ELF64 header.
const SECTION_TABLE_OFFSET: core::ops::Range<usize> = 40..48;
/// `e_shentsize`, `e_shnum` and `e_shstrndx`.
const SECTION_TABLE_SHAPE: core::ops::Range<usize> = 58..64;

/// [`launcher_hash`] of a bundle (or runtime image) file.
pub fn launcher_hash_of_file(file: &[u8]) -> Result<u64, FormatError> {
    let elf = Elf::parse(file)?;
    let arch = Arch::from_elf_machine(elf.machine).ok_or(FormatError::UnknownArch)?;
    launcher_hash(arch, elf.phdrs(), |ph| {
        let end = ph.p_offset.checked_add(ph.p_filesz)?;
        file.get(usize::try_from(ph.p_offset).ok()?..usize::try_from(end).ok()?)
    })
    .ok_or(FormatError::Truncated)
}
