//! Mapping ELF images into this process as the kernel's ELF loader would: claiming the address
//! range of a program's segments (at its own addresses, or at a randomised base), mapping a
//! program interpreter from its file, and finding where the kernel would enter a program.

use mgo_format::direct::{self, PF_W, PF_X};
use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};

use crate::aslr::{self, ELF_ET_DYN_BASE, PIE_RANDOM_BITS};
use crate::refusal::Refusal;

/// A relocatable program's alignment is honoured up to this; beyond it, any page will do (no
/// real toolchain asks for more than 2 MiB).
const MAX_ALIGN: u64 = 1 << 30;

/// Where the kernel would enter the program mapped at `bias`: its entry point, or, for a
/// dynamically linked one, its interpreter's, mapped now. Returns (`AT_BASE`, the address to
/// jump to).
pub fn enter_point(
    image: &direct::Image<'_>,
    bias: u64,
    machine: u16,
    page: u64,
) -> Result<(u64, u64), Refusal> {
    match image.interp {
        None => Ok((0, image.entry + bias)),
        Some(path) => interpreter(path, machine, page),
    }
}

/// Undoes a mapping: the span is the reservation, which holds only the launcher's own mappings.
pub fn release(image: &direct::Image<'_>, bias: u64) {
    // SAFETY: as said; nothing refers to these pages.
    unsafe {
        let _ = rustix::mm::munmap((image.lo + bias) as *mut _, (image.hi - image.lo) as usize);
    }
}

