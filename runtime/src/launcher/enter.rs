//! Entering a program placed in this process: the auxiliary vector rewritten to describe it, the
//! kernel told its bounds (`process_view`), the caller's signal dispositions given back, and a
//! jump to its entry point with the stack pointer where the kernel left it.

use mgo_format::direct;
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};

use crate::start::{StartInfo, AT_NULL};
use crate::{process_view, xfsz};

const AT_PHDR: usize = 3;
const AT_PHENT: usize = 4;
const AT_PHNUM: usize = 5;
const AT_BASE: usize = 7;
const AT_ENTRY: usize = 9;

/// What the way into the program needs besides the program: where the launcher's heap began (to
/// tell whether the kernel randomises heaps), and what of the launcher is released on the way in:
/// the kernel's mapping of the payload region and the launcher's own segments, as (address,
/// length).
pub struct Placement {
    /// Where the launcher's loaded segments end (its heap's start, unless randomised).
    pub launcher_end: usize,
    pub region: (usize, usize),
    pub launcher: (usize, usize),
}

/// The page the last instructions run from: a copy of `mgo_trampoline`, made before anything is
/// placed (so that failing to make it refuses the direct path with the process unchanged) at an
/// address the kernel's address-space randomisation chooses. It unmaps the launcher's segments
/// and the region, sets the stack pointer and jumps; it is all of the launcher that stays
/// mapped once the program runs (one page, like the vDSO's).
pub struct Trampoline {
    page: *mut u8,
    len: usize,
}

impl Trampoline {
    pub fn new(page: usize) -> Result<Trampoline, rustix::io::Errno> {
        let code = trampoline_code();
        // SAFETY: a fresh private anonymous mapping; the copy fits in it (the code is a few
        // dozen bytes); it becomes executable only once written.
        unsafe {
            let at = rustix::mm::mmap_anonymous(
                core::ptr::null_mut(),
                page,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )?;
            let trampoline = Trampoline {
                page: at.cast(),
                len: page,
            };
            core::ptr::copy_nonoverlapping(code.as_ptr(), trampoline.page, code.len());
            sync_instructions(trampoline.page, code.len());
            rustix::mm::mprotect(at, page, MprotectFlags::READ | MprotectFlags::EXEC)?;
            Ok(trampoline)
        }
    }
}

impl Drop for Trampoline {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unused when the direct path is given up.
        unsafe {
            let _ = rustix::mm::munmap(self.page.cast(), self.len);
        }
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
    trampoline: Trampoline,
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
    process_view::describe(start, image, bias, start.page_size(), place.launcher_end);
    ready();
    let _ = xfsz::release();
    let code = trampoline.page;
    core::mem::forget(trampoline);
    // SAFETY: `code` is the trampoline's executable copy, outside everything it unmaps; the stack
    // pointer is the kernel's, at argc, which the program's entry expects; the entry (the
    // program's, or its interpreter's) is inside a mapped executable segment (checked); neither
    // span holds anything of the program's.
    unsafe {
        let run: extern "C" fn(usize, usize, usize, usize, usize, usize) -> ! =
            core::mem::transmute(code);
        run(
            place.launcher.0,
            place.launcher.1,
            place.region.0,
            place.region.1,
            start.stack_pointer(),
            start_at as usize,
        )
    }
}

/// The trampoline's instructions, as linked into the launcher (never run there).
fn trampoline_code() -> &'static [u8] {
    extern "C" {
        static mgo_trampoline_start: u8;
        static mgo_trampoline_end: u8;
    }
    // SAFETY: both symbols are labels around the code below, in that order, in the launcher's
    // read-only data.
    unsafe {
        let start = &raw const mgo_trampoline_start;
        let end = &raw const mgo_trampoline_end;
        core::slice::from_raw_parts(start, end as usize - start as usize)
    }
}

