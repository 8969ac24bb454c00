//! riscv64 programs for the end-to-end tests, and a way to run them on this x86-64 host.
//!
//! Go 1.19 cannot build `GORISCV64` profiles, so the probe is C: `tests/fixtures/rvprobe.c`,
//! built with Debian's cross gcc 12 once per profile, with that profile's `-march` and told
//! which it is (`-DPROBE_LEVEL`). Each build first executes instructions of every extension its
//! profile needs (see the source), so it dies of SIGILL on a CPU without one: running each build
//! directly under a QEMU model is the oracle for that model.
//!
//! Running bundles: `qemu-riscv64 -cpu MODEL` runs the launcher; its exec of the chosen variant
//! goes to the host kernel, which hands riscv64 executables back to QEMU through a private
//! binfmt_misc (flags `P` and `O`), as `fixtures_arm64` does for arm64 (see crate::qemu_user).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::fixtures::target_dir;
use crate::fixtures::workspace_root;
use crate::qemu_user::Guest;

/// The emulator (Debian package `qemu-user`, from bookworm-backports: QEMU 8.2 added
/// `riscv_hwprobe`).
pub const QEMU: &str = "qemu-riscv64";
/// Debian's cross compiler (package `gcc-riscv64-linux-gnu`).
pub const CROSS_CC: &str = "riscv64-linux-gnu-gcc";
/// Where Debian's riscv64 C library lives, for dynamically linked programs.
pub const SYSROOT: &str = "/usr/riscv64-linux-gnu";

/// The profiles, with the `-march` gcc 12 takes for what each needs (Zfa and Zicond, which it
/// does not know, are used through raw encodings in the probe).
pub const PROFILES: &[(&str, &str)] = &[
    ("rva20u64", "rv64gc"),
    ("rva22u64", "rv64gc_zba_zbb_zbs"),
    ("rva23u64", "rv64gcv_zba_zbb_zbs"),
];

/// A built probe: its profile and path.
pub type RvBuild = crate::qemu_user::Build;

fn build(name: &str, extra: &[&str]) -> Vec<RvBuild> {
    let dir = target_dir().join("fixtures-riscv64");
    std::fs::create_dir_all(&dir).expect("creating the fixture directory");
    let source = workspace_root().join("tests/fixtures/rvprobe.c");
    PROFILES
        .iter()
        .map(|&(level, march)| {
            let out = dir.join(format!("{name}-{level}"));
            let status = Command::new(CROSS_CC)
                .args(["-O2", &format!("-march={march}"), "-mabi=lp64d"])
                .arg(format!("-DPROBE_LEVEL={}", &level[3..5]))
                .args(extra)
                .arg("-o")
                .arg(&out)
                .arg(&source)
                .status()
                .unwrap_or_else(|e| panic!("running {CROSS_CC}: {e}"));
            assert!(status.success(), "{CROSS_CC} failed for {level}");
            RvBuild { level, path: out }
        })
        .collect()
}

/// The probe, static, one build per profile.
pub fn probes() -> &'static [RvBuild] {
    static CELL: OnceLock<Vec<RvBuild>> = OnceLock::new();
    CELL.get_or_init(|| build("rvprobe-static", &["-static"]))
}

/// The probe, dynamically linked against Debian's riscv64 C library.
pub fn probes_dynamic() -> &'static [RvBuild] {
    static CELL: OnceLock<Vec<RvBuild>> = OnceLock::new();
    CELL.get_or_init(|| build("rvprobe-dynamic", &[]))
}

/// riscv64 for [`crate::qemu_user`].
#[derive(Clone, Debug)]
pub struct Riscv64;

impl Guest for Riscv64 {
    const QEMU: &'static str = QEMU;
    const SYSROOT: &'static str = SYSROOT;
    const MACHINE_ESCAPED: &'static str = "\\xf3\\x00";
    const ARCH: mgo_format::Arch = mgo_format::Arch::Riscv64;
    const ANY_MODEL: &'static str = "max";
    fn smoke_test() -> &'static Path {
        &probes()[0].path
    }
}

/// `qemu-riscv64 -cpu MODEL`.
pub type Qemu = crate::qemu_user::Qemu<Riscv64>;

/// `tests/fixtures/goprobe` for `GOARCH=riscv64` (static, CGO off). Go 1.19 knows no
/// `GORISCV64`, so whatever the builder sets, this is an rva20u64 build that records no profile.
pub fn go_probe_riscv64() -> &'static Path {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    CELL.get_or_init(|| {
        let src = workspace_root().join("tests/fixtures/goprobe");
        let build = crate::fixtures::go_build(["-trimpath", "-buildvcs=false", "."])
            .current_dir(&src)
            .levels([20]);
        let outputs = crate::fixtures::build_cached(
            "goprobe-riscv64",
            &build,
            &[src.join("main.go"), src.join("go.mod")],
        );
        outputs.into_iter().next().expect("one output")
    })
}
