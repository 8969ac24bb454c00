//! Project automation: `cargo xtask <command>`.
//!
//! - `runtime [--check]`: build the launcher images with pinned flags and store them under
//!   `runtime/image/`, or check that a rebuild is byte-identical to the committed images.
//! - `bench [--quick]` (`bench/`): time, size and weigh bundles against their variants run directly, and
//!   write `docs/BENCHMARKS.md` (a benchmark, not a test: CI does not run it).
//! - `flips [--bundle stored|gzip|all] [--range launcher|headers|all] [--sample K] ...`: flip
//!   every bit of the launcher image and the region header and index of real bundles, run each
//!   copy and classify what happened (see `flips/mod.rs`); fails on hangs, wrong variants and
//!   silent runs.

use std::process::ExitCode;

mod bench;
mod flips;
mod packer;
mod runtime;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("runtime") => runtime::main(&args[1..]),
        Some("bench") => bench::main(&args[1..]),
        Some("flips") => flips::main(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask runtime [--check] | cargo xtask bench [--quick] | \
                 cargo xtask flips [--help]"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent")
        .to_path_buf()
}