// Called as `(launcher, launcher_len, region, region_len, sp, entry)`: unmaps both spans, then
// enters the program with the stack pointer at argc and every other register zero but the one
// holding the entry, as the kernel enters a program (`rdx`/`x0`, the function a static program
// registers with atexit, must be null). Position-independent: it runs from a copy.
#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".pushsection .rodata.mgo_trampoline, \"a\"",
    ".globl mgo_trampoline_start",
    ".globl mgo_trampoline_end",
    "mgo_trampoline_start:",
    "mov r12, rdx",
    "mov r13, rcx",
    "mov eax, 11",
    "syscall",
    "mov rdi, r12",
    "mov rsi, r13",
    "mov eax, 11",
    "syscall",
    "mov rsp, r8",
    "xor eax, eax",
    "xor ebx, ebx",
    "xor ecx, ecx",
    "xor edx, edx",
    "xor esi, esi",
    "xor edi, edi",
    "xor ebp, ebp",
    "xor r8d, r8d",
    "xor r10d, r10d",
    "xor r11d, r11d",
    "xor r12d, r12d",
    "xor r13d, r13d",
    "xor r14d, r14d",
    "xor r15d, r15d",
    "jmp r9",
    "mgo_trampoline_end:",
    ".popsection",
);

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".pushsection .rodata.mgo_trampoline, \"a\"",
    ".globl mgo_trampoline_start",
    ".globl mgo_trampoline_end",
    ".balign 4",
    "mgo_trampoline_start:",
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
    "mgo_trampoline_end:",
    ".popsection",
);

// riscv64: munmap is 215 (the generic table); a0, which the psABI gives a program as the
// function to register with atexit, is cleared with every other argument register, ra and fp.
#[cfg(target_arch = "riscv64")]
core::arch::global_asm!(
    ".pushsection .rodata.mgo_trampoline, \"a\"",
    ".globl mgo_trampoline_start",
    ".globl mgo_trampoline_end",
    ".balign 4",
    "mgo_trampoline_start:",
    "li a7, 215",
    "ecall",
    "mv a0, a2",
    "mv a1, a3",
    "li a7, 215",
    "ecall",
    "mv sp, a4",
    "li a0, 0",
    "li a1, 0",
    "li a2, 0",
    "li a3, 0",
    "li a4, 0",
    "li a7, 0",
    "li ra, 0",
    "li fp, 0",
    "jr a5",
    "mgo_trampoline_end:",
    ".popsection",
);

// powerpc64: munmap is 91 (the arguments wait in r28..r31, which `sc` preserves); the program is
// entered as the kernel enters it under ELFv2: r1 at argc, r12 = the entry (which computes its
// TOC pointer from it), every other general register zero (r7: the function a static glibc
// program would register with atexit) and the link register zero, through ctr.
#[cfg(target_arch = "powerpc64")]
core::arch::global_asm!(
    ".pushsection .rodata.mgo_trampoline, \"a\"",
    ".globl mgo_trampoline_start",
    ".globl mgo_trampoline_end",
    ".balign 4",
    "mgo_trampoline_start:",
    "mr 30, 5",
    "mr 31, 6",
    "mr 28, 7",
    "mr 29, 8",
    "li 0, 91",
    "sc",
    "mr 3, 30",
    "mr 4, 31",
    "li 0, 91",
    "sc",
    "mr 1, 28",
    "mr 12, 29",
    "mtctr 29",
    "li 0, 0",
    "mtlr 0",
    "li 2, 0",
    "li 3, 0",
    "li 4, 0",
    "li 5, 0",
    "li 6, 0",
    "li 7, 0",
    "li 8, 0",
    "li 9, 0",
    "li 10, 0",
    "li 11, 0",
    "li 13, 0",
    "li 14, 0",
    "li 15, 0",
    "li 16, 0",
    "li 17, 0",
    "li 18, 0",
    "li 19, 0",
    "li 20, 0",
    "li 21, 0",
    "li 22, 0",
    "li 23, 0",
    "li 24, 0",
    "li 25, 0",
    "li 26, 0",
    "li 27, 0",
    "li 28, 0",
    "li 29, 0",
    "li 30, 0",
    "li 31, 0",
    "bctr",
    "mgo_trampoline_end:",
    ".popsection",
);

// 32-bit ARM: the direct path places ELF64 programs only (mgo_format::direct refuses ELF32
// before anything is mapped), so this copy is made but never entered; should it be, it stops
// the process with SIGILL rather than run a half-built entry sequence.
#[cfg(target_arch = "arm")]
core::arch::global_asm!(
    ".pushsection .rodata.mgo_trampoline, \"a\"",
    ".globl mgo_trampoline_start",
    ".globl mgo_trampoline_end",
    ".balign 4",
    "mgo_trampoline_start:",
    ".inst 0xe7f000f0",
    "mgo_trampoline_end:",
    ".popsection",
);

