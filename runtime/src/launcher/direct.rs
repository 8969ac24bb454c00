//! The direct launch path: no memfd, no copy, no second exec. The variant's loadable segments are
//! moved out of the kernel's mapping of the payload region to their addresses (`moved.rs`), the
//! auxiliary vector the kernel gave the launcher is rewritten in place to describe the program,
//! and the launcher jumps to the program's entry point with the stack pointer where the kernel
//! left it. The program's pages are the bundle file's page cache, shared by every running
//! instance.
//!
//! A dynamically linked program's interpreter (the dynamic loader named by `PT_INTERP`) is mapped
//! from its own file as the kernel would, and entered instead of the program, with `AT_BASE`
//! saying where it lies. Whatever `mgo_format::direct::check` refuses, and any failure before the
//! jump, leaves the process as it was and the launch goes on through the memfd.

use mgo_format::direct::{self, NotDirect, HEAD_FRAME, PF_W, PF_X};
use mgo_format::{Bundle, Encoding, Entry};
use mgo_runtime::message::Line;
use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};

use crate::launch::write_stderr;
use crate::start::{StartInfo, AT_NULL};
use crate::{process_view, xfsz};

const AT_PHDR: usize = 3;
const AT_PHENT: usize = 4;
const AT_PHNUM: usize = 5;
const AT_BASE: usize = 7;
const AT_ENTRY: usize = 9;

/// A relocatable program's alignment is honoured up to this; beyond it, any page will do (no
/// real toolchain asks for more than 2 MiB).
const MAX_ALIGN: u64 = 1 << 30;

/// Why the direct path was not taken. The launch goes on through the memfd.
#[derive(Clone, Copy)]
pub enum Refusal {
    Layout(NotDirect),
    /// The variant does not start at a page boundary of the file (a bundle the packer did not
    /// lay out for mapping).
    Misaligned,
    /// The kernel would not map it: an address already in use, or a resource limit.
    Map(Errno),
    /// Its program interpreter cannot be opened or read.
    Interpreter(Errno),
    /// Its program interpreter is not a loader the launcher can map.
    InterpreterLayout(NotDirect),
    /// Its compressed bytes do not match their hash or do not decode (the memfd path then
    /// decodes them again, and refuses them with the usual message).
    #[cfg_attr(not(any(feature = "zstd", feature = "deflate")), allow(dead_code))]
    Damaged,
}

impl Refusal {
    pub fn describe(self, line: &mut Line) {
        match self {
            Refusal::Layout(why) => {
                line.str(why.message());
            }
            Refusal::Misaligned => {
                line.str("its bytes are not page-aligned in the bundle");
            }
            Refusal::Map(e) => {
                line.str("mapping it failed: ");
                errno(line, e);
            }
            Refusal::Interpreter(e) => {
                line.str("its program interpreter cannot be read: ");
                errno(line, e);
            }
            Refusal::InterpreterLayout(why) => {
                line.str("its program interpreter ").str(why.message());
            }
            Refusal::Damaged => {
                line.str("its compressed bytes do not match their hash or do not decode");
            }
        }
    }
}

fn errno(line: &mut Line, e: Errno) {
    let raw = e.raw_os_error();
    match mgo_runtime::message::errno_name(raw) {
        Some(name) => line.str(name),
        None => line.str("errno ").dec(raw as u64),
    };
}

/// The `[mgo] launcher:` line that says which path starts the program.
pub fn log_path(direct: bool, refused: Option<Refusal>) {
    let mut line = Line::new();
    line.str("[mgo] launcher: launch path ")
        .str(if direct { "direct" } else { "memfd" });
    if let Some(why) = refused {
        line.str(" (cannot map the variant directly: ");
        why.describe(&mut line);
        line.str(")");
    }
    write_stderr(line.finish());
}

