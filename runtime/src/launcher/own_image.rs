//! The bundle as the kernel loaded it. The launcher's own program headers (`AT_PHDR`) say where
//! the payload region lies in memory: the kernel mapped it at exec, from exactly the inode it
//! executed. Reading it there needs no descriptor, no `/proc` and no read permission on the file,
//! and no name can point the launcher at another file.
//!
//! Before anything else trusts the launcher's own code and tables, its loaded segments are hashed
//! and compared with the hash the packer recorded in the region's header. The C decoders' segment,
//! in the images that have one, is hashed only before the first decode ([`check_decoders`]):
//! a warm start from the cache decodes nothing, and its pages are most of a codec image.

#[cfg(any(feature = "zstd", feature = "deflate"))]
use core::sync::atomic::AtomicBool;
use core::sync::atomic::{AtomicUsize, Ordering};

use mgo_format::elf::{Class, ProgramHeader};
#[cfg(any(feature = "zstd", feature = "deflate"))]
use mgo_format::{
    decoder_hash_in_slot, decoder_hash_matches, is_decoder_segment, DECODER_HASH_MARK,
    DECODER_HASH_SLOT_LEN,
};
use mgo_format::{launcher_hash, launcher_hash_in_phdr, Bundle, FormatError, Header, HEADER_LEN};
use mgo_runtime::cpu::NATIVE;
use rustix::io::Errno;

use crate::start::StartInfo;

const AT_PHDR: usize = 3;
const AT_PHENT: usize = 4;
const AT_PHNUM: usize = 5;
/// More program headers than the launcher's linker script makes means a damaged header.
const MAX_PHDRS: usize = 16;

/// The longest path the kernel takes, its terminating NUL included (`PATH_MAX`).
pub const PATH_MAX: usize = 4096;

/// The bundle's path, as the launcher can learn it.
pub struct OwnPath<'b> {
    pub bytes: &'b [u8],
    /// From `/proc/self/exe`: absolute, without symbolic links, with ` (deleted)` after it if the
    /// file was removed or replaced since the exec. Otherwise the path given to exec, as given.
    pub resolved: bool,
}

/// The bundle's path as `/proc/self/exe` names it (what Go's `os.Executable` returns), whatever
/// `argv[0]` was; without `/proc`, the path given to exec (`AT_EXECFN`), which may be relative.
/// Only names come from here, never the bytes that run (those are the kernel's mapping).
pub fn own_path<'b>(start: &StartInfo, buf: &'b mut [u8; PATH_MAX]) -> Option<OwnPath<'b>> {
    let resolved = rustix::fs::readlinkat_raw(rustix::fs::CWD, c"/proc/self/exe", &mut buf[..]);
    match resolved {
        // A full buffer may be a truncated path.
        Ok(len) if len > 0 && len < PATH_MAX => Some(OwnPath {
            bytes: &buf[..len],
            resolved: true,
        }),
        _ => start.execfn().map(|p| OwnPath {
            bytes: p.to_bytes(),
            resolved: false,
        }),
    }
}

/// Why the bundle could not be had from memory.
#[derive(Clone, Copy)]
pub enum Unreadable {
    /// The auxiliary vector does not say where the program headers are (no Linux kernel does
    /// that).
    NoProgramHeaders,
    /// The region or the launcher is not what the packer wrote.
    Damaged(FormatError),
}

/// The launcher's program headers, where the kernel loaded them. They are read in place, not
/// copied: nothing before the self-check should call code (`memcpy`) that reports use too.
pub struct LoadedHeaders {
    at: usize,
    count: usize,
}

impl LoadedHeaders {
    pub fn read(start: &StartInfo) -> Result<LoadedHeaders, Unreadable> {
        let (Some(at), Some(phent), Some(count)) =
            (start.aux(AT_PHDR), start.aux(AT_PHENT), start.aux(AT_PHNUM))
        else {
            return Err(Unreadable::NoProgramHeaders);
        };
        if phent != Class::NATIVE.phdr_len() {
            return Err(Unreadable::NoProgramHeaders);
        }
        if at == 0 || count > MAX_PHDRS {
            return Err(Unreadable::Damaged(FormatError::UnsupportedElf));
        }
        Ok(LoadedHeaders { at, count })
    }

