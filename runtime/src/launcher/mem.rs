//! The memory functions the compiler emits calls to. On the gnu target `compiler_builtins` does
//! not export them and there is no libc, so the launcher brings its own. They must not be written
//! as plain loops: the optimiser would turn such a loop back into a call to itself.

#[cfg(target_arch = "x86_64")]
mod imp {
    // `rep movsb`/`rep stosb` are fast on every CPU with ERMS and correct on all x86-64 CPUs.

    #[no_mangle]
    unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        // SAFETY: the caller guarantees non-overlapping valid ranges of n bytes.
        unsafe {
            core::arch::asm!("rep movsb", inout("rcx") n => _, inout("rdi") dest => _,
                inout("rsi") src => _, options(nostack, preserves_flags));
        }
        dest
    }

    #[no_mangle]
    unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        if (dest as usize).wrapping_sub(src as usize) >= n {
            // Forward copying is safe when dest does not start inside src.
            // SAFETY: as memcpy; overlap handled by the direction check.
            unsafe { memcpy(dest, src, n) }
        } else {
            // SAFETY: copy backwards with the direction flag, restored before returning.
            unsafe {
                core::arch::asm!("std", "rep movsb", "cld",
                    inout("rcx") n => _, inout("rdi") dest.add(n - 1) => _,
                    inout("rsi") src.add(n - 1) => _, options(nostack));
            }
            dest
        }
    }

    #[no_mangle]
    unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
        // SAFETY: the caller guarantees a valid range of n bytes.
        unsafe {
            core::arch::asm!("rep stosb", inout("rcx") n => _, inout("rdi") dest => _,
                in("al") c as u8, options(nostack, preserves_flags));
        }
        dest
    }
}

#[cfg(target_arch = "aarch64")]
mod imp {
    // 16 bytes per load/store pair, then single bytes: arm64 allows unaligned accesses to normal
    // memory, and the loops are assembly so that the optimiser cannot turn them back into calls.

    /// # Safety
    /// Valid ranges of n bytes; `dest` does not start inside `src`.
    pub(super) unsafe fn copy_forward(dest: *mut u8, src: *const u8, n: usize) {
        // SAFETY: as the caller promises; the loops touch exactly [src, src + n) and
        // [dest, dest + n).
        unsafe {
            core::arch::asm!(
                "2:",
                "cmp {n}, #16",
                "b.lo 3f",
                "ldp {a}, {b}, [{s}], #16",
                "stp {a}, {b}, [{d}], #16",
                "sub {n}, {n}, #16",
                "b 2b",
                "3:",
                "cbz {n}, 4f",
                "ldrb {a:w}, [{s}], #1",
                "strb {a:w}, [{d}], #1",
                "sub {n}, {n}, #1",
                "b 3b",
                "4:",
                d = inout(reg) dest => _,
                s = inout(reg) src => _,
                n = inout(reg) n => _,
                a = out(reg) _,
                b = out(reg) _,
                options(nostack),
            );
        }
    }

    /// # Safety
    /// Valid ranges of n bytes.
    pub(super) unsafe fn copy_backward(dest: *mut u8, src: *const u8, n: usize) {
        // SAFETY: as the caller promises; starting from the ends, the loops touch exactly
        // [src, src + n) and [dest, dest + n).
        unsafe {
            core::arch::asm!(
                "2:",
                "cmp {n}, #16",
                "b.lo 3f",
                "ldp {a}, {b}, [{s}, #-16]!",
                "stp {a}, {b}, [{d}, #-16]!",
                "sub {n}, {n}, #16",
                "b 2b",
                "3:",
                "cbz {n}, 4f",
                "ldrb {a:w}, [{s}, #-1]!",
                "strb {a:w}, [{d}, #-1]!",
                "sub {n}, {n}, #1",
                "b 3b",
                "4:",
                d = inout(reg) dest.add(n) => _,
                s = inout(reg) src.add(n) => _,
                n = inout(reg) n => _,
                a = out(reg) _,
                b = out(reg) _,
                options(nostack),
            );
        }
    }

    #[no_mangle]
    unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
        let byte = u64::from(c as u8) * 0x0101_0101_0101_0101;
        // SAFETY: the caller guarantees a valid range of n bytes, which is all the loops write.
        unsafe {
            core::arch::asm!(
                "2:",
                "cmp {n}, #16",
                "b.lo 3f",
                "stp {v}, {v}, [{d}], #16",
                "sub {n}, {n}, #16",
                "b 2b",
                "3:",
                "cbz {n}, 4f",
                "strb {v:w}, [{d}], #1",
                "sub {n}, {n}, #1",
                "b 3b",
                "4:",
                d = inout(reg) dest => _,
                n = inout(reg) n => _,
                v = in(reg) byte,
                options(nostack),
            );
        }
        dest
    }
}