/// Starts `entry` on the direct path: a stored variant by moving its pages out of the kernel's
/// mapping of the region, a compressed one by decoding it into its segments. Returns the reason
/// when it cannot (the process then as it was); it does not return when the program started.
/// `ready` runs once the program is in place, just before the jump, for the log lines.
pub fn launch_variant(
    start: &StartInfo,
    bundle: &Bundle<'_>,
    entry: &Entry,
    heap_randomised: bool,
    ready: impl FnOnce(),
) -> Refusal {
    // The payload region is the launcher's alone: released on the way into the program. (munmap
    // rounds the length up to the page itself; rounding here to the architecture's largest page
    // could reach into a neighbouring mapping on a kernel with smaller pages.)
    let region = (
        bundle.arch.payload_vaddr() as usize,
        bundle.header.region_len as usize,
    );
    let place = Placement {
        heap_randomised,
        region,
    };
    if entry.encoding != Encoding::Stored {
        #[cfg(any(feature = "zstd", feature = "deflate"))]
        return crate::unpack::launch(start, bundle, entry, &place, ready);
        // A launcher without decoders refused the entry before getting here.
        #[cfg(not(any(feature = "zstd", feature = "deflate")))]
        return Refusal::Layout(NotDirect::HeadFrame);
    }
    launch(
        start,
        bundle.stored(entry),
        bundle.arch.elf_machine(),
        &place,
        ready,
    )
}

/// What the way into the program needs besides the program: whether to randomise its heap as
/// the kernel would, and the launcher's mapping of the payload region, released before the jump.
pub struct Placement {
    pub heap_randomised: bool,
    pub region: (usize, usize),
}

/// Starts the stored variant `data` (its bytes in the kernel's mapping of the region) by moving
/// its pages into place. Returns only if it could not, with the process unchanged (`ready` has
/// then not been called).
fn launch(
    start: &StartInfo,
    data: &[u8],
    machine: u16,
    place: &Placement,
    ready: impl FnOnce(),
) -> Refusal {
    let page = start.page_size();
    if data.as_ptr() as u64 & (page - 1) != 0 {
        return Refusal::Misaligned;
    }
    // The headers are read from a copy: the variant's first page leaves the region with the
    // rest when the segments are moved.
    let mut head = [0u8; HEAD_FRAME];
    let head_len = data.len().min(HEAD_FRAME);
    head[..head_len].copy_from_slice(&data[..head_len]);
    let image = match direct::check_head(&head[..head_len], data.len() as u64, machine, page) {
        Ok(image) => image,
        Err(why) => return Refusal::Layout(why),
    };
    let bias = match reserve(&image, page) {
        Ok(bias) => bias,
        Err(e) => return Refusal::Map(e),
    };
    // The interpreter first: once the segments are moved, nothing may fail.
    let entered = match enter_point(&image, bias, machine, page) {
        Ok(entered) => entered,
        Err(refusal) => {
            release(&image, bias);
            return refusal;
        }
    };
    if let Err(e) = crate::moved::place(&image, data, page, bias) {
        release(&image, bias);
        return Refusal::Map(e);
    }
    enter(start, &image, bias, entered, place, ready)
}

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

