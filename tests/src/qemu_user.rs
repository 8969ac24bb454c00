//! Running programs of another architecture on this x86-64 host, for the architectures whose
//! tests share one shape (riscv64, ppc64le): `qemu-ARCH -cpu MODEL` runs the launcher, and its
//! exec of the chosen variant goes to the host kernel, which hands that architecture's
//! executables back to QEMU through a private binfmt_misc (flags `P` and `O`) registered in a
//! user namespace, as `fixtures_arm64` does for arm64.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// One emulated architecture.
pub trait Guest: 'static {
    /// The emulator (Debian package `qemu-user`).
    const QEMU: &'static str;
    /// Where Debian's C library for the architecture lives, for dynamically linked programs.
    const SYSROOT: &'static str;
    /// Its ELF `e_machine`, as the two `\xNN` escapes of a binfmt_misc magic.
    const MACHINE_ESCAPED: &'static str;
    /// Its ELF class (`EI_CLASS`) as one such escape: ELF64 unless the guest says otherwise.
    const CLASS_ESCAPED: &'static str = r"\x02";
    /// The architecture, as bundles name it.
    const ARCH: mgo_format::Arch;
    /// A model every program of the architecture runs on.
    const ANY_MODEL: &'static str;
    /// A static program that exits 0: what checks that the sandbox can exec.
    fn smoke_test() -> &'static Path;
}

/// A build of a probe for one level: its name as the level's Go setting spells it, its path.
#[derive(Clone, Debug)]
pub struct Build {
    pub level: &'static str,
    pub path: PathBuf,
}

/// Registers QEMU (`$QEMU_PATH`) for little-endian `ET_EXEC` and `ET_DYN` executables of the
/// class in `$CLASS` with the machine in `$MACHINE` in the namespace's own binfmt_misc, then
/// runs the command given after the script.
const SANDBOX_SCRIPT: &str = r#"set -e
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
printf ":mgo-guest:M::\x7fELF${CLASS}\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00${MACHINE}:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:%s:PO" "$QEMU_PATH" >/proc/sys/fs/binfmt_misc/register
unset QEMU_PATH MACHINE CLASS
exec "$@"
"#;

/// `qemu-ARCH -cpu MODEL`, in a sandbox that can exec the architecture's programs or without
/// one.
#[derive(Clone, Debug)]
pub struct Qemu<G> {
    model: String,
    guest: PhantomData<G>,
}

impl<G: Guest> Qemu<G> {
    pub fn new(model: &str) -> Qemu<G> {
        Qemu {
            model: model.to_string(),
            guest: PhantomData,
        }
    }

    pub fn arch() -> mgo_format::Arch {
        G::ARCH
    }

    /// Why the architecture's bundles cannot run here, if they cannot: no QEMU, or no private
    /// binfmt_misc (user namespaces and Linux 6.7 are needed). Checked once per architecture,
    /// by exec'ing a real program of it.
    pub fn unavailable() -> Option<&'static str> {
        if find_in_path(G::QEMU).is_none() {
            return Some(Box::leak(
                format!("{} is not installed (Debian package qemu-user)", G::QEMU).into_boxed_str(),
            ));
        }
        sandbox_problem::<G>()
    }

    /// `qemu-ARCH -cpu MODEL PROGRAM` in the sandbox, with a clean environment holding only
    /// `PATH`, `QEMU_CPU` and `QEMU_LD_PREFIX` (for dynamically linked programs).
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = sandbox::<G>();
        cmd.arg(qemu_path::<G>())
            .args(["-cpu", &self.model])
            .arg(program)
            .env("QEMU_CPU", &self.model)
            .env("QEMU_LD_PREFIX", G::SYSROOT);
        cmd
    }

    /// `qemu-ARCH -cpu MODEL PROGRAM` without the sandbox: anything the program execs fails.
    pub fn command_without_binfmt(&self, program: &Path) -> Command {
        let mut cmd = Command::new(G::QEMU);
        cmd.args(["-cpu", &self.model])
            .arg(program)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("QEMU_LD_PREFIX", G::SYSROOT)
            .stdin(Stdio::null());
        cmd
    }

    /// Whether `program` exits 0 on this model (a probe dies by SIGILL when it does not).
    pub fn runs(&self, program: &Path) -> bool {
        self.command_without_binfmt(program)
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// The oracle: the highest level whose build starts on this model, if any does (`builds`
    /// in ascending order of level).
    pub fn oracle(&self, builds: &[Build]) -> Option<&'static str> {
        builds
            .iter()
            .filter(|b| self.runs(&b.path))
            .map(|b| b.level)
            .next_back()
    }
}

/// `unshare ... sh -c SCRIPT sh`, waiting for the command to run in the sandbox.
fn sandbox<G: Guest>() -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg(SANDBOX_SCRIPT)
        .arg("sh")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("QEMU_PATH", qemu_path::<G>())
        .env("MACHINE", G::MACHINE_ESCAPED)
        .env("CLASS", G::CLASS_ESCAPED)
        .stdin(Stdio::null());
    cmd
}

/// What stops each guest's programs from running in the sandbox (`None`: nothing), by emulator.
type Problems = Mutex<Vec<(&'static str, Option<&'static str>)>>;

/// Runs the guest's smoke test through a real exec in the sandbox, once per guest.
fn sandbox_problem<G: Guest>() -> Option<&'static str> {
    static PROBLEMS: OnceLock<Problems> = OnceLock::new();
    let problems = PROBLEMS.get_or_init(Default::default);
    if let Some(&(_, known)) = problems.lock().unwrap().iter().find(|(q, _)| *q == G::QEMU) {
        return known;
    }
    let out = sandbox::<G>()
        .arg(G::smoke_test())
        .env("QEMU_CPU", G::ANY_MODEL)
        .output();
    let problem = match out {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "cannot register {} in a private binfmt_misc (user namespaces and Linux 6.7 or later \
             are needed): {}",
            G::QEMU,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run unshare (util-linux): {e}")),
    };
    let problem: Option<&'static str> = problem.map(|p| &*Box::leak(p.into_boxed_str()));
    problems.lock().unwrap().push((G::QEMU, problem));
    problem
}

fn qemu_path<G: Guest>() -> PathBuf {
    find_in_path(G::QEMU).unwrap_or_else(|| PathBuf::from(G::QEMU))
}

fn find_in_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}
