//! arm64 programs for the end-to-end tests, and a way to run them on this x86-64 host.
//!
//! The programs: `tests/fixtures/goprobe` built with `GOARCH=arm64` (Go 1.19 knows no `GOARM64`,
//! so that is a v8.0 build), and `tests/fixtures/cprobe.c` built with Debian's cross compiler at
//! several `-march` levels, each told the level it stands for (`-DPROBE_LEVEL`) so that its
//! report says which variant the launcher chose. Two small oracle programs execute one LSE
//! atomic and the crypto instructions respectively: whether they run under a QEMU CPU model is
//! what that model really implements, independently of what the launcher concludes.
//!
//! Running them: `qemu-aarch64 -cpu MODEL` runs the launcher, and the launcher's `execve` of the
//! chosen variant goes back to the host kernel, which cannot run an arm64 program by itself.
//! [`Qemu`] therefore runs everything inside a private user namespace whose own `binfmt_misc`
//! (Linux 6.7 and later mount one per user namespace) hands arm64 executables to
//! `qemu-aarch64` with the flags `P` (keep `argv[0]`) and `O` (open the program for QEMU: the
//! memfd is close-on-exec, so QEMU could not open it by path). Nothing outside the namespace
//! changes. The re-executed QEMU takes its CPU model from `QEMU_CPU`, which [`Qemu`] sets to the
//! same model, so the program runs on the CPU the launcher judged.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use mgo_pack::builder::LevelBuild;

use crate::fixtures::{build_cached, fixtures_dir, go_build, workspace_root};

/// The emulator (Debian package `qemu-user`).
pub const QEMU: &str = "qemu-aarch64";
/// Debian's cross compiler (package `gcc-aarch64-linux-gnu`).
pub const CROSS_CC: &str = "aarch64-linux-gnu-gcc";

/// The levels the C probe is built for, each with the `-march` the builder gives that level
/// ([`mgo_pack::builder::gcc_march`]: `v8.2,lse,crypto` is `armv8.2-a+crypto`).
pub const C_PROBE_LEVELS: &[&str] = &[
    "v8.0",
    "v8.0,crypto",
    "v8.0,lse",
    "v8.0,lse,crypto",
    "v8.1,lse",
    "v8.2,lse,crypto",
    "v8.3,lse",
    "v8.4,lse,crypto",
    "v9.0,lse",
];

/// A built arm64 program and the level it is packed as.
#[derive(Clone, Debug)]
pub struct Arm64Build {
    /// As `GOARM64` spells it: `v8.2,lse,crypto`.
    pub level: &'static str,
    pub path: PathBuf,
}

fn code(level: &str) -> u32 {
    mgo_pack::parse_level(level).expect("a valid arm64 level")
}

/// `tests/fixtures/goprobe` for `GOARCH=arm64` (static, CGO off): a v8.0 build.
pub fn go_probe_arm64() -> &'static Path {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    CELL.get_or_init(|| {
        let src = workspace_root().join("tests/fixtures/goprobe");
        let build = go_build(["-trimpath", "-buildvcs=false", "."])
            .current_dir(&src)
            .levels([code("v8.0")]);
        let outputs = build_cached(
            "goprobe-arm64",
            &build,
            &[src.join("main.go"), src.join("go.mod")],
        );
        outputs.into_iter().next().expect("one output")
    })
}

/// `CROSS_CC -O2 -static -march={march} ARGS -o {out} SOURCE` for the levels given.
fn cross_build(source: &Path, extra: &[&str], levels: &[&str]) -> LevelBuild {
    let mut args = vec!["-O2", "-static", "-march={march}"];
    args.extend(extra);
    args.extend(["-o", "{out}", source.to_str().expect("a UTF-8 path")]);
    LevelBuild::command(CROSS_CC, args).levels(levels.iter().map(|l| code(l)))
}

/// `tests/fixtures/cprobe.c` for each of [`C_PROBE_LEVELS`], static, in that order, each told
/// the level it stands for (`-DPROBE_LEVEL`) so that its report says which one runs.
pub fn c_probes_arm64() -> &'static [Arm64Build] {
    static CELL: OnceLock<Vec<Arm64Build>> = OnceLock::new();
    CELL.get_or_init(|| {
        let src = workspace_root().join("tests/fixtures/cprobe.c");
        let build = cross_build(&src, &["-DPROBE_LEVEL=\"{level}\""], C_PROBE_LEVELS);
        let outputs = build_cached("cprobe-arm64", &build, std::slice::from_ref(&src));
        C_PROBE_LEVELS
            .iter()
            .zip(outputs)
            .map(|(level, path)| Arm64Build { level, path })
            .collect()
    })
}

