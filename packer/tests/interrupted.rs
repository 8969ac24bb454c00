//! A pack ended by a signal while the bundle is being written leaves nothing behind: the real
//! `mgo-pack` packs two large real programs (the static C probe, padded to 64 MiB each), the
//! test catches it while the bundle file is open and unfinished, sends the signal, and checks
//! that the output's directory holds exactly what it held before, the existing output unchanged.
//!
//! Where the file system has `O_TMPFILE` (ext4 and tmpfs do) the bundle is written to an unnamed
//! file, so that SIGKILL too leaves nothing. Without it the packer writes a named temporary file
//! and removes it on SIGINT, SIGTERM, SIGHUP and the like (SIGUSR1 is checked too); that path is forced by making `open(dir,
//! O_TMPFILE)` fail with EOPNOTSUPP, as on a file system without it, with strace's fault
//! injection restricted to the output directory's own path.

use std::fs;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use mgo_tests::fixtures::c_probe_static;
use mgo_tests::harness::scratch_dir;

const MGO_PACK: &str = env!("CARGO_BIN_EXE_mgo-pack");
const SENTINEL: &[u8] = b"an earlier bundle, which an interrupted pack must leave alone\n";
const PADDED_LEN: u64 = 64 << 20;
/// Runs lost to a pack that finished before it could be caught are tried again, this many times
/// (on a loaded machine the test's polling can be starved through ten whole packs).
const ATTEMPTS: usize = 40;

fn skipped(test: &str, why: &str) {
    // Not eprintln!: the test harness captures that and shows it only for failing tests.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}");
}

/// Two real programs made large: a static C probe with bytes appended after its last section,
/// which the kernel and every ELF reader ignore.
fn large_inputs() -> [PathBuf; 2] {
    let dir = scratch_dir("interrupted-inputs");
    [0, 1].map(|i| {
        let path = dir.join(format!("probe-padded-v{}", i + 1));
        let mut bytes = fs::read(&c_probe_static()[i]).unwrap();
        bytes.resize(PADDED_LEN as usize, 0xa5 ^ i as u8);
        fs::write(&path, bytes).unwrap();
        path
    })
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// How mgo-pack is run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// As it is: the file system's `O_TMPFILE` is used.
    Plain,
    /// Under strace, `open(dir, O_TMPFILE)` failing with EOPNOTSUPP.
    NoTmpfile,
}

/// The pid of a process writing the bundle into `dir`, and how it was seen: a named temporary
/// file in `dir` (whose name holds the pid), or an unnamed file among `child`'s descriptors.
fn writing(dir: &Path, child: u32) -> Option<(i32, &'static str)> {
    if let Ok(fds) = fs::read_dir(format!("/proc/{child}/fd")) {
        for fd in fds.flatten() {
            let Ok(target) = fs::read_link(fd.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            // An O_TMPFILE file reads `DIR/#INODE (deleted)` until it is linked.
            if target.starts_with(&format!("{}/#", dir.display())) && target.ends_with(" (deleted)")
            {
                return Some((child as i32, "an unnamed file"));
            }
        }
    }
    for name in listing(dir) {
        if let Some(rest) = name.strip_prefix(".mgo-pack-") {
            let pid = rest.split('-').next()?.parse().ok()?;
            return Some((pid, "a named temporary file"));
        }
    }
    None
}

/// Packs into `dir/out` and sends `signal` while the bundle is written. Returns how the write was
/// seen, or None when the pack finished first (nothing to check then).
fn interrupt(dir: &Path, inputs: &[PathBuf; 2], mode: Mode, signal: i32) -> Option<&'static str> {
    let out = dir.join("out");
    fs::write(&out, SENTINEL).unwrap();
    let before = listing(dir);
    let mut cmd = match mode {
        Mode::Plain => Command::new(MGO_PACK),
        Mode::NoTmpfile => {
            let mut cmd = Command::new("strace");
            cmd.args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=openat", "-P"])
                .arg(dir)
                .args(["-e", "inject=openat:error=EOPNOTSUPP", "--", MGO_PACK]);
            cmd
        }
    };
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .arg("-o")
        .arg(&out)
        .args(inputs);
    let mut child: Child = cmd.spawn().expect("running mgo-pack");
    let seen = loop {
        if let Some((pid, how)) = writing(dir, child.id()) {
            // SAFETY: kill with a pid and a signal number. It fails only when the packer has
            // already finished and been reaped (by strace): a lost race, tried again.
            let sent = unsafe { libc::kill(pid, signal) } == 0;
            break sent.then_some(how);
        }
        if child.try_wait().unwrap().is_some() {
            break None;
        }
        std::thread::yield_now();
    };
    let result = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&result.stderr);
    let seen = seen?;
    if fs::read(&out).unwrap() != SENTINEL {
        // The bundle was in place before the signal came: a lost race, not a failure.
        return None;
    }
    let what = format!("{mode:?}, signal {signal}, seen writing {seen}");
    if mode == Mode::Plain {
        assert_eq!(
            result.status.signal(),
            Some(signal),
            "{what}: {:?} {err}",
            result.status
        );
    }
    assert_eq!(listing(dir), before, "{what}: files left behind; {err}");
    Some(seen)
}

