//! `mgo-pack cargo`: real cargo builds of the Rust probe (`tests/fixtures/rustprobe`), which
//! reports the target features it was compiled with, and of small crates written here.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mgo_tests::fixtures::workspace_root;
use mgo_tests::harness::{command, run, scratch_dir, stderr, stdout};

/// The probe's crate copied into a scratch directory (it is not part of this workspace).
fn probe_crate(name: &str) -> PathBuf {
    let dir = scratch_dir(name);
    let from = workspace_root().join("tests/fixtures/rustprobe");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    for file in ["Cargo.toml", "src/main.rs"] {
        std::fs::copy(from.join(file), dir.join(file)).unwrap();
    }
    dir
}

/// `mgo-pack cargo ARGS` in `dir`, building into `dir/target`, without the caller's rustflags.
fn mgo_pack_cargo(dir: &Path, args: &[&str], rustflags: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mgo-pack"));
    cmd.arg("cargo")
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("MGO_COMPRESS");
    if let Some(flags) = rustflags {
        cmd.env("RUSTFLAGS", flags);
    }
    cmd.output().unwrap()
}

/// The features whose text is in the program file: those it was compiled with.
fn compiled_features(program: &Path) -> Vec<String> {
    let bytes = std::fs::read(program).unwrap();
    [
        "sse2",
        "cmpxchg16b",
        "popcnt",
        "sse4.2",
        "avx2",
        "bmi2",
        "fma",
        "movbe",
        "avx512f",
        "avx512bw",
        "avx512vl",
        "lse",
        "crc",
        "rdm",
        "rcpc",
        "dotprod",
        "aes",
        "sha2",
    ]
    .iter()
    .filter(|f| {
        let marker = format!("mgo-feature={f}");
        bytes.windows(marker.len()).any(|w| w == marker.as_bytes())
    })
    .map(|f| f.to_string())
    .collect()
}

/// What each level must have been compiled with, and without.
fn expect_level(features: &[String], level: u32, what: &str) {
    let has = |f: &str| features.iter().any(|x| x == f);
    assert!(!has("aes"), "{what}: no x86-64 level includes AES-NI");
    let wanted = [
        ("sse2", 1),
        ("cmpxchg16b", 2),
        ("popcnt", 2),
        ("sse4.2", 2),
        ("avx2", 3),
        ("bmi2", 3),
        ("fma", 3),
        ("movbe", 3),
        ("avx512f", 4),
        ("avx512bw", 4),
        ("avx512vl", 4),
    ];
    for (feature, from) in wanted {
        assert_eq!(
            has(feature),
            level >= from,
            "{what}: built for v{level}, compiled with {features:?}"
        );
    }
}

