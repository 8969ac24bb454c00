//! How the kernel holds a file in its page cache: in single pages or in large folios (compound
//! pages), as `/proc/self/pagemap` and `/proc/kpageflags` tell a privileged reader.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// `/proc/kpageflags`: the page is the head or a tail of a compound page.
const KPF_COMPOUND_HEAD: u64 = 1 << 15;
const KPF_COMPOUND_TAIL: u64 = 1 << 16;
/// `/proc/self/pagemap`: the page frame number, and whether the page is present.
const PFN_MASK: u64 = (1 << 55) - 1;
const PRESENT: u64 = 1 << 63;

/// The share of `path`'s pages, read through a fresh mapping of it, that belong to a large folio;
/// `None` where the kernel does not say (page frame numbers read as 0 without CAP_SYS_ADMIN, or
/// no `/proc/kpageflags`).
pub fn large_folio_share(path: &Path) -> Option<f64> {
    folios(path).map(|f| f.in_large as f64 / f.pages as f64)
}

/// How the page cache holds a file.
#[derive(Clone, Copy, Debug)]
pub struct Folios {
    /// The file's pages.
    pub pages: usize,
    /// Those that belong to a large folio.
    pub in_large: usize,
    /// The folios that hold them (a single page is one): the fewer, the larger.
    pub count: usize,
}

/// How the page cache holds `path`, read through a fresh mapping of it; `None` where the kernel
/// does not say (see [`large_folio_share`]).
pub fn folios(path: &Path) -> Option<Folios> {
    let file = File::open(path).ok()?;
    let len = usize::try_from(file.metadata().ok()?.len()).ok()?;
    let page = 4096;
    if len == 0 {
        return None;
    }
    let pagemap = File::open("/proc/self/pagemap").ok()?;
    let kpageflags = File::open("/proc/kpageflags").ok()?;
    // SAFETY: a new private read-only mapping of the file, read only below and unmapped at the
    // end; nothing in this test process truncates the file meanwhile.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            std::os::fd::AsRawFd::as_raw_fd(&file),
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return None;
    }
    let mut compound = 0usize;
    let mut count = 0usize;
    let mut seen = 0usize;
    let mut known = true;
    for offset in (0..len).step_by(page) {
        let at = base as usize + offset;
        // SAFETY: inside the mapping, which is `len` readable bytes of the file.
        unsafe { std::ptr::read_volatile(at as *const u8) };
        let mut entry = [0u8; 8];
        let mut flags = [0u8; 8];
        let pfn = pagemap
            .read_exact_at(&mut entry, (at / page * 8) as u64)
            .ok()
            .map(|()| u64::from_ne_bytes(entry))
            .filter(|e| e & PRESENT != 0)
            .map(|e| e & PFN_MASK)
            .filter(|&pfn| pfn != 0);
        let Some(pfn) = pfn else {
            known = false;
            break;
        };
        if kpageflags.read_exact_at(&mut flags, pfn * 8).is_err() {
            known = false;
            break;
        }
        seen += 1;
        let flags = u64::from_ne_bytes(flags);
        if flags & (KPF_COMPOUND_HEAD | KPF_COMPOUND_TAIL) != 0 {
            compound += 1;
        }
        // A folio starts at its head, or is a single page; a tail at the start of the mapping
        // starts the part of its folio that the file shows.
        if flags & KPF_COMPOUND_TAIL == 0 || seen == 1 {
            count += 1;
        }
    }
    // SAFETY: the mapping made above, no longer used.
    unsafe { libc::munmap(base, len) };
    (known && seen > 0).then_some(Folios {
        pages: seen,
        in_large: compound,
        count,
    })
}
