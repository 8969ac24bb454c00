//! Building the launcher images. The packer embeds the committed images, so the images must be a
//! pure function of the sources and the toolchain: every flag is pinned here, paths are remapped,
//! and `--check` proves that a rebuild gives the same bytes.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::workspace_root;

/// One launcher image per architecture.
struct Image {
    arch: &'static str,
    target: &'static str,
    linker_script: &'static str,
    /// Flags particular to this target.
    rustflags: &'static [&'static str],
}

const IMAGES: &[Image] = &[Image {
    arch: "x86_64",
    target: "x86_64-unknown-linux-gnu",
    linker_script: "runtime/link/x86_64.ld",
    // Baseline x86-64 so that the launcher itself runs on every CPU it may be asked to judge.
    rustflags: &["-Ctarget-cpu=x86-64"],
}];

pub fn main(args: &[String]) -> Result<()> {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        _ => bail!("usage: cargo xtask runtime [--check]"),
    };
    let root = workspace_root();
    let toolchain = rustc_version()?;
    for image in IMAGES {
        let built = build(&root, image)?;
        let committed = root
            .join("runtime/image")
            .join(format!("{}.elf", image.arch));
        let bytes =
            std::fs::read(&built).with_context(|| format!("reading {}", built.display()))?;
        if check {
            let expected = std::fs::read(&committed).with_context(|| {
                format!(
                    "reading {} (run `cargo xtask runtime` to create it)",
                    committed.display()
                )
            })?;
            if expected != bytes {
                let recorded = std::fs::read_to_string(root.join("runtime/image/TOOLCHAIN"))
                    .unwrap_or_default();
                bail!(
                    "{} differs from a fresh build ({} bytes committed, {} built): run `cargo xtask \
                     runtime` and commit the result (image built with {}, this is {})",
                    committed.display(),
                    expected.len(),
                    bytes.len(),
                    recorded.trim(),
                    toolchain
                );
            }
            println!(
                "runtime image {}: {} bytes, identical to a fresh build",
                image.arch,
                bytes.len()
            );
        } else {
            std::fs::write(&committed, &bytes)?;
            std::fs::write(
                root.join("runtime/image/TOOLCHAIN"),
                format!("{toolchain}\n"),
            )?;
            println!(
                "runtime image {}: {} bytes -> {}",
                image.arch,
                bytes.len(),
                committed.display()
            );
        }
    }
    Ok(())
}

fn build(root: &Path, image: &Image) -> Result<PathBuf> {
    let target_dir = root.join("target/runtime");
    let cargo_home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| home().join(".cargo"));
    let script = root.join(image.linker_script);
    let mut flags: Vec<String> = vec![
        // Linked at a fixed address (see the linker script) as a static, non-PIE executable;
        // the code itself is position-independent so that it can live above 4 GiB.
        "-Crelocation-model=pie".into(),
        "-Clink-arg=-nostartfiles".into(),
        "-Clink-arg=-nostdlib".into(),
        "-Clink-arg=-no-pie".into(),
        "-Clink-arg=-static".into(),
        "-Clink-arg=-Wl,--build-id=none".into(),
        "-Clink-arg=-Wl,-z,norelro".into(),
        format!("-Clink-arg=-Wl,-T,{}", script.display()),
        format!("--remap-path-prefix={}=/mgo-pack", root.display()),
        format!("--remap-path-prefix={}=/cargo", cargo_home.display()),
    ];
    flags.extend(image.rustflags.iter().map(|s| s.to_string()));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args([
            "build",
            "--quiet",
            "--locked",
            "-p",
            "mgo-runtime",
            "--bin",
            "mgo-launcher",
        ])
        .args([
            "--features",
            "launcher",
            "--profile",
            "launcher",
            "--target",
            image.target,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("RUSTFLAGS")
        .env("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f"))
        .env("SOURCE_DATE_EPOCH", "0")
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("building the {} launcher failed", image.arch);
    }
    Ok(target_dir.join(image.target).join("launcher/mgo-launcher"))
}

fn rustc_version() -> Result<String> {
    let out = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("--version")
        .output()
        .context("running rustc --version")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn home() -> PathBuf {
    std::env::var("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/root"))
}
