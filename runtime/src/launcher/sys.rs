//! The few system calls rustix does not offer as stable API: exec and exit. Each wrapper is one
//! raw `syscall`/`svc` with the kernel's calling convention.

use rustix::io::Errno;

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const EXECVE: usize = 59;
    pub const EXIT_GROUP: usize = 231;
    pub const EXECVEAT: usize = 322;
}

#[cfg(target_arch = "aarch64")]
mod nr {
    pub const EXECVE: usize = 221;
    pub const EXIT_GROUP: usize = 94;
    pub const EXECVEAT: usize = 281;
}

pub const AT_EMPTY_PATH: usize = 0x1000;

/// # Safety
/// The arguments must be valid for system call `nr`.
#[cfg(target_arch = "x86_64")]
unsafe fn syscall5(nr: usize, a: usize, b: usize, c: usize, d: usize, e: usize) -> isize {
    let ret: isize;
    // SAFETY: the kernel clobbers only rax, rcx and r11 and reads the registers named here.
    unsafe {
        core::arch::asm!("syscall", inlateout("rax") nr as isize => ret, in("rdi") a, in("rsi") b,
            in("rdx") c, in("r10") d, in("r8") e, lateout("rcx") _, lateout("r11") _,
            options(nostack));
    }
    ret
}

/// # Safety
/// The arguments must be valid for system call `nr`.
#[cfg(target_arch = "aarch64")]
unsafe fn syscall5(nr: usize, a: usize, b: usize, c: usize, d: usize, e: usize) -> isize {
    let ret: isize;
    // SAFETY: the kernel returns in x0 and preserves every other register.
    unsafe {
        core::arch::asm!("svc 0", in("x8") nr, inlateout("x0") a as isize => ret, in("x1") b,
            in("x2") c, in("x3") d, in("x4") e, options(nostack));
    }
    ret
}

pub fn exit(code: i32) -> ! {
    // SAFETY: exit_group takes a status and never returns.
    unsafe {
        syscall5(nr::EXIT_GROUP, code as usize, 0, 0, 0, 0);
    }
    unreachable!()
}

/// `execveat(fd, path, argv, envp, flags)`; returns only on failure.
///
/// # Safety
/// `path` is NUL-terminated; `argv` and `envp` are NULL-terminated arrays of NUL-terminated
/// strings (the launcher passes the kernel's own).
pub unsafe fn execveat(
    fd: i32,
    path: *const u8,
    argv: *const *const u8,
    envp: *const *const u8,
    flags: usize,
) -> Errno {
    // SAFETY: as the caller promises.
    let ret = unsafe {
        syscall5(
            nr::EXECVEAT,
            fd as usize,
            path as usize,
            argv as usize,
            envp as usize,
            flags,
        )
    };
    Errno::from_raw_os_error(-ret as i32)
}

/// `execve(path, argv, envp)`; returns only on failure.
///
/// # Safety
/// As [`execveat`].
pub unsafe fn execve(path: *const u8, argv: *const *const u8, envp: *const *const u8) -> Errno {
    // SAFETY: as the caller promises.
    let ret = unsafe {
        syscall5(
            nr::EXECVE,
            path as usize,
            argv as usize,
            envp as usize,
            0,
            0,
        )
    };
    Errno::from_raw_os_error(-ret as i32)
}
