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

use crate::elf::{Elf, ProgramHeader, PHDR_MAX, PT_LOAD};
use crate::{Arch, ContentHasher, FormatError};

/// Hashes the launcher's segments: for each program header in `phdrs` that is a launcher
/// `PT_LOAD`, the bytes `bytes_of` gives for it (its `p_filesz` file bytes). `None` if one of
/// them cannot be had (out of the file's bounds).
pub fn launcher_hash<'a>(
    arch: Arch,
    phdrs: impl Iterator<Item = ProgramHeader> + Clone,
    mut bytes_of: impl FnMut(&ProgramHeader) -> Option<&'a [u8]>,
) -> Option<u64> {
    let class = arch.class();
    let phdr_len = class.phdr_len();
    let payload = phdrs.clone().position(|ph| arch.is_payload_segment(&ph));
    let mut hasher = ContentHasher::new();
    for ph in phdrs.filter(|ph| ph.p_type == PT_LOAD && !arch.is_payload_segment(ph)) {
        let bytes = bytes_of(&ph)?;
        if ph.p_offset != 0 || bytes.len() < class.ehdr_len() {
            hasher.update(bytes);
            continue;
        }
        // The segment that starts the file: the ELF header and (where it holds them) the program
        // headers, with what tools rewrite masked: the section table's offset (`e_shoff`) and
        // shape (`e_shentsize`, `e_shnum`, `e_shstrndx`), and the payload's program header.
        let phoff = usize::try_from(class.word_at(bytes, class.phoff_field().start)).ok()?;
        let masked = [
            Some(class.shoff_field()),
            Some(class.section_shape_field()),
            payload.map(|i| phoff + i * phdr_len..phoff + (i + 1) * phdr_len),
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

/// Stands in for masked bytes (a program header is the longest).
const ZEROS: [u8; PHDR_MAX] = [0; PHDR_MAX];

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
    use crate::elf::PHDR_LEN;

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

    /// The same launcher-like file as ELF32 for 32-bit ARM: 52-byte header, 32-byte program
    /// headers, the section table's fields where ELF32 keeps them.
    fn image32() -> [u8; 512] {
        use crate::elf::Class;
        let class = Class::Elf32;
        let mut f = [0u8; 512];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 1;
        f[5] = 1;
        f[18..20].copy_from_slice(&40u16.to_le_bytes());
        f[28..32].copy_from_slice(&52u32.to_le_bytes());
        f[42..44].copy_from_slice(&32u16.to_le_bytes());
        f[44..46].copy_from_slice(&3u16.to_le_bytes());
        let phdrs = [
            (PT_LOAD, 5, 0, 0x100_0000, 400),
            (PT_LOAD, 6, 400, 0x100_1190, 100),
            (PT_LOAD, 4, 500, Arch::Arm.payload_vaddr(), 12),
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
            ph.write(class, &mut f[52 + i * 32..52 + (i + 1) * 32]);
        }
        for (i, b) in f[148..].iter_mut().enumerate() {
            *b = i as u8;
        }
        f
    }

    #[test]
    fn elf32_headers_read_back_and_hash_like_elf64() {
        let f = image32();
        let elf = Elf::parse(&f).unwrap();
        assert_eq!(elf.class, crate::elf::Class::Elf32);
        assert_eq!(elf.phnum(), 3);
        assert_eq!(elf.phdr(1).p_vaddr, 0x100_1190);
        assert_eq!(elf.phdr(1).p_flags, 6);
        assert!(Arch::Arm.is_payload_segment(&elf.phdr(2)));
        let base = launcher_hash_of_file(&f).unwrap();
        let changed = |at: usize| {
            let mut f = image32();
            f[at] ^= 1;
            launcher_hash_of_file(&f).unwrap() != base
        };
        // Code, data, the ELF header's other fields, the launcher's own program headers.
        for at in [300, 450, 16, 24, 52 + 8, 52 + 32 + 24] {
            assert!(changed(at), "byte {at}");
        }
        // e_shoff (32..36), e_shnum (48), the payload program header, the payload's bytes.
        for at in [32, 35, 48, 52 + 2 * 32 + 4, 505] {
            assert!(!changed(at), "byte {at}");
        }
        // The copy of the hash a 32-bit p_paddr holds.
        assert_eq!(Arch::Arm.hash_in_phdr(u64::MAX), 0xffff_ffff);
        assert_eq!(Arch::Aarch64.hash_in_phdr(u64::MAX), u64::MAX);
    }
}
