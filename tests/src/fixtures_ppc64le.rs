//! ppc64le programs for the end-to-end tests, and a way to run them on this x86-64 host.
//!
//! Two kinds of probe, one build per `GOPPC64` level each:
//!
//! - `tests/fixtures/goprobe` built by Go 1.19 with `GOPPC64=power8` and `power9` (Go 1.19 knows
//!   no power10). Go records the setting in its build information, which the packer reads, and
//!   a power9 build uses ISA 3.0 instructions without asking, so it dies of SIGILL on a CPU
//!   without them: run directly under a QEMU model, these builds are Go's own verdict.
//! - `tests/fixtures/ppcprobe.c`, built by Debian's cross gcc with `-mcpu=power8`, `power9`,
//!   `power10`: each first runs an instruction of its ISA version (see the source). These give
//!   the verdict for power10, and for C programs.
//!
//! Running bundles: see crate::qemu_user.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mgo_pack::builder::LevelBuild;

use crate::fixtures::{build_cached, go_build, workspace_root};
use crate::qemu_user::{Build, Guest};

/// The emulator (Debian package `qemu-user`).
pub const QEMU: &str = "qemu-ppc64le";
/// Debian's cross compiler (package `gcc-powerpc64le-linux-gnu`).
pub const CROSS_CC: &str = "powerpc64le-linux-gnu-gcc";
/// Where Debian's ppc64el C library lives, for dynamically linked programs.
pub const SYSROOT: &str = "/usr/powerpc64le-linux-gnu";

/// The levels, in order.
pub const LEVELS: &[&str] = &["power8", "power9", "power10"];
/// The levels Go 1.19 can build.
pub const GO_LEVELS: &[&str] = &["power8", "power9"];

/// ppc64le for [`crate::qemu_user`].
#[derive(Clone, Debug)]
pub struct Ppc64le;

impl Guest for Ppc64le {
    const QEMU: &'static str = QEMU;
    const SYSROOT: &'static str = SYSROOT;
    const MACHINE_ESCAPED: &'static str = "\\x15\\x00";
    const ARCH: mgo_format::Arch = mgo_format::Arch::Ppc64le;
    const ANY_MODEL: &'static str = "power10";
    fn smoke_test() -> &'static Path {
        &c_probes()[0].path
    }
}

/// `qemu-ppc64le -cpu MODEL`.
pub type Qemu = crate::qemu_user::Qemu<Ppc64le>;

fn code(level: &str) -> u32 {
    mgo_pack::parse_level(level).expect("a ppc64le level")
}

fn c_build(name: &str, extra: &[&str]) -> Vec<Build> {
    let source = workspace_root().join("tests/fixtures/ppcprobe.c");
    let mut args = vec!["-O2", "-mcpu={march}", "-DPROBE_LEVEL=\"{level}\""];
    args.extend(extra);
    args.extend(["-o", "{out}", source.to_str().expect("a UTF-8 path")]);
    let build = LevelBuild::command(CROSS_CC, args).levels(LEVELS.iter().map(|l| code(l)));
    let outputs = build_cached(name, &build, std::slice::from_ref(&source));
    LEVELS
        .iter()
        .zip(outputs)
        .map(|(&level, path)| Build { level, path })
        .collect()
}

/// The C probe, static, one build per level.
pub fn c_probes() -> &'static [Build] {
    static CELL: OnceLock<Vec<Build>> = OnceLock::new();
    CELL.get_or_init(|| c_build("ppcprobe-static", &["-static"]))
}

/// The C probe, dynamically linked against Debian's ppc64el C library.
pub fn c_probes_dynamic() -> &'static [Build] {
    static CELL: OnceLock<Vec<Build>> = OnceLock::new();
    CELL.get_or_init(|| c_build("ppcprobe-dynamic", &[]))
}

/// `tests/fixtures/goprobe` for `GOARCH=ppc64le`, `GOPPC64=power8` and `power9` (static, CGO
/// off).
pub fn go_probes() -> &'static [Build] {
    static CELL: OnceLock<Vec<Build>> = OnceLock::new();
    CELL.get_or_init(|| {
        let src = workspace_root().join("tests/fixtures/goprobe");
        let build = go_build(["-trimpath", "-buildvcs=false", "."])
            .current_dir(&src)
            .levels(GO_LEVELS.iter().map(|l| code(l)));
        let outputs: Vec<PathBuf> = build_cached(
            "goprobe-ppc64le",
            &build,
            &[src.join("main.go"), src.join("go.mod")],
        );
        GO_LEVELS
            .iter()
            .zip(outputs)
            .map(|(&level, path)| Build { level, path })
            .collect()
    })
}
