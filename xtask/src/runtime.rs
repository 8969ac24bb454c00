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
    /// Flags particular to this target, linker flags included.
    rustflags: &'static [&'static str],
    /// The crates allowed unstable features on the pinned stable toolchain (`RUSTC_BOOTSTRAP`
    /// names them, and only them); empty for every target that needs none.
    unstable_crates: &'static str,
    /// Build `core` and `compiler_builtins` from the toolchain's sources (`-Zbuild-std`) where
    /// rustup serves no standard library for the target.
    build_std: bool,
    /// Where the image must hold no instruction above its architecture's baseline: the
    /// disassembler, and the mnemonics (prefixes) it must not print.
    baseline: Option<Baseline>,
}

impl Image {
    /// How many decoder segments an image must have: one where it has C decoders (every linker
    /// script gives them a segment of their own), else none.
    fn decoder_segments(&self, codec: &Codec) -> usize {
        usize::from(!codec.sources.is_empty())
    }
}

/// Instructions an image must not contain, checked on a disassembly of the image as built
/// before stripping, whose mapping symbols tell code from literal data.
struct Baseline {
    objdump: &'static str,
    /// Mnemonic prefixes, as the disassembler prints them.
    forbidden: &'static [&'static str],
    /// What the baseline is, for the message.
    what: &'static str,
}

