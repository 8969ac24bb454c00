//! Compiles the C decoders that the codec launcher images carry: libzstd's decompressor (feature
//! `zstd`) and libdeflate's decompressor (feature `deflate`), from the sources that the
//! `zstd-sys` and `libdeflate-sys` crate packages ship. The plain launcher and the host library
//! compile no C at all.
//!
//! Only `cargo xtask runtime` turns the codec features on; it passes the two source directories
//! in `MGO_ZSTD_SRC` and `MGO_LIBDEFLATE_SRC` (found with `cargo metadata`, so that the versions
//! are the ones in Cargo.lock, the same the packer compresses with). Every compiler flag is fixed
//! here, none is taken from the environment, so that the images stay byte-reproducible.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // The launcher's linker scripts reach rustc only as a -C link-arg, which cargo does not
    // track: without this, an edited script leaves the old image in place.
    println!("cargo:rerun-if-changed=link");
    println!("cargo:rerun-if-env-changed=MGO_ZSTD_SRC");
    println!("cargo:rerun-if-env-changed=MGO_LIBDEFLATE_SRC");
    let zstd = env::var_os("CARGO_FEATURE_ZSTD").is_some();
    let deflate = env::var_os("CARGO_FEATURE_DEFLATE").is_some();
    if !zstd && !deflate {
        return;
    }
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let cc = match arch.as_str() {
        "x86_64" => "gcc",
        "aarch64" => "aarch64-linux-gnu-gcc",
        "riscv64" => "riscv64-linux-gnu-gcc",
        // Debian's armel compiler: soft-float EABI, as the Rust side.
        "arm" => "arm-linux-gnueabi-gcc",
        "powerpc64" => "powerpc64le-linux-gnu-gcc",
        other => panic!("no C compiler known for the {other} launcher"),
    };
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    if zstd {
        let src = source_dir("MGO_ZSTD_SRC", "zstd-sys", "zstd/lib");
        build_zstd(cc, &arch, &src, &out);
    }
    if deflate {
        let src = source_dir("MGO_LIBDEFLATE_SRC", "libdeflate-sys", "libdeflate");
        build_libdeflate(cc, &arch, &src, &out);
    }
    println!("cargo:rustc-link-search=native={}", out.display());
}

fn source_dir(var: &str, package: &str, sub: &str) -> PathBuf {
    let dir = env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "{var} is not set: the codec launchers are built by `cargo xtask runtime`, which \
             points it at the {package} package's {sub} directory"
        )
    });
    assert!(dir.is_dir(), "{var}={} is not a directory", dir.display());
    dir
}

