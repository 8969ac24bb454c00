//! Placing a stored variant's segments by moving the kernel's own mapping of them.
//!
//! The kernel mapped the payload region from the bundle's inode at exec. A stored variant's file
//! pages lie in it, page-aligned, so each segment's pages are moved (`mremap`) from the region to
//! the segment's address and given the segment's protection: no descriptor, no copy, and the
//! program's pages are the bundle's page cache, shared by every instance. Two kinds of page are
//! copied instead of moved: a page that two segments share in the file (the end of one and the
//! start of the next), which can only be moved once, and the last file page of a segment with
//! bss, whose tail must read as zero. So moved pages are never written, and a failure part way
//! through moves every piece back: the region is left exactly as the kernel mapped it, for the
//! memfd path that follows.

use mgo_format::direct::{Image, PF_W, PF_X};
use mgo_format::elf::ProgramHeader;
use rustix::io::Errno;
use rustix::mm::{MapFlags, MprotectFlags, MremapFlags, ProtFlags};

/// At most this many pieces are moved: a segment's middle, for every segment the checks allow.
const MAX_MOVES: usize = 16;

/// The pieces moved so far, to move back if a later step fails.
struct Moves {
    /// (from, to, length)
    done: [(usize, usize, usize); MAX_MOVES],
    len: usize,
}

/// One segment's pages: where its file pages lie in the region and go in memory, and how many
/// of them at each end are copied rather than moved.
struct Pages {
    src: usize,
    dst: usize,
    len: usize,
    copy_head: usize,
    copy_tail: usize,
}

/// Moves and copies the segments of `image` (whose file bytes start at `data`, page-aligned,
/// in the kernel's mapping of the region) into the reservation at `bias`, then protects them.
/// On failure everything moved is back in the region.
pub fn place(image: &Image<'_>, data: &[u8], page: u64, bias: u64) -> Result<(), Errno> {
    let mut moves = Moves {
        done: [(0, 0, 0); MAX_MOVES],
        len: 0,
    };
    let placed = place_all(image, data, page, bias, &mut moves);
    if placed.is_err() {
        for &(from, to, len) in moves.done[..moves.len].iter().rev() {
            // SAFETY: `to` was moved from `from` by this call and nothing has touched either
            // range since; moving it back restores the kernel's mapping of the region.
            let back = unsafe {
                rustix::mm::mremap_fixed(
                    to as *mut _,
                    len,
                    len,
                    MremapFlags::MAYMOVE,
                    from as *mut _,
                )
            };
            if back.is_err() {
                // The region has a hole the memfd path would fault on: end here, with a line.
                crate::report::write_stderr(
                    b"mgo: cannot map the program, nor restore the bundle's mapping\n",
                );
                crate::sys::exit(mgo_runtime::exit::CANNOT_EXECUTE);
            }
        }
    }
    placed
}

fn place_all(
    image: &Image<'_>,
    data: &[u8],
    page: u64,
    bias: u64,
    moves: &mut Moves,
) -> Result<(), Errno> {
    let page = page as usize;
    let base = data.as_ptr() as usize;
    // Copies first, while every source page is still where the kernel mapped it.
    for ph in image.loads() {
        let Some(p) = pages(image, &ph, base, page, bias) else {
            continue;
        };
        copy(p.src, p.dst, p.copy_head)?;
        copy(
            p.src + p.len - p.copy_tail,
            p.dst + p.len - p.copy_tail,
            p.copy_tail,
        )?;
        if ph.p_memsz > ph.p_filesz {
            let file_end = (ph.p_vaddr + bias + ph.p_filesz) as usize;
            // SAFETY: the segment's last file page was just copied into writable anonymous
            // memory (`copy_tail` covers it); the bytes after the file contents are its bss.
            unsafe { core::ptr::write_bytes(file_end as *mut u8, 0, p.dst + p.len - file_end) };
        }
    }
    for ph in image.loads() {
        let Some(p) = pages(image, &ph, base, page, bias) else {
            continue;
        };
        let len = p.len - p.copy_head - p.copy_tail;
        if len > 0 {
            let (from, to) = (p.src + p.copy_head, p.dst + p.copy_head);
            if moves.len == MAX_MOVES {
                return Err(Errno::NOMEM);
            }
            // SAFETY: `from..from + len` lies in the region's mapping and no other segment's
            // pages overlap it (those are copied); `to..to + len` lies in this image's
            // reservation, which holds nothing of the launcher's.
            unsafe {
                rustix::mm::mremap_fixed(
                    from as *mut _,
                    len,
                    len,
                    MremapFlags::MAYMOVE,
                    to as *mut _,
                )?;
            }
            moves.done[moves.len] = (from, to, len);
            moves.len += 1;
        }
    }
    for ph in image.loads() {
        protect(&ph, page, bias)?;
    }
    Ok(())
}