/// Maps the program interpreter `path` as the kernel's ELF loader does: relocatable, at a base
/// chosen by the kernel's address-space randomisation. Returns its load bias (`AT_BASE`) and
/// its entry point.
fn interpreter(path: &[u8], machine: u16, page: u64) -> Result<(u64, u64), Refusal> {
    let mut name = [0u8; 4097];
    name.get_mut(..path.len())
        .ok_or(Refusal::Interpreter(Errno::NAMETOOLONG))?
        .copy_from_slice(path);
    let name = core::ffi::CStr::from_bytes_until_nul(&name)
        .map_err(|_| Refusal::Interpreter(Errno::INVAL))?;
    let fd = rustix::fs::open(name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(Refusal::Interpreter)?;
    let len = rustix::fs::fstat(&fd)
        .map_err(Refusal::Interpreter)?
        .st_size as u64;
    // The ELF header and program headers: the first page holds them in every loader.
    let mut head = [0u8; 4096];
    let got = rustix::io::pread(&fd, &mut head, 0).map_err(Refusal::Interpreter)?;
    let image = direct::check_interpreter(&head[..got], len, machine, page)
        .map_err(Refusal::InterpreterLayout)?;
    let bias = reserve(&image, page).map_err(Refusal::Map)?;
    if let Err(e) = map_segments(&image, fd.as_fd(), 0, page, bias) {
        release(&image, bias);
        return Err(Refusal::Map(e));
    }
    // `fd` closes here: the mappings keep the file.
    Ok((bias, image.entry + bias))
}

/// Claims the address range of all segments, so that nothing the launcher or the kernel placed
/// is overwritten: at the program's own addresses for a fixed-address executable, wherever the
/// kernel's address-space randomisation puts it for a static PIE. Returns the load bias.
pub fn reserve(image: &direct::Image<'_>, page: u64) -> Result<u64, Errno> {
    let span = (image.hi - image.lo) as usize;
    if !image.relocatable {
        return reserve_at(image.lo, span).map(|()| 0);
    }
    let align = if image.align <= MAX_ALIGN {
        image.align
    } else {
        page
    };
    // A PIE program (one with an interpreter) goes where the kernel loads programs: at
    // ELF_ET_DYN_BASE plus its own random offset, apart from the interpreter and the libraries
    // in the mmap area. A static PIE and an interpreter go into the mmap area, as the kernel
    // puts them.
    if image.interp.is_some() {
        let base = (ELF_ET_DYN_BASE + pie_offset(page)) & !(align - 1);
        if reserve_at(base, span).is_ok() {
            return Ok(base - image.lo);
        }
    }
    let flags = MapFlags::PRIVATE | MapFlags::NORESERVE;
    let slack = (align - page) as usize;
    // SAFETY: a fresh anonymous mapping wherever the kernel likes.
    let got = unsafe {
        rustix::mm::mmap_anonymous(
            core::ptr::null_mut(),
            span + slack,
            ProtFlags::empty(),
            flags,
        )?
    } as u64;
    let base = (got + align - 1) & !(align - 1);
    // SAFETY: both trimmed ends belong to the mapping just made.
    unsafe {
        if base > got {
            let _ = rustix::mm::munmap(got as *mut _, (base - got) as usize);
        }
        let tail = got + (span + slack) as u64 - (base + span as u64);
        if tail > 0 {
            let _ = rustix::mm::munmap((base + span as u64) as *mut _, tail as usize);
        }
    }
    Ok(base - image.lo)
}

/// Maps each loadable segment over the reservation as the kernel's ELF loader would: the file's
/// pages privately (copy-on-write), the rest of the last file page zeroed, and anonymous zero
/// pages for the remaining memory size (bss).
fn map_segments(
    image: &direct::Image<'_>,
    fd: BorrowedFd<'_>,
    file_offset: u64,
    page: u64,
    bias: u64,
) -> Result<(), Errno> {
    let mask = page - 1;
    let up = |x: u64| (x + mask) & !mask;
    for ph in image.loads() {
        let mut prot = ProtFlags::READ;
        if ph.p_flags & PF_W != 0 {
            prot |= ProtFlags::WRITE;
        }
        if ph.p_flags & PF_X != 0 {
            prot |= ProtFlags::EXEC;
        }
        let vaddr = ph.p_vaddr + bias;
        let start = vaddr & !mask;
        let file_end = vaddr + ph.p_filesz;
        let mem_end = vaddr + ph.p_memsz;
        let mut anon_start = start;
        if ph.p_filesz > 0 {
            let tail = if mem_end > file_end {
                up(file_end) - file_end
            } else {
                0
            };
            let map_prot = if tail > 0 {
                prot | ProtFlags::WRITE
            } else {
                prot
            };
            // SAFETY: inside our reservation (checked non-overlapping segments within lo..hi);
            // the offset is page-aligned because the variant (or the interpreter's file) starts
            // on a page and p_offset is congruent to p_vaddr (checked).
            unsafe {
                rustix::mm::mmap(
                    start as *mut _,
                    (up(file_end) - start) as usize,
                    map_prot,
                    MapFlags::PRIVATE | MapFlags::FIXED,
                    fd,
                    file_offset + (ph.p_offset & !mask),
                )?;
            }
            if tail > 0 {
                // SAFETY: the last page of the mapping just made, writable; these bytes follow
                // the segment's file contents in the file and must read as zero (bss).
                unsafe { core::ptr::write_bytes(file_end as *mut u8, 0, tail as usize) };
                if ph.p_flags & PF_W == 0 {
                    // SAFETY: the mapping just made, back to the segment's own protection.
                    unsafe {
                        rustix::mm::mprotect(
                            start as *mut _,
                            (up(file_end) - start) as usize,
                            MprotectFlags::from_bits_retain(prot.bits()),
                        )?;
                    }
                }
            }
            anon_start = up(file_end);
        }
        let anon_end = up(mem_end);
        if anon_end > anon_start {
            // SAFETY: inside our reservation, past the segment's file pages.
            unsafe {
                rustix::mm::mmap_anonymous(
                    anon_start as *mut _,
                    (anon_end - anon_start) as usize,
                    prot,
                    MapFlags::PRIVATE | MapFlags::FIXED,
                )?;
            }
        }
    }
    Ok(())
}

/// Claims `span` bytes at exactly `at`, or fails without touching anything there.
fn reserve_at(at: u64, span: usize) -> Result<(), Errno> {
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping.
    let got = unsafe {
        rustix::mm::mmap_anonymous(
            at as *mut _,
            span,
            ProtFlags::empty(),
            MapFlags::PRIVATE | MapFlags::NORESERVE | MapFlags::FIXED_NOREPLACE,
        )?
    };
    if got as u64 != at {
        // Kernels before 4.17 take the flag as a mere hint.
        // SAFETY: the mapping just made, somewhere else.
        unsafe {
            let _ = rustix::mm::munmap(got, span);
        }
        return Err(Errno::EXIST);
    }
    Ok(())
}

/// The random offset the kernel would add to a PIE's base: none when the process asked for no
/// randomisation (`setarch -R`, as debuggers do) or no randomness can be had.
fn pie_offset(page: u64) -> u64 {
    const ADDR_NO_RANDOMIZE: usize = 0x0004_0000;
    if crate::sys::personality() & ADDR_NO_RANDOMIZE != 0 {
        return 0;
    }
    aslr::random().map_or(0, |r| (r & ((1 << PIE_RANDOM_BITS) - 1)) * page)
}