    fn iter(&self) -> impl Iterator<Item = ProgramHeader> + Clone + '_ {
        let len = Class::NATIVE.phdr_len();
        (0..self.count).map(move |i| {
            // SAFETY: the kernel points AT_PHDR at the program header table inside the launcher's
            // first loaded segment (runtime/link/*.ld puts it there), AT_PHNUM (checked: at most
            // MAX_PHDRS) entries of AT_PHENT (checked: the native class's size) bytes, mapped
            // readable for the process's life.
            let bytes =
                unsafe { core::slice::from_raw_parts((self.at + i * len) as *const u8, len) };
            ProgramHeader::read(Class::NATIVE, bytes)
        })
    }

    /// The payload region where the kernel mapped it, checked against the file's end and parsed,
    /// after the launcher's own segments were checked against the hash the packer recorded:
    /// first thing, against the copy in the payload program header, so that no byte of the
    /// region is read (and no code that could be damaged runs) before the check; in a bundle
    /// without that copy, against the region header's, once the region is known to be in the
    /// file. A mismatch is reported by [`crate::damaged`], not through the usual report, whose
    /// code and text are among the suspect bytes. `page` is the kernel's page size.
    pub fn bundle(&self, page: usize) -> Result<Bundle<'static>, Unreadable> {
        let damaged = Unreadable::Damaged;
        let ph = self
            .iter()
            .find(|ph| NATIVE.is_payload_segment(ph))
            .ok_or(damaged(FormatError::NoPayloadSegment))?;
        // ELF32's copy is the hash's low 32 bits (Arch::hash_in_phdr).
        let copy = launcher_hash_in_phdr(&ph);
        if let Some(copy) = copy {
            self.check_self(|hash| NATIVE.hash_in_phdr(hash) == copy);
        }
        let region = loaded(&ph).ok_or(damaged(FormatError::Truncated))?;
        if region.len() < HEADER_LEN {
            return Err(damaged(FormatError::Truncated));
        }
        // The region follows the launcher in the file: with its last page in the file, every
        // page hashed below is too.
        ensure_in_file(region, page).map_err(|_| damaged(FormatError::Truncated))?;
        let recorded = Header::parse(region).map_err(damaged)?.launcher_hash;
        match copy {
            // The two copies differ: one of them is damaged.
            Some(copy) if copy != NATIVE.hash_in_phdr(recorded) => crate::damaged::launcher(),
            Some(_) => {}
            // 0: a packer that did not record it; the index and content hashes still hold.
            None if recorded != 0 => self.check_self(|hash| hash == recorded),
            None => {}
        }
        // The program headers are checked: they say where the decoders are, and their hash.
        CHECKED_HEADERS.store(self.at, Ordering::Relaxed);
        CHECKED_COUNT.store(self.count, Ordering::Relaxed);
        Bundle::parse_region(NATIVE, region).map_err(damaged)
    }

    /// Returns if the hash of the launcher's loaded segments is the `recorded` one; otherwise
    /// says the launcher is damaged and exits.
    fn check_self(&self, recorded: impl Fn(u64) -> bool) {
        if !launcher_hash(NATIVE, self.iter(), loaded).is_some_and(recorded) {
            crate::damaged::launcher();
        }
    }

    /// The launcher's own loaded segments (all but the payload region's), as one page-aligned
    /// span: (address, length).
    pub fn launcher_span(&self, page: usize) -> (usize, usize) {
        let own = self
            .iter()
            .filter(|ph| ph.p_type == mgo_format::elf::PT_LOAD && !NATIVE.is_payload_segment(ph));
        let (mut lo, mut hi) = (usize::MAX, 0);
        for ph in own {
            lo = lo.min(ph.p_vaddr as usize & !(page - 1));
            hi = hi.max((ph.p_vaddr + ph.p_memsz) as usize);
        }
        if lo >= hi {
            return (0, 0);
        }
        (lo, hi.div_ceil(page) * page - lo)
    }

    /// The highest address any loaded segment reaches: where the kernel began the launcher's
    /// heap (`brk`), before randomising it.
    pub fn end(&self) -> usize {
        let load = |ph: &ProgramHeader| ph.p_type == mgo_format::elf::PT_LOAD;
        self.iter()
            .filter(load)
            .map(|ph| ph.p_vaddr.saturating_add(ph.p_memsz) as usize)
            .max()
            .unwrap_or(0)
    }
}

