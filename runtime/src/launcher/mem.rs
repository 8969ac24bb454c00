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
    // Byte loops through volatile accesses, which the optimiser may not turn back into calls.
    // The launcher copies bulk data with system calls, so these only serve small structures.

    #[no_mangle]
    unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        // SAFETY: the caller guarantees non-overlapping valid ranges of n bytes.
        unsafe { memmove(dest, src, n) }
    }

    #[no_mangle]
    unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        // SAFETY: the caller guarantees valid ranges of n bytes; direction handles overlap.
        unsafe {
            if (dest as usize).wrapping_sub(src as usize) >= n {
                for i in 0..n {
                    dest.add(i).write_volatile(src.add(i).read_volatile());
                }
            } else {
                for i in (0..n).rev() {
                    dest.add(i).write_volatile(src.add(i).read_volatile());
                }
            }
        }
        dest
    }

    #[no_mangle]
    unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
        // SAFETY: the caller guarantees a valid range of n bytes.
        unsafe {
            for i in 0..n {
                dest.add(i).write_volatile(c as u8);
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