const IMAGES: &[Image] = &[
    Image {
        arch: "x86_64",
        target: "x86_64-unknown-linux-gnu",
        linker_script: "runtime/link/x86_64.ld",
        rustflags: &[
            // Baseline x86-64 so that the launcher itself runs on every CPU it may be asked to
            // judge.
            "-Ctarget-cpu=x86-64",
            // Linked at a fixed address above 4 GiB (see the linker script) as a static, non-PIE
            // executable; the code itself is position-independent, because x86-64's non-PIC code
            // addresses data with 32-bit absolute addresses.
            "-Crelocation-model=pie",
            "-Clink-arg=-nostartfiles",
            "-Clink-arg=-nostdlib",
            "-Clink-arg=-no-pie",
            "-Clink-arg=-static",
            "-Clink-arg=-Wl,--build-id=none",
            "-Clink-arg=-Wl,-z,norelro",
        ],
        unstable_crates: "",
        build_std: false,
        baseline: None,
    },
    Image {
        arch: "aarch64",
        target: "aarch64-unknown-linux-musl",
        linker_script: "runtime/link/aarch64.ld",
        rustflags: &[
            // The target's baseline (Armv8.0, no LSE) so that the launcher runs on every CPU it
            // may be asked to judge.
            "-Ctarget-cpu=generic",
            // Atomics inline (LL/SC): the out-of-line helpers pick LSE through getauxval, which
            // a launcher without libc does not have (the decoders' threads use atomics).
            "-Ctarget-feature=-outline-atomics",
            // arm64 code reaches anything within 4 GiB of itself PC-relative, so plain static
            // code works at the launcher's address above 4 GiB.
            "-Crelocation-model=static",
            // rust-lld links for any target from this x86-64 host, without a cross toolchain; no
            // musl start files or libraries: the launcher brings its own `_start` and needs no
            // libc.
            "-Clinker=rust-lld",
            "-Clinker-flavor=ld.lld",
            "-Clink-self-contained=no",
            "-Clink-arg=-static",
            "-Clink-arg=--build-id=none",
            "-Clink-arg=-znorelro",
            // arm64 kernels use 4, 16 or 64 KiB pages: lay segments out for the largest.
            "-Clink-arg=-zmax-page-size=65536",
            "-Clink-arg=-zcommon-page-size=65536",
        ],
        unstable_crates: "",
        build_std: false,
        baseline: None,
    },
    Image {
        arch: "riscv64",
        // rustup serves no standard library for riscv64gc-unknown-linux-musl with this toolchain;
        // the launcher uses no C library either way, and rust-lld links it without one.
        target: "riscv64gc-unknown-linux-gnu",
        linker_script: "runtime/link/riscv64.ld",
        rustflags: &[
            // RV64GC (rva20u64), the target's baseline, so that the launcher runs on every CPU it
            // may be asked to judge.
            "-Ctarget-cpu=generic-rv64",
            // The medany code model (the target's default) addresses everything PC-relative, so
            // static code works at the launcher's address above 4 GiB.
            "-Crelocation-model=static",
            "-Clinker=rust-lld",
            "-Clinker-flavor=ld.lld",
            "-Clink-self-contained=no",
            "-Clink-arg=-static",
            "-Clink-arg=--build-id=none",
            "-Clink-arg=-znorelro",
            // Linker relaxation rewrites instruction sequences after layout; off, the image
            // depends on the code alone.
            "-Clink-arg=--no-relax",
            "-Clink-arg=-zmax-page-size=4096",
            "-Clink-arg=-zcommon-page-size=4096",
        ],
        unstable_crates: "",
        build_std: false,
        baseline: None,
    },
    Image {
        arch: "ppc64le",
        // rustup serves a standard library for the -gnu target; the launcher uses no C library.
        target: "powerpc64le-unknown-linux-gnu",
        linker_script: "runtime/link/ppc64le.ld",
        rustflags: &[
            // POWER8 (ISA 2.07), the baseline of ppc64le Linux and GOPPC64's lowest level, so that
            // the launcher runs on every CPU it may be asked to judge.
            "-Ctarget-cpu=pwr8",
            // ELFv2 code reaches its data TOC-relative (through r2, which _start sets), so static
            // code works at the launcher's address above 4 GiB.
            "-Crelocation-model=static",
            // rustix's raw system calls on PowerPC are inline assembly, which Rust still calls
            // experimental (`asm_experimental_arch`): rustix uses them when told so by this cfg,
            // and otherwise wants a C library the launcher does not have.
            "--cfg=rustix_use_experimental_asm",
            "--check-cfg=cfg(rustix_use_experimental_asm)",
            "-Clinker=rust-lld",
            "-Clinker-flavor=ld.lld",
            "-Clink-self-contained=no",
            "-Clink-arg=-static",
            "-Clink-arg=--build-id=none",
            "-Clink-arg=-znorelro",
            "-Clink-arg=-zmax-page-size=65536",
            "-Clink-arg=-zcommon-page-size=65536",
        ],
        // `asm_experimental_arch`, for rustix and the launcher's own assembly, the only unstable
        // feature any image uses. RUSTC_BOOTSTRAP with crate names lets the pinned stable rustc
        // accept it in those two crates alone, rather than switching the build to an unpinned
        // nightly: the images must stay a function of the pinned toolchain.
        unstable_crates: "rustix,mgo_launcher",
        build_std: false,
        baseline: None,
    },
    Image {
        arch: "arm",
        // ARMv5TE, soft-float: the lowest level packed (GOARM=5, no VFP), so that the launcher
        // runs on every CPU it may be asked to judge. rustup serves no standard library for it,
        // and the launcher needs only `core`: built from the rust-src component.
        target: "armv5te-unknown-linux-gnueabi",
        linker_script: "runtime/link/arm.ld",
        rustflags: &[
            // Static code at the launcher's fixed address: ARM code reaches addresses through
            // literal pools, which static linking fills in.
            "-Crelocation-model=static",
            "-Clinker=rust-lld",
            "-Clinker-flavor=ld.lld",
            "-Clink-self-contained=no",
            "-Clink-arg=-static",
            "-Clink-arg=--build-id=none",
            "-Clink-arg=-znorelro",
            "-Clink-arg=-zmax-page-size=4096",
            "-Clink-arg=-zcommon-page-size=4096",
        ],
        unstable_crates: "",
        build_std: true,
        baseline: Some(Baseline {
            objdump: "arm-linux-gnueabi-objdump",
            forbidden: &[
                // VFP and NEON (UAL names), and any coprocessor access (VFP's older spelling,
                // CP15 barriers).
                "v", "cdp", "ldc", "stc", "mcr", "mrc", // ARMv6 and later.
                "ldrex", "strex", "clrex", "dmb", "dsb", "isb", "rev", "rbit", "uxt", "sxt", "sel",
                "ssat", "usat", "pkh", "movw", "movt", "ubfx", "sbfx", "bfi", "bfc", "mls", "udiv",
                "sdiv", "sev", "wfe", "wfi", "yield", "umaal", "smmul", "smmla", "smmls", "smlad",
                "smlsd", "smuad", "smusd", "setend", "cps", "srs", "rfe",
            ],
            what: "ARMv5TE without VFP",
        }),
    },
];