/// The C probe built for `level` (one of [`C_PROBE_LEVELS`]).
pub fn c_probe_arm64(level: &str) -> &'static Arm64Build {
    c_probes_arm64()
        .iter()
        .find(|b| b.level == level)
        .unwrap_or_else(|| panic!("no C probe for {level}"))
}

/// One LSE atomic (built for v8.1,lse: `-march=armv8.1-a+nocrypto`): exits 0 where the CPU implements FEAT_LSE, dies by
/// SIGILL where it does not.
const LSE_ORACLE: &str = "\
static long counter;
int main(void) { return __atomic_fetch_add(&counter, 1, __ATOMIC_SEQ_CST) != 0; }
";

/// AES, PMULL, SHA1 and SHA256 instructions (`+crypto`), the four `,crypto` stands for.
const CRYPTO_ORACLE: &str = "\
#include <arm_neon.h>
int main(void) {
    uint8x16_t r = vaeseq_u8(vdupq_n_u8(1), vdupq_n_u8(2));
    poly128_t p = vmull_p64(3, 5);
    uint32x4_t h = vsha256hq_u32(vdupq_n_u32(1), vdupq_n_u32(2), vdupq_n_u32(3));
    uint32_t s = vsha1h_u32(4);
    return (vgetq_lane_u8(r, 0) + (int)(p & 1) + vgetq_lane_u32(h, 0) + s) == 12345;
}
";

/// Prints `AT_HWCAP` and `AT_HWCAP2` as the C library reads them (`getauxval`), as
/// `hwcap=0x...` and `hwcap2=0x...` lines.
const HWCAP_REPORT: &str = "\
#include <stdio.h>
#include <sys/auxv.h>
int main(void) {
    printf(\"hwcap=%#lx\\nhwcap2=%#lx\\n\", getauxval(AT_HWCAP), getauxval(AT_HWCAP2));
    return 0;
}
";

/// The LSE oracle, the crypto oracle and the HWCAP reporter, in that order.
pub fn oracles() -> &'static [PathBuf; 3] {
    static CELL: OnceLock<[PathBuf; 3]> = OnceLock::new();
    CELL.get_or_init(|| {
        let build = |which: &str, source: &str, level: &str| {
            let dir = fixtures_dir();
            std::fs::create_dir_all(&dir).expect("creating the fixtures directory");
            // Written whole under another name first: another test process may be compiling it.
            let c = dir.join(format!("oracle-{which}.c"));
            if std::fs::read_to_string(&c).ok().as_deref() != Some(source) {
                let tmp = dir.join(format!("oracle-{which}.c.{}", std::process::id()));
                std::fs::write(&tmp, source)
                    .and_then(|()| std::fs::rename(&tmp, &c))
                    .unwrap_or_else(|e| panic!("writing {}: {e}", c.display()));
            }
            let build = cross_build(&c, &[], &[level]);
            let name = format!("oracle-arm64-{which}");
            let outputs = build_cached(&name, &build, std::slice::from_ref(&c));
            outputs.into_iter().next().expect("one output")
        };
        [
            build("lse", LSE_ORACLE, "v8.1,lse"),
            build("crypto", CRYPTO_ORACLE, "v8.0,crypto"),
            build("hwcap", HWCAP_REPORT, "v8.0"),
        ]
    })
}

/// How arm64 programs are run here: `qemu-aarch64 -cpu MODEL` inside a user namespace whose
/// `binfmt_misc` sends arm64 executables to QEMU again (see the module documentation).
#[derive(Clone, Debug)]
pub struct Qemu {
    model: String,
}

/// Registers QEMU for arm64 ELF executables (`EM_AARCH64`, `ET_EXEC` or `ET_DYN`) in the
/// namespace's own binfmt_misc, then runs the command given after the script.
const SANDBOX_SCRIPT: &str = r#"set -e
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
printf ':mgo-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:%s:PO' "$QEMU_PATH" >/proc/sys/fs/binfmt_misc/register
unset QEMU_PATH
exec "$@"
"#;

