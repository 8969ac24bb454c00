//! Bundles other users run: execute-only files (mode 0711, which the user may execute but not
//! read) and set-user-ID root bundles (4711), which run in secure-execution mode (`AT_SECURE`).
//! In secure-execution mode the launcher must honour none of its environment switches
//! (`GOAMD64`, `MGODEBUG`) and none of the directories the environment names (`TMPDIR`,
//! `XDG_RUNTIME_DIR`), as glibc's loader ignores `LD_LIBRARY_PATH` there; the variables still
//! reach the program. Without `AT_SECURE` (root running the same bundle) they work as documented.
//!
//! These tests need root (to make root-owned and set-user-ID files, and to run them as `nobody`,
//! user 65534) and a mount that honours set-user-ID bits: each checks with a set-user-ID copy of
//! the build run directly, and prints `SKIPPED: ...` and returns when it cannot.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mgo_format::elf::Elf;
use mgo_pack::{Compression, Launch};
use mgo_tests::fixtures::{c_probe_static, parse_report, Report};
use mgo_tests::harness::{
    command, level, ok_report, pack, run, skipped, stderr, stdout, write_executable,
};
use mgo_tests::hostile::{
    best_static as best, can_mount_privately, install, nobody, public_dir, root, root_public_dir,
    setuid_bundle, setuid_refused, static_bundle, with_tmpfs_over, NOBODY,
};

const SECCOMP_RUN: &str = env!("CARGO_BIN_EXE_mgo-seccomp-run");

/// A level the bundle runs only if `GOAMD64` is honoured: not the CPU's best.
fn forced_level() -> &'static str {
    if best().0 == "v1" {
        "v2"
    } else {
        "v1"
    }
}

/// Runs `cmd` with `vars` (and `PROBE_CREDS=1`, so the probe reports its identity).
fn with_vars(mut cmd: Command, vars: &[(&str, &str)]) -> Output {
    run(cmd.envs(vars.iter().copied()).env("PROBE_CREDS", "1"))
}

/// The report of a run of the set-user-ID bundle by `nobody`: the program ran as root in secure
/// mode, with `vars` in its environment as they were given.
fn secure_report(out: &Output, vars: &[(&str, &str)]) -> Report {
    let report = parse_report(&stdout(out));
    assert_eq!(
        (report.get_i64("euid"), report.get_i64("at_secure")),
        (Some(0), Some(1)),
        "{vars:?}: not the program in secure mode (exit {:?}): {}",
        out.status,
        stderr(out)
    );
    let env = report.get_str_array("env").unwrap();
    for (name, value) in vars {
        let var = format!("{name}={value}");
        assert!(
            env.contains(&var),
            "{var} did not reach the program: {env:?}"
        );
    }
    report
}