/// Describes the program mapped at `bias` to itself and to the kernel, as an exec would have,
/// gives back the caller's signal dispositions and jumps to it (`entered` from [`enter_point`]),
/// releasing the payload region on the way.
pub fn enter(
    start: &StartInfo,
    image: &direct::Image<'_>,
    bias: u64,
    (base, start_at): (u64, u64),
    place: &Placement,
    ready: impl FnOnce(),
) -> ! {
    // SAFETY: the auxiliary vector is on the initial stack, writable and ours; its pairs end with
    // AT_NULL, and only values are replaced.
    unsafe {
        let mut at = start.auxv as *mut usize;
        loop {
            let value = match *at {
                AT_NULL => break,
                AT_PHDR => (image.phdr_vaddr + bias) as usize,
                AT_PHENT => mgo_format::elf::PHDR_LEN,
                AT_PHNUM => image.phnum as usize,
                // Where the interpreter lies; 0 for a static program, its own loader.
                AT_BASE => base as usize,
                AT_ENTRY => (image.entry + bias) as usize,
                _ => *at.add(1),
            };
            *at.add(1) = value;
            at = at.add(2);
        }
    }
    process_view::describe(start, image, bias, start.page_size(), place.heap_randomised);
    ready();
    xfsz::release();
    // SAFETY: the stack pointer is the kernel's, at argc, which the program's entry expects; the
    // entry (the program's, or its interpreter's) is inside a mapped executable segment
    // (checked); the region holds nothing of the program's or of the code running the jump.
    unsafe {
        jump(
            start.stack_pointer(),
            start_at as usize,
            [place.region, (0, 0)],
        )
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
    let flags = MapFlags::PRIVATE | MapFlags::NORESERVE;
    if !image.relocatable {
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping.
        let got = unsafe {
            rustix::mm::mmap_anonymous(
                image.lo as *mut _,
                span,
                ProtFlags::empty(),
                flags | MapFlags::FIXED_NOREPLACE,
            )?
        };
        if got as u64 != image.lo {
            // Kernels before 4.17 take the flag as a mere hint.
            // SAFETY: the mapping just made, somewhere else.
            unsafe {
                let _ = rustix::mm::munmap(got, span);
            }
            return Err(Errno::EXIST);
        }
        return Ok(0);
    }
    let align = if image.align <= MAX_ALIGN {
        image.align
    } else {
        page
    };
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

/// Releases the launcher's leftover mappings and enters the program with the stack pointer at
/// its argument count and every other register zero, as the kernel enters a program (`rdx`/`x0`,
/// the function a static program registers with atexit, must be null).
///
/// # Safety
/// `sp` must be the kernel's initial stack pointer and `entry` the program's mapped entry point;
/// `leftovers` must not cover the program or the running launcher code.
#[cfg(target_arch = "x86_64")]
unsafe fn jump(sp: usize, entry: usize, leftovers: [(usize, usize); 2]) -> ! {
    // SAFETY: as the caller promises. The munmap calls run in assembly, so no Rust code touches
    // the released memory afterwards; a zero length just fails with EINVAL.
    unsafe {
        core::arch::asm!(
            "mov eax, 11",
            "syscall",
            "mov rdi, r8",
            "mov rsi, r9",
            "mov eax, 11",
            "syscall",
            "mov rsp, r12",
            "xor eax, eax",
            "xor ebx, ebx",
            "xor ecx, ecx",
            "xor edx, edx",
            "xor esi, esi",
            "xor edi, edi",
            "xor ebp, ebp",
            "xor r8d, r8d",
            "xor r9d, r9d",
            "xor r10d, r10d",
            "xor r11d, r11d",
            "xor r12d, r12d",
            "xor r14d, r14d",
            "xor r15d, r15d",
            "jmp r13",
            in("rdi") leftovers[0].0,
            in("rsi") leftovers[0].1,
            in("r8") leftovers[1].0,
            in("r9") leftovers[1].1,
            in("r12") sp,
            in("r13") entry,
            options(noreturn)
        )
    }
}

/// # Safety
/// As the x86-64 version.
#[cfg(target_arch = "aarch64")]
unsafe fn jump(sp: usize, entry: usize, leftovers: [(usize, usize); 2]) -> ! {
    // SAFETY: as the caller promises; munmap is system call 215.
    unsafe {
        core::arch::asm!(
            "mov x8, #215",
            "svc 0",
            "mov x0, x2",
            "mov x1, x3",
            "mov x8, #215",
            "svc 0",
            "mov sp, x4",
            "mov x0, xzr",
            "mov x1, xzr",
            "mov x2, xzr",
            "mov x3, xzr",
            "mov x4, xzr",
            "mov x8, xzr",
            "mov x29, xzr",
            "mov x30, xzr",
            "br x5",
            in("x0") leftovers[0].0,
            in("x1") leftovers[0].1,
            in("x2") leftovers[1].0,
            in("x3") leftovers[1].1,
            in("x4") sp,
            in("x5") entry,
            options(noreturn)
        )
    }
}
