//! The few system calls rustix does not offer as stable API (or offers only with a feature the
//! launcher does without): exec, exit, signal dispositions, `brk`, `getrandom`, `prctl(PR_SET_MM)`
//! and the wall clock. Each wrapper is one raw `syscall`/`svc` with the
//! kernel's calling convention.

use core::sync::atomic::AtomicBool;

use rustix::io::Errno;

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const EXECVE: usize = 59;
    pub const EXIT_GROUP: usize = 231;
    pub const GETCWD: usize = 79;
    pub const EXECVEAT: usize = 322;
    pub const RT_SIGACTION: usize = 13;
    pub const BRK: usize = 12;
    pub const PRCTL: usize = 157;
    pub const GETRANDOM: usize = 318;
    pub const PERSONALITY: usize = 135;
    pub const CLOCK_GETTIME: usize = 228;
    pub const TIMER_CREATE: usize = 222;
    pub const TIMER_SETTIME: usize = 223;
    pub const TIMER_DELETE: usize = 226;
    pub const SETITIMER: usize = 38;
    pub const GETITIMER: usize = 36;
    pub const ALARM: usize = 37;
}

#[cfg(target_arch = "aarch64")]
mod nr {
    pub const EXECVE: usize = 221;
    pub const EXIT_GROUP: usize = 94;
    pub const GETCWD: usize = 17;
    pub const EXECVEAT: usize = 281;
    pub const RT_SIGACTION: usize = 134;
    pub const BRK: usize = 214;
    pub const PRCTL: usize = 167;
    pub const GETRANDOM: usize = 278;
    pub const PERSONALITY: usize = 92;
    pub const CLOCK_GETTIME: usize = 113;
    pub const TIMER_CREATE: usize = 107;
    pub const TIMER_SETTIME: usize = 110;
    pub const TIMER_DELETE: usize = 111;
    pub const SETITIMER: usize = 103;
}

// riscv64 uses the generic system call table, as arm64 does.
#[cfg(target_arch = "riscv64")]
mod nr {
    pub const EXECVE: usize = 221;
    pub const EXIT_GROUP: usize = 94;
    pub const GETCWD: usize = 17;
    pub const EXECVEAT: usize = 281;
    pub const RT_SIGACTION: usize = 134;
    pub const BRK: usize = 214;
    pub const PRCTL: usize = 167;
    pub const GETRANDOM: usize = 278;
    pub const PERSONALITY: usize = 92;
    pub const CLOCK_GETTIME: usize = 113;
    pub const TIMER_CREATE: usize = 107;
    pub const TIMER_SETTIME: usize = 110;
    pub const TIMER_DELETE: usize = 111;
    pub const SETITIMER: usize = 103;
}

// 32-bit ARM (EABI, `arch/arm/tools/syscall.tbl`). The clock and the CPU-time deadline take
// 64-bit `struct timespec`s here, as on the 64-bit machines: their `*time64` calls (Linux 5.1).
#[cfg(target_arch = "arm")]
mod nr {
    pub const EXECVE: usize = 11;
    pub const EXIT_GROUP: usize = 248;
    pub const GETCWD: usize = 183;
    pub const EXECVEAT: usize = 387;
    pub const RT_SIGACTION: usize = 174;
    pub const BRK: usize = 45;
    pub const PRCTL: usize = 172;
    pub const GETRANDOM: usize = 384;
    pub const PERSONALITY: usize = 136;
    pub const CLOCK_GETTIME: usize = 403;
    pub const TIMER_CREATE: usize = 257;
    pub const TIMER_SETTIME: usize = 409;
    pub const TIMER_DELETE: usize = 261;
    pub const SETITIMER: usize = 104;
}

