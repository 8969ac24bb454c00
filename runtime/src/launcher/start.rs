//! Process entry: the kernel's initial stack, read without libc.

use core::ffi::CStr;

// The kernel enters `_start` with `rsp`/`sp` pointing at argc, followed by argv, NULL, envp,
// NULL and the auxiliary vector. The stack is realigned to 16 bytes before calling Rust, as the
// ABI requires at a call.
#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "xor ebp, ebp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {entry}",
    "ud2",
    entry = sym crate::entry,
);

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "mov x29, xzr",
    "mov x30, xzr",
    "mov x0, sp",
    "and sp, x0, #-16",
    "bl {entry}",
    "brk #1",
    entry = sym crate::entry,
);

// riscv64: `ra` cleared so that nothing returns past the entry, `fp` (s0) cleared as the end of
// the frame chain.
#[cfg(target_arch = "riscv64")]
core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "li fp, 0",
    "li ra, 0",
    "mv a0, sp",
    "andi sp, sp, -16",
    "call {entry}",
    "unimp",
    entry = sym crate::entry,
);

// 32-bit ARM (ARM code, AAPCS): the frame pointer (r11) and link register cleared, the stack
// aligned to the 8 bytes a call needs.
#[cfg(target_arch = "arm")]
core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "mov r11, #0",
    "mov lr, #0",
    "mov r0, sp",
    "bic sp, sp, #7",
    "bl {entry}",
    ".inst 0xe7f000f0",
    entry = sym crate::entry,
);

// powerpc64 (ELFv2): the TOC pointer (r2), through which compiled code reaches its data, is
// set from `.TOC.` relative to the code's own address, learnt with a branch-and-link (not
// from r12, which the kernel sets to the entry but a debugger or emulator might not). Then a
// minimal frame (32 bytes, a null back chain ending the frame chain) on the 16-byte aligned
// stack, where the callee saves its link register.
#[cfg(target_arch = "powerpc64")]
core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "bl 2f",
    "2:",
    "mflr 12",
    "addis 2, 12, (.TOC. - 2b)@ha",
    "addi 2, 2, (.TOC. - 2b)@l",
    "li 0, 0",
    "mtlr 0",
    "mr 3, 1",
    "clrrdi 1, 1, 4",
    "stdu 0, -32(1)",
    "bl {entry}",
    "nop",
    ".long 0",
    entry = sym crate::entry,
);

pub const AT_NULL: usize = 0;
pub const AT_PAGESZ: usize = 6;
pub const AT_SECURE: usize = 23;
pub const AT_EXECFN: usize = 31;

/// What the kernel passed to the launcher.
pub struct StartInfo {
    pub argv: *const *const u8,
    pub envp: *const *const u8,
    pub auxv: *const usize,
}

impl StartInfo {
    /// # Safety
    /// `sp` must be the stack pointer the kernel gave `_start`.
    pub unsafe fn from_stack(sp: *const usize) -> StartInfo {
        // SAFETY: the kernel lays out argc, argv[argc], NULL, envp..., NULL, auxv pairs; every
        // pointer computed here stays inside that block.
        unsafe {
            let argc = *sp;
            let argv = sp.add(1) as *const *const u8;
            let envp = argv.add(argc + 1);
            let mut end = envp;
            while !(*end).is_null() {
                end = end.add(1);
            }
            StartInfo {
                argv,
                envp,
                auxv: end.add(1) as *const usize,
            }
        }
    }

    pub fn argv0(&self) -> Option<&'static CStr> {
        // SAFETY: argv is NULL-terminated and its strings live for the whole process.
        unsafe { cstr((*self.argv).cast()) }
    }

    /// The environment as `NAME=VALUE` byte strings.
    pub fn env(&self) -> impl Iterator<Item = &'static [u8]> {
        self.env_strings().map(CStr::to_bytes)
    }

    pub fn aux(&self, key: usize) -> Option<usize> {
        let mut at = self.auxv;
        // SAFETY: the auxiliary vector is a list of (key, value) pairs ending with AT_NULL.
        unsafe {
            loop {
                match *at {
                    AT_NULL => return None,
                    k if k == key => return Some(*at.add(1)),
                    _ => at = at.add(2),
                }
            }
        }
    }

    /// Secure-execution mode (`AT_SECURE`): setuid, setgid or file capabilities raised the
    /// launcher's privileges, so its caller's environment must not steer it. A kernel that did
    /// not say counts as secure.
    pub fn secure(&self) -> bool {
        self.aux(AT_SECURE) != Some(0)
    }

    /// The page size the kernel uses, from the auxiliary vector.
    pub fn page_size(&self) -> u64 {
        self.aux(AT_PAGESZ)
            .filter(|p| p.is_power_of_two())
            .unwrap_or(4096) as u64
    }

    /// The stack pointer the kernel entered with: the address of `argc`.
    pub fn stack_pointer(&self) -> usize {
        (self.argv as usize) - core::mem::size_of::<usize>()
    }

    /// The argument strings (`argv[0]` first).
    pub fn args(&self) -> impl Iterator<Item = &'static CStr> {
        // SAFETY: argv is the kernel's NULL-terminated array.
        unsafe { strings(self.argv) }
    }

    /// The environment strings.
    pub fn env_strings(&self) -> impl Iterator<Item = &'static CStr> {
        // SAFETY: envp is the kernel's NULL-terminated array.
        unsafe { strings(self.envp) }
    }

    /// The path given to `execve`, as the kernel recorded it.
    pub fn execfn(&self) -> Option<&'static CStr> {
        // SAFETY: AT_EXECFN points at a NUL-terminated string on the initial stack.
        self.aux(AT_EXECFN)
            .and_then(|p| unsafe { cstr(p as *const u8) })
    }
}

/// The strings of a NULL-terminated array of string pointers.
///
/// # Safety
/// `at` points at such an array, whose strings live for the process.
unsafe fn strings(mut at: *const *const u8) -> impl Iterator<Item = &'static CStr> {
    core::iter::from_fn(move || {
        // SAFETY: as the caller promises; we stop at the NULL and never step past it.
        unsafe {
            let s = cstr(*at)?;
            at = at.add(1);
            Some(s)
        }
    })
}

/// # Safety
/// `p` is null or points at a NUL-terminated string that lives for the process.
unsafe fn cstr(p: *const u8) -> Option<&'static CStr> {
    if p.is_null() {
        None
    } else {
        // SAFETY: as the caller promises.
        Some(unsafe { CStr::from_ptr(p.cast()) })
    }
}
