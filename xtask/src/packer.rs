//! The release `mgo-pack` that the benchmark and the flip campaign pack with.

use anyhow::Result;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `cargo build --release --locked -p mgo-pack` into the workspace's own target directory, a
/// no-op when it is up to date. Always asked, not only when the binary is missing: a stale
/// packer would embed, and so measure, an older launcher.
pub fn build_release(root: &Path) -> Result<PathBuf> {
    let target = root.join("target");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args([
            "build",
            "--quiet",
            "--release",
            "--locked",
            "-p",
            "mgo-pack",
        ])
        .arg("--target-dir")
        .arg(&target)
        .status()
        .map_err(|e| anyhow::anyhow!("running cargo build: {e}"))?;
    anyhow::ensure!(status.success(), "building mgo-pack failed");
    Ok(target.join("release/mgo-pack"))
}