/// The decoder sets: each architecture's plain launcher (stored variants only) and, where listed,
/// one image per codec, so that a bundle carries only the decoder it needs (docs/COMPRESSION.md).
struct Codec {
    /// Appended to the architecture in the image's name: `x86_64-zstd.elf`.
    suffix: &'static str,
    features: &'static str,
    arches: &'static [&'static str],
    /// C sources the image compiles: (variable for runtime/build.rs, crate package, directory
    /// inside it). The package's version is the one in Cargo.lock.
    sources: &'static [(&'static str, &'static str, &'static str)],
}

const CODECS: &[Codec] = &[
    Codec {
        suffix: "",
        features: "launcher",
        arches: &["x86_64", "aarch64", "riscv64", "ppc64le", "arm"],
        sources: &[],
    },
    Codec {
        suffix: "-zstd",
        features: "launcher,zstd",
        arches: &["x86_64", "aarch64", "riscv64", "ppc64le", "arm"],
        sources: &[("MGO_ZSTD_SRC", "zstd-sys", "zstd/lib")],
    },
    Codec {
        suffix: "-gzip",
        features: "launcher,deflate",
        arches: &["x86_64", "aarch64", "riscv64", "ppc64le", "arm"],
        sources: &[("MGO_LIBDEFLATE_SRC", "libdeflate-sys", "libdeflate")],
    },
];

pub fn main(args: &[String]) -> Result<()> {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        [flag] if flag == "--clippy" => return clippy(),
        _ => bail!("usage: cargo xtask runtime [--check | --clippy]"),
    };
    let root = workspace_root();
    let toolchain = format!("{}\n{}", rustc_version()?, cc_version()?);
    let sources = c_sources(&root)?;
    let builds = IMAGES.iter().flat_map(|image| {
        CODECS
            .iter()
            .filter(|codec| codec.arches.contains(&image.arch))
            .map(move |codec| (image, codec))
    });
    for (image, codec) in builds {
        let built = build(&root, image, codec, &sources)?;
        let name = format!("{}{}", image.arch, codec.suffix);
        let committed = root.join("runtime/image").join(format!("{name}.elf"));
        let mut bytes =
            std::fs::read(&built).with_context(|| format!("reading {}", built.display()))?;
        // The launcher's slot gets the decoders' segment's hash, checked before the first decode.
        let decoders = mgo_format::record_decoder_hashes(&mut bytes)
            .map_err(|e| anyhow::anyhow!("image {name}: {}", e.message()))?;
        if decoders != image.decoder_segments(codec) {
            bail!(
                "image {name}: {decoders} decoder segments, where its linker script ({}) makes {}",
                image.linker_script,
                image.decoder_segments(codec)
            );
        }
        zero_fill_outside_hashed_bytes(&bytes).with_context(|| format!("image {name}"))?;
        physical_addresses_in_file_order(&bytes).with_context(|| format!("image {name}"))?;
        if let Some(baseline) = &image.baseline {
            let symbols = run_cargo(&root, image, codec, &sources, Cargo::Symbols)?;
            check_baseline(&symbols, baseline).with_context(|| format!("image {name}"))?;
        }
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
                "runtime image {name}: {} bytes, identical to a fresh build",
                bytes.len()
            );
        } else {
            std::fs::write(&committed, &bytes)?;
            std::fs::write(
                root.join("runtime/image/TOOLCHAIN"),
                format!("{toolchain}\n"),
            )?;
            println!(
                "runtime image {name}: {} bytes -> {}",
                bytes.len(),
                committed.display()
            );
        }
    }
    Ok(())
}