#[cfg(target_arch = "riscv64")]
mod imp {
    // Byte loops in assembly (so that the optimiser cannot turn them back into calls): RVA20
    // does not promise fast misaligned accesses, and the launcher copies little on riscv64
    // outside the decoders, which bring their own copies.

    /// # Safety
    /// Valid ranges of n bytes; `dest` does not start inside `src`.
    pub(super) unsafe fn copy_forward(dest: *mut u8, src: *const u8, n: usize) {
        // SAFETY: as the caller promises; the loop touches exactly [src, src + n) and
        // [dest, dest + n).
        unsafe {
            core::arch::asm!(
                "2:",
                "beqz {n}, 3f",
                "lbu {a}, 0({s})",
                "sb {a}, 0({d})",
                "addi {s}, {s}, 1",
                "addi {d}, {d}, 1",
                "addi {n}, {n}, -1",
                "j 2b",
                "3:",
                d = inout(reg) dest => _,
                s = inout(reg) src => _,
                n = inout(reg) n => _,
                a = out(reg) _,
                options(nostack),
            );
        }
    }

    /// # Safety
    /// Valid ranges of n bytes.
    pub(super) unsafe fn copy_backward(dest: *mut u8, src: *const u8, n: usize) {
        // SAFETY: as the caller promises; from the ends down, the loop touches exactly
        // [src, src + n) and [dest, dest + n).
        unsafe {
            core::arch::asm!(
                "2:",
                "beqz {n}, 3f",
                "addi {s}, {s}, -1",
                "addi {d}, {d}, -1",
                "lbu {a}, 0({s})",
                "sb {a}, 0({d})",
                "addi {n}, {n}, -1",
                "j 2b",
                "3:",
                d = inout(reg) dest.add(n) => _,
                s = inout(reg) src.add(n) => _,
                n = inout(reg) n => _,
                a = out(reg) _,
                options(nostack),
            );
        }
    }

    #[no_mangle]
    unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
        // SAFETY: the caller guarantees a valid range of n bytes, which is all the loop writes.
        unsafe {
            core::arch::asm!(
                "2:",
                "beqz {n}, 3f",
                "sb {v}, 0({d})",
                "addi {d}, {d}, 1",
                "addi {n}, {n}, -1",
                "j 2b",
                "3:",
                d = inout(reg) dest => _,
                n = inout(reg) n => _,
                v = in(reg) c,
                options(nostack),
            );
        }
        dest
    }
}

/// The same byte loops in ARM code, with post-indexed (forward) and pre-indexed (backward)
/// accesses: ARMv5 faults or rotates on unaligned word accesses, and the launcher copies little
/// on 32-bit ARM outside the decoders, which bring their own copies.
#[cfg(target_arch = "arm")]
mod imp {
    /// # Safety
    /// Valid ranges of n bytes; `dest` does not start inside `src`.
    pub(super) unsafe fn copy_forward(dest: *mut u8, src: *const u8, n: usize) {
        // SAFETY: as the caller promises; the loop touches exactly [src, src + n) and
        // [dest, dest + n).
        unsafe {
            core::arch::asm!(
                "2:",
                "cmp {n}, #0",
                "beq 3f",
                "ldrb {a}, [{s}], #1",
                "strb {a}, [{d}], #1",
                "sub {n}, {n}, #1",
                "b 2b",
                "3:",
                d = inout(reg) dest => _,
                s = inout(reg) src => _,
                n = inout(reg) n => _,
                a = out(reg) _,
                options(nostack),
            );
        }
    }

    /// # Safety
    /// Valid ranges of n bytes.
    pub(super) unsafe fn copy_backward(dest: *mut u8, src: *const u8, n: usize) {
        // SAFETY: as the caller promises; from the ends down, the loop touches exactly
        // [src, src + n) and [dest, dest + n).
        unsafe {
            core::arch::asm!(
                "2:",
                "cmp {n}, #0",
                "beq 3f",
                "ldrb {a}, [{s}, #-1]!",
                "strb {a}, [{d}, #-1]!",
                "sub {n}, {n}, #1",
                "b 2b",
                "3:",
                d = inout(reg) dest.add(n) => _,
                s = inout(reg) src.add(n) => _,
                n = inout(reg) n => _,
                a = out(reg) _,
                options(nostack),
            );
        }
    }