/// Execute-only bundles (root's, mode 0711) run by `nobody`, who may execute them but not read
/// them, run their program, on both launch paths; and so do set-user-ID root ones (4711), whose
/// program runs as root. Today the 0711 bundles fail: the launcher cannot open its own file
/// (status 121, `EACCES`).
#[test]
fn execute_only_bundles_run_for_other_users() {
    let test = "execute_only_bundles_run_for_other_users";
    let Some(dir) = root_public_dir(test) else {
        return;
    };
    let (best, build) = best();
    let setuid = setuid_refused(&dir, build, nobody);
    if let Some(why) = &setuid {
        skipped(test, &format!("the set-user-ID bundles: {why}"));
    }
    let mut failed = Vec::new();
    for launch in [Launch::Memfd, Launch::Direct] {
        let packed = static_bundle(&dir.join(format!("{launch:?}")), launch, Compression::None);
        for mode in [0o711, 0o4711] {
            let euid = match mode {
                0o4711 if setuid.is_some() => continue,
                0o4711 => 0,
                _ => i64::from(NOBODY),
            };
            let bundle = install(&packed, &dir.join(format!("{launch:?}-{mode:o}")), mode);
            let out = with_vars(nobody(&bundle), &[]);
            let report = parse_report(&stdout(&out));
            let seen = (report.get_str("level"), report.get_i64("euid"));
            if !out.status.success() || seen != (Some(best.clone()), Some(euid)) {
                failed.push(format!(
                    "{launch:?} {mode:o}: {:?} {seen:?} {}",
                    out.status,
                    stderr(&out)
                ));
            }
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

/// The launcher's switches, each as the variable and value that set it.
fn switches() -> [(&'static str, &'static str); 5] {
    [
        ("MGODEBUG", "extract"),
        ("GOAMD64", forced_level()),
        ("GOAMD64", "bogus"),
        ("MGODEBUG", "log"),
        ("MGODEBUG", "direct"),
    ]
}

/// Whether the run `out` of the memfd-path bundle `app` with the switch `(name, value)` set
/// shows the switch's effect: the variant written out, the forced level run, status 120, the
/// `[mgo]` lines, the direct path (`/proc/self/exe` is the bundle).
fn took_effect((name, value): (&str, &str), out: &Output, app: &Path) -> bool {
    let report = parse_report(&stdout(out));
    match (name, value) {
        ("MGODEBUG", "extract") => out.stdout.starts_with(b"\x7fELF"),
        ("GOAMD64", "bogus") => out.status.code() == Some(120),
        ("GOAMD64", forced) => report.get_str("level").as_deref() == Some(forced),
        ("MGODEBUG", "log") => stderr(out).contains("[mgo] launcher: starting variant"),
        ("MGODEBUG", "direct") => {
            report.get_str("exe").map(PathBuf::from) == Some(app.canonicalize().unwrap())
        }
        _ => unreachable!("{name}={value}"),
    }
}

/// A set-user-ID root bundle run by `nobody` (secure-execution mode) honours none of the
/// launcher's switches, and the program still finds each in its environment, runs at the CPU's
/// best level and exits with its own status: `MGODEBUG=extract` runs the program instead of
/// writing the variant out, `GOAMD64=v1` (a level below the CPU's) and `GOAMD64=bogus` are
/// ignored (not status 120), `MGODEBUG=log` prints nothing, and `MGODEBUG=direct` does not take
/// a memfd-path bundle onto the direct path. Today each switch works as it does for anyone.
#[test]
fn secure_execution_ignores_the_switches() {
    let test = "secure_execution_ignores_the_switches";
    let Some((_, app)) = setuid_bundle(test, Launch::Memfd) else {
        return;
    };
    let (best, _) = best();
    let mut honoured = Vec::new();
    for switch in switches() {
        let vars = [switch, ("PROBE_EXIT", "7")];
        let out = with_vars(nobody(&app), &vars);
        if took_effect(switch, &out, &app) {
            honoured.push(switch);
            continue;
        }
        assert_eq!(out.status.code(), Some(7), "{switch:?}: {}", stderr(&out));
        assert_eq!(level(&secure_report(&out, &vars)), best, "{switch:?}");
        assert!(
            !stderr(&out).contains("[mgo]"),
            "{switch:?}: {}",
            stderr(&out)
        );
    }
    assert!(honoured.is_empty(), "honoured in secure mode: {honoured:?}");
}

/// `AT_SECURE` is what counts, not the file's mode: root running the same set-user-ID root
/// bundle (no change of user, so no secure-execution mode) gets every switch, as documented.
#[test]
fn the_same_bundle_run_by_root_honours_the_switches() {
    let test = "the_same_bundle_run_by_root_honours_the_switches";
    let Some((_, app)) = setuid_bundle(test, Launch::Memfd) else {
        return;
    };
    for switch in switches() {
        let out = with_vars(command(&app), &[switch]);
        assert!(
            took_effect(switch, &out, &app),
            "{switch:?}: {}",
            stderr(&out)
        );
        if switch.1 != "extract" && switch.1 != "bogus" {
            let report = ok_report(&out, &format!("{switch:?}"));
            assert_eq!(report.get_i64("at_secure"), Some(0));
        }
    }
    let out = with_vars(command(&app), &[("MGODEBUG", "extract")]);
    assert!(
        out.stdout == std::fs::read(best().1).unwrap(),
        "not the {} build",
        best().0
    );
}

/// `program`'s bytes with its stack made executable (`PF_X` on `PT_GNU_STACK`): a program the
/// direct path refuses, so that only an exec target can start it.
fn with_executable_stack(program: &Path) -> Vec<u8> {
    const PT_GNU_STACK: u32 = 0x6474_e551;
    let mut bytes = std::fs::read(program).unwrap();
    let elf = Elf::parse(&bytes).unwrap();
    let index = (0..elf.phnum())
        .find(|&i| elf.phdr(i).p_type == PT_GNU_STACK)
        .expect("PT_GNU_STACK in the probe");
    let flags = elf.phdr_offset(index) + 4;
    bytes[flags] |= 1;
    bytes
}

/// In secure-execution mode `TMPDIR` and `XDG_RUNTIME_DIR` are not used: with `memfd_create`
/// refused (seccomp), `/dev/shm` and `/tmp` noexec (a mount namespace of its own, set up as root
/// before becoming `nobody`) and both variables naming a directory `nobody` owns where files can
/// be executed, a set-user-ID root bundle fails with status 126 and one `mgo: ` line that does
/// not name that directory. Its program has an executable stack, so the direct path cannot be a
/// way out. Without the set-user-ID bit, the same bundle runs from that directory, as documented.
/// Today the set-user-ID bundle runs from it too.
#[test]
fn secure_execution_does_not_use_tmpdir_or_xdg_runtime_dir() {
    let test = "secure_execution_does_not_use_tmpdir_or_xdg_runtime_dir";
    if !root(test) || !can_mount_privately(test) {
        return;
    }
    let hidden = [Path::new("/tmp"), Path::new("/dev/shm")];
    let Some(dir) = public_dir(test).filter(|d| {
        let real = d.canonicalize().unwrap();
        !hidden.iter().any(|h| real.starts_with(h))
    }) else {
        return skipped(
            test,
            "the scratch directory is not reachable by other users, or lies in /tmp or /dev/shm",
        );
    };
    let build = dir.join("build");
    write_executable(&build, &with_executable_stack(&c_probe_static()[0])).unwrap();
    let packed = pack(&dir.join("packed"), &[(1, &build)]);
    let own = dir.join("own");
    std::fs::create_dir(&own).unwrap();
    std::os::unix::fs::chown(&own, Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o700)).unwrap();
    let under = |program: &Path| {
        let user = format!("{NOBODY}:{NOBODY}");
        let mut cmd = command(Path::new(SECCOMP_RUN));
        cmd.args(["--user", &user, "memfd_create=EPERM", "--"])
            .arg(program)
            .env("TMPDIR", &own)
            .env("XDG_RUNTIME_DIR", &own);
        with_tmpfs_over(&mut cmd, &hidden, libc::MS_NOEXEC);
        cmd
    };
    if let Some(why) = setuid_refused(&dir, &build, under) {
        return skipped(test, &why);
    }

    let plain = install(&packed, &dir.join("plain"), 0o755);
    let report = ok_report(&run(&mut under(&plain)), "without the set-user-ID bit");
    let exe = report.get_str("exe").unwrap();
    assert!(exe.starts_with(&format!("{}/#", own.display())), "{exe}");

    let app = install(&packed, &dir.join("app"), 0o4711);
    let out = run(&mut under(&app));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(126), "{}{err}", stdout(&out));
    assert!(out.stdout.is_empty(), "the program ran");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("mgo: "), "{err}");
    assert!(!err.contains(own.to_str().unwrap()), "{err}");
}