/// Flags shared by both libraries.
///
/// - `-fPIE`, hidden visibility, no PLT: the launcher is linked at 0x1000000000, so every
///   reference must be RIP-relative (no absolute 32-bit relocations), and calls between the
///   objects direct.
/// - No stack protector or CET: they need TLS (`%fs:0x28`) or libc, which the launcher lacks.
/// - Not `-ffreestanding`: both libraries spell small fixed-size copies as `memcpy` calls and
///   rely on the compiler expanding them inline; the launcher's own memcpy & co serve the rest.
/// - Each library's own optimisation level (zstd's Makefile: -O3, libdeflate's: -O2), not the
///   launcher's size optimisation: the decoders are the start-up time. At -O2 libzstd decoded
///   3 to 8 % slower than Debian's -O3 build of it (docs/COMPRESSION.md).
fn common_flags(arch: &str, src: &Path, mapped: &str, opt: &str) -> Vec<String> {
    let mut flags: Vec<String> = [
        "-std=gnu11",
        opt,
        "-fPIE",
        "-fvisibility=hidden",
        "-fno-plt",
        "-fno-stack-protector",
        "-fno-stack-clash-protection",
        "-fno-asynchronous-unwind-tables",
        "-fno-unwind-tables",
        "-fno-exceptions",
        "-fno-ident",
        "-ffunction-sections",
        "-fdata-sections",
        "-fno-common",
        "-U_FORTIFY_SOURCE",
        "-DNDEBUG",
        "-w",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    flags.push(format!("-ffile-prefix-map={}={}", src.display(), mapped));
    match arch {
        // Baseline x86-64, as the Rust side: both libraries detect BMI2 at run time.
        "x86_64" => flags
            .extend(["-march=x86-64", "-mtune=generic", "-fcf-protection=none"].map(String::from)),
        // Inline atomics: gcc's default out-of-line helpers pick LSE through getauxval, which a
        // launcher without libc does not have.
        "aarch64" => flags.extend(
            [
                "-march=armv8-a",
                "-mbranch-protection=none",
                "-mno-outline-atomics",
            ]
            .map(String::from),
        ),
        // RV64GC, as the Rust side; medany so that the code, linked above 4 GiB, reaches its
        // data PC-relative; no linker relaxation against gp, which the launcher never sets.
        "riscv64" => flags.extend(
            [
                "-march=rv64gc",
                "-mabi=lp64d",
                "-mcmodel=medany",
                "-mno-relax",
            ]
            .map(String::from),
        ),
        // ARMv5TE in ARM (not Thumb) code, soft-float: no VFP instruction, as the Rust side,
        // so that the launcher runs on the lowest GOARM level it judges.
        "arm" => flags.extend(
            [
                "-march=armv5te",
                "-marm",
                "-mfloat-abi=soft",
                "-mno-unaligned-access",
            ]
            .map(String::from),
        ),
        // POWER8, as the Rust side. gcc's ELFv2 code reaches its data through the TOC (r2, set by
        // the launcher's _start), so it works at the launcher's address above 4 GiB.
        // -fno-plt asks ppc64 gcc for inline PLT call sequences (R_PPC64_PLTSEQ and friends),
        // which rust-lld cannot link; every call is to a hidden local function anyway.
        "powerpc64" => {
            flags.retain(|f| f != "-fno-plt");
            flags.extend(["-mcpu=power8", "-mtune=power8"].map(String::from));
        }
        _ => {}
    }
    flags
}

fn build_zstd(cc: &str, arch: &str, src: &Path, out: &Path) {
    let mut files = vec![
        "common/entropy_common.c",
        "common/error_private.c",
        "common/fse_decompress.c",
        "common/xxhash.c",
        "common/zstd_common.c",
        "decompress/huf_decompress.c",
        "decompress/zstd_ddict.c",
        "decompress/zstd_decompress.c",
        "decompress/zstd_decompress_block.c",
    ];
    if arch == "x86_64" {
        // The BMI2 Huffman loops, chosen at run time when the CPU has BMI2.
        files.push("decompress/huf_decompress_amd64.S");
    }
    let mut flags = common_flags(arch, src, "/zstd", "-O3");
    flags.extend(
        [
            "-DZSTD_LEGACY_SUPPORT=0",
            "-DZSTD_STATIC_LINKING_ONLY",
            "-DZSTD_STRIP_ERROR_STRINGS",
            "-DZSTD_NO_TRACE",
            "-DZSTD_TRACE=0",
            "-DDEBUGLEVEL=0",
            "-DXXH_NAMESPACE=ZSTD_",
        ]
        .map(String::from),
    );
    for file in &files {
        println!("cargo:rerun-if-changed={}", src.join(file).display());
    }
    archive(cc, src, &files, &flags, out, "mgo_zstd");
}

fn build_libdeflate(cc: &str, arch: &str, src: &Path, out: &Path) {
    let mut files = vec!["lib/deflate_decompress.c", "lib/utils.c"];
    if arch == "x86_64" {
        files.push("lib/x86/cpu_features.c");
    } else if arch == "aarch64" {
        files.push("lib/arm/cpu_features.c");
    }
    let mut flags = common_flags(arch, src, "/libdeflate", "-O2");
    // libdeflate's own freestanding mode: no libc headers, no malloc (the launcher passes its
    // allocator in the options), memcpy & co as compiler built-ins.
    flags.extend(["-DFREESTANDING", "-ffreestanding"].map(String::from));
    flags.push(format!("-I{}", src.display()));
    for file in &files {
        println!("cargo:rerun-if-changed={}", src.join(file).display());
    }
    archive(cc, src, &files, &flags, out, "mgo_deflate");
}

/// Compiles `files` in parallel and collects them in `lib<name>.a` (deterministic archive).
fn archive(cc: &str, src: &Path, files: &[&str], flags: &[String], out: &Path, name: &str) {
    let objdir = out.join(name);
    std::fs::create_dir_all(&objdir).expect("creating object directory");
    let mut objects = Vec::new();
    let mut running: Vec<(Child, String)> = Vec::new();
    for file in files {
        let object = objdir.join(file.replace('/', "_") + ".o");
        let child = Command::new(cc)
            .args(flags)
            .arg("-c")
            .arg(src.join(file))
            .arg("-o")
            .arg(&object)
            .env("SOURCE_DATE_EPOCH", "0")
            .env_remove("CPATH")
            .env_remove("C_INCLUDE_PATH")
            .env_remove("GCC_EXEC_PREFIX")
            .spawn()
            .unwrap_or_else(|e| panic!("running {cc}: {e}"));
        running.push((child, file.to_string()));
        objects.push(object);
    }
    for (mut child, file) in running {
        let status = child.wait().expect("waiting for the C compiler");
        assert!(status.success(), "{cc} failed on {file}");
    }
    let lib = out.join(format!("lib{name}.a"));
    let _ = std::fs::remove_file(&lib);
    let status = Command::new("ar")
        .arg("rcD")
        .arg(&lib)
        .args(&objects)
        .status()
        .expect("running ar");
    assert!(status.success(), "ar failed for {name}");
    println!("cargo:rustc-link-lib=static={name}");
}
