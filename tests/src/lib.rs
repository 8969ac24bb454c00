//! Shared helpers for the end-to-end tests: building the real Go and C
//! programs that get packed, and reading what those programs report.

pub mod checks;
pub mod fidelity;
pub mod fixtures;
pub mod fixtures_arm;
pub mod fixtures_arm64;
pub mod fixtures_ppc64le;
pub mod fixtures_riscv64;
pub mod guest_checks;
pub mod harness;
pub mod hostile;
pub mod page_cache;
pub mod qemu_user;
