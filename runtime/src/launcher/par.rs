//! Decoding independent frames on several cores at once, without libc: helper threads made with
//! a raw `clone`, sharing the launcher's memory, each with its own stack and decoder workspace.
//!
//! The packer splits a large variant into a few frames that decode independently into disjoint
//! parts of the output, so decoding scales with the cores the launcher may use. If a thread
//! cannot be created (seccomp, RLIMIT_NPROC), the others, and in the end the launcher's own
//! thread alone, take its share: threads only ever make the launch faster, never possible.

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use rustix::io::Errno;
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};

/// More threads than this gain nothing for the frame counts the packer writes.
pub const MAX_THREADS: usize = 8;
/// Helpers run only the decoders, whose stack use is a few KiB; the guard page below catches
/// the impossible.
const STACK: usize = 128 * 1024;
const PAGE: usize = 4096;

/// Per-thread memory, one mapping for all: for each thread a guard page, a stack (unused by the
/// launcher's own thread) and a decoder workspace.
pub struct Slots {
    base: *mut u8,
    len: usize,
    count: usize,
    stride: usize,
}

impl Slots {
    /// Room for `count` threads (1..=MAX_THREADS) with `work` bytes of workspace each.
    pub fn new(count: usize, work: usize) -> Result<Slots, Errno> {
        let count = count.clamp(1, MAX_THREADS);
        let work = work.div_ceil(PAGE) * PAGE;
        let stride = PAGE + STACK + work;
        let len = stride * count;
        // SAFETY: a fresh anonymous mapping that nothing else refers to; Drop unmaps it.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                core::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )?
        } as *mut u8;
        let slots = Slots {
            base,
            len,
            count,
            stride,
        };
        for i in 1..count {
            // SAFETY: the guard page lies inside the mapping made above.
            unsafe {
                rustix::mm::mprotect(slots.slot(i).cast(), PAGE, MprotectFlags::empty())?;
            }
        }
        Ok(slots)
    }

    pub fn count(&self) -> usize {
        self.count
    }

    fn slot(&self, i: usize) -> *mut u8 {
        // In bounds: i < count, each slot is `stride` bytes.
        self.base.wrapping_add(i * self.stride)
    }

    /// The top of thread `i`'s stack (16-byte aligned).
    fn stack_top(&self, i: usize) -> *mut u8 {
        self.slot(i).wrapping_add(PAGE + STACK)
    }

    /// Thread `i`'s decoder workspace: page-aligned, zeroed, exclusively that thread's.
    pub fn workspace(&self, i: usize) -> *mut u8 {
        self.slot(i).wrapping_add(PAGE + STACK)
    }
}

// SAFETY: threads share a `Slots` only to find their own slot's memory; each slot is used by the
// one thread `run` gives it.
unsafe impl Sync for Slots {}

