//! Whether a variant can be launched by mapping its segments straight from the bundle file, and
//! the facts the launcher needs to do it. The packer runs [`check`] to set
//! [`crate::ENTRY_DIRECT`]; the launcher runs it again on the bytes it is about to map, so that a
//! damaged or hostile bundle is refused (and copied into a memfd instead) rather than mapped. A
//! dynamically linked variant names its program interpreter, which the launcher maps as the
//! kernel would, after [`check_interpreter`] on the interpreter's first page.

use crate::elf::{Elf, ProgramHeader, PT_LOAD};

/// [`crate::Entry::flags`] bit: the packer checked this stored variant with [`check`] and chose to
/// launch it by mapping it from the bundle file rather than by copying it into a memfd.
pub const ENTRY_DIRECT: u16 = 1;

/// [`crate::Entry::flags`] bit, set with [`ENTRY_DIRECT`] only: the variant must run from the
/// bundle's own location (its RPATH or RUNPATH finds libraries through `$ORIGIN`, which the
/// dynamic loader resolves from `/proc/self/exe`), so the packer chose the direct path for it
/// whatever launch path was asked for. The launcher reads only `ENTRY_DIRECT`; readers say why.
pub const ENTRY_OWN_LOCATION: u16 = 4;

/// A compressed variant's first frame holds at most this many bytes (its ELF header and program
/// headers), so that the launcher can decode it on its own before it knows where the rest goes.
pub const HEAD_FRAME: usize = 4096;

pub const ET_EXEC: u16 = 2;
pub const ET_DYN: u16 = 3;
pub const PT_INTERP: u32 = 3;
pub const PT_PHDR: u32 = 6;
pub const PT_GNU_STACK: u32 = 0x6474_e551;
pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;

/// Highest user-space address any supported kernel gives a program (x86-64 with 4-level paging,
/// arm64 with 48-bit addresses); a segment above it cannot be mapped.
const USER_TOP: u64 = 1 << 47;

/// Why a variant goes through the memfd instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotDirect {
    NotElf,
    WrongMachine,
    /// Its program interpreter is not an absolute path the launcher can open.
    BadInterpreter,
    /// The program interpreter itself names an interpreter.
    Dynamic,
    NotExecutable,
    /// It asks for an executable stack, which only the kernel's own loader sets up.
    ExecutableStack,
    NoSegments,
    /// A loadable segment is not page-congruent, lies outside the file, overlaps another one or
    /// lies outside user space.
    BadSegment,
    /// The program header table is not inside a loaded segment, so `AT_PHDR` could not point at it.
    HeadersNotLoaded,
    EntryOutside,
    /// A compressed variant's frames do not follow its segments: a frame holds bytes of a
    /// segment and bytes outside it, so it has no single place to be decoded to.
    FramesAcrossSegments,
    /// A compressed variant's first frame does not hold its headers alone (the launcher must read
    /// the program headers before it knows where anything goes).
    HeadFrame,
    /// The bundle records no hash of a compressed variant's stored bytes (an older packer).
    NoStoredHash,
}

impl NotDirect {
    pub const fn message(self) -> &'static str {
        match self {
            NotDirect::NotElf => "not a 64-bit little-endian ELF file",
            NotDirect::WrongMachine => "built for another machine",
            NotDirect::BadInterpreter => "its program interpreter (PT_INTERP) is not a usable path",
            NotDirect::Dynamic => "its program interpreter asks for an interpreter itself",
            NotDirect::NotExecutable => "not an executable (ET_EXEC or static PIE)",
            NotDirect::ExecutableStack => "asks for an executable stack",
            NotDirect::NoSegments => "has no loadable segment",
            NotDirect::BadSegment => {
                "has a loadable segment that cannot be mapped from the file as it lies"
            }
            NotDirect::HeadersNotLoaded => "its program headers are not in a loaded segment",
            NotDirect::EntryOutside => "its entry point is not in an executable segment",
            NotDirect::FramesAcrossSegments => "its compressed frames do not follow its segments",
            NotDirect::HeadFrame => "its first compressed frame does not hold its headers",
            NotDirect::NoStoredHash => "the bundle records no hash of its compressed bytes",
        }
    }
}

