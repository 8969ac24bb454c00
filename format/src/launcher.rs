//! The launcher image's checksum ([`crate::Header::launcher_hash`]).
//!
//! It covers exactly what the kernel maps of the launcher: the file bytes of each of its own
//! loadable segments (every `PT_LOAD` but the payload region's), in program-header order. The
//! first segment holds the ELF header and the program headers themselves, so a damaged program
//! header changes the hash too. A launcher can compute it from memory, where the kernel put those
//! bytes, without reading its file; a reader computes it from the file.
//!
//! What tools legitimately rewrite counts as zero: the ELF header's section-table fields
//! (`e_shoff`, `e_shentsize`, `e_shnum`, `e_shstrndx`: the packer fills them in after the hash
//! is taken, `strip` rewrites them, and nothing that runs reads them) and the payload region's
//! program header (`strip` and `objcopy` move the region in the file; the header and index
//! hashes check what it maps).

use crate::elf::{u64_at, Elf, ProgramHeader, EHDR_LEN, PHDR_LEN, PT_LOAD};
use crate::{Arch, ContentHasher, FormatError};

/// Hashes the launcher's segments: for each program header in `phdrs` that is a launcher
/// `PT_LOAD`, the bytes `bytes_of` gives for it (its `p_filesz` file bytes). `None` if one of
/// them cannot be had (out of the file's bounds).
pub fn launcher_hash<'a>(
    arch: Arch,
    phdrs: impl Iterator<Item = ProgramHeader> + Clone,
    mut bytes_of: impl FnMut(&ProgramHeader) -> Option<&'a [u8]>,
) -> Option<u64> {
    let payload = phdrs.clone().position(|ph| arch.is_payload_segment(&ph));
    let mut hasher = ContentHasher::new();
    for ph in phdrs.filter(|ph| ph.p_type == PT_LOAD && !arch.is_payload_segment(ph)) {
        let bytes = bytes_of(&ph)?;
        if ph.p_offset != 0 || bytes.len() < EHDR_LEN {
            hasher.update(bytes);
            continue;
        }
        // The segment that starts the file: the ELF header and (where it holds them) the program
        // headers, with what tools rewrite masked.
        let phoff = usize::try_from(u64_at(bytes, 32)).ok()?;
        let masked = [
            Some(SECTION_TABLE_OFFSET),
            Some(SECTION_TABLE_SHAPE),
            payload.map(|i| phoff + i * PHDR_LEN..phoff + (i + 1) * PHDR_LEN),
        ];
        let mut at = 0;
        for range in masked.into_iter().flatten() {
            let range = range.start.min(bytes.len())..range.end.min(bytes.len());
            if range.start < at {
                continue;
            }
            hasher.update(&bytes[at..range.start]);
            hasher.update(&ZEROS[..range.len()]);
            at = range.end;
        }
        hasher.update(&bytes[at..]);
    }
    Some(hasher.finish())
}

/// The launcher hash the packer also writes into the payload region's program header, as its
/// `p_paddr` (a field Linux ignores for an executable, and that `strip` and `objcopy` keep):
/// there the launcher can check itself before it reads a byte of the region, which a truncated
/// bundle may not have. `None` where the field holds what a linker or an older packer put
/// there (0, or the segment's address): the region header's copy is then the only one.
pub fn launcher_hash_in_phdr(payload: &ProgramHeader) -> Option<u64> {
    (payload.p_paddr != 0 && payload.p_paddr != payload.p_vaddr).then_some(payload.p_paddr)
}

/// `e_shoff` in an ELF64 header.
const SECTION_TABLE_OFFSET: core::ops::Range<usize> = 40..48;
/// `e_shentsize`, `e_shnum` and `e_shstrndx`.
const SECTION_TABLE_SHAPE: core::ops::Range<usize> = 58..64;
/// Stands in for masked bytes (a program header is the longest).
const ZEROS: [u8; PHDR_LEN] = [0; PHDR_LEN];

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

#[cfg(test)]
mod tests {
    use super::*;

    /// A launcher-like file: an ELF header, three program headers (text from offset 0, data,
    /// payload), and bytes.
    fn image() -> [u8; 512] {
        let mut f = [0u8; 512];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[18..20].copy_from_slice(&62u16.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[54..56].copy_from_slice(&(PHDR_LEN as u16).to_le_bytes());
        f[56..58].copy_from_slice(&3u16.to_le_bytes());
        let phdrs = [
            (PT_LOAD, 5, 0, 0x10_0000_0000, 400),
            (PT_LOAD, 6, 400, 0x10_0000_1190, 100),
            (PT_LOAD, 4, 500, Arch::X86_64.payload_vaddr(), 12),
        ];
        for (i, (t, flags, offset, vaddr, size)) in phdrs.into_iter().enumerate() {
            let ph = ProgramHeader {
                p_type: t,
                p_flags: flags,
                p_offset: offset,
                p_vaddr: vaddr,
                p_paddr: vaddr,
                p_filesz: size,
                p_memsz: size,
                p_align: 0x1000,
            };
            f[64 + i * PHDR_LEN..64 + (i + 1) * PHDR_LEN].copy_from_slice(&ph.to_bytes());
        }
        for (i, b) in f[232..].iter_mut().enumerate() {
            *b = i as u8;
        }
        f
    }

    #[test]
    fn covers_code_and_headers_but_not_what_tools_rewrite() {
        let base = launcher_hash_of_file(&image()).unwrap();
        let changed = |at: usize| {
            let mut f = image();
            f[at] ^= 1;
            launcher_hash_of_file(&f).unwrap() != base
        };
        // Code, data, the ELF header's other fields, the launcher's own program headers.
        for at in [300, 450, 16, 24, 64 + 8, 64 + PHDR_LEN + 16] {
            assert!(changed(at), "byte {at}");
        }
        // e_shoff, e_shnum, the payload program header's offset, and the payload's bytes.
        for at in [40, 60, 64 + 2 * PHDR_LEN + 8, 505] {
            assert!(!changed(at), "byte {at}");
        }
    }
}