/// Every loaded segment's `p_paddr` is its address, as the linker set it. `strip` and `objcopy`
/// order segments in the file by `p_paddr`; a segment whose field held anything else (the
/// decoders' hash, once) could be moved behind the payload, and the launcher's hash, which covers
/// the program headers, would no longer match.
fn physical_addresses_in_file_order(elf: &[u8]) -> Result<()> {
    let parsed = mgo_format::elf::Elf::parse(elf)
        .map_err(|e| anyhow::anyhow!("not an ELF file the packer reads: {e}"))?;
    for ph in parsed.phdrs() {
        if ph.p_type == mgo_format::elf::PT_LOAD && ph.p_paddr != ph.p_vaddr {
            bail!(
                "the segment at offset {:#x} has p_paddr {:#x}, not its address {:#x}: strip and \
                 objcopy lay segments out in p_paddr order and would move it",
                ph.p_offset,
                ph.p_paddr,
                ph.p_vaddr
            );
        }
    }
    Ok(())
}

/// The launcher hashes the file bytes of its loaded segments, in memory, before it trusts them
/// (runtime/src/launcher/own_image.rs). Memory the launcher writes must therefore lie outside
/// them: a `.bss` (zero-filled, written at once) that a linker placed before a section with file
/// bytes is inside them, and the launcher would call itself damaged as soon as it wrote there.
fn zero_fill_outside_hashed_bytes(elf: &[u8]) -> Result<()> {
    const SHT_NOBITS: u32 = 8;
    const SHF_ALLOC: u64 = 2;
    let u16_at = |at: usize| u16::from_le_bytes(elf[at..at + 2].try_into().unwrap()) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap());
    let parsed = mgo_format::elf::Elf::parse(elf)
        .map_err(|e| anyhow::anyhow!("not an ELF file the packer reads: {e}"))?;
    let class = parsed.class;
    let word = |at: usize| class.word_at(elf, at);
    let shape = class.section_shape_field().start;
    let (shoff, shentsize, shnum) = (
        word(class.shoff_field().start) as usize,
        u16_at(shape),
        u16_at(shape + 2),
    );
    // sh_flags and sh_addr follow sh_name and sh_type, each a word of the class.
    let width = match class {
        mgo_format::elf::Class::Elf32 => 4,
        mgo_format::elf::Class::Elf64 => 8,
    };
    for i in 0..shnum {
        let sh = shoff + i * shentsize;
        let (kind, flags, addr) = (u32_at(sh + 4), word(sh + 8), word(sh + 8 + width));
        if kind != SHT_NOBITS || flags & SHF_ALLOC == 0 {
            continue;
        }
        let hashed = parsed.phdrs().find(|ph| {
            ph.p_type == mgo_format::elf::PT_LOAD
                && (ph.p_vaddr..ph.p_vaddr + ph.p_filesz).contains(&addr)
        });
        if let Some(ph) = hashed {
            bail!(
                "a zero-filled section at {addr:#x} lies inside the file bytes of the segment at \
                 {:#x} (a section with file bytes follows it): put every such section before \
                 .bss in the linker script",
                ph.p_vaddr
            );
        }
    }
    Ok(())
}

/// Where the C sources named in [`CODECS`] are: `cargo metadata` resolves them from Cargo.lock
/// (downloading them if needed), whatever registry or vendoring the machine uses.
fn c_sources(root: &Path) -> Result<Vec<(&'static str, PathBuf)>> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--locked"])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    let mut found = Vec::new();
    for &(var, package, dir) in CODECS.iter().flat_map(|c| c.sources) {
        let manifest = packages
            .iter()
            .find(|p| p["name"] == package)
            .and_then(|p| p["manifest_path"].as_str())
            .with_context(|| {
                format!("{package} is not in Cargo.lock (the packer depends on it)")
            })?;
        let path = Path::new(manifest)
            .parent()
            .context("manifest path")?
            .join(dir);
        found.push((var, path));
    }
    Ok(found)
}

