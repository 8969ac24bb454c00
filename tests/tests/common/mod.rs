//! The `mgo-pack` command built from this workspace for a chosen `-Ctarget-cpu`, for the tests
//! that run the command itself (self-hosting, the GoReleaser recipe).
//!
//! Each CPU gets its own target directory under `target/selfhost/`, so the inner cargo never
//! waits for the lock the outer `cargo test` holds on the main one, and so that switching
//! RUSTFLAGS does not throw away the main build. `--target` is given explicitly so the flags
//! apply to mgo-pack and its dependencies but not to build scripts and proc macros, which must
//! run on this machine whatever its level. The dev profile without debug info keeps the four
//! builds quick on two cores; they are cached between runs.

#![allow(dead_code)]

use std::fs::File;
use std::path::PathBuf;
use std::process::Command;

use mgo_tests::fixtures::{target_dir, workspace_root};

pub const CPUS: [&str; 4] = ["x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4"];
const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Builds (or finds up to date) `mgo-pack` compiled with `-Ctarget-cpu=<cpu>`.
pub fn build_mgo_pack(cpu: &str) -> PathBuf {
    let dir = target_dir().join("selfhost").join(cpu);
    std::fs::create_dir_all(&dir).unwrap();
    // Two test processes asking for the same build take turns.
    let lock = File::create(dir.join(".build.lock")).unwrap();
    lock.lock().unwrap();

    let cargo = std::env::var_os("CARGO")
        .or_else(|| option_env!("CARGO").map(Into::into))
        .unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args([
            "build", "--locked", "--quiet", "-p", "mgo-pack", "--bin", "mgo-pack",
        ])
        .args(["--target", TARGET, "--target-dir"])
        .arg(&dir);
    // What the outer cargo set for this test process must not leak into the inner build.
    for var in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("RUSTFLAGS", format!("-Ctarget-cpu={cpu}"))
        .env("CARGO_PROFILE_DEV_DEBUG", "false")
        .env("CARGO_PROFILE_DEV_INCREMENTAL", "false");
    let out = cmd.output().expect("running cargo");
    assert!(
        out.status.success(),
        "building mgo-pack for {cpu} failed: {cmd:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join(TARGET).join("debug").join("mgo-pack")
}