/// A variant checked for direct mapping. Addresses are the ELF's own (before any load bias).
#[derive(Clone, Copy, Debug)]
pub struct Image<'a> {
    elf: Elf<'a>,
    /// `ET_DYN` (PIE, or an interpreter): mapped wherever the kernel puts it, at a bias.
    pub relocatable: bool,
    /// The program interpreter's path (`PT_INTERP`, without its NUL), for a dynamically linked
    /// program.
    pub interp: Option<&'a [u8]>,
    pub entry: u64,
    pub phdr_vaddr: u64,
    pub phnum: u64,
    /// Page-aligned start of the lowest segment and page-aligned end of the highest one.
    pub lo: u64,
    pub hi: u64,
    /// Largest segment alignment (a power of two, at least the page size).
    pub align: u64,
}

impl<'a> Image<'a> {
    /// The loadable segments, in ascending address order (checked).
    pub fn loads(&self) -> impl Iterator<Item = ProgramHeader> + 'a {
        let elf = self.elf;
        (0..elf.phnum())
            .map(move |i| elf.phdr(i))
            .filter(|ph| ph.p_type == PT_LOAD && ph.p_memsz > 0)
    }
}

/// Checks that `bytes`, a program for ELF machine `machine`, can be started by mapping its
/// segments from a file in which it begins at a multiple of `page` (a power of two).
pub fn check(bytes: &[u8], machine: u16, page: u64) -> Result<Image<'_>, NotDirect> {
    layout(bytes, bytes.len() as u64, machine, page, true)
}

/// Checks a compressed variant from its first `head` bytes (its ELF header and program headers,
/// decoded on their own) and its whole length `file_len`: the same rules as [`check`], for a
/// variant that will be decoded into its segments rather than mapped from the file.
pub fn check_head(
    head: &[u8],
    file_len: u64,
    machine: u16,
    page: u64,
) -> Result<Image<'_>, NotDirect> {
    layout(head, file_len, machine, page, true)
}

/// Where the bytes `offset..offset + len` of the variant's file go when it is decoded into its
/// segments: the address (before any load bias) inside the one loadable segment whose file
/// contents hold them all, or `None` if no segment loads any of them (they are not needed to run
/// the program). A range partly inside a segment has no single place.
pub fn place(image: &Image<'_>, offset: u64, len: u64) -> Result<Option<u64>, NotDirect> {
    let end = offset
        .checked_add(len)
        .ok_or(NotDirect::FramesAcrossSegments)?;
    for ph in image.loads().filter(|ph| ph.p_filesz > 0) {
        let seg_end = ph.p_offset + ph.p_filesz;
        if offset >= ph.p_offset && end <= seg_end {
            return Ok(Some(ph.p_vaddr + (offset - ph.p_offset)));
        }
        if offset < seg_end && ph.p_offset < end {
            return Err(NotDirect::FramesAcrossSegments);
        }
    }
    Ok(None)
}

/// Checks a program interpreter (the dynamic loader) from the start of its file, `head`, which
/// must hold its ELF header and program headers; `file_len` is the whole file's length. It must
/// be relocatable and need no interpreter itself, as the kernel requires.
pub fn check_interpreter(
    head: &[u8],
    file_len: u64,
    machine: u16,
    page: u64,
) -> Result<Image<'_>, NotDirect> {
    let image = layout(head, file_len, machine, page, false)?;
    if !image.relocatable {
        return Err(NotDirect::NotExecutable);
    }
    Ok(image)
}

/// The longest interpreter path the launcher opens (the kernel's limit is a page).
const INTERP_MAX: u64 = 4096;