/// Makes freshly written instructions visible to instruction fetch: nothing to do on x86-64.
#[cfg(target_arch = "x86_64")]
unsafe fn sync_instructions(_: *mut u8, _: usize) {}

/// Cleans the data cache and invalidates the instruction cache over the copied code, as arm64
/// requires before running code written as data (the copy is one or two cache lines).
///
/// # Safety
/// `at..at + len` is mapped memory.
#[cfg(target_arch = "aarch64")]
unsafe fn sync_instructions(at: *mut u8, len: usize) {
    // SAFETY: cache maintenance by address on mapped memory changes no data.
    unsafe {
        each_cache_line(
            at,
            len,
            16,
            |line| core::arch::asm!("dc cvau, {0}", in(reg) line),
        );
        core::arch::asm!("dsb ish");
        each_cache_line(
            at,
            len,
            16,
            |line| core::arch::asm!("ic ivau, {0}", in(reg) line),
        );
        core::arch::asm!("dsb ish", "isb");
    }
}

/// Asks the kernel to make the copied code visible to instruction fetch on every hart
/// (`riscv_flush_icache`, flags 0): a local `fence.i` would not cover a thread that moves to
/// another hart before it jumps.
///
/// # Safety
/// `at..at + len` is mapped memory.
#[cfg(target_arch = "riscv64")]
unsafe fn sync_instructions(at: *mut u8, len: usize) {
    const RISCV_FLUSH_ICACHE: usize = 259;
    // SAFETY: the system call only orders instruction fetch after earlier stores; it returns in
    // a0 and preserves every other register. Its result is not needed: it cannot fail for a
    // mapped range and flags 0.
    unsafe {
        core::arch::asm!("ecall", in("a7") RISCV_FLUSH_ICACHE,
            inlateout("a0") at as usize => _, in("a1") at as usize + len, in("a2") 0usize,
            options(nostack));
    }
}

/// Asks the kernel to write back the data cache and invalidate the instruction cache over the
/// copied code (`cacheflush`, ARM's private system call 0xf0002): ARMv5 and ARMv6 have no user
/// instruction for it.
///
/// # Safety
/// `at..at + len` is mapped memory.
#[cfg(target_arch = "arm")]
unsafe fn sync_instructions(at: *mut u8, len: usize) {
    const CACHEFLUSH: usize = 0xf_0002;
    // SAFETY: the system call only cleans and invalidates caches over a mapped range; it returns
    // in r0 and preserves every other register. Its result is not needed: it cannot fail for a
    // mapped range and flags 0.
    unsafe {
        core::arch::asm!("svc 0", in("r7") CACHEFLUSH, inlateout("r0") at as usize => _,
            in("r1") at as usize + len, in("r2") 0usize, options(nostack));
    }
}

/// Writes the copied code back from the data cache and discards stale instruction-cache lines
/// over it (`dcbst`, `sync`, `icbi`, `isync`), as the Power ISA requires before running code
/// written as data. 32 bytes per step: no POWER CPU has smaller cache lines, so every line of
/// the copy is named at least once.
///
/// # Safety
/// `at..at + len` is mapped memory.
#[cfg(target_arch = "powerpc64")]
unsafe fn sync_instructions(at: *mut u8, len: usize) {
    // SAFETY: cache maintenance by address on mapped memory changes no data.
    unsafe {
        each_cache_line(at, len, 32, |line| {
            core::arch::asm!("dcbst 0, {0}", in(reg_nonzero) line, options(nostack));
        });
        core::arch::asm!("sync", options(nostack));
        each_cache_line(at, len, 32, |line| {
            core::arch::asm!("icbi 0, {0}", in(reg_nonzero) line, options(nostack));
        });
        core::arch::asm!("sync", "isync", options(nostack));
    }
}

/// Calls `f` with the address of each `step`-byte cache line over `at..at + len`, for
/// maintenance by address.
#[cfg(any(target_arch = "aarch64", target_arch = "powerpc64"))]
#[inline(always)]
fn each_cache_line(at: *mut u8, len: usize, step: usize, mut f: impl FnMut(usize)) {
    let end = at as usize + len;
    let mut line = at as usize & !(step - 1);
    while line < end {
        f(line);
        line += step;
    }
}
