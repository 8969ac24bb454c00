//! The prebuilt launcher images, built by `cargo xtask runtime` and committed, so that packing
//! needs neither a Rust toolchain nor Go.

use mgo_format::Arch;

static X86_64: &[u8] = include_bytes!("../../runtime/image/x86_64.elf");
static AARCH64: &[u8] = include_bytes!("../../runtime/image/aarch64.elf");
static RISCV64: &[u8] = include_bytes!("../../runtime/image/riscv64.elf");
static ARM: &[u8] = include_bytes!("../../runtime/image/arm.elf");
static PPC64LE: &[u8] = include_bytes!("../../runtime/image/ppc64le.elf");

/// The launcher image for an architecture, if this packer carries one.
pub fn for_arch(arch: Arch) -> Option<&'static [u8]> {
    match arch {
        Arch::X86_64 => Some(X86_64),
        Arch::Aarch64 => Some(AARCH64),
        Arch::Riscv64 => Some(RISCV64),
        Arch::Arm => Some(ARM),
        Arch::Ppc64le => Some(PPC64LE),
    }
}
