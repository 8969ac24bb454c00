//! The report of a launcher that failed its own check. The damage may lie anywhere in the
//! launcher's bytes, its usual report code and message text included, so this one report takes
//! nothing from them: its line is kept three times, each copy under a different mask (so that
//! the linker cannot fold them into one), and rebuilt byte by byte by majority, which one damaged
//! bit cannot sway. One block of instructions then checks the voted line against its hash
//! (computed at build time), writes it from the same registers and exits with 122, its status an
//! immediate operand and the exit's call number computed from the write's result, so that only a
//! write of the whole line is followed by an exit; anything else executes an illegal
//! instruction. So damage in the vote, in the hash, in what is passed to the write, or in the
//! call's number ends in a signal, never in a silent exit or a line that does not say `mgo:`.
//! Illegal instructions follow the block, so that a jump it makes forward by a damaged
//! displacement lands on one, not on code that exits; a jump backwards loops until the
//! watchdog, still armed, ends the process. A launcher that finds itself damaged with a stderr
//! that cannot take the line (closed, a full pipe) ends by SIGILL too: it has no way left to
//! say so.

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
use crate::sys;
use mgo_format::LAUNCHER_CORRUPT;
use mgo_runtime::exit::BAD_BUNDLE;

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
    write_and_exit(&line)
}

#[cfg(target_arch = "x86_64")]
fn write_and_exit(line: &[u8; LEN]) -> ! {
    // SAFETY: reads `LEN` bytes of `line`, writes them to descriptor 2 and exits; it never
    // returns (the trap after the exit ends the process if exit_group did).
    unsafe {
        core::arch::asm!(
            "mov r9, rsi",
            "lea r10, [rsi + rdx]",
            "2:",
            "movzx eax, byte ptr [r9]",
            "xor r8, rax",
            "imul r8, rcx",
            "inc r9",
            "cmp r9, r10",
            "jne 2b",
            "cmp r8, r11",
            "jne 4f",
            "mov eax, 1",
            "mov edi, 2",
            "syscall",
            // exit_group(122), its number the write's result plus 231 - LEN: any result but
            // LEN makes some other call, which returns to the traps below.
            "mov edi, {status}",
            "lea eax, [rax + {exit_less_len}]",
            "syscall",
            "4:",
            ".rept 64",
            "ud2",
            ".endr",
            status = const BAD_BUNDLE,
            exit_less_len = const 231 - LEN,
            // Fixed registers: the block changes them, and uses rax, rdi, r9 and r10 besides.
            in("r8") FNV_BASIS,
            in("rcx") FNV_PRIME,
            in("r11") LINE_HASH,
            in("rsi") line.as_ptr(),
            in("rdx") LEN,
            options(noreturn, nostack),
        );
    }
}

#[cfg(target_arch = "aarch64")]
fn write_and_exit(line: &[u8; LEN]) -> ! {
    // SAFETY: reads `LEN` bytes of `line`, writes them to descriptor 2 and exits; it never
    // returns (the trap after the exit ends the process if exit_group did).
    unsafe {
        core::arch::asm!(
            "mov x11, x1",
            "add x9, x1, x2",
            "2:",
            "ldrb w10, [x11], #1",
            "eor x3, x3, x10",
            "mul x3, x3, x4",
            "cmp x11, x9",
            "b.ne 2b",
            "cmp x3, x5",
            "b.ne 4f",
            "mov x8, #64",
            "mov x0, #2",
            "svc #0",
            // exit_group(122), its number the write's result less LEN - 94: any result but
            // LEN makes some other call, which returns to the traps below.
            "sub x8, x0, #{len_less_exit}",
            "mov x0, #{status}",
            "svc #0",
            "4:",
            ".rept 32",
            "udf #0",
            ".endr",
            status = const BAD_BUNDLE,
            len_less_exit = const LEN - 94,
            // Fixed registers: the block changes them, and uses x0, x8 and x9..x11 besides.
            in("x3") FNV_BASIS,
            in("x4") FNV_PRIME,
            in("x5") LINE_HASH,
            in("x1") line.as_ptr(),
            in("x2") LEN,
            options(noreturn, nostack),
        );
    }
}

/// Architectures without their own version: the same steps, though the compiler may pass the
/// write other registers than it hashed, and load the status from one.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn write_and_exit(line: &[u8; LEN]) -> ! {
    let hash = line
        .iter()
        .fold(FNV_BASIS, |h, &b| (h ^ b as u64).wrapping_mul(FNV_PRIME));
    if hash != LINE_HASH {
        sys::trap();
    }
    // SAFETY: descriptor 2 is stderr or invalid; anything but the whole line written traps.
    let stderr = unsafe { rustix::fd::BorrowedFd::borrow_raw(2) };
    if rustix::io::write(stderr, line) != Ok(LEN) {
        sys::trap();
    }
    sys::exit(BAD_BUNDLE)
}