impl Qemu {
    pub fn new(model: &str) -> Qemu {
        Qemu {
            model: model.to_string(),
        }
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// Why arm64 programs cannot run here, if they cannot: no QEMU, or no private binfmt_misc
    /// (it needs user namespaces and Linux 6.7). Checked once, by running a real arm64 program
    /// through a real exec.
    pub fn unavailable() -> Option<&'static str> {
        static CELL: OnceLock<Option<String>> = OnceLock::new();
        CELL.get_or_init(|| {
            let Some(qemu) = find_in_path(QEMU) else {
                return Some(format!(
                    "{QEMU} is not installed (Debian package qemu-user)"
                ));
            };
            // An arm64 program exec'd from an x86-64 shell: only binfmt_misc can run it.
            let probe = &oracles()[2];
            let out = Command::new("unshare")
                .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
                .arg(SANDBOX_SCRIPT)
                .arg("sh")
                .arg(probe)
                .env("QEMU_PATH", &qemu)
                .env("QEMU_CPU", "max")
                .output();
            match out {
                Ok(out) if out.status.success() => None,
                Ok(out) => Some(format!(
                    "cannot register {QEMU} in a private binfmt_misc (user namespaces and Linux \
                     6.7 or later are needed): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
                Err(e) => Some(format!("cannot run unshare (util-linux): {e}")),
            }
        })
        .as_deref()
    }

    /// `qemu-aarch64 -cpu MODEL PROGRAM` in the sandbox, with a clean environment holding only
    /// `PATH` and `QEMU_CPU` (which the program sees too: QEMU passes its environment on).
    pub fn command(&self, program: &Path) -> Command {
        self.sandboxed(
            &[
                qemu_path().as_os_str(),
                "-cpu".as_ref(),
                self.model.as_ref(),
            ],
            program,
        )
    }

    /// [`Qemu::command`] with QEMU's `-strace`: the launcher's system calls on stderr (not the
    /// program's: the QEMU that binfmt_misc starts for it traces nothing).
    pub fn command_traced(&self, program: &Path) -> Command {
        let qemu = qemu_path();
        let args = [
            qemu.as_os_str(),
            "-strace".as_ref(),
            "-cpu".as_ref(),
            self.model.as_ref(),
        ];
        self.sandboxed(&args, program)
    }

    /// `PROGRAM` exec'd as is in the sandbox, as on an arm64 machine: binfmt_misc starts QEMU
    /// for it (with the model from `QEMU_CPU`).
    pub fn command_direct(&self, program: &Path) -> Command {
        self.sandboxed(&[], program)
    }

    fn sandboxed(&self, before: &[&std::ffi::OsStr], program: &Path) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args(["--user", "--map-root-user", "--mount", "sh", "-c"])
            .arg(SANDBOX_SCRIPT)
            .arg("sh")
            .args(before)
            .arg(program)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("QEMU_PATH", qemu_path())
            .env("QEMU_CPU", &self.model)
            .stdin(std::process::Stdio::null());
        cmd
    }

    /// `qemu-aarch64 -cpu MODEL PROGRAM` without the sandbox: the program runs, but anything it
    /// execs fails (the host kernel cannot run arm64 code).
    pub fn command_without_binfmt(&self, program: &Path) -> Command {
        let mut cmd = Command::new(QEMU);
        cmd.args(["-cpu", &self.model])
            .arg(program)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(std::process::Stdio::null());
        cmd
    }

    /// Whether `program` exits 0 on this model (an oracle dies by SIGILL when it does not).
    pub fn runs(&self, program: &Path) -> bool {
        self.command_without_binfmt(program)
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// `AT_HWCAP` and `AT_HWCAP2` as this model reports them to programs.
    pub fn hwcaps(&self) -> (u64, u64) {
        let out = self
            .command_without_binfmt(&oracles()[2])
            .output()
            .expect("running the HWCAP reporter");
        let text = String::from_utf8_lossy(&out.stdout);
        let word = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
                .unwrap_or_else(|| panic!("no {key} in the HWCAP report: {text}"))
        };
        (word("hwcap="), word("hwcap2="))
    }
}

fn qemu_path() -> PathBuf {
    find_in_path(QEMU).unwrap_or_else(|| PathBuf::from(QEMU))
}

fn find_in_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}
