//! What the kernel keeps about the process image, set to describe the program on the direct path,
//! as its own exec would have: the code and data bounds (`/proc/PID/stat`, and the data size
//! that `brk` counts against `RLIMIT_DATA`), the heap's start right after the program (at a
//! random distance when the kernel randomises heaps), and the saved auxiliary vector
//! (`/proc/PID/auxv`).
//!
//! `prctl(PR_SET_MM, PR_SET_MM_MAP)` sets them all at once; it needs no privilege as long as the
//! executable's link is left alone, but kernels without checkpoint/restore support (or a sandbox)
//! refuse it. Then the launcher's values stay, and a program whose heap would outgrow
//! `RLIMIT_DATA` minus the bundle's size is the one visible difference (docs/RELIABILITY.md).

use core::ffi::CStr;

use mgo_format::direct::{Image, PF_X};

use crate::aslr::{self, BRK_RANGE, ELF_ET_DYN_BASE};
use crate::start::{StartInfo, AT_NULL};
use crate::sys;

const PR_SET_MM: usize = 35;
const PR_SET_MM_MAP: usize = 14;

/// The kernel's `struct prctl_mm_map`.
#[repr(C)]
struct MmMap {
    start_code: u64,
    end_code: u64,
    start_data: u64,
    end_data: u64,
    start_brk: u64,
    brk: u64,
    start_stack: u64,
    arg_start: u64,
    arg_end: u64,
    env_start: u64,
    env_end: u64,
    auxv: u64,
    auxv_size: u32,
    exe_fd: u32,
}

/// Where the kernel would begin the heap of `image` loaded at `bias` (`heap_randomised` from
/// [`heap_randomised`]).
fn heap_start(image: &Image<'_>, bias: u64, page: u64, heap_randomised: bool) -> u64 {
    let up = |x: u64| (x + page - 1) & !(page - 1);
    let end = image
        .loads()
        .map(|ph| ph.p_vaddr + ph.p_memsz)
        .max()
        .unwrap_or(0);
    if !heap_randomised {
        return up(end + bias);
    }
    // A static PIE is a program loader as far as the kernel is concerned: its heap goes where
    // programs would be loaded, away from the mmap area it lies in.
    let base = if image.relocatable && image.interp.is_none() {
        up(ELF_ET_DYN_BASE)
    } else {
        up(end + bias)
    };
    base + aslr::random().map_or(0, |r| (r % (BRK_RANGE / page)) * page)
}

/// Whether the kernel randomised the launcher's own heap start, and so would have randomised the
/// program's: the heap begins right after the highest segment (`launcher_end`) when it does not.
fn heap_randomised(launcher_end: usize, page: u64) -> bool {
    let up = (launcher_end as u64 + page - 1) & !(page - 1);
    sys::current_brk() as u64 != up
}

/// Tells the kernel that the process image is `image` at `bias`, with the auxiliary vector as
/// rewritten on the stack. Best effort: a refusal leaves the launcher's values.
/// `launcher_end` is where the launcher's own segments end: its heap began there unless the
/// kernel randomises heaps, which is asked only here, on the direct path, where it matters.
pub fn describe(start: &StartInfo, image: &Image<'_>, bias: u64, page: u64, launcher_end: usize) {
    let mut code = (u64::MAX, 0u64);
    let mut data = (0u64, 0u64);
    for ph in image.loads() {
        let (lo, hi) = (ph.p_vaddr + bias, ph.p_vaddr + bias + ph.p_filesz);
        if ph.p_flags & PF_X != 0 {
            code = (code.0.min(lo), code.1.max(hi));
        }
        data = (data.0.max(lo), data.1.max(hi));
    }
    if code.0 >= code.1 {
        return;
    }
    let brk = heap_start(image, bias, page, heap_randomised(launcher_end, page));
    let (args, env) = strings_bounds(start);
    let auxv_len = auxv_len(start);
    let mut map = MmMap {
        start_code: code.0,
        end_code: code.1,
        start_data: data.0,
        end_data: data.1,
        start_brk: brk,
        brk,
        start_stack: start.stack_pointer() as u64,
        arg_start: args.0,
        arg_end: args.1,
        env_start: env.0,
        env_end: env.1,
        auxv: start.auxv as u64,
        auxv_size: auxv_len as u32,
        exe_fd: u32::MAX,
    };
    for _ in 0..2 {
        // SAFETY: `map` is the kernel's struct, its size passed; `auxv` points at the auxiliary
        // vector on the initial stack, `auxv_size` bytes of it.
        let set = unsafe {
            sys::prctl(
                PR_SET_MM,
                PR_SET_MM_MAP,
                &map as *const MmMap as usize,
                core::mem::size_of::<MmMap>(),
                0,
            )
        };
        match set {
            // The saved vector may be smaller than this one (kernels size it by architecture):
            // the rest is still worth having.
            Err(rustix::io::Errno::INVAL) if map.auxv_size != 0 => map.auxv_size = 0,
            _ => return,
        }
    }
}

/// Bytes of the auxiliary vector, its closing `AT_NULL` pair included.
fn auxv_len(start: &StartInfo) -> usize {
    let mut pairs = 1;
    // SAFETY: the vector is (key, value) pairs ending with AT_NULL, on the initial stack.
    unsafe {
        let mut at = start.auxv;
        while *at != AT_NULL {
            pairs += 1;
            at = at.add(2);
        }
    }
    pairs * 2 * core::mem::size_of::<usize>()
}

/// The kernel's bounds of the argument and environment strings: contiguous, arguments first, each
/// block ending after its last string's NUL.
fn strings_bounds(start: &StartInfo) -> ((u64, u64), (u64, u64)) {
    let span = |first: Option<u64>, last_end: Option<u64>, at: u64| match (first, last_end) {
        (Some(first), Some(end)) => (first, end),
        _ => (at, at),
    };
    let (env_first, env_end) = bounds(start.env_strings());
    let (arg_first, arg_end) = bounds(start.args());
    // With no arguments the block is empty where the environment begins (and with neither, where
    // the path of the executable is kept, above both).
    let fallback = env_first
        .or_else(|| start.execfn().map(|p| p.as_ptr() as u64))
        .unwrap_or(0);
    let args = span(arg_first, arg_end, fallback);
    let env = span(env_first, env_end, args.1);
    (args, env)
}

/// The address of the first string and the end of the last one (past its NUL).
fn bounds(mut strings: impl Iterator<Item = &'static CStr>) -> (Option<u64>, Option<u64>) {
    let first = strings.next();
    let last = strings.last().or(first);
    let end = |s: &CStr| s.as_ptr() as u64 + s.to_bytes_with_nul().len() as u64;
    (first.map(|s| s.as_ptr() as u64), last.map(end))
}
