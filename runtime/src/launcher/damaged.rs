//! The report of a launcher that failed its own check. The damage may lie anywhere in the
//! launcher's bytes, its usual report code and message text included, so this one report takes
//! nothing from them: its line is kept three times, each copy under a different mask (so that
//! the linker cannot fold them into one), and rebuilt byte by byte by majority, which one damaged
//! bit cannot sway. The voted line is checked against its hash, computed at build time, by the
//! very instructions that then write it from the same registers, so that damage in the vote, in
//! the hash, or in what is passed to the write ends in an illegal instruction: a signal, never a
//! silent exit or a line that does not say `mgo:`. So does a result no write gives (damaged code
//! made some other call).

use mgo_format::LAUNCHER_CORRUPT;
use mgo_runtime::exit::BAD_BUNDLE;
use rustix::fd::BorrowedFd;
use rustix::io::Errno;

use crate::sys;

const PREFIX: &str = "mgo: this bundle is damaged: ";
const LEN: usize = PREFIX.len() + LAUNCHER_CORRUPT.len() + 1;
const MASKS: [u8; 3] = [0x00, 0x5a, 0xa5];

/// The line `mgo: this bundle is damaged: ...\n`, each byte XORed with `mask`.
const fn masked(mask: u8) -> [u8; LEN] {
    let (prefix, text) = (PREFIX.as_bytes(), LAUNCHER_CORRUPT.as_bytes());
    let mut out = [b'\n' ^ mask; LEN];
    let mut i = 0;
    while i < prefix.len() {
        out[i] = prefix[i] ^ mask;
        i += 1;
    }
    while i < prefix.len() + text.len() {
        out[i] = text[i - prefix.len()] ^ mask;
        i += 1;
    }
    out
}

static COPIES: [[u8; LEN]; 3] = [masked(MASKS[0]), masked(MASKS[1]), masked(MASKS[2])];

const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a of the line, as [`write_if_intact`] computes it.
const LINE_HASH: u64 = {
    let line = masked(0);
    let mut hash = FNV_BASIS;
    let mut i = 0;
    while i < LEN {
        hash = (hash ^ line[i] as u64).wrapping_mul(FNV_PRIME);
        i += 1;
    }
    hash
};

/// Says the launcher is damaged and exits with status 122.
#[inline(never)]
pub fn launcher() -> ! {
    let mut line = [0u8; LEN];
    for (i, byte) in line.iter_mut().enumerate() {
        // SAFETY: reads of bytes of a static. Volatile, so that the compiler reads all three
        // copies at run time instead of folding the vote into one constant (one copy again).
        let [a, b, c] =
            [0, 1, 2].map(|k| unsafe { core::ptr::read_volatile(&COPIES[k][i]) } ^ MASKS[k]);
        *byte = (a & b) | (a & c) | (b & c);
    }
    let written = write_if_intact(&line);
    // SAFETY: descriptor 2 is stderr or invalid; only its flags are asked for.
    let stderr = unsafe { BorrowedFd::borrow_raw(2) };
    match written {
        LEN_ISIZE => sys::exit(BAD_BUNDLE),
        // No stderr to report to: nothing more can be said.
        EBADF if rustix::io::fcntl_getfd(stderr).is_err() => sys::exit(BAD_BUNDLE),
        // A stderr that refuses: a full non-blocking pipe, a file at its size limit or on a full
        // disk, a sealed memfd.
        e if REFUSALS.iter().any(|r| -(r.raw_os_error() as isize) == e) => sys::exit(BAD_BUNDLE),
        // Any other error (EBADF on a descriptor that exists, EINVAL, ENOSYS), or a count no
        // write of these bytes returns: the call made was not this write.
        _ => sys::trap(),
    }
}

const LEN_ISIZE: isize = LEN as isize;
const EBADF: isize = -(Errno::BADF.raw_os_error() as isize);
/// The errors a write of a short line to an open descriptor can meet.
const REFUSALS: [Errno; 8] = [
    Errno::AGAIN,
    Errno::PIPE,
    Errno::FBIG,
    Errno::NOSPC,
    Errno::DQUOT,
    Errno::IO,
    Errno::PERM,
    Errno::INTR,
];

/// `write(2, line)` if the line's FNV-1a hash is [`LINE_HASH`], else SIGILL; returns what the
/// system call returned. Hash and write use the same pointer and length registers.
#[cfg(target_arch = "x86_64")]
fn write_if_intact(line: &[u8; LEN]) -> isize {
    let ret: isize;
    // SAFETY: reads `LEN` bytes of `line`, then makes the write system call (which clobbers
    // rcx and r11) on them, or executes ud2.
    unsafe {
        core::arch::asm!(
            "mov r9, rsi",
            "lea r10, [rsi + rdx]",
            "2:",
            "cmp r9, r10",
            "je 3f",
            "movzx eax, byte ptr [r9]",
            "xor {hash}, rax",
            "imul {hash}, {prime}",
            "inc r9",
            "jmp 2b",
            "3:",
            "cmp {hash}, {expected}",
            "jne 4f",
            "mov eax, 1",
            "mov edi, 2",
            "syscall",
            "jmp 5f",
            "4:",
            "ud2",
            "5:",
            hash = inout(reg) FNV_BASIS => _,
            prime = in(reg) FNV_PRIME,
            expected = in(reg) LINE_HASH,
            in("rsi") line.as_ptr(),
            in("rdx") LEN,
            out("rax") ret,
            out("rdi") _, out("r9") _, out("r10") _, out("rcx") _, out("r11") _,
            options(nostack),
        );
    }
    ret
}

#[cfg(target_arch = "aarch64")]
fn write_if_intact(line: &[u8; LEN]) -> isize {
    let ret: isize;
    // SAFETY: reads `LEN` bytes of `line`, then makes the write system call on them, or
    // executes udf.
    unsafe {
        core::arch::asm!(
            "mov x11, x1",
            "add x9, x1, x2",
            "2:",
            "cmp x11, x9",
            "b.eq 3f",
            "ldrb w10, [x11], #1",
            "eor {hash}, {hash}, x10",
            "mul {hash}, {hash}, {prime}",
            "b 2b",
            "3:",
            "cmp {hash}, {expected}",
            "b.ne 4f",
            "mov x8, #64",
            "mov x0, #2",
            "svc #0",
            "b 5f",
            "4:",
            "udf #0",
            "5:",
            hash = inout(reg) FNV_BASIS => _,
            prime = in(reg) FNV_PRIME,
            expected = in(reg) LINE_HASH,
            in("x1") line.as_ptr(),
            in("x2") LEN,
            out("x0") ret,
            out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            options(nostack),
        );
    }
    ret
}

/// Architectures without their own version: the same checks, though the compiler may pass the
/// write other registers than it hashed.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn write_if_intact(line: &[u8; LEN]) -> isize {
    let hash = line
        .iter()
        .fold(FNV_BASIS, |h, &b| (h ^ b as u64).wrapping_mul(FNV_PRIME));
    if hash != LINE_HASH {
        sys::trap();
    }
    // SAFETY: descriptor 2 is stderr or invalid; a failed write is reported as its errno.
    let stderr = unsafe { BorrowedFd::borrow_raw(2) };
    match rustix::io::write(stderr, line) {
        Ok(n) => n as isize,
        Err(e) => -(e.raw_os_error() as isize),
    }
}
