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

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::fixtures::workspace_root;
use crate::qemu_user::{Cpu, Machine};

/// QEMU for 32-bit ARM (`EM_ARM`, 40), little-endian ELF32 executables (`ET_EXEC`, `ET_DYN`).
pub static ARM: Machine = Machine {
    qemu: "qemu-arm",
    rule: "mgo-arm",
    magic: r"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00",
    mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
    sysroot: "/usr/arm-linux-gnueabi",
};

/// The `GOARM` levels, lowest first.
pub const LEVELS: [&str; 3] = ["5", "6", "7"];

/// A built probe: its level and path.
#[derive(Clone, Debug)]
pub struct ArmBuild {
    pub level: &'static str,
    pub path: PathBuf,
}

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

/// `qemu-arm -cpu MODEL`, in a sandbox that can exec 32-bit ARM programs or without one
/// (`qemu_user::Cpu`'s commands).
#[derive(Clone, Debug)]
pub struct Qemu(Cpu);

impl std::ops::Deref for Qemu {
    type Target = Cpu;
    fn deref(&self) -> &Cpu {
        &self.0
    }
}

impl Qemu {
    pub fn new(model: &str) -> Qemu {
        Qemu(Cpu::new(&ARM, model))
    }

    /// Why 32-bit ARM bundles cannot run here, if they cannot.
    pub fn unavailable() -> Option<&'static str> {
        static CELL: OnceLock<Option<String>> = OnceLock::new();
        CELL.get_or_init(|| ARM.unavailable(&probes()[0].path))
            .as_deref()
    }

    /// The level a probe prints when it starts on this model, if it does.
    pub fn starts(&self, program: &Path) -> Option<String> {
        let out = self.command_without_binfmt(program).output().ok()?;
        if !out.status.success() {
            return None;
        }
        crate::harness::reported_level(&out)
    }

    /// The oracle: the highest level whose build starts on this model, if any does.
    pub fn oracle(&self, builds: &[ArmBuild]) -> Option<&'static str> {
        builds
            .iter()
            .filter(|b| self.starts(&b.path).as_deref() == Some(b.level))
            .map(|b| b.level)
            .next_back()
    }
}
