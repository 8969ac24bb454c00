//! The kernel's address-space layout rules that the direct path follows where an exec would have
//! applied them: where PIE programs go, how far their base and the heap are moved at random, and
//! the random numbers to move them with.

/// Where the kernel loads PIE programs (`ELF_ET_DYN_BASE`), how many bits of randomness it adds
/// to their base by default (`mmap_rnd_bits`), and the range its heap start is moved within
/// (`arch_randomize_brk`).
#[cfg(target_arch = "x86_64")]
pub const ELF_ET_DYN_BASE: u64 = ((1 << 47) - 4096) / 3 * 2;
#[cfg(target_arch = "x86_64")]
pub const PIE_RANDOM_BITS: u32 = 28;
#[cfg(target_arch = "x86_64")]
pub const BRK_RANGE: u64 = 0x0200_0000;
#[cfg(target_arch = "aarch64")]
pub const ELF_ET_DYN_BASE: u64 = 2 * (1 << 48) / 3;
#[cfg(target_arch = "aarch64")]
pub const PIE_RANDOM_BITS: u32 = 18;
#[cfg(target_arch = "aarch64")]
pub const BRK_RANGE: u64 = 0x4000_0000;

// riscv64 (Linux `arch/riscv`): ELF_ET_DYN_BASE is two thirds of the default mmap window
// (2^47 with Sv48 and above, 2^38 with Sv39; the lower one, so that the base fits every
// kernel), mmap_rnd_bits 18 by default, and the generic 1 GiB heap range of 64-bit kernels.
#[cfg(target_arch = "riscv64")]
pub const ELF_ET_DYN_BASE: u64 = (1 << 38) / 3 * 2;
#[cfg(target_arch = "riscv64")]
pub const PIE_RANDOM_BITS: u32 = 18;
#[cfg(target_arch = "riscv64")]
pub const BRK_RANGE: u64 = 0x4000_0000;

// 32-bit ARM (Linux `arch/arm`): ELF_ET_DYN_BASE is two thirds of TASK_SIZE (3 GiB less
// 16 MiB under the usual split), mmap_rnd_bits 8 by default, and a 32 MiB heap range. Only the
// direct path reads them, and it places no 32-bit program (mgo_format::direct refuses ELF32).
#[cfg(target_arch = "arm")]
pub const ELF_ET_DYN_BASE: u64 = 0xbf00_0000 / 3 * 2;
#[cfg(target_arch = "arm")]
pub const PIE_RANDOM_BITS: u32 = 8;
#[cfg(target_arch = "arm")]
pub const BRK_RANGE: u64 = 0x0200_0000;
// powerpc64 (Linux `arch/powerpc`): 64-bit PIE programs go to 4 GiB (`ELF_ET_DYN_BASE`),
// mmap_rnd_bits defaults to 14 with 64 KiB pages (18 with 4 KiB ones; the lower, counted in
// the larger pages here, moves no further than a kernel would), and `arch_randomize_brk` moves
// 64-bit heaps within 1 GiB.
#[cfg(target_arch = "powerpc64")]
pub const ELF_ET_DYN_BASE: u64 = 0x1_0000_0000;
#[cfg(target_arch = "powerpc64")]
pub const PIE_RANDOM_BITS: u32 = 14;
#[cfg(target_arch = "powerpc64")]
pub const BRK_RANGE: u64 = 0x4000_0000;

/// A random number from the kernel, or `None` where none can be had (a sandbox refusing
/// `getrandom`): then nothing is moved at random, as with randomisation off.
pub fn random() -> Option<u64> {
    let mut bytes = [0u8; 8];
    crate::sys::getrandom(&mut bytes).ok()?;
    Some(u64::from_le_bytes(bytes))
}
