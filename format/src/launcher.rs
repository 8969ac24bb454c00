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
//!
//! Nor does it cover the decoder segment of an image that has one ([`is_decoder_segment`]): the
//! C decoders, whose pages a start that decodes nothing never needs. That segment's own hash is
//! kept in the launcher's own bytes, after [`DECODER_HASH_MARK`] (a static of the launcher's,
//! filled in by [`record_decoder_hashes`]), which the launcher hash covers; the launcher checks
//! the segment against it before its first decode. Not in the segment's program header: `strip`
//! and `objcopy` lay segments out in the order of their `p_paddr`, so a hash there moved the
//! decoders behind the payload whenever it was the larger number.

use crate::elf::{Elf, ProgramHeader, PF_X, PHDR_MAX, PT_LOAD};
use crate::{content_hash, Arch, ContentHasher, FormatError};

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
    let own = |ph: &ProgramHeader| {
        ph.p_type == PT_LOAD && !arch.is_payload_segment(ph) && !is_decoder_segment(arch, ph)
    };
    for ph in phdrs.filter(own) {
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

/// Whether `ph` is a launcher image's decoder segment: an executable `PT_LOAD` that does not
/// start the file (the launcher's own code does, with the ELF and program headers in it). The
/// linker scripts put the C decoders there; its hash is in the launcher's own bytes
/// ([`DECODER_HASH_MARK`]).
pub fn is_decoder_segment(arch: Arch, ph: &ProgramHeader) -> bool {
    ph.p_type == PT_LOAD
        && ph.p_offset != 0
        && ph.p_flags & PF_X != 0
        && !arch.is_payload_segment(ph)
}

/// What precedes the decoder segment's hash in a launcher image that has one: the launcher's
/// static holds this mark and then the hash, 8 bytes little-endian, in one of its own (hashed)
/// segments. The mark lets a reader of the file find the hash without symbols.
pub const DECODER_HASH_MARK: [u8; 16] = *b"mgo:decoder-hash";

/// The launcher's static: the mark, then the hash (0 until [`record_decoder_hashes`] fills it).
pub const DECODER_HASH_SLOT_LEN: usize = DECODER_HASH_MARK.len() + 8;

/// Whether `bytes` are the decoder segment's, whose hash the launcher records as `recorded`.
pub fn decoder_hash_matches(recorded: u64, bytes: &[u8]) -> bool {
    content_hash(bytes) == recorded
}

/// The decoder segment's hash as a launcher slot holds it.
pub fn decoder_hash_in_slot(slot: &[u8; DECODER_HASH_SLOT_LEN]) -> u64 {
    let mut hash = [0u8; 8];
    hash.copy_from_slice(&slot[DECODER_HASH_MARK.len()..]);
    u64::from_le_bytes(hash)
}

/// Where the slot's hash is in `file`: after the one [`DECODER_HASH_MARK`] in the launcher's own
/// segments. `None` if there is none, or more than one.
fn decoder_hash_at(file: &[u8], elf: &Elf<'_>, arch: Arch) -> Option<usize> {
    let own = |ph: &ProgramHeader| {
        ph.p_type == PT_LOAD && !arch.is_payload_segment(ph) && !is_decoder_segment(arch, ph)
    };
    let mut found = None;
    for ph in elf.phdrs().filter(own) {
        let bytes = segment_bytes(file, &ph)?;
        let start = usize::try_from(ph.p_offset).ok()?;
        for (i, window) in bytes.windows(DECODER_HASH_SLOT_LEN).enumerate() {
            if window.starts_with(&DECODER_HASH_MARK) {
                if found.is_some() {
                    return None;
                }
                found = Some(start + i + DECODER_HASH_MARK.len());
            }
        }
    }
    found
}

/// Writes the decoder segment's hash into the launcher's slot, in a launcher image as linked
/// (`cargo xtask runtime` does, before the image is committed). Returns how many decoder
/// segments there were: 0 (nothing written) or 1. An image with more than one, or with one and
/// no single slot, is refused.
pub fn record_decoder_hashes(image: &mut [u8]) -> Result<usize, FormatError> {
    let (hash, at) = {
        let elf = Elf::parse(image)?;
        let arch = Arch::from_elf_machine(elf.machine).ok_or(FormatError::UnknownArch)?;
        let mut decoders = elf.phdrs().filter(|ph| is_decoder_segment(arch, ph));
        let Some(ph) = decoders.next() else {
            return Ok(0);
        };
        if decoders.next().is_some() {
            return Err(FormatError::UnsupportedElf);
        }
        let hash = content_hash(segment_bytes(image, &ph).ok_or(FormatError::Truncated)?);
        let at = decoder_hash_at(image, &elf, arch).ok_or(FormatError::UnsupportedElf)?;
        (hash, at)
    };
    image[at..at + 8].copy_from_slice(&hash.to_le_bytes());
    Ok(1)
}

/// Whether every decoder segment of a bundle or image file matches the hash the launcher
/// records for it.
pub fn decoders_of_file_intact(file: &[u8]) -> Result<bool, FormatError> {
    let elf = Elf::parse(file)?;
    let arch = Arch::from_elf_machine(elf.machine).ok_or(FormatError::UnknownArch)?;
    let mut decoders = elf
        .phdrs()
        .filter(|ph| is_decoder_segment(arch, ph))
        .peekable();
    if decoders.peek().is_none() {
        return Ok(true);
    }
    let Some(at) = decoder_hash_at(file, &elf, arch) else {
        return Ok(false);
    };
    let mut recorded = [0u8; 8];
    recorded.copy_from_slice(&file[at..at + 8]);
    let recorded = u64::from_le_bytes(recorded);
    Ok(decoders.all(|ph| {
        segment_bytes(file, &ph).is_some_and(|bytes| decoder_hash_matches(recorded, bytes))
    }))
}

fn segment_bytes<'a>(file: &'a [u8], ph: &ProgramHeader) -> Option<&'a [u8]> {
    let end = ph.p_offset.checked_add(ph.p_filesz)?;
    file.get(usize::try_from(ph.p_offset).ok()?..usize::try_from(end).ok()?)
}