// powerpc64 keeps its own table (`arch/powerpc/kernel/syscalls/syscall.tbl`, the 64-bit ABI).
#[cfg(target_arch = "powerpc64")]
mod nr {
    pub const EXECVE: usize = 11;
    pub const EXIT_GROUP: usize = 234;
    pub const GETCWD: usize = 182;
    pub const EXECVEAT: usize = 362;
    pub const RT_SIGACTION: usize = 173;
    pub const BRK: usize = 45;
    pub const PRCTL: usize = 171;
    pub const GETRANDOM: usize = 359;
    pub const PERSONALITY: usize = 136;
    pub const CLOCK_GETTIME: usize = 246;
    pub const TIMER_CREATE: usize = 240;
    pub const TIMER_SETTIME: usize = 241;
    pub const TIMER_DELETE: usize = 244;
    pub const SETITIMER: usize = 104;
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

/// # Safety
/// The arguments must be valid for system call `nr`.
#[cfg(target_arch = "riscv64")]
unsafe fn syscall5(nr: usize, a: usize, b: usize, c: usize, d: usize, e: usize) -> isize {
    let ret: isize;
    // SAFETY: the kernel returns in a0 and preserves every other register.
    unsafe {
        core::arch::asm!("ecall", in("a7") nr, inlateout("a0") a as isize => ret, in("a1") b,
            in("a2") c, in("a3") d, in("a4") e, options(nostack));
    }
    ret
}

/// # Safety
/// The arguments must be valid for system call `nr`.
#[cfg(target_arch = "arm")]
unsafe fn syscall5(nr: usize, a: usize, b: usize, c: usize, d: usize, e: usize) -> isize {
    let ret: isize;
    // SAFETY: EABI: the number in r7, arguments in r0 to r4; the kernel returns in r0 and
    // preserves every other register. r7 is free to use: the launcher is ARM code (not Thumb),
    // whose frame pointer is r11.
    unsafe {
        core::arch::asm!("svc 0", in("r7") nr, inlateout("r0") a as isize => ret, in("r1") b,
            in("r2") c, in("r3") d, in("r4") e, options(nostack));
    }
    ret
}

/// # Safety
/// The arguments must be valid for system call `nr`.
#[cfg(target_arch = "powerpc64")]
unsafe fn syscall5(nr: usize, a: usize, b: usize, c: usize, d: usize, e: usize) -> isize {
    let ret: isize;
    // SAFETY: `sc` takes the number in r0 and the arguments in r3 to r7; it returns in r3 and
    // reports a failure by setting cr0.SO with a positive errno in r3, turned into the negative
    // value the other architectures return. The kernel may change r0 and r4 to r12, cr0, ctr
    // and xer, all declared clobbered.
    unsafe {
        core::arch::asm!("sc", "bns 2f", "neg 3, 3", "2:",
            inlateout("r0") nr => _, inlateout("r3") a as isize => ret, inlateout("r4") b => _,
            inlateout("r5") c => _, inlateout("r6") d => _, inlateout("r7") e => _,
            lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _,
            lateout("r12") _, lateout("cr0") _, lateout("ctr") _, lateout("xer") _,
            options(nostack));
    }
    ret
}

pub fn exit(code: i32) -> ! {
    // SAFETY: exit_group takes a status and never returns.
    unsafe {
        syscall5(nr::EXIT_GROUP, code as usize, 0, 0, 0, 0);
    }
    // Only damaged code gets here; an illegal instruction ends the process where a panic could
    // come back (through the panic handler, which exits) for ever.
    trap()
}

/// Ends the process with SIGILL: where only damaged code can be, a signal says so where any
/// status could be taken for a report.
pub fn trap() -> ! {
    // SAFETY: the instruction raises SIGILL; the launcher installs no handler for it, and it
    // cannot be ignored or blocked when the kernel raises it for a fault.
    unsafe {
        #[cfg(target_arch = "x86_64")]
        core::arch::asm!("ud2", options(noreturn));
        #[cfg(target_arch = "aarch64")]
        core::arch::asm!("udf #0", options(noreturn));
        #[cfg(target_arch = "riscv64")]
        core::arch::asm!("unimp", options(noreturn));
        // A permanently undefined encoding on every ARM architecture version (`udf #0` from
        // ARMv7's assembler syntax on; spelt out for the ARMv5 assembler).
        #[cfg(target_arch = "arm")]
        core::arch::asm!(".inst 0xe7f000f0", options(noreturn));
        // The all-zero word is no instruction (`trap` would raise SIGTRAP instead).
        #[cfg(target_arch = "powerpc64")]
        core::arch::asm!(".long 0", options(noreturn));
    }
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

fn result(ret: isize) -> Result<usize, Errno> {
    if (-4095..0).contains(&ret) {
        Err(Errno::from_raw_os_error(-ret as i32))
    } else {
        Ok(ret as usize)
    }
}

/// The kernel's `struct sigaction` for `rt_sigaction` (the same layout on x86-64, arm64 and
/// 32-bit ARM; riscv64's has no `restorer`, so there the kernel reads the mask from `restorer`,
/// 0 as well, and writes the old mask there). The 64-bit mask is two words so that it follows
/// `restorer` without padding on 32-bit ARM too, where a `u64` would be aligned to 8.
/// powerpc64;
/// riscv64's has no `restorer`, so there the kernel reads the mask from `restorer`, 0 as well,
/// and writes the old mask there).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: usize,
    restorer: usize,
    mask: [u32; 2],
}

const SIG_DFL: usize = 0;
const SIG_IGN: usize = 1;

/// Sets `signal` to be ignored (`ignore`) or to its default action; returns whether it was
/// ignored before. The launcher installs no handler, so after an exec only those two exist.
pub fn set_ignored(signal: usize, ignore: bool) -> Result<bool, Errno> {
    let new = KernelSigaction {
        handler: if ignore { SIG_IGN } else { SIG_DFL },
        flags: 0,
        restorer: 0,
        mask: [0; 2],
    };
    let mut old = KernelSigaction {
        handler: 0,
        flags: 0,
        restorer: 0,
        mask: [0; 2],
    };
    // SAFETY: both structs are the kernel's layout, valid for the call; the mask is 8 bytes.
    let ret = unsafe {
        syscall5(
            nr::RT_SIGACTION,
            signal,
            &new as *const _ as usize,
            &mut old as *mut _ as usize,
            8,
            0,
        )
    };
    result(ret).map(|_| old.handler == SIG_IGN)
}

/// The current end of the heap (`brk(0)` changes nothing and answers it).
pub fn current_brk() -> usize {
    // SAFETY: brk with 0 only reports.
    unsafe { syscall5(nr::BRK, 0, 0, 0, 0, 0) as usize }
}

/// Writes the working directory's path into `buf`, as a C string; returns its length without the
/// terminating NUL. ENOENT if the directory was removed; a path that does not start with `/`
/// (outside this process's root) is the caller's to refuse.
pub fn getcwd(buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is writable for its length.
    let ret = unsafe { syscall5(nr::GETCWD, buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0) };
    // The kernel counts the NUL.
    result(ret)?.checked_sub(1).ok_or(Errno::INVAL)
}

/// Fills `buf` from the kernel's random source without blocking.
pub fn getrandom(buf: &mut [u8]) -> Result<(), Errno> {
    const GRND_NONBLOCK: usize = 1;
    // SAFETY: `buf` is writable for its length.
    let ret = unsafe {
        syscall5(
            nr::GETRANDOM,
            buf.as_mut_ptr() as usize,
            buf.len(),
            GRND_NONBLOCK,
            0,
            0,
        )
    };
    match result(ret)? {
        n if n == buf.len() => Ok(()),
        _ => Err(Errno::AGAIN),
    }
}

/// `prctl(option, a, b, c, d)`.
///
/// # Safety
/// The arguments must be valid for `option` (pointers to memory of the size it reads).
pub unsafe fn prctl(option: usize, a: usize, b: usize, c: usize, d: usize) -> Result<usize, Errno> {
    // SAFETY: as the caller promises.
    result(unsafe { syscall5(nr::PRCTL, option, a, b, c, d) })
}

/// The process's execution domain and flags (`personality(0xffffffff)` only reports them).
pub fn personality() -> usize {
    // SAFETY: this query changes nothing.
    unsafe { syscall5(nr::PERSONALITY, 0xffff_ffff, 0, 0, 0, 0) as usize }
}

/// The wall clock (`CLOCK_REALTIME`), in whole seconds since the epoch: the clock file times are
/// kept in. 0 if the kernel does not answer.
pub fn now() -> i64 {
    const CLOCK_REALTIME: usize = 0;
    let mut ts = [0i64; 2];
    // SAFETY: `ts` has the layout of the kernel's 64-bit `struct timespec`, writable.
    let ret = unsafe {
        syscall5(
            nr::CLOCK_GETTIME,
            CLOCK_REALTIME,
            ts.as_mut_ptr() as usize,
            0,
            0,
            0,
        )
    };
    if ret == 0 {
        ts[0]
    } else {
        0
    }
}

/// `struct itimerval`: the interval's seconds and microseconds, then the value's.
pub type ItimerVal = [usize; 4];

const ITIMER_REAL: usize = 0;

/// The real-time timer's delay: far beyond the microseconds the launcher's self-check takes, even
/// on a loaded machine or under an emulator.
pub const ALARM_SECONDS: usize = 10;

/// Sets the real-time interval timer to raise SIGALRM (whose default action ends the process)
/// in [`ALARM_SECONDS`], unless `armed` says it was set already: a loop back into this code must
/// not push the deadline on. Returns the previous setting, to be put back with
/// [`set_real_timer`] (all zeros where the kernel refuses), or `None` if `armed` was set.
///
/// On x86-64 it is one block of assembly, the flag's exchange then `getitimer` and `alarm`,
/// written so that no single flipped bit in it makes a jump backwards (which could re-run the
/// `alarm` for ever): no `xor` (one bit from a conditional jump) and no `setitimer` (whose
/// number is one bit from `pause`'s). Elsewhere, the flag then one `setitimer`.
pub fn alarm_once(armed: &AtomicBool) -> Option<ItimerVal> {
    let mut old: ItimerVal = [0; 4];
    #[cfg(target_arch = "x86_64")]
    {
        let before: usize;
        // SAFETY: `armed` is a valid byte; `old` is a `struct itimerval` the kernel may fill;
        // the system calls clobber rax, rcx and r11, and rdi is set here.
        unsafe {
            core::arch::asm!(
                "mov eax, 1",
                "xchg al, byte ptr [{flag}]",
                "movzx edx, al",
                "test edx, edx",
                "jnz 2f",
                "mov eax, {getitimer}",
                "mov edi, 0",
                "syscall",
                "mov eax, {alarm}",
                "mov edi, {seconds}",
                "syscall",
                "2:",
                flag = in(reg) armed.as_ptr(),
                getitimer = const nr::GETITIMER,
                alarm = const nr::ALARM,
                seconds = const ALARM_SECONDS,
                in("rsi") old.as_mut_ptr(),
                out("rdx") before,
                out("rax") _, out("rdi") _, out("rcx") _, out("r11") _,
                options(nostack),
            );
        }
        (before == 0).then_some(old)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        if armed.swap(true, core::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let new: ItimerVal = [0, 0, ALARM_SECONDS, 0];
        // SAFETY: both pointers are to `struct itimerval`s, valid for the call.
        let ret = unsafe {
            syscall5(
                nr::SETITIMER,
                ITIMER_REAL,
                new.as_ptr() as usize,
                old.as_mut_ptr() as usize,
                0,
                0,
            )
        };
        Some(if ret < 0 { [0; 4] } else { old })
    }
}

/// `setitimer(ITIMER_REAL, value)`: puts back what [`alarm`] returned.
pub fn set_real_timer(value: &ItimerVal) {
    // SAFETY: `value` is a `struct itimerval`; no old value is asked for.
    unsafe {
        syscall5(nr::SETITIMER, ITIMER_REAL, value.as_ptr() as usize, 0, 0, 0);
    }
}

/// A POSIX timer that sends SIGKILL once the process has used `seconds` of CPU; its id, or
/// `None` if the kernel (or a sandbox) refuses one.
pub fn cpu_deadline(seconds: u64) -> Option<i32> {
    const CLOCK_PROCESS_CPUTIME_ID: usize = 2;
    const SIGEV_SIGNAL: i32 = 0;
    const SIGKILL: i32 = 9;
    /// The kernel's `struct sigevent`: value, signal, notify, then a union padding it to 64 bytes.
    #[repr(C)]
    struct SigEvent {
        value: usize,
        signo: i32,
        notify: i32,
        pad: [u64; 6],
    }
    let event = SigEvent {
        value: 0,
        signo: SIGKILL,
        notify: SIGEV_SIGNAL,
        pad: [0; 6],
    };
    let mut timer: i32 = 0;
    // SAFETY: `event` and `timer` are valid for the call, in the kernel's layouts.
    let created = unsafe {
        syscall5(
            nr::TIMER_CREATE,
            CLOCK_PROCESS_CPUTIME_ID,
            &event as *const SigEvent as usize,
            &mut timer as *mut i32 as usize,
            0,
            0,
        )
    };
    result(created).ok()?;
    // struct itimerspec: interval (0: once), then the first expiry.
    let spec: [u64; 4] = [0, 0, seconds, 0];
    // SAFETY: `spec` is a valid itimerspec; no old value is asked for.
    let set = unsafe {
        syscall5(
            nr::TIMER_SETTIME,
            timer as usize,
            0,
            spec.as_ptr() as usize,
            0,
            0,
        )
    };
    if result(set).is_err() {
        timer_delete(timer);
        return None;
    }
    Some(timer)
}

pub fn timer_delete(timer: i32) {
    // SAFETY: deleting a timer this process created.
    unsafe {
        syscall5(nr::TIMER_DELETE, timer as usize, 0, 0, 0, 0);
    }
}