/// The highest x86-64 level this CPU runs (each needs all of the one below).
fn cpu_level() -> u32 {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags: Vec<&str> = cpu
        .lines()
        .find_map(|l| l.strip_prefix("flags"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let all = |names: &[&str]| names.iter().all(|n| flags.contains(n));
    let mut level = 1;
    for (next, names) in [
        (2, &["cx16", "popcnt", "sse4_2", "ssse3"][..]),
        (3, &["avx2", "bmi1", "bmi2", "fma", "abm", "movbe"][..]),
        (
            4,
            &["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"][..],
        ),
    ] {
        if !all(names) {
            break;
        }
        level = next;
    }
    level
}

fn field(out: &Output, key: &str) -> String {
    stdout(out)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {}\n{}", stdout(out), stderr(out)))
        .to_string()
}

#[test]
fn each_build_has_its_levels_features_and_goamd64_runs_it() {
    let dir = probe_crate("cargo-levels");
    let out = mgo_pack_cargo(&dir, &[], Some("--cfg mgo_user_flag"));
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    for level in ["v1", "v2", "v3", "v4"] {
        assert!(
            err.lines().any(|l| l.starts_with(&format!("[{level}] "))),
            "no output line of {level}: {err}"
        );
    }
    // Without -o: target/mgo-pack/BIN.
    let bundle = dir.join("target/mgo-pack/rustprobe");
    let cpu = cpu_level();
    for (level, cpu_name) in [
        (1, "x86-64"),
        (2, "x86-64-v2"),
        (3, "x86-64-v3"),
        (4, "x86-64-v4"),
    ] {
        // Each level in its own target directory, compiled with its own features.
        let build = dir.join(format!("target/mgo-pack/{cpu_name}/release/rustprobe"));
        expect_level(&compiled_features(&build), level, cpu_name);
        let extracted = dir.join(format!("extracted-v{level}"));
        let extract = Command::new(env!("CARGO_BIN_EXE_mgo-pack"))
            .args(["extract", "--variant", &format!("v{level}"), "-o"])
            .arg(&extracted)
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(extract.status.success(), "{}", stderr(&extract));
        expect_level(&compiled_features(&extracted), level, "packed");
        if level > cpu {
            mgo_tests::harness::skipped(
                "each_build_has_its_levels_features_and_goamd64_runs_it",
                &format!("running v{level}: this CPU is x86-64-v{cpu}"),
            );
            continue;
        }
        // GOAMD64=vN runs the vN build, which says so itself.
        let ran = run(command(&bundle).env("GOAMD64", format!("v{level}")));
        assert!(ran.status.success(), "{}", stderr(&ran));
        assert_eq!(field(&ran, "level"), format!("v{level}"));
        assert_eq!(field(&ran, "user_flag"), "true", "RUSTFLAGS were dropped");
        let features: Vec<String> = stdout(&ran)
            .lines()
            .filter_map(|l| l.strip_prefix("feature=").map(String::from))
            .collect();
        expect_level(&features, level, "run");
    }
}

/// A workspace with a package of two binaries and one that does not compile.
fn workspace(name: &str) -> PathBuf {
    let dir = scratch_dir(name);
    let write = |path: &str, text: &str| {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "Cargo.toml",
        "[workspace]\nmembers = [\"tools\", \"broken\"]\nresolver = \"2\"\n",
    );
    let package = |name: &str| {
        format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n")
    };
    write("tools/Cargo.toml", &package("tools"));
    let main = |text: &str| {
        format!(
            "fn main() {{ println!(\"{text} avx2={{}}\", cfg!(target_feature = \"avx2\")); }}\n"
        )
    };
    write("tools/src/bin/alpha.rs", &main("alpha"));
    write("tools/src/bin/beta.rs", &main("beta"));
    write("broken/Cargo.toml", &package("broken"));
    write(
        "broken/src/main.rs",
        "fn main() { let x: u32 = \"not a number\"; }\n",
    );
    dir
}

#[test]
fn several_binaries_need_bin_and_levels_pick_a_subset() {
    let dir = workspace("cargo-bins");
    let out = mgo_pack_cargo(&dir, &["-p", "tools"], None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("package tools has several binaries: alpha, beta; choose one with --bin"),
        "{err}"
    );

    let out = mgo_pack_cargo(
        &dir,
        &[
            "-p", "tools", "--bin", "beta", "--levels", "v1,v3", "-o", "beta",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let bundle = dir.join("beta");
    let info = Command::new(env!("CARGO_BIN_EXE_mgo-pack"))
        .args(["inspect", "--json"])
        .arg(&bundle)
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let levels: Vec<&str> = info["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["v1", "v3"]);
    // No RUSTFLAGS: the level reaches rustc through cargo's build.rustflags.
    let ran = run(command(&bundle).env("GOAMD64", "v1"));
    assert_eq!(stdout(&ran), "beta avx2=false\n", "{}", stderr(&ran));
    if cpu_level() >= 3 {
        let ran = run(command(&bundle).env("GOAMD64", "v3"));
        assert_eq!(stdout(&ran), "beta avx2=true\n", "{}", stderr(&ran));
    }
}

#[test]
fn first_failure_stops_the_rest_and_leaves_no_bundle() {
    let dir = workspace("cargo-fail");
    let out = mgo_pack_cargo(&dir, &["-p", "broken"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.starts_with("[v1] ") && l.contains("mismatched types")),
        "{err}"
    );
    assert!(!err.contains("[v2]"), "v2 was built after v1 failed: {err}");
    assert!(
        err.lines().last().unwrap().starts_with(
            "mgo-pack: error: cargo build failed for -Ctarget-cpu=x86-64 (exit status"
        ),
        "{err}"
    );
    assert!(!dir.join("target/mgo-pack/broken").exists());
}

#[test]
fn arm64_builds_have_their_levels_features() {
    const TARGET: &str = "aarch64-unknown-linux-musl";
    const LINKER: &str = "aarch64-linux-gnu-gcc";
    let test = "arm64_builds_have_their_levels_features";
    let sysroot = Command::new("rustc").args(["--print", "sysroot"]).output();
    let installed = sysroot.is_ok_and(|o| {
        Path::new(stdout(&o).trim())
            .join("lib/rustlib")
            .join(TARGET)
            .is_dir()
    });
    if !installed {
        mgo_tests::harness::skipped(test, &format!("the Rust target {TARGET} is not installed"));
        return;
    }
    if Command::new(LINKER).arg("--version").output().is_err() {
        mgo_tests::harness::skipped(test, &format!("no {LINKER} to link arm64 programs"));
        return;
    }
    let dir = probe_crate("cargo-arm64");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mgo-pack"));
    cmd.args(["cargo", "--target", TARGET, "-o", "rustprobe"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER", LINKER)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("MGO_COMPRESS");
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let info = mgo_pack::inspect(dir.join("rustprobe")).unwrap();
    assert_eq!(info.arch, mgo_pack::Arch::Aarch64);
    let arm64 = ["lse", "crc", "rdm", "rcpc", "dotprod", "aes", "sha2"];
    for (level, dir_name, wanted) in [
        ("v8.0", "v8.0", &[][..]),
        ("v8.0,crypto", "v8.0_crypto", &["aes", "sha2"][..]),
        (
            "v8.2,lse,crypto",
            "v8.2_lse_crypto",
            &["lse", "crc", "rdm", "aes", "sha2"][..],
        ),
        ("v8.4,lse,crypto", "v8.4_lse_crypto", &arm64[..]),
    ] {
        let code = mgo_pack::parse_level(level).unwrap();
        assert!(
            info.variants.iter().any(|v| v.level == code),
            "no {level} in the bundle"
        );
        let build = dir
            .join("target/mgo-pack")
            .join(dir_name)
            .join(TARGET)
            .join("release/rustprobe");
        let features = compiled_features(&build);
        let compiled: Vec<&str> = arm64
            .iter()
            .copied()
            .filter(|f| features.iter().any(|x| x == f))
            .collect();
        assert_eq!(compiled, wanted, "{level}");
    }
}