    #[no_mangle]
    unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
        // SAFETY: the caller guarantees a valid range of n bytes, which is all the loop writes.
        unsafe {
            core::arch::asm!(
                "2:",
                "cmp {n}, #0",
                "beq 3f",
                "strb {v}, [{d}], #1",
                "sub {n}, {n}, #1",
                "b 2b",
                "3:",
                d = inout(reg) dest => _,
                n = inout(reg) n => _,
                v = in(reg) c,
                options(nostack),
            );
        }
        dest
    }
}

#[cfg(target_arch = "powerpc64")]
mod imp {
    // Byte loops in assembly (so that the optimiser cannot turn them back into calls), counted
    // down in ctr. Addresses are in `reg_nonzero` registers: as a base, r0 reads as zero. The
    // launcher copies little on powerpc64 outside the decoders, which bring their own copies.

    /// # Safety
    /// Valid ranges of n bytes; `dest` does not start inside `src`.
    pub(super) unsafe fn copy_forward(dest: *mut u8, src: *const u8, n: usize) {
        if n > 0 {
            // SAFETY: as the caller promises; one byte before each range, stepping up.
            unsafe { copy_bytes::<1>(dest.wrapping_sub(1), src.wrapping_sub(1), n) }
        }
    }

    /// # Safety
    /// Valid ranges of n bytes.
    pub(super) unsafe fn copy_backward(dest: *mut u8, src: *const u8, n: usize) {
        if n > 0 {
            // SAFETY: as the caller promises; one byte past each range, stepping down.
            unsafe { copy_bytes::<-1>(dest.add(n), src.add(n), n) }
        }
    }

    /// Copies `n` bytes, `STEP` (1 or -1) apart, each from `src` and to `dest` moved by `STEP`
    /// first (`lbzu`/`stbu` update their base before the access).
    ///
    /// # Safety
    /// `n > 0`; the `n` bytes from `src + STEP` on (in steps of `STEP`) are readable, those from
    /// `dest + STEP` on writable, and the write of each byte reaches no byte still to be read.
    unsafe fn copy_bytes<const STEP: i16>(dest: *mut u8, src: *const u8, n: usize) {
        // SAFETY: as the caller promises; the loop runs n times and touches exactly those bytes.
        unsafe {
            core::arch::asm!(
                "mtctr {n}",
                "2:",
                "lbzu {a}, {step}({s})",
                "stbu {a}, {step}({d})",
                "bdnz 2b",
                step = const STEP,
                d = inout(reg_nonzero) dest => _,
                s = inout(reg_nonzero) src => _,
                n = in(reg) n,
                a = out(reg) _,
                out("ctr") _,
                options(nostack),
            );
        }
    }

    #[no_mangle]
    unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
        if n == 0 {
            return dest;
        }
        // SAFETY: the caller guarantees a valid range of n bytes, which is all the loop writes
        // (n > 0 times, pre-incremented from one byte before `dest`).
        unsafe {
            core::arch::asm!(
                "mtctr {n}",
                "2:",
                "stbu {v}, 1({d})",
                "bdnz 2b",
                d = inout(reg_nonzero) dest.wrapping_sub(1) => _,
                n = in(reg) n,
                v = in(reg) c,
                out("ctr") _,
                options(nostack),
            );
        }
        dest
    }
}

// memcpy and memmove over each architecture's two copy loops, where x86-64's string
// instructions do not serve.
#[cfg(any(
    target_arch = "aarch64",
    target_arch = "riscv64",
    target_arch = "arm",
    target_arch = "powerpc64"
))]
mod copies {
    use super::imp::{copy_backward, copy_forward};

    #[no_mangle]
    unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        // SAFETY: the caller guarantees non-overlapping valid ranges of n bytes.
        unsafe { copy_forward(dest, src, n) };
        dest
    }

    #[no_mangle]
    unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        // SAFETY: the caller guarantees valid ranges of n bytes. Copying forward is safe when
        // dest does not start inside src, backward otherwise: each block (or byte) is loaded
        // before any store can reach the source bytes still to be read.
        unsafe {
            if (dest as usize).wrapping_sub(src as usize) >= n {
                copy_forward(dest, src, n);
            } else {
                copy_backward(dest, src, n);
            }
        }
        dest
    }
}

#[no_mangle]
unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller guarantees valid ranges of n bytes.
    unsafe {
        for i in 0..n {
            let (x, y) = (a.add(i).read_volatile(), b.add(i).read_volatile());
            if x != y {
                return x as i32 - y as i32;
            }
        }
    }
    0
}

#[no_mangle]
unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: as memcmp.
    unsafe { memcmp(a, b, n) }
}

/// `CStr::from_ptr` calls it.
#[no_mangle]
unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: the caller guarantees a NUL-terminated string.
    unsafe {
        while s.add(n).read_volatile() != 0 {
            n += 1;
        }
    }
    n
}