/// `cargo xtask runtime --clippy`: clippy, warnings denied, on the launcher exactly as each image
/// builds it (its target, features and C sources), which a plain `cargo clippy` cannot do.
fn clippy() -> Result<()> {
    let root = workspace_root();
    let sources = c_sources(&root)?;
    for image in IMAGES {
        for codec in CODECS.iter().filter(|c| c.arches.contains(&image.arch)) {
            run_cargo(&root, image, codec, &sources, Cargo::Clippy)?;
            println!("launcher {}{}: clippy clean", image.arch, codec.suffix);
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Cargo {
    Build,
    Clippy,
    /// The image as built, symbols kept (for [`check_baseline`]).
    Symbols,
}

/// Disassembles the unstripped image and refuses any instruction above the baseline. The
/// mapping symbols a stripped image lacks tell the disassembler code from literal pools.
fn check_baseline(image: &Path, baseline: &Baseline) -> Result<()> {
    let out = Command::new(baseline.objdump)
        .args(["-d", "--no-show-raw-insn"])
        .arg(image)
        .output()
        .with_context(|| format!("running {} (scripts/install-deps.sh)", baseline.objdump))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            baseline.objdump,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut instructions = 0;
    for line in text.lines() {
        // `  1000074:\tmov\tr0, sp`; data shows as `.word`, labels and headers have no tab.
        let mut fields = line.split('\t');
        let (Some(address), Some(mnemonic)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !address.trim_end().ends_with(':') || mnemonic.starts_with('.') {
            continue;
        }
        let mnemonic = mnemonic.split_whitespace().next().unwrap_or("");
        instructions += 1;
        if let Some(bad) = baseline.forbidden.iter().find(|p| mnemonic.starts_with(*p)) {
            bail!(
                "the launcher must stay {} but holds `{}` ({bad}...): {line}",
                baseline.what,
                mnemonic
            );
        }
    }
    if instructions < 1000 {
        bail!(
            "{} printed only {instructions} instructions",
            baseline.objdump
        );
    }
    Ok(())
}

fn build(
    root: &Path,
    image: &Image,
    codec: &Codec,
    sources: &[(&'static str, PathBuf)],
) -> Result<PathBuf> {
    run_cargo(root, image, codec, sources, Cargo::Build)
}

fn run_cargo(
    root: &Path,
    image: &Image,
    codec: &Codec,
    sources: &[(&'static str, PathBuf)],
    what: Cargo,
) -> Result<PathBuf> {
    let target_dir = root.join(match what {
        Cargo::Build => "target/runtime",
        Cargo::Clippy => "target/runtime-clippy",
        Cargo::Symbols => "target/runtime-symbols",
    });
    let cargo_home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| home().join(".cargo"));
    let script = root.join(image.linker_script);
    let mut flags: Vec<String> = image.rustflags.iter().map(|s| s.to_string()).collect();
    flags.extend([
        // The C driver passes the script on with -Wl; rust-lld takes it directly.
        if image.rustflags.contains(&"-Clinker=rust-lld") {
            format!("-Clink-arg=-T{}", script.display())
        } else {
            format!("-Clink-arg=-Wl,-T,{}", script.display())
        },
        format!("--remap-path-prefix={}=/mgo-pack", root.display()),
        format!("--remap-path-prefix={}=/cargo", cargo_home.display()),
    ]);
    if image.build_std {
        // `core`'s own sources, from wherever the toolchain is installed.
        flags.push(format!(
            "--remap-path-prefix={}=/rust",
            rust_src()?.display()
        ));
    }
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args([
            match what {
                Cargo::Build | Cargo::Symbols => "build",
                Cargo::Clippy => "clippy",
            },
            "--quiet",
            "--locked",
            "-p",
            "mgo-runtime",
            "--bin",
            "mgo-launcher",
        ])
        .args([
            "--features",
            codec.features,
            "--profile",
            "launcher",
            "--target",
            image.target,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        // -Zbuild-std is unstable. RUSTC_BOOTSTRAP lets the pinned stable toolchain take it,
        // rather than an unpinned nightly, whose code generation would change the image under
        // `--check` from one day to the next; the flag touches nothing but how `core` is found.
        .args(if image.build_std {
            &["-Zbuild-std=core,compiler_builtins"][..]
        } else {
            &[][..]
        })
        .envs((what == Cargo::Symbols).then_some(("CARGO_PROFILE_LAUNCHER_STRIP", "false")))
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_BOOTSTRAP")
        .envs(
            (!image.unstable_crates.is_empty())
                .then_some(("RUSTC_BOOTSTRAP", image.unstable_crates)),
        )
        // After the crate list: cargo itself takes -Z only from RUSTC_BOOTSTRAP=1.
        .envs(image.build_std.then_some(("RUSTC_BOOTSTRAP", "1")))
        .env("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f"))
        .env("SOURCE_DATE_EPOCH", "0")
        .envs(
            sources
                .iter()
                .filter(|(var, _)| codec.sources.iter().any(|s| s.0 == *var))
                .map(|(var, path)| (*var, path)),
        )
        .args(match what {
            Cargo::Build | Cargo::Symbols => &[][..],
            Cargo::Clippy => &["--", "-D", "warnings"][..],
        })
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!(
            "{} the {}{} launcher failed",
            match what {
                Cargo::Build | Cargo::Symbols => "building",
                Cargo::Clippy => "clippy on",
            },
            image.arch,
            codec.suffix
        );
    }
    Ok(target_dir.join(image.target).join("launcher/mgo-launcher"))
}

/// The toolchain's Rust sources (the rust-src component), which `-Zbuild-std` compiles.
fn rust_src() -> Result<PathBuf> {
    let out = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .context("running rustc --print sysroot")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let src = sysroot.join("lib/rustlib/src/rust");
    if !src.join("library/core").is_dir() {
        bail!(
            "{} has no Rust sources: install the rust-src component (scripts/install-deps.sh)",
            sysroot.display()
        );
    }
    Ok(src)
}

fn rustc_version() -> Result<String> {
    let out = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("--version")
        .output()
        .context("running rustc --version")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The C compiler's version, recorded with the images: the codec images contain its output.
fn cc_version() -> Result<String> {
    let out = Command::new("gcc")
        .arg("--version")
        .output()
        .context("running gcc --version")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or_default().trim().to_string())
}

fn home() -> PathBuf {
    std::env::var("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/root"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The baseline check refuses VFP and ARMv7 code: a C function built for ARMv7-A with VFPv3
    /// (Debian's armel compiler) must fail it, naming an instruction.
    #[test]
    fn the_arm_baseline_check_refuses_vfp_and_armv7_code() {
        let Some(baseline) = IMAGES.iter().find_map(|i| i.baseline.as_ref()) else {
            panic!("no image has a baseline");
        };
        let dir = std::env::temp_dir().join(format!("mgo-baseline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let source = dir.join("f.c");
        std::fs::write(
            &source,
            "double f(double x, int y) { return x * 1.5 + (short)y; }\n",
        )
        .unwrap();
        let object = dir.join("f.o");
        let built = Command::new("arm-linux-gnueabi-gcc")
            .args([
                "-O2",
                "-march=armv7-a",
                "-mfpu=vfpv3",
                "-mfloat-abi=softfp",
                "-c",
            ])
            .arg(&source)
            .arg("-o")
            .arg(&object)
            .status();
        if !built.is_ok_and(|s| s.success()) {
            println!("SKIPPED: no arm-linux-gnueabi-gcc (scripts/install-deps.sh)");
            return;
        }
        let err = check_baseline(&object, baseline).unwrap_err().to_string();
        assert!(err.contains("ARMv5TE without VFP"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