/// The segment's file pages, or `None` for a segment that is all bss.
fn pages(
    image: &Image<'_>,
    ph: &ProgramHeader,
    base: usize,
    page: usize,
    bias: u64,
) -> Option<Pages> {
    if ph.p_filesz == 0 {
        return None;
    }
    let (start, end) = file_pages(ph, page);
    let len = end - start;
    let (mut copy_head, mut copy_tail) = (0, 0);
    let others = image
        .loads()
        .filter(|other| other.p_filesz > 0 && other.p_vaddr != ph.p_vaddr);
    for other in others {
        let (s, e) = file_pages(&other, page);
        let (lo, hi) = (s.max(start), e.min(end));
        if lo >= hi {
            continue;
        }
        if (lo, hi) == (start, start + page) {
            copy_head = page;
        } else if (lo, hi) == (end - page, end) {
            copy_tail = page;
        } else {
            // Segments sharing more than a boundary page (no toolchain makes them): copy all.
            copy_head = len;
            copy_tail = 0;
            break;
        }
    }
    if ph.p_memsz > ph.p_filesz && copy_head + copy_tail < len && copy_tail == 0 {
        // The bss begins inside the last file page, which is zeroed past the file contents.
        copy_tail = page;
    }
    if copy_head + copy_tail > len {
        // One page, both first and last.
        copy_tail = 0;
    }
    Some(Pages {
        src: base + start,
        dst: ((ph.p_vaddr + bias) as usize) & !(page - 1),
        len,
        copy_head,
        copy_tail,
    })
}

/// The page-aligned file range holding a segment's file contents.
fn file_pages(ph: &ProgramHeader, page: usize) -> (usize, usize) {
    let mask = page - 1;
    let start = ph.p_offset as usize & !mask;
    let end = (ph.p_offset + ph.p_filesz) as usize;
    (start, (end + mask) & !mask)
}

/// Copies `len` bytes (whole pages) from the region into fresh writable anonymous memory at `to`.
fn copy(from: usize, to: usize, len: usize) -> Result<(), Errno> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: `to..to + len` lies in the image's reservation, which holds nothing of the
    // launcher's; `from..from + len` is readable region memory, not yet moved.
    unsafe {
        rustix::mm::mmap_anonymous(
            to as *mut _,
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE | MapFlags::FIXED,
        )?;
        core::ptr::copy_nonoverlapping(from as *const u8, to as *mut u8, len);
    }
    Ok(())
}

/// Gives a segment its protection, and its bss beyond the last file page.
fn protect(ph: &ProgramHeader, page: usize, bias: u64) -> Result<(), Errno> {
    let mask = page - 1;
    let mut prot = ProtFlags::READ;
    if ph.p_flags & PF_W != 0 {
        prot |= ProtFlags::WRITE;
    }
    if ph.p_flags & PF_X != 0 {
        prot |= ProtFlags::EXEC;
    }
    let vaddr = (ph.p_vaddr + bias) as usize;
    let start = vaddr & !mask;
    let file_end = (vaddr + ph.p_filesz as usize + mask) & !mask;
    let mem_end = (vaddr + ph.p_memsz as usize + mask) & !mask;
    let mut anon_start = start;
    if ph.p_filesz > 0 {
        // SAFETY: the segment's file pages, moved or copied into place above; only their
        // protection changes.
        unsafe {
            rustix::mm::mprotect(
                start as *mut _,
                file_end - start,
                MprotectFlags::from_bits_retain(prot.bits()),
            )?;
        }
        anon_start = file_end;
    }
    if mem_end > anon_start {
        // SAFETY: inside the reservation, past the segment's file pages.
        unsafe {
            rustix::mm::mmap_anonymous(
                anon_start as *mut _,
                mem_end - anon_start,
                prot,
                MapFlags::PRIVATE | MapFlags::FIXED,
            )?;
        }
    }
    Ok(())
}