impl Drop for Slots {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`; every thread that used it has exited (`run` joins
        // them before returning).
        unsafe {
            let _ = rustix::mm::munmap(self.base.cast(), self.len);
        }
    }
}

/// How many threads to use for `jobs` independent jobs: no more than the CPUs this process may
/// run on (its affinity mask, which also reflects `taskset` and cpusets).
pub fn threads_for(jobs: usize) -> usize {
    if jobs <= 1 {
        return 1;
    }
    let cpus = rustix::thread::sched_getaffinity(None).map_or(1, |set| set.count() as usize);
    jobs.min(cpus).clamp(1, MAX_THREADS)
}

/// Work shared by all threads of one [`run`].
struct Shared<'a> {
    next: AtomicUsize,
    jobs: usize,
    failed: AtomicBool,
    job: &'a (dyn Fn(usize, usize) -> bool + Sync),
}

impl Shared<'_> {
    /// Takes jobs until none is left or one has failed.
    fn work(&self, slot: usize) {
        while !self.failed.load(Ordering::Relaxed) {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.jobs {
                break;
            }
            if !(self.job)(slot, i) {
                self.failed.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// What a helper thread gets.
struct Helper<'a> {
    shared: &'a Shared<'a>,
    slot: usize,
    /// Nonzero while the thread lives: the kernel zeroes it and wakes its futex when the thread
    /// has exited (`CLONE_CHILD_CLEARTID`), after which its stack is free.
    alive: AtomicU32,
    /// Set, with release ordering, when the helper has finished its last job.
    done: AtomicBool,
}

/// Runs `job(slot, i)` for every `i` in `0..jobs`, on up to `slots.count()` threads (the
/// caller's included), `slot` naming the running thread's workspace. Returns false if any job
/// returned false (the remaining jobs are then skipped).
pub fn run(slots: &Slots, jobs: usize, job: &(dyn Fn(usize, usize) -> bool + Sync)) -> bool {
    let shared = Shared {
        next: AtomicUsize::new(0),
        jobs,
        failed: AtomicBool::new(false),
        job,
    };
    let helpers = slots.count().min(jobs).max(1) - 1;
    let mut contexts: [Option<Helper<'_>>; MAX_THREADS] = Default::default();
    for (i, context) in contexts.iter_mut().enumerate().take(helpers) {
        let slot = i + 1;
        let helper = context.insert(Helper {
            shared: &shared,
            slot,
            alive: AtomicU32::new(1),
            done: AtomicBool::new(false),
        });
        if !spawn(slots.stack_top(slot), helper) {
            *context = None;
        }
    }
    shared.work(0);
    for helper in contexts.iter().flatten() {
        join(helper);
    }
    !shared.failed.load(Ordering::Acquire)
}

/// Waits until the helper has exited.
fn join(helper: &Helper<'_>) {
    while helper.alive.load(Ordering::Acquire) != 0 {
        // The kernel's wake at thread exit is a shared-futex wake, so wait without
        // FUTEX_PRIVATE_FLAG. EAGAIN (already cleared) and EINTR just loop.
        let _ = rustix::thread::futex::wait(
            &helper.alive,
            rustix::thread::futex::Flags::empty(),
            1,
            None,
        );
    }
    // Pairs with the helper's release store: its writes to the output are visible from here.
    let _ = helper.done.load(Ordering::Acquire);
}

extern "C" fn helper_main(arg: *mut c_void) {
    // SAFETY: `arg` is the `Helper` that `run` keeps alive until `join` has seen this thread exit.
    let helper = unsafe { &*(arg as *const Helper<'_>) };
    helper.shared.work(helper.slot);
    helper.done.store(true, Ordering::Release);
}

#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64",
    target_arch = "arm",
    target_arch = "powerpc64"
))]
fn spawn(stack_top: *mut u8, helper: &Helper<'_>) -> bool {
    const CLONE_VM: usize = 0x100;
    const CLONE_FS: usize = 0x200;
    const CLONE_FILES: usize = 0x400;
    const CLONE_SIGHAND: usize = 0x800;
    const CLONE_THREAD: usize = 0x10000;
    const CLONE_SYSVSEM: usize = 0x40000;
    const CLONE_CHILD_CLEARTID: usize = 0x200000;
    let flags = CLONE_VM
        | CLONE_FS
        | CLONE_FILES
        | CLONE_SIGHAND
        | CLONE_THREAD
        | CLONE_SYSVSEM
        | CLONE_CHILD_CLEARTID;
    // SAFETY: the stack is this slot's own, unused, mapped and 16-byte aligned; `helper` (which
    // holds the futex word) outlives the thread because `run` joins it; `helper_main` never
    // unwinds (panics abort the process).
    let ret = unsafe {
        mgo_clone(
            flags,
            stack_top,
            helper.alive.as_ptr(),
            helper_main,
            helper as *const Helper<'_> as *mut c_void,
        )
    };
    ret > 0
}

#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64",
    target_arch = "arm",
    target_arch = "powerpc64"
)))]
fn spawn(_stack_top: *mut u8, _helper: &Helper<'_>) -> bool {
    false
}

#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64",
    target_arch = "arm",
    target_arch = "powerpc64"
))]
extern "C" {
    /// `clone(flags, stack, NULL, child_tid, 0)`; the child calls `func(arg)` on the new stack
    /// and exits its thread. Returns the child's tid, or a negative errno, in the parent.
    fn mgo_clone(
        flags: usize,
        stack_top: *mut u8,
        child_tid: *mut u32,
        func: extern "C" fn(*mut c_void),
        arg: *mut c_void,
    ) -> isize;
}

// The child must not return into the parent's Rust frames (it has none on its stack), so the
// whole child side is written here: take func and arg from the new stack, call, `exit` (the
// thread only, not `exit_group`).
#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".pushsection .text.mgo_clone,\"ax\",@progbits",
    ".globl mgo_clone",
    ".hidden mgo_clone",
    ".type mgo_clone,@function",
    "mgo_clone:",
    "and rsi, -16",
    "sub rsi, 16",
    "mov [rsi], rcx",
    "mov [rsi + 8], r8",
    "mov r10, rdx",
    "xor edx, edx",
    "xor r8d, r8d",
    "mov eax, 56",
    "syscall",
    "test rax, rax",
    "jnz 2f",
    "xor ebp, ebp",
    "pop rax",
    "pop rdi",
    "call rax",
    "mov eax, 60",
    "xor edi, edi",
    "syscall",
    "ud2",
    "2:",
    "ret",
    ".size mgo_clone, . - mgo_clone",
    ".popsection",
);

// The same on arm64: clone is system call 220 with (flags, stack, parent_tid, tls, child_tid);
// the child starts on the new stack with x0 = 0, and `exit` is 93.
#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".pushsection .text.mgo_clone,\"ax\",@progbits",
    ".globl mgo_clone",
    ".hidden mgo_clone",
    ".type mgo_clone,@function",
    "mgo_clone:",
    "and x1, x1, #0xfffffffffffffff0",
    "sub x1, x1, #16",
    "stp x3, x4, [x1]",
    "mov x4, x2",
    "mov x2, xzr",
    "mov x3, xzr",
    "mov x8, #220",
    "svc #0",
    "cbnz x0, 2f",
    "mov x29, xzr",
    "mov x30, xzr",
    "ldp x3, x0, [sp], #16",
    "blr x3",
    "mov x0, xzr",
    "mov x8, #93",
    "svc #0",
    "brk #0",
    "2:",
    "ret",
    ".size mgo_clone, . - mgo_clone",
    ".popsection",
);

// The same on riscv64: clone is system call 220 with arm64's argument order; the child starts
// on the new stack with a0 = 0, and `exit` is 93.
#[cfg(target_arch = "riscv64")]
core::arch::global_asm!(
    ".pushsection .text.mgo_clone,\"ax\",@progbits",
    ".globl mgo_clone",
    ".hidden mgo_clone",
    ".type mgo_clone,@function",
    "mgo_clone:",
    "andi a1, a1, -16",
    "addi a1, a1, -16",
    "sd a3, 0(a1)",
    "sd a4, 8(a1)",
    "mv a4, a2",
    "li a2, 0",
    "li a3, 0",
    "li a7, 220",
    "ecall",
    "bnez a0, 2f",
    "li fp, 0",
    "li ra, 0",
    "ld a5, 0(sp)",
    "ld a0, 8(sp)",
    "addi sp, sp, 16",
    "jalr a5",
    "li a0, 0",
    "li a7, 93",
    "ecall",
    "unimp",
    "2:",
    "ret",
    ".size mgo_clone, . - mgo_clone",
    ".popsection",
);

// 32-bit ARM (EABI): clone is system call 120 with (flags, stack, parent_tid, tls, child_tid),
// the fifth argument of mgo_clone comes on the stack (AAPCS), the child starts on the new stack
// with r0 = 0, and `exit` is 1. r4 and r7 are callee-saved, hence pushed around the call.
#[cfg(target_arch = "arm")]
core::arch::global_asm!(
    ".pushsection .text.mgo_clone,\"ax\",%progbits",
    ".globl mgo_clone",
    ".hidden mgo_clone",
    ".type mgo_clone,%function",
    "mgo_clone:",
    "push {{r4, r7}}",
    "ldr r12, [sp, #8]",
    "bic r1, r1, #15",
    "sub r1, r1, #16",
    "str r3, [r1]",
    "str r12, [r1, #4]",
    "mov r4, r2",
    "mov r2, #0",
    "mov r3, #0",
    "mov r7, #120",
    "svc 0",
    "cmp r0, #0",
    "bne 2f",
    "mov r11, #0",
    "mov lr, #0",
    "ldr r3, [sp]",
    "ldr r0, [sp, #4]",
    "add sp, sp, #16",
    "blx r3",
    "mov r0, #0",
    "mov r7, #1",
    "svc 0",
    ".inst 0xe7f000f0",
    "2:",
    "pop {{r4, r7}}",
    "bx lr",
    ".size mgo_clone, . - mgo_clone",
    ".popsection",
);

// powerpc64: clone is system call 120 with (flags, stack, parent_tid, tls, child_tid), failure
// reported in cr0.SO. func and arg wait in r30 and r31, which the child inherits (the caller's
// values are kept below the stack pointer, in the ELFv2 protected zone, and restored in the
// parent). The child starts with r1 = the new stack, given a minimal frame with a null back
// chain, calls func as ELFv2 wants (r12 = its address, r2 the process's TOC, inherited), and
// `exit`s (1).
#[cfg(target_arch = "powerpc64")]
core::arch::global_asm!(
    ".pushsection .text.mgo_clone,\"ax\",@progbits",
    ".globl mgo_clone",
    ".hidden mgo_clone",
    ".type mgo_clone,@function",
    "mgo_clone:",
    "std 30, -16(1)",
    "std 31, -8(1)",
    "mr 30, 6",
    "mr 31, 7",
    "clrrdi 4, 4, 4",
    "li 0, 0",
    "stdu 0, -32(4)",
    "mr 7, 5",
    "li 5, 0",
    "li 6, 0",
    "li 0, 120",
    "sc",
    "bns 2f",
    "neg 3, 3",
    "2:",
    "cmpdi 3, 0",
    "bne 3f",
    "mr 12, 30",
    "mtctr 30",
    "mr 3, 31",
    "bctrl",
    "li 3, 0",
    "li 0, 1",
    "sc",
    ".long 0",
    "3:",
    "ld 30, -16(1)",
    "ld 31, -8(1)",
    "blr",
    ".size mgo_clone, . - mgo_clone",
    ".popsection",
);