/// Stands in for masked bytes (a program header is the longest).
const ZEROS: [u8; PHDR_MAX] = [0; PHDR_MAX];

/// [`launcher_hash`] of a bundle (or runtime image) file.
pub fn launcher_hash_of_file(file: &[u8]) -> Result<u64, FormatError> {
    let elf = Elf::parse(file)?;
    let arch = Arch::from_elf_machine(elf.machine).ok_or(FormatError::UnknownArch)?;
    launcher_hash(arch, elf.phdrs(), |ph| segment_bytes(file, ph)).ok_or(FormatError::Truncated)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;
    use crate::elf::Class;

    /// A launcher-like file of `class` (x86-64's or 32-bit ARM's): an ELF header, three program
    /// headers right after it (text from offset 0, data, payload), and bytes.
    fn image(class: Class) -> [u8; 512] {
        let (arch, base) = match class {
            Class::Elf64 => (Arch::X86_64, 0x10_0000_0000),
            Class::Elf32 => (Arch::Arm, 0x100_0000),
        };
        let (ehdr, phdr) = (class.ehdr_len(), class.phdr_len());
        let mut f = [0u8; 512];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = class.ident();
        f[5] = 1;
        f[18..20].copy_from_slice(&arch.elf_machine().to_le_bytes());
        class.put_word(&mut f, class.phoff_field().start, ehdr as u64);
        let at = class.phentsize_at();
        f[at..at + 2].copy_from_slice(&(phdr as u16).to_le_bytes());
        f[at + 2..at + 4].copy_from_slice(&3u16.to_le_bytes());
        let phdrs = [
            (PT_LOAD, 5, 0, base, 400),
            (PT_LOAD, 6, 400, base + 0x1190, 100),
            (PT_LOAD, 4, 500, arch.payload_vaddr(), 12),
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
            ph.write(class, &mut f[ehdr + i * phdr..ehdr + (i + 1) * phdr]);
        }
        for (i, b) in f[ehdr + 3 * phdr..].iter_mut().enumerate() {
            *b = i as u8;
        }
        f
    }

    /// Whether flipping one bit at `at` changes the launcher hash.
    fn hash_changes(class: Class, at: usize) -> bool {
        let mut f = image(class);
        f[at] ^= 1;
        launcher_hash_of_file(&f).unwrap() != launcher_hash_of_file(&image(class)).unwrap()
    }

    #[test]
    fn covers_code_and_headers_but_not_what_tools_rewrite() {
        for class in [Class::Elf64, Class::Elf32] {
            let (ehdr, phdr) = (class.ehdr_len(), class.phdr_len());
            // Code, data, the ELF header's other fields, the launcher's own program headers.
            for at in [300, 450, 16, 24, ehdr + 8, ehdr + phdr + 8] {
                assert!(hash_changes(class, at), "{class:?} byte {at}");
            }
            // e_shoff, e_shnum, the payload program header's offset, and the payload's bytes.
            let shape = class.section_shape_field().start;
            let p_offset = match class {
                Class::Elf64 => 8,
                Class::Elf32 => 4,
            };
            let skipped = [
                class.shoff_field().start,
                shape + 2,
                ehdr + 2 * phdr + p_offset,
                505,
            ];
            for at in skipped {
                assert!(!hash_changes(class, at), "{class:?} byte {at}");
            }
        }
    }

    /// Where [`with_decoders`] puts the launcher's slot for the decoders' hash: in its code.
    const SLOT: usize = 300;

    /// [`image`] with a fourth program header: a decoder segment of 128 bytes at the end of the
    /// file, and the launcher's empty slot for its hash (no hash recorded yet).
    fn with_decoders(class: Class) -> Vec<u8> {
        let (ehdr, phdr) = (class.ehdr_len(), class.phdr_len());
        let mut f = image(class).to_vec();
        f[SLOT..SLOT + 16].copy_from_slice(&DECODER_HASH_MARK);
        f[SLOT + 16..SLOT + 24].fill(0);
        f.extend((0..128u32).map(|i| (i * 3) as u8));
        let at = class.phentsize_at();
        f[at + 2..at + 4].copy_from_slice(&4u16.to_le_bytes());
        let vaddr = 0x100_3000;
        let ph = ProgramHeader {
            p_type: PT_LOAD,
            p_flags: 5,
            p_offset: 512,
            p_vaddr: vaddr,
            p_paddr: vaddr,
            p_filesz: 128,
            p_memsz: 128,
            p_align: 0x1000,
        };
        ph.write(class, &mut f[ehdr + 3 * phdr..ehdr + 4 * phdr]);
        f
    }

    #[test]
    fn the_decoder_segment_is_vouched_for_by_the_launcher_not_hashed_with_it() {
        for class in [Class::Elf64, Class::Elf32] {
            let mut f = with_decoders(class);
            assert!(
                !decoders_of_file_intact(&f).unwrap(),
                "{class:?}: no hash recorded"
            );
            assert_eq!(record_decoder_hashes(&mut f).unwrap(), 1);
            assert!(decoders_of_file_intact(&f).unwrap(), "{class:?}");
            let hash = launcher_hash_of_file(&f).unwrap();

            // Damage in the decoders: the launcher's hash holds, the decoders' check fails.
            let mut damaged = f.clone();
            damaged[600] ^= 1;
            assert_eq!(launcher_hash_of_file(&damaged).unwrap(), hash, "{class:?}");
            assert!(!decoders_of_file_intact(&damaged).unwrap(), "{class:?}");

            // Damage in the hash the launcher records, or in its mark: the launcher's hash
            // covers both.
            for at in [SLOT + 20, SLOT + 3] {
                let mut damaged = f.clone();
                damaged[at] ^= 1;
                assert_ne!(launcher_hash_of_file(&damaged).unwrap(), hash, "{class:?}");
                assert!(
                    !decoders_of_file_intact(&damaged).unwrap(),
                    "{class:?} {at}"
                );
            }

            // The segment's program header keeps the address the linker gave it: tools that
            // lay segments out in `p_paddr` order keep the decoders where they are.
            let elf = Elf::parse(&f).unwrap();
            let ph = elf.phdr(3);
            assert_eq!(ph.p_paddr, ph.p_vaddr, "{class:?}");

            // A second mark in the launcher leaves no slot to trust.
            let mut twice = with_decoders(class);
            twice[SLOT + 40..SLOT + 56].copy_from_slice(&DECODER_HASH_MARK);
            assert!(record_decoder_hashes(&mut twice).is_err(), "{class:?}");
        }
    }

    #[test]
    fn elf32_headers_read_back_and_the_hash_copy_is_its_low_half() {
        let f = image(Class::Elf32);
        let elf = Elf::parse(&f).unwrap();
        assert_eq!(elf.class, Class::Elf32);
        assert_eq!(elf.phnum(), 3);
        assert_eq!(elf.phdr(1).p_vaddr, 0x100_1190);
        assert_eq!(elf.phdr(1).p_flags, 6);
        assert!(Arch::Arm.is_payload_segment(&elf.phdr(2)));
        assert_eq!(Arch::Arm.hash_in_phdr(u64::MAX), 0xffff_ffff);
        assert_eq!(Arch::Aarch64.hash_in_phdr(u64::MAX), u64::MAX);
    }
}
