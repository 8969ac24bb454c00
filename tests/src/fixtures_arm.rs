//! 32-bit ARM programs for the end-to-end tests, and a way to run them on this x86-64 host.
//!
//! The probe is Go: `tests/fixtures/armprobe`, built by Go 1.19 once per `GOARM` level (static,
//! CGO off). Go's runtime refuses to start on a CPU without the floating-point unit the level
//! needs, and the code of a GOARM=6 or 7 build uses that level's instructions, so running each
//! build directly under a QEMU model is Go's own verdict on that model: the oracle.
//!
//! Running bundles: `qemu-arm -cpu MODEL` runs the launcher; its exec of the chosen variant goes
//! to the host kernel, which hands 32-bit ARM executables back to QEMU through a private
//! binfmt_misc (see `qemu_user`).

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use crate::fixtures::workspace_root;
use crate::qemu_user::Guest;

/// The `GOARM` levels, lowest first.
pub const LEVELS: [&str; 3] = ["5", "6", "7"];

/// A built probe: its level and path.
pub type ArmBuild = crate::qemu_user::Build;

/// `tests/fixtures/armprobe` built with `GOARCH=arm GOARM=5, 6, 7`.
pub fn probes() -> &'static [ArmBuild] {
    static CELL: OnceLock<Vec<ArmBuild>> = OnceLock::new();
    CELL.get_or_init(|| {
        let src = workspace_root().join("tests/fixtures/armprobe");
        let build = crate::fixtures::go_build(["-trimpath", "-buildvcs=false", "."])
            .current_dir(&src)
            .levels([5, 6, 7]);
        let outputs = crate::fixtures::build_cached(
            "armprobe",
            &build,
            &[src.join("main.go"), src.join("go.mod")],
        );
        LEVELS
            .iter()
            .zip(outputs)
            .map(|(&level, path)| ArmBuild { level, path })
            .collect()
    })
}

/// Debian's soft-float cross compiler (package `gcc-arm-linux-gnueabi`).
pub const CROSS_CC: &str = "arm-linux-gnueabi-gcc";

/// `tests/fixtures/cprobe.c` built by the cross compiler once per level, linked dynamically
/// against Debian's armel C library (`/usr/arm-linux-gnueabi`, QEMU's `QEMU_LD_PREFIX`): ARMv5TE
/// soft-float, ARMv6 with VFPv2, ARMv7-A with VFPv3-D16 (`-mfloat-abi=softfp`: VFP code under
/// the armel calling convention), each saying its level (`level="6"`).
pub fn c_probes() -> &'static [ArmBuild] {
    static CELL: OnceLock<Vec<ArmBuild>> = OnceLock::new();
    CELL.get_or_init(|| {
        let dir = crate::fixtures::target_dir().join("fixtures-arm");
        std::fs::create_dir_all(&dir).expect("creating the fixture directory");
        let source = workspace_root().join("tests/fixtures/cprobe.c");
        let flags = [
            ["-march=armv5te", "-mfloat-abi=soft"],
            ["-march=armv6+fp", "-mfloat-abi=softfp"],
            ["-march=armv7-a+vfpv3-d16", "-mfloat-abi=softfp"],
        ];
        LEVELS
            .iter()
            .zip(flags)
            .map(|(&level, flags)| {
                let out = dir.join(format!("cprobe-{level}"));
                let status = Command::new(CROSS_CC)
                    .arg("-O2")
                    .args(flags)
                    .arg(format!("-DPROBE_LEVEL=\"{level}\""))
                    .arg("-o")
                    .arg(&out)
                    .arg(&source)
                    .status()
                    .unwrap_or_else(|e| panic!("running {CROSS_CC}: {e}"));
                assert!(status.success(), "{CROSS_CC} failed for GOARM={level}");
                ArmBuild { level, path: out }
            })
            .collect()
    })
}

/// 32-bit ARM for [`crate::qemu_user`]: little-endian ELF32 executables, `EM_ARM` (40).
#[derive(Clone, Debug)]
pub struct Arm;

impl Guest for Arm {
    const QEMU: &'static str = "qemu-arm";
    const SYSROOT: &'static str = "/usr/arm-linux-gnueabi";
    const MACHINE_ESCAPED: &'static str = "\\x28\\x00";
    const CLASS_ESCAPED: &'static str = "\\x01";
    const ARCH: mgo_format::Arch = mgo_format::Arch::Arm;
    const ANY_MODEL: &'static str = "max";
    fn smoke_test() -> &'static Path {
        &probes()[0].path
    }
}

/// `qemu-arm -cpu MODEL`. Its oracle is the highest build that exits 0 when run directly: a Go
/// build above the model's level dies by SIGILL or Go's own refusal.
pub type Qemu = crate::qemu_user::Qemu<Arm>;