/// Tries until the pack is caught in the middle of writing.
fn check(
    test: &str,
    name: &str,
    inputs: &[PathBuf; 2],
    mode: Mode,
    signal: i32,
) -> Option<&'static str> {
    if mode == Mode::NoTmpfile {
        // strace must be there, and allowed to trace (ptrace may be denied in a container).
        let traced = Command::new("strace")
            .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=none", "true"])
            .output();
        match traced {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                let why = String::from_utf8_lossy(&out.stderr);
                skipped(test, &format!("strace cannot trace here: {}", why.trim()));
                return None;
            }
            Err(e) => {
                let why =
                    format!("strace not available ({e}); scripts/install-deps.sh installs it");
                skipped(test, &why);
                return None;
            }
        }
    }
    let dir = scratch_dir(name).canonicalize().unwrap();
    for _ in 0..ATTEMPTS {
        if let Some(seen) = interrupt(&dir, inputs, mode, signal) {
            return Some(seen);
        }
    }
    panic!("{name}: mgo-pack was never caught writing the bundle in {ATTEMPTS} runs");
}

fn has_tmpfile(dir: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)
        .is_ok()
}

#[test]
fn signals_while_writing_leave_nothing_behind() {
    let test = "signals_while_writing_leave_nothing_behind";
    let inputs = large_inputs();
    let signals = [
        ("sigint", libc::SIGINT),
        ("sigterm", libc::SIGTERM),
        ("sighup", libc::SIGHUP),
        // One of the others that end a process by default.
        ("sigusr1", libc::SIGUSR1),
    ];
    let probe = scratch_dir("interrupted-probe");
    let tmpfile = has_tmpfile(&probe);
    for (name, signal) in signals {
        let seen = check(
            test,
            &format!("interrupted-{name}"),
            &inputs,
            Mode::Plain,
            signal,
        );
        if tmpfile {
            assert_eq!(seen, Some("an unnamed file"), "{name}");
        }
        let seen = check(
            test,
            &format!("interrupted-{name}-no-tmpfile"),
            &inputs,
            Mode::NoTmpfile,
            signal,
        );
        assert!(
            matches!(seen, None | Some("a named temporary file")),
            "{name}: {seen:?}"
        );
    }
    if tmpfile {
        let seen = check(
            test,
            "interrupted-sigkill",
            &inputs,
            Mode::Plain,
            libc::SIGKILL,
        );
        assert_eq!(seen, Some("an unnamed file"));
    } else {
        skipped(
            test,
            &format!("{} has no O_TMPFILE: SIGKILL not checked", probe.display()),
        );
    }
}