/// Where the launcher's program headers are, and how many, once they have passed the check (0
/// before: zeroed memory, outside the hashed bytes).
static CHECKED_HEADERS: AtomicUsize = AtomicUsize::new(0);
static CHECKED_COUNT: AtomicUsize = AtomicUsize::new(0);
#[cfg(any(feature = "zstd", feature = "deflate"))]
static DECODERS_CHECKED: AtomicBool = AtomicBool::new(false);

/// The decoders' hash, in the launcher's own bytes, which the self-check covers: the mark, then
/// the hash, which `cargo xtask runtime` writes after linking (`record_decoder_hashes`, which
/// finds the slot by its mark).
#[cfg(any(feature = "zstd", feature = "deflate"))]
#[used]
static DECODER_HASH: [u8; DECODER_HASH_SLOT_LEN] = {
    let mut slot = [0u8; DECODER_HASH_SLOT_LEN];
    let mut i = 0;
    while i < DECODER_HASH_MARK.len() {
        slot[i] = DECODER_HASH_MARK[i];
        i += 1;
    }
    slot
};

/// Checks the decoders' segment (an image without one has nothing to check) against the hash the
/// launcher records for it, the first time a decoder is about to run; damage there is the
/// launcher's damage, reported as such, and the process exits. Called on the launcher's own
/// thread, before any helper thread exists.
#[cfg(any(feature = "zstd", feature = "deflate"))]
pub fn check_decoders() {
    if DECODERS_CHECKED.swap(true, Ordering::Relaxed) {
        return;
    }
    let headers = LoadedHeaders {
        at: CHECKED_HEADERS.load(Ordering::Relaxed),
        count: CHECKED_COUNT.load(Ordering::Relaxed),
    };
    // Decoding before the launcher checked itself: damaged code took a path it never takes.
    if headers.at == 0 {
        crate::damaged::launcher();
    }
    // SAFETY: a static of the launcher's, read as bytes. Volatile: its contents are written into
    // the image after the compiler saw the zeros.
    let recorded = decoder_hash_in_slot(&unsafe { core::ptr::read_volatile(&DECODER_HASH) });
    for ph in headers.iter().filter(|ph| is_decoder_segment(NATIVE, ph)) {
        if !loaded(&ph).is_some_and(|bytes| decoder_hash_matches(recorded, bytes)) {
            crate::damaged::launcher();
        }
    }
}

/// The file bytes of a loaded segment, where the kernel mapped them; `None` for a segment that
/// cannot be read (no access flags: the kernel mapped it inaccessible) or that wraps around.
fn loaded(ph: &ProgramHeader) -> Option<&'static [u8]> {
    const PF_ANY: u32 = 7;
    let len = usize::try_from(ph.p_filesz).ok()?;
    let at = usize::try_from(ph.p_vaddr).ok()?;
    at.checked_add(len)?;
    if ph.p_flags & PF_ANY == 0 || at == 0 {
        return None;
    }
    // SAFETY: the kernel mapped this PT_LOAD of the executing launcher (an ET_EXEC, loaded at its
    // addresses) with `p_filesz` bytes from the file at `p_vaddr`, readable (an access flag is
    // set; on both architectures every mapping with one is readable), and nothing unmaps it
    // before the program replaces the launcher. Pages past the end of a truncated file are
    // checked by `ensure_in_file` before the region is read.
    Some(unsafe { core::slice::from_raw_parts(at as *const u8, len) })
}

/// A mapping that runs past the end of its file (a truncated bundle) raises SIGBUS where it is
/// read. Asking the kernel to populate the region's last page turns that into EFAULT here, so a
/// truncated bundle is refused with a message. Kernels before 5.14 do not know the request
/// (EINVAL); there the check is skipped.
fn ensure_in_file(region: &[u8], page: usize) -> Result<(), Errno> {
    let last = (region.as_ptr() as usize + region.len() - 1) & !(page - 1);
    // SAFETY: the page holds the region's last byte, inside the kernel's mapping of it;
    // populating page tables does not change memory contents.
    match unsafe {
        rustix::mm::madvise(last as *mut _, page, rustix::mm::Advice::LinuxPopulateRead)
    } {
        Ok(()) | Err(Errno::INVAL | Errno::NOSYS | Errno::PERM) => Ok(()),
        Err(e) => Err(e),
    }
}