fn layout(
    bytes: &[u8],
    file_len: u64,
    machine: u16,
    page: u64,
    allow_interp: bool,
) -> Result<Image<'_>, NotDirect> {
    // The direct path places ELF64 programs only: 32-bit ARM's go through a memfd.
    let elf = Elf::parse(bytes)
        .ok()
        .filter(|elf| elf.class == crate::elf::Class::Elf64)
        .ok_or(NotDirect::NotElf)?;
    if elf.machine != machine {
        return Err(NotDirect::WrongMachine);
    }
    let relocatable = match elf.elf_type {
        ET_EXEC => false,
        ET_DYN => true,
        _ => return Err(NotDirect::NotExecutable),
    };
    let phoff = crate::elf::u64_at(bytes, 32);
    let entry = crate::elf::u64_at(bytes, 24);
    let phnum = elf.phnum() as u64;
    let table_len = phnum * crate::elf::PHDR_LEN as u64;
    let mask = page - 1;

    let mut lo = u64::MAX;
    let mut hi = 0u64;
    let mut align = page;
    let mut prev_end = 0u64;
    let mut phdr_vaddr = None;
    let mut declared_phdr = None;
    let mut entry_ok = false;
    let mut interp = None;
    for ph in elf.phdrs() {
        match ph.p_type {
            PT_INTERP if !allow_interp => return Err(NotDirect::Dynamic),
            PT_INTERP => interp = Some(interp_path(bytes, &ph)?),
            PT_GNU_STACK if ph.p_flags & PF_X != 0 => return Err(NotDirect::ExecutableStack),
            PT_PHDR => declared_phdr = Some(ph.p_vaddr),
            PT_LOAD if ph.p_memsz > 0 => {
                let file_end = ph.p_offset.checked_add(ph.p_filesz);
                let mem_end = ph.p_vaddr.checked_add(ph.p_memsz);
                let (Some(file_end), Some(mem_end)) = (file_end, mem_end) else {
                    return Err(NotDirect::BadSegment);
                };
                let start = ph.p_vaddr & !mask;
                let end = mem_end.checked_add(mask).ok_or(NotDirect::BadSegment)? & !mask;
                let sane = ph.p_filesz <= ph.p_memsz
                    && file_end <= file_len
                    && ph.p_offset & mask == ph.p_vaddr & mask
                    && ph.p_flags & !(PF_R | PF_W | PF_X) == 0
                    && start >= prev_end
                    && end <= USER_TOP;
                if !sane {
                    return Err(NotDirect::BadSegment);
                }
                if ph.p_align.is_power_of_two() && ph.p_align > align {
                    align = ph.p_align;
                }
                prev_end = end;
                lo = lo.min(start);
                hi = hi.max(end);
                if ph.p_offset <= phoff
                    && phoff + table_len <= file_end
                    && phoff + table_len <= bytes.len() as u64
                {
                    phdr_vaddr = Some(ph.p_vaddr + (phoff - ph.p_offset));
                }
                if ph.p_flags & PF_X != 0 && ph.p_vaddr <= entry && entry < ph.p_vaddr + ph.p_filesz
                {
                    entry_ok = true;
                }
            }
            _ => {}
        }
    }
    if hi == 0 {
        return Err(NotDirect::NoSegments);
    }
    let phdr_vaddr = phdr_vaddr.ok_or(NotDirect::HeadersNotLoaded)?;
    if declared_phdr.is_some_and(|v| v != phdr_vaddr) {
        return Err(NotDirect::HeadersNotLoaded);
    }
    if !entry_ok {
        return Err(NotDirect::EntryOutside);
    }
    // A fixed-address program must not sit on page zero; a relocatable one is placed by the kernel.
    if !relocatable && lo < page {
        return Err(NotDirect::BadSegment);
    }
    Ok(Image {
        elf,
        relocatable,
        interp,
        entry,
        phdr_vaddr,
        phnum,
        lo,
        hi,
        align,
    })
}

