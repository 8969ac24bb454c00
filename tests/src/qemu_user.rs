//! Running foreign-architecture programs under `qemu-ARCH -cpu MODEL` on this host, including the
//! programs they exec: a private binfmt_misc (in a user and mount namespace, flags `P` and `O`)
//! hands the executables of that machine back to the same QEMU, with the same model, so that
//! a launcher's exec of its memfd runs under the CPU the launcher judged.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One emulated machine: its QEMU, the binfmt_misc rule that recognises its executables, and
/// the C library for dynamically linked ones.
#[derive(Debug)]
pub struct Machine {
    /// `qemu-arm`.
    pub qemu: &'static str,
    /// The binfmt_misc rule's name.
    pub rule: &'static str,
    /// The first 20 bytes of the machine's executables (ELF ident, `e_type`, `e_machine`), as
    /// binfmt_misc escapes (`\x7fELF...`), and the mask applied before comparing.
    pub magic: &'static str,
    pub mask: &'static str,
    /// `QEMU_LD_PREFIX`: where the machine's C library lives.
    pub sysroot: &'static str,
}

impl Machine {
    /// The shell script that registers the rule in the namespace's own binfmt_misc, then runs
    /// the command given after it.
    fn script(&self) -> String {
        format!(
            "set -e\nmount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc\nprintf \
             ':{}:M::{}:{}:%s:PO' \"$QEMU_PATH\" >/proc/sys/fs/binfmt_misc/register\nunset \
             QEMU_PATH\nexec \"$@\"\n",
            self.rule, self.magic, self.mask
        )
    }

    fn path(&self) -> PathBuf {
        find_in_path(self.qemu).unwrap_or_else(|| PathBuf::from(self.qemu))
    }

    /// Why this machine's programs cannot be exec'd here, if they cannot: no QEMU, or no
    /// private binfmt_misc (user namespaces and Linux 6.7 are needed). `probe` is any program
    /// of the machine that exits 0 on QEMU's `max` model.
    pub fn unavailable(&self, probe: &Path) -> Option<String> {
        if find_in_path(self.qemu).is_none() {
            return Some(format!(
                "{} is not installed (Debian package qemu-user)",
                self.qemu
            ));
        }
        let out = Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
            .arg(self.script())
            .arg("sh")
            .arg(probe)
            .env("QEMU_PATH", self.path())
            .env("QEMU_CPU", "max")
            .output();
        match out {
            Ok(out) if out.status.success() => None,
            Ok(out) => Some(format!(
                "cannot register {} in a private binfmt_misc (user namespaces and Linux 6.7 or \
                 later are needed): {}",
                self.qemu,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => Some(format!("cannot run unshare (util-linux): {e}")),
        }
    }

    /// `qemu -cpu MODEL PROGRAM` in the sandbox, with a clean environment holding only `PATH`,
    /// `QEMU_CPU` (which the programs it execs run under) and `QEMU_LD_PREFIX`.
    pub fn command(&self, model: &str, program: &Path) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args(["--user", "--map-root-user", "--mount", "sh", "-c"])
            .arg(self.script())
            .arg("sh")
            .arg(self.path())
            .args(["-cpu", model])
            .arg(program)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("QEMU_PATH", self.path())
            .env("QEMU_CPU", model)
            .env("QEMU_LD_PREFIX", self.sysroot)
            .stdin(Stdio::null());
        cmd
    }

    /// `qemu -cpu MODEL PROGRAM` without the sandbox: anything the program execs fails.
    pub fn command_without_binfmt(&self, model: &str, program: &Path) -> Command {
        let mut cmd = Command::new(self.qemu);
        cmd.args(["-cpu", model])
            .arg(program)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("QEMU_LD_PREFIX", self.sysroot)
            .stdin(Stdio::null());
        cmd
    }
}

/// One CPU model of a machine: `qemu -cpu MODEL`, in the sandbox or without it.
#[derive(Clone, Debug)]
pub struct Cpu {
    machine: &'static Machine,
    model: String,
}

impl Cpu {
    pub fn new(machine: &'static Machine, model: &str) -> Cpu {
        Cpu {
            machine,
            model: model.to_string(),
        }
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// `qemu -cpu MODEL PROGRAM` in the sandbox, where what it execs runs under the same model.
    pub fn command(&self, program: &Path) -> Command {
        self.machine.command(&self.model, program)
    }

    /// `qemu -cpu MODEL PROGRAM` without the sandbox: anything the program execs fails.
    pub fn command_without_binfmt(&self, program: &Path) -> Command {
        self.machine.command_without_binfmt(&self.model, program)
    }

    /// Whether `program` exits 0 on this model.
    pub fn runs(&self, program: &Path) -> bool {
        self.command_without_binfmt(program)
            .output()
            .is_ok_and(|o| o.status.success())
    }
}

pub fn find_in_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}