/// The interpreter's path from its `PT_INTERP` segment: inside the file, NUL-terminated, absolute,
/// without another NUL.
fn interp_path<'a>(bytes: &'a [u8], ph: &ProgramHeader) -> Result<&'a [u8], NotDirect> {
    let end = ph.p_offset.checked_add(ph.p_filesz);
    let Some(end) = end.filter(|&e| e <= bytes.len() as u64 && ph.p_filesz <= INTERP_MAX) else {
        return Err(NotDirect::BadInterpreter);
    };
    let raw = &bytes[ph.p_offset as usize..end as usize];
    match raw.split_last() {
        Some((0, path)) if path.first() == Some(&b'/') && !path.contains(&0) => Ok(path),
        _ => Err(NotDirect::BadInterpreter),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::elf::{EHDR_LEN, PHDR_LEN};
    use std::vec::Vec;

    /// A minimal ELF with the given program headers (and the table right after the header).
    fn elf(kind: u16, entry: u64, phdrs: &[ProgramHeader], len: usize) -> Vec<u8> {
        let mut b = std::vec![0u8; len.max(EHDR_LEN + phdrs.len() * PHDR_LEN)];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[16..18].copy_from_slice(&kind.to_le_bytes());
        b[18..20].copy_from_slice(&62u16.to_le_bytes());
        b[24..32].copy_from_slice(&entry.to_le_bytes());
        b[32..40].copy_from_slice(&(EHDR_LEN as u64).to_le_bytes());
        b[54..56].copy_from_slice(&(PHDR_LEN as u16).to_le_bytes());
        b[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for (i, ph) in phdrs.iter().enumerate() {
            let at = EHDR_LEN + i * PHDR_LEN;
            b[at..at + PHDR_LEN].copy_from_slice(&ph.to_bytes());
        }
        b
    }

    fn load(offset: u64, vaddr: u64, filesz: u64, memsz: u64, flags: u32) -> ProgramHeader {
        ProgramHeader {
            p_type: PT_LOAD,
            p_flags: flags,
            p_offset: offset,
            p_vaddr: vaddr,
            p_paddr: vaddr,
            p_filesz: filesz,
            p_memsz: memsz,
            p_align: 0x1000,
        }
    }

    fn go_like() -> [ProgramHeader; 3] {
        [
            load(0, 0x400000, 0x2000, 0x2000, PF_R | PF_X),
            load(0x2000, 0x402000, 0x1000, 0x1000, PF_R),
            load(0x3000, 0x404000, 0x800, 0x3000, PF_R | PF_W),
        ]
    }

    #[test]
    fn accepts_a_static_executable() {
        let bytes = elf(ET_EXEC, 0x400100, &go_like(), 0x4000);
        let image = check(&bytes, 62, 0x1000).unwrap();
        assert!(!image.relocatable);
        assert_eq!((image.lo, image.hi), (0x400000, 0x407000));
        assert_eq!(image.phdr_vaddr, 0x400040);
        assert_eq!(image.phnum, 3);
        assert_eq!(image.loads().count(), 3);
    }

    #[test]
    fn frames_are_placed_in_the_segment_that_holds_them() {
        let bytes = elf(ET_EXEC, 0x400100, &go_like(), 0x5000);
        let head = &bytes[..0x1000];
        let image = check_head(head, bytes.len() as u64, 62, 0x1000).unwrap();
        assert_eq!(image.phdr_vaddr, 0x400040);
        assert_eq!(place(&image, 0, 0x1000), Ok(Some(0x400000)));
        assert_eq!(place(&image, 0x1000, 0x1000), Ok(Some(0x401000)));
        assert_eq!(place(&image, 0x2000, 0x1000), Ok(Some(0x402000)));
        assert_eq!(place(&image, 0x3100, 0x700), Ok(Some(0x404100)));
        // After the data's file bytes: loaded by nothing, needed by nothing.
        assert_eq!(place(&image, 0x3800, 0x1800), Ok(None));
        // Text and read-only data in one frame; data and what follows it.
        assert_eq!(
            place(&image, 0x1800, 0x1000),
            Err(NotDirect::FramesAcrossSegments)
        );
        assert_eq!(
            place(&image, 0x3000, 0x1000),
            Err(NotDirect::FramesAcrossSegments)
        );
        // A head that cuts the program headers short is not enough to place anything.
        assert!(check_head(&bytes[..100], bytes.len() as u64, 62, 0x1000).is_err());
    }

    #[test]
    fn refuses_what_it_cannot_map() {
        let mut interp = go_like().to_vec();
        interp.push(ProgramHeader {
            p_type: PT_INTERP,
            ..Default::default()
        });
        let cases: [(Vec<u8>, NotDirect); 6] = [
            // An empty interpreter path.
            (
                elf(ET_EXEC, 0x400100, &interp, 0x4000),
                NotDirect::BadInterpreter,
            ),
            (
                elf(1, 0x400100, &go_like(), 0x4000),
                NotDirect::NotExecutable,
            ),
            // Entry in the read-only data.
            (
                elf(ET_EXEC, 0x402010, &go_like(), 0x4000),
                NotDirect::EntryOutside,
            ),
            // Data past the end of the file.
            (
                elf(ET_EXEC, 0x400100, &go_like(), 0x3400),
                NotDirect::BadSegment,
            ),
            (b"#!/bin/sh\n".to_vec(), NotDirect::NotElf),
            (elf(ET_EXEC, 0x400100, &[], 0x100), NotDirect::NoSegments),
        ];
        for (bytes, why) in cases {
            assert_eq!(check(&bytes, 62, 0x1000).unwrap_err(), why);
        }
        let bytes = elf(ET_EXEC, 0x400100, &go_like(), 0x4000);
        assert_eq!(
            check(&bytes, 183, 0x1000).unwrap_err(),
            NotDirect::WrongMachine
        );
    }

    /// A go_like program with a PT_INTERP segment holding `path` at file offset 0x3800.
    fn with_interp(kind: u16, path: &[u8]) -> Vec<u8> {
        let mut phdrs = go_like().to_vec();
        phdrs.push(ProgramHeader {
            p_type: PT_INTERP,
            p_flags: PF_R,
            p_offset: 0x3800,
            p_filesz: path.len() as u64,
            ..Default::default()
        });
        let mut bytes = elf(kind, 0x400100, &phdrs, 0x4000);
        bytes[0x3800..0x3800 + path.len()].copy_from_slice(path);
        bytes
    }

    #[test]
    fn dynamic_programs_name_their_interpreter() {
        let bytes = with_interp(ET_EXEC, b"/lib64/ld-linux-x86-64.so.2\0");
        let image = check(&bytes, 62, 0x1000).unwrap();
        assert_eq!(image.interp, Some(&b"/lib64/ld-linux-x86-64.so.2"[..]));
        for bad in [&b"lib/ld.so\0"[..], b"/lib/ld.so", b"/lib/\0ld.so\0", b"\0"] {
            let bytes = with_interp(ET_EXEC, bad);
            assert_eq!(
                check(&bytes, 62, 0x1000).unwrap_err(),
                NotDirect::BadInterpreter,
                "{bad:?}"
            );
        }
        // An interpreter must be relocatable and must not want an interpreter itself; it is
        // checked from its first page, its segments against the whole file's length.
        let loader = elf(
            ET_DYN,
            0x100,
            &go_like().map(|mut ph| {
                ph.p_vaddr -= 0x400000;
                ph
            }),
            0x1000,
        );
        let image = check_interpreter(&loader, 0x4000, 62, 0x1000).unwrap();
        assert!(image.relocatable && image.interp.is_none());
        assert_eq!(
            check_interpreter(&loader, 0x3000, 62, 0x1000).unwrap_err(),
            NotDirect::BadSegment
        );
        let bytes = with_interp(ET_DYN, b"/lib/ld.so\0");
        assert_eq!(
            check_interpreter(&bytes, 0x4000, 62, 0x1000).unwrap_err(),
            NotDirect::Dynamic
        );
        let fixed = elf(ET_EXEC, 0x400100, &go_like(), 0x4000);
        assert_eq!(
            check_interpreter(&fixed, 0x4000, 62, 0x1000).unwrap_err(),
            NotDirect::NotExecutable
        );
    }

    #[test]
    fn refuses_bad_layouts() {
        let mut skewed = go_like();
        skewed[1].p_vaddr += 0x10;
        let mut overlapping = go_like();
        overlapping[1].p_vaddr = 0x401000;
        overlapping[1].p_offset = 0x1000;
        let mut exec_stack = go_like().to_vec();
        exec_stack.push(ProgramHeader {
            p_type: PT_GNU_STACK,
            p_flags: PF_R | PF_W | PF_X,
            ..Default::default()
        });
        let mut low = go_like();
        for ph in &mut low {
            ph.p_vaddr -= 0x400000;
        }
        for (phdrs, entry, why) in [
            (&skewed[..], 0x400100, NotDirect::BadSegment),
            (&overlapping[..], 0x400100, NotDirect::BadSegment),
            (&exec_stack[..], 0x400100, NotDirect::ExecutableStack),
            (&low[..], 0x100, NotDirect::BadSegment),
        ] {
            let bytes = elf(ET_EXEC, entry, phdrs, 0x4000);
            assert_eq!(check(&bytes, 62, 0x1000).unwrap_err(), why);
        }
        // The same low layout is fine for a static PIE, which is placed at a bias.
        let bytes = elf(ET_DYN, 0x100, &low, 0x4000);
        assert!(check(&bytes, 62, 0x1000).unwrap().relocatable);
    }
}
