//! The launch fallbacks, each under the real condition that forces it: a seccomp filter refusing
//! `memfd_create` or `execveat` (tests/src/bin/mgo-seccomp-run.rs), `vm.memfd_noexec` 1 and 2 in
//! a new pid namespace, a mount namespace without `/proc` and with noexec temporary directories,
//! and qemu-user. docs/RELIABILITY.md describes the paths.
//!
//! Tests that need something this machine cannot give (namespaces, the sysctl, qemu) print
//! `SKIPPED: ...` straight to the test process's stderr, where `cargo test` shows it even for
//! passing tests, and return: such a test has checked nothing and says so.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mgo_tests::fixtures::{c_probe_dynamic, go_probe, parse_report, Report};
use mgo_tests::harness::{
    command, copy_executable, level, ok_report, oracle_level, pack_all, run, scratch_dir, skipped,
    stderr, stdout, write_executable,
};

const SECCOMP_RUN: &str = env!("CARGO_BIN_EXE_mgo-seccomp-run");

/// Exit status of a namespace script that could not set up its conditions.
const SETUP_FAILED: i32 = 99;

/// The dynamically linked C probe, which every bundle starts through an exec target.
fn c_bundle(name: &str) -> PathBuf {
    pack_all(&scratch_dir(name).join("cprobe"), c_probe_dynamic())
}

/// The Go probe packed for the memfd path (the direct path needs no exec target at all).
fn go_bundle(name: &str) -> PathBuf {
    pack_all(&scratch_dir(name).join("goprobe"), go_probe())
}

/// `mgo-seccomp-run RULES -- program`, in the tests' clean environment.
fn seccomp(rules: &[&str], program: &Path) -> Command {
    let mut cmd = command(Path::new(SECCOMP_RUN));
    cmd.args(rules).arg("--").arg(program);
    cmd
}

fn exe(report: &Report) -> String {
    report.get_str("exe").expect("exe in the probe's report")
}

fn v(level: u32) -> String {
    format!("v{level}")
}

/// The launcher's `MGODEBUG=log` lines that name the launch path.
fn path_lines(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("[mgo] launcher: launch path") || l.contains("fallback after"))
        .map(str::to_string)
        .collect()
}

fn empty_dir(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Whether `unshare ARGS true` works here; if not, says why the test is skipped.
fn can_unshare(test: &str, args: &[&str]) -> bool {
    match Command::new("unshare").args(args).arg("true").output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            skipped(
                test,
                &format!(
                    "cannot create namespaces here (unshare {}: {})",
                    args.join(" "),
                    stderr(&out).trim()
                ),
            );
            false
        }
        Err(e) => {
            skipped(test, &format!("unshare (util-linux) not available: {e}"));
            false
        }
    }
}

/// Runs `script` with `sh` in new namespaces (`unshare ARGS`), with `vars` in its environment.
fn in_namespace(args: &[&str], script: &str, vars: &[(&str, &OsStr)]) -> Output {
    let mut cmd = command(Path::new("/usr/bin/unshare"));
    cmd.args(args).args(["/bin/sh", "-c", script]);
    for (name, value) in vars {
        cmd.env(name, value);
    }
    run(&mut cmd)
}

/// `Some(output)` if the script's own set-up worked, else the test is skipped with its words.
fn setup_ok(test: &str, out: Output) -> Option<Output> {
    if out.status.code() == Some(SETUP_FAILED) {
        skipped(test, &format!("set-up failed: {}", stderr(&out).trim()));
        return None;
    }
    Some(out)
}

#[test]
fn memfd_without_mfd_exec_when_the_kernel_rejects_the_flag() {
    // Kernels before 6.3 answer MFD_EXEC (0x10) with EINVAL: only that call is refused here.
    let bundle = c_bundle("fb-mfd-exec");
    let expected = v(oracle_level(c_probe_dynamic()));
    let out = run(seccomp(&["memfd_create=EINVAL:arg1&0x10"], &bundle).env("MGODEBUG", "log"));
    let report = ok_report(&out, "memfd without MFD_EXEC");
    assert_eq!(level(&report), expected);
    assert!(exe(&report).starts_with("/memfd:"), "{}", exe(&report));
    assert!(!stderr(&out).contains("fallback"), "{}", stderr(&out));
}

#[test]
fn memfd_refused_by_seccomp_runs_from_an_unnamed_file() {
    let probe = c_probe_dynamic();
    let expected = v(oracle_level(probe));
    let bundle = c_bundle("fb-seccomp-memfd");
    let dir = scratch_dir("fb-seccomp-memfd-xdg");
    // What the program sees when run directly, for the descriptor comparison.
    let direct = ok_report(&run(&mut command(&probe[0])), "direct run");
    for errno in ["EPERM", "EACCES", "ENOSYS"] {
        let rule = format!("memfd_create={errno}");
        let out = run(seccomp(&[&rule], &bundle)
            .args(["an arg", ""])
            .env("XDG_RUNTIME_DIR", &dir)
            .env("MGODEBUG", "log"));
        let report = ok_report(&out, &rule);
        assert_eq!(level(&report), expected, "{rule}");
        // An unnamed file in the first directory of the list: `/proc/PID/exe` names the
        // directory and an inode number, and the file is already gone from it.
        let exe = exe(&report);
        let prefix = format!("{}/#", dir.display());
        assert!(
            exe.starts_with(&prefix) && exe.ends_with(" (deleted)"),
            "{rule}: {exe}"
        );
        assert_eq!(
            path_lines(&out).last().unwrap(),
            &format!(
                "[mgo] launcher: fallback after memfd: create: {errno}; launch path file in {}",
                dir.display()
            )
        );
        assert_eq!(
            report.get_str_array("argv").unwrap(),
            [bundle.to_str().unwrap(), "an arg", ""]
        );
        // The target's descriptors are close-on-exec: the program has exactly what a direct
        // run has.
        assert_eq!(
            report.get_i64_array("fds").unwrap(),
            direct.get_i64_array("fds").unwrap(),
            "{rule}: {:?}",
            report.get_str_map("fd_targets")
        );
        assert!(empty_dir(&dir).is_empty(), "{rule}: left behind");
    }
    // The exit status passes through on this path as on the others.
    let out = run(seccomp(&["memfd_create=EPERM"], &bundle).env("PROBE_EXIT", "42"));
    assert_eq!(out.status.code(), Some(42), "{}", stderr(&out));
}

#[test]
fn go_program_from_the_file_fallback() {
    let bundle = go_bundle("fb-go");
    let out = run(seccomp(&["memfd_create=EPERM"], &bundle).env("GOAMD64", "v2"));
    let report = ok_report(&out, "Go probe, memfd refused");
    assert_eq!(level(&report), "v2");
    assert!(exe(&report).starts_with("/dev/shm/#") || exe(&report).starts_with("/tmp/#"));
}

#[test]
fn without_o_tmpfile_a_private_directory_is_used_and_removed() {
    // File systems (and kernels before 3.11) without O_TMPFILE: the open with that flag fails.
    // 0x400000 is __O_TMPFILE in the flags argument of open (arg 1) and openat (arg 2).
    let bundle = c_bundle("fb-no-tmpfile");
    let dir = scratch_dir("fb-no-tmpfile-xdg");
    let out = run(seccomp(
        &[
            "memfd_create=EPERM",
            "open=EOPNOTSUPP:arg1&0x400000",
            "openat=EOPNOTSUPP:arg2&0x400000",
        ],
        &bundle,
    )
    .env("XDG_RUNTIME_DIR", &dir));
    let report = ok_report(&out, "no O_TMPFILE");
    let exe = exe(&report);
    let prefix = format!("{}/.mgo-", dir.display());
    assert!(
        exe.starts_with(&prefix) && exe.ends_with("/p (deleted)"),
        "{exe}"
    );
    // The directory was removed before the program started.
    assert!(empty_dir(&dir).is_empty(), "{:?}", empty_dir(&dir));
}

#[test]
fn execveat_refused_runs_through_proc_self_fd() {
    let bundle = c_bundle("fb-execveat");
    let expected = v(oracle_level(c_probe_dynamic()));
    // ENOSYS as qemu-user answers; ENOENT as Docker Desktop's emulation does (only for
    // AT_EMPTY_PATH calls, the launcher's).
    for rule in ["execveat=ENOSYS", "execveat=ENOENT:arg4&0x1000"] {
        let out = run(&mut seccomp(&[rule], &bundle));
        let report = ok_report(&out, rule);
        assert_eq!(level(&report), expected, "{rule}");
        assert!(exe(&report).starts_with("/memfd:"), "{rule}");
        // execve of /proc/self/fd/N: the kernel names the process after the link, N.
        let comm = report.get_str("comm").unwrap();
        assert!(comm.bytes().all(|b| b.is_ascii_digit()), "{rule}: {comm}");
    }
    // Both refused at once: the unnamed file, through its /proc/self/fd link.
    let out = run(&mut seccomp(
        &["memfd_create=EPERM", "execveat=ENOSYS"],
        &bundle,
    ));
    let report = ok_report(&out, "memfd and execveat refused");
    assert!(exe(&report).starts_with("/dev/shm/#") || exe(&report).starts_with("/tmp/#"));
}

#[test]
fn every_path_failing_gives_one_line_and_status_126() {
    let bundle = c_bundle("fb-all-fail");
    let dir = scratch_dir("fb-all-fail-xdg");
    // Every exec of a descriptor refused: execveat with AT_EMPTY_PATH, and execve.
    // The direct path, the last resort, starts the program whatever the exec targets did.
    let out = run(
        seccomp(&["execveat=EACCES:arg4&0x1000", "execve=EACCES"], &bundle)
            .env("MGODEBUG", "log")
            .env("XDG_RUNTIME_DIR", &dir),
    );
    let report = ok_report(&out, "every exec refused, direct path left");
    assert_eq!(exe(&report), bundle.to_str().unwrap());
    assert!(
        path_lines(&out)
            .last()
            .unwrap()
            .ends_with("; launch path direct"),
        "{}",
        stderr(&out)
    );
    // With the direct path ruled out (MGODEBUG=memfd), the one line names every path tried.
    let out = run(
        seccomp(&["execveat=EACCES:arg4&0x1000", "execve=EACCES"], &bundle)
            .env("MGODEBUG", "memfd")
            .env("XDG_RUNTIME_DIR", &dir)
            .env("TMPDIR", "relative/ignored"),
    );
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "the program ran");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    let tried: Vec<&str> = err
        .trim_end()
        .strip_prefix("mgo: cannot start the program; tried ")
        .unwrap_or_else(|| panic!("{err}"))
        .split("; ")
        .collect();
    assert_eq!(
        tried[0], "memfd: execveat: EACCES, execve /proc/self/fd: EACCES",
        "{err}"
    );
    // The directories in order (the relative TMPDIR ignored), each with its own reason (a
    // noexec mount says so instead of trying).
    let dirs: Vec<&str> = tried[1..]
        .iter()
        .map(|t| {
            t.strip_prefix("file in ")
                .unwrap()
                .split(": ")
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(dirs, [dir.to_str().unwrap(), "/dev/shm", "/tmp"], "{err}");
    assert!(
        tried[1].ends_with(": execveat: EACCES, execve /proc/self/fd: EACCES"),
        "the scratch directory allows exec: {err}"
    );
    assert!(empty_dir(&dir).is_empty());
}

#[test]
fn memfd_noexec_1_in_a_pid_namespace() {
    let test = "memfd_noexec_1_in_a_pid_namespace";
    if !Path::new("/proc/sys/vm/memfd_noexec").exists() {
        return skipped(
            test,
            "this kernel has no vm.memfd_noexec (added in Linux 6.3)",
        );
    }
    let args = ["-p", "-f", "--mount-proc"];
    if !can_unshare(test, &args) {
        return;
    }
    let bundle = c_bundle("fb-noexec-1");
    let expected = v(oracle_level(c_probe_dynamic()));
    let script = "echo 1 > /proc/sys/vm/memfd_noexec || exit 99
        [ \"$(cat /proc/sys/vm/memfd_noexec)\" = 1 ] || exit 99
        exec \"$S\" $RULES -- \"$B\"";
    let vars = |rules: &str| {
        [
            ("B", bundle.as_os_str().to_owned()),
            ("S", OsStr::new(SECCOMP_RUN).to_owned()),
            ("RULES", OsStr::new(rules).to_owned()),
            ("MGODEBUG", OsStr::new("log").to_owned()),
        ]
    };
    let run_with = |rules: &str| {
        let vars = vars(rules);
        let vars: Vec<(&str, &OsStr)> = vars.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
        setup_ok(test, in_namespace(&args, script, &vars))
    };
    // Level 1: memfds made with MFD_EXEC stay executable; the launcher asks for it.
    let Some(out) = run_with("") else { return };
    let report = ok_report(&out, "memfd_noexec=1");
    assert_eq!(level(&report), expected);
    assert!(exe(&report).starts_with("/memfd:"), "{}", exe(&report));
    // A memfd made without MFD_EXEC (as on a kernel that rejected the flag) is not executable
    // under level 1: exec answers EACCES and the launcher moves on to a file.
    let Some(out) = run_with("memfd_create=EINVAL:arg1&0x10") else {
        return;
    };
    let report = ok_report(&out, "memfd_noexec=1, memfd without MFD_EXEC");
    assert!(exe(&report).starts_with("/dev/shm/#"), "{}", exe(&report));
    assert_eq!(
        path_lines(&out).last().unwrap(),
        "[mgo] launcher: fallback after memfd: execveat: EACCES, execve /proc/self/fd: EACCES; \
         launch path file in /dev/shm"
    );
}

#[test]
fn memfd_noexec_2_in_a_pid_namespace() {
    let test = "memfd_noexec_2_in_a_pid_namespace";
    if !Path::new("/proc/sys/vm/memfd_noexec").exists() {
        return skipped(
            test,
            "this kernel has no vm.memfd_noexec (added in Linux 6.3)",
        );
    }
    let args = ["-p", "-f", "--mount-proc"];
    if !can_unshare(test, &args) {
        return;
    }
    for (name, bundle) in [
        ("C", c_bundle("fb-noexec-2")),
        ("Go", go_bundle("fb-noexec-2-go")),
    ] {
        let script = "echo 2 > /proc/sys/vm/memfd_noexec || exit 99
            [ \"$(cat /proc/sys/vm/memfd_noexec)\" = 2 ] || exit 99
            exec \"$B\"";
        let vars = [
            ("B", bundle.as_os_str()),
            ("MGODEBUG", OsStr::new("log")),
            ("GOAMD64", OsStr::new("v1")),
        ];
        let Some(out) = setup_ok(test, in_namespace(&args, script, &vars)) else {
            return;
        };
        let report = ok_report(&out, &format!("{name}: memfd_noexec=2"));
        assert_eq!(level(&report), "v1", "{name}");
        assert!(
            exe(&report).starts_with("/dev/shm/#"),
            "{name}: {}",
            exe(&report)
        );
        // Level 2 refuses memfd_create(MFD_EXEC) itself.
        assert_eq!(
            path_lines(&out).last().unwrap(),
            "[mgo] launcher: fallback after memfd: create: EACCES; launch path file in /dev/shm",
            "{name}"
        );
    }
}

#[test]
fn no_proc_in_a_mount_namespace() {
    let test = "no_proc_in_a_mount_namespace";
    let args = ["-m"];
    if !can_unshare(test, &args) {
        return;
    }
    let bundle = c_bundle("fb-no-proc");
    let go = go_bundle("fb-no-proc-go");
    // The same Go program on the direct path, which needs the bundle's own file descriptor.
    let direct = mgo_tests::harness::pack_with(
        &scratch_dir("fb-no-proc-direct").join("goprobe"),
        &go_probe()
            .iter()
            .enumerate()
            .map(|(i, p)| (i as u32 + 1, p.as_path()))
            .collect::<Vec<_>>(),
        mgo_pack::Launch::Direct,
    );
    let dir = scratch_dir("fb-no-proc-xdg");
    let expected = v(oracle_level(c_probe_dynamic()));
    let bin = bundle.parent().unwrap();
    // The script reports each case as `case=<exit status>` after the probe's own lines.
    let script = r#"umount -l /proc || exit 99
        [ -e /proc/self ] && exit 99
        run() { name=$1; shift; echo "case=$name"; "$@"; echo "status=$?"; }
        run plain "$B"
        run go "$G"
        run direct env MGODEBUG=log "$DIRECT"
        run memfd-refused "$S" memfd_create=EPERM -- "$B"
        run by-name env PATH="$BIN:/usr/bin:/bin" "$S" --by-fd --argv0 cprobe -- "$B"
        run other-program env PATH=/usr/bin:/bin "$S" --by-fd --argv0 true -- "$B"
        run no-exec-at-all env MGODEBUG=memfd "$S" memfd_create=EPERM execveat=ENOSYS -- "$B"
        run no-exec-direct-left "$S" memfd_create=EPERM execveat=ENOSYS -- "$B"
        "#;
    let vars = [
        ("B", bundle.as_os_str()),
        ("G", go.as_os_str()),
        ("DIRECT", direct.as_os_str()),
        ("BIN", bin.as_os_str()),
        ("S", OsStr::new(SECCOMP_RUN)),
        ("XDG_RUNTIME_DIR", dir.as_os_str()),
    ];
    let Some(out) = setup_ok(test, in_namespace(&args, script, &vars)) else {
        return;
    };
    let text = stdout(&out);
    let err = stderr(&out);
    let cases: Vec<(&str, &str)> = text
        .split("case=")
        .skip(1)
        .map(|c| c.split_once('\n').unwrap())
        .collect();
    let case = |name: &str| -> (Report, i32) {
        let body = cases
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("case {name} missing: {text}\n{err}"))
            .1;
        let (report, status) = body.rsplit_once("status=").unwrap();
        (parse_report(report), status.trim().parse().unwrap())
    };
    // /proc/self/exe is gone, and not needed: the launcher reads the kernel's mapping of its file.
    let (report, status) = case("plain");
    assert_eq!((status, level(&report)), (0, expected.clone()), "{err}");
    let (report, status) = case("go");
    assert_eq!(status, 0, "{err}");
    assert_eq!(level(&report), v(oracle_level(go_probe())));
    let (report, status) = case("direct");
    assert_eq!(status, 0, "{err}");
    assert_eq!(level(&report), v(oracle_level(go_probe())));
    assert!(
        err.lines()
            .any(|l| l == "[mgo] launcher: launch path direct"),
        "{err}"
    );
    // No memfd and no /proc: the unnamed file cannot be reopened read-only through /proc, so a
    // private directory is used, and removed before the program runs.
    let (report, status) = case("memfd-refused");
    assert_eq!((status, level(&report)), (0, expected.clone()), "{err}");
    assert!(empty_dir(&dir).is_empty(), "{:?}", empty_dir(&dir));
    // Started through a descriptor (AT_EXECFN is /dev/fd/N, unreadable without /proc), argv[0]
    // a name in PATH or another program altogether: neither is ever looked up.
    for name in ["by-name", "other-program"] {
        let (report, status) = case(name);
        assert_eq!(
            (status, level(&report)),
            (0, expected.clone()),
            "{name}: {err}"
        );
    }
    // Neither execveat nor /proc: nothing can exec a descriptor, and the direct path, the last
    // resort, starts the program.
    let (report, status) = case("no-exec-direct-left");
    assert_eq!((status, level(&report)), (0, expected.clone()), "{err}");
    // Without the direct path (MGODEBUG=memfd): documented as impossible.
    let (_, status) = case("no-exec-at-all");
    assert_eq!(status, 126, "{err}");
    assert!(
        err.lines().any(|l| l
            == "mgo: cannot start the program; tried memfd: create: EPERM; file in \
                {XDG}: execveat: ENOSYS, execve /proc/self/fd: ENOENT; without execveat or /proc \
                no file can be started either"
                .replace("{XDG}", dir.to_str().unwrap())
                .as_str()),
        "{err}"
    );
    assert!(empty_dir(&dir).is_empty(), "{:?}", empty_dir(&dir));
}

#[test]
fn noexec_temporary_directories_are_skipped() {
    let test = "noexec_temporary_directories_are_skipped";
    let args = ["-m"];
    if !can_unshare(test, &args) {
        return;
    }
    let bundle = c_bundle("fb-noexec-tmp");
    // The script hides /tmp and /dev/shm under noexec mounts, and with them whatever the test
    // needs that lives there: a checkout or a target directory in /tmp (a CI clone, say) would
    // hide the bundle, the helper and the scratch directory. The stage holds what would be hidden.
    let hidden = [Path::new("/tmp"), Path::new("/dev/shm")];
    let Some(stage) = Stage::outside(&hidden, "fb-noexec-tmp-stage") else {
        return skipped(
            test,
            "no directory outside /tmp and /dev/shm to stage the test's files in",
        );
    };
    let bundle = stage.reach(&bundle);
    let seccomp_run = stage.reach(Path::new(SECCOMP_RUN));
    let dir = stage.reach_dir(&scratch_dir("fb-noexec-tmp-dir"));
    let expected = v(oracle_level(c_probe_dynamic()));
    let script = r#"mount -t tmpfs -o noexec tmpfs /dev/shm || exit 99
        mount -t tmpfs -o noexec tmpfs /tmp || exit 99
        echo case=all-noexec; MGODEBUG=memfd "$S" memfd_create=EPERM -- "$B"; echo "status=$?"
        echo case=tmpdir; TMPDIR="$D" "$S" memfd_create=EPERM -- "$B"; echo "status=$?"
        echo "leftovers=$(ls -A /dev/shm /tmp "$D" | grep -cv ':$\|^$')"
        "#;
    let vars = [
        ("B", bundle.as_os_str()),
        ("D", dir.as_os_str()),
        ("S", seccomp_run.as_os_str()),
    ];
    let out = in_namespace(&args, script, &vars);
    drop(stage);
    let Some(out) = setup_ok(test, out) else {
        return;
    };
    let text = stdout(&out);
    let err = stderr(&out);
    let (all, rest) = text
        .strip_prefix("case=all-noexec\n")
        .and_then(|t| t.split_once("case=tmpdir\n"))
        .unwrap_or_else(|| panic!("{text}\n{err}"));
    assert_eq!(all.trim(), "status=126", "{err}");
    assert_eq!(
        err.lines().next().unwrap(),
        "mgo: cannot start the program; tried memfd: create: EPERM; file in /dev/shm: mounted \
         noexec; file in /tmp: mounted noexec"
    );
    let (report, tail) = rest.rsplit_once("status=").unwrap();
    let report = parse_report(report);
    assert_eq!(level(&report), expected, "{err}");
    assert!(
        exe(&report).starts_with(&format!("{}/", dir.display())),
        "{}",
        exe(&report)
    );
    assert!(tail.starts_with("0\n"), "{tail}");
    assert!(tail.contains("leftovers=0"), "{tail}");
}

/// A directory too full for the program (a container's small /dev/shm): its file fails to
/// reserve the space (ENOSPC) and the next directory is used. For compressed variants, which are
/// decoded through a shared mapping of the file, this is what keeps a full file system from
/// being a SIGBUS in the middle of decoding. With /proc and without it (the private directory).
#[test]
fn full_directory_is_skipped_for_stored_and_compressed_variants() {
    let test = "full_directory_is_skipped_for_stored_and_compressed_variants";
    let args = ["-m"];
    if !can_unshare(test, &args) {
        return;
    }
    let dir = scratch_dir("fb-full-dir");
    let probe = go_probe();
    let variants: Vec<mgo_pack::Variant> = (0..4)
        .map(|i| mgo_pack::Variant::read(&probe[i], Some(i as u32 + 1)).unwrap())
        .collect();
    let mut bundles = Vec::new();
    for (name, compression) in [
        ("stored", mgo_pack::Compression::None),
        ("gzip", mgo_pack::Compression::Gzip(1)),
        ("zstd", mgo_pack::Compression::Zstd(1)),
    ] {
        let options = mgo_pack::BundleOptions::default()
            .with_launch(mgo_pack::Launch::Memfd)
            .with_compression(compression);
        let bytes = mgo_pack::build_bundle_with(&variants, &options).unwrap();
        let path = scratch_dir(&format!("fb-full-{name}")).join("probe");
        write_executable(&path, &bytes).unwrap();
        bundles.push((name, path));
    }
    let script = r#"mount -t tmpfs -o size=64k tmpfs "$D" || exit 99
        for b in "$B1" "$B2" "$B3"; do
            XDG_RUNTIME_DIR="$D" GOAMD64=v2 MGODEBUG=log "$S" memfd_create=EPERM -- "$b"
            echo "status=$?"
        done
        umount -l /proc || exit 99
        for b in "$B1" "$B2" "$B3"; do
            XDG_RUNTIME_DIR="$D" GOAMD64=v2 MGODEBUG=log "$S" memfd_create=EPERM -- "$b"
            echo "status=$?"
        done
        echo "left=$(ls -A "$D" | wc -l) used=$(stat -f -c '%b %f' "$D" | awk '{print $1 - $2}')"
        "#;
    let vars = [
        ("B1", bundles[0].1.as_os_str()),
        ("B2", bundles[1].1.as_os_str()),
        ("B3", bundles[2].1.as_os_str()),
        ("D", dir.as_os_str()),
        ("S", OsStr::new(SECCOMP_RUN)),
    ];
    let Some(out) = setup_ok(test, in_namespace(&args, script, &vars)) else {
        return;
    };
    let text = stdout(&out);
    let err = stderr(&out);
    let runs: Vec<&str> = text.split("status=").collect();
    assert_eq!(runs.len(), 7, "{text}\n{err}");
    for (i, run) in runs[..6].iter().enumerate() {
        let report = run.split_once('\n').map_or(*run, |(_, r)| r);
        let report = if i == 0 { *run } else { report };
        assert_eq!(level(&parse_report(report)), "v2", "run {i}: {text}\n{err}");
    }
    for run in runs[1..].iter() {
        assert!(run.starts_with("0\n"), "{text}\n{err}");
    }
    assert!(runs[6].contains("left=0 used=0"), "{text}");
    let expected = format!(
        "[mgo] launcher: fallback after memfd: create: EPERM; file in {}: fallocate: ENOSPC; \
         launch path file in /dev/shm",
        dir.display()
    );
    let fallbacks = err.lines().filter(|l| *l == expected).count();
    assert_eq!(fallbacks, 6, "{err}");
}

#[test]
fn killed_program_leaves_nothing_behind() {
    let test = "killed_program_leaves_nothing_behind";
    let args = ["-m"];
    if !can_unshare(test, &args) {
        return;
    }
    let bundle = c_bundle("fb-killed");
    let dir = scratch_dir("fb-killed-tmpfs");
    // A fresh tmpfs as the first directory: its block count shows the file's pages while no name
    // shows anywhere, and shows them released once the program is killed. Once with /proc (an
    // O_TMPFILE file), once without (the private directory).
    let script = r#"mount -t tmpfs -o size=256m tmpfs "$D" || exit 99
        used() { stat -f -c '%b %f' "$D" | awk '{print $1 - $2}'; }
        names() { ls -A "$D" | wc -l; }
        one() {
            XDG_RUNTIME_DIR="$D" PROBE_SLEEP_MS=60000 "$S" memfd_create=EPERM -- "$B" >/dev/null &
            pid=$!
            i=0; while [ "$(used)" -eq 0 ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done
            sleep 0.2
            echo "$1 running used=$(used) names=$(names)"
            kill -9 $pid; wait $pid
            i=0; while [ "$(used)" -ne 0 ] && [ $i -lt 100 ]; do sleep 0.01; i=$((i+1)); done
            echo "$1 killed used=$(used) names=$(names)"
        }
        one proc
        umount -l /proc || exit 99
        one no-proc
        "#;
    let vars = [
        ("B", bundle.as_os_str()),
        ("D", dir.as_os_str()),
        ("S", OsStr::new(SECCOMP_RUN)),
    ];
    let Some(out) = setup_ok(test, in_namespace(&args, script, &vars)) else {
        return;
    };
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}\n{}", stderr(&out));
    for (line, case) in lines.iter().zip(["proc", "proc", "no-proc", "no-proc"]) {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields[0], case, "{text}");
        let used: u64 = fields[2].strip_prefix("used=").unwrap().parse().unwrap();
        assert_eq!(fields[3], "names=0", "a name was visible: {text}");
        if fields[1] == "running" {
            assert!(used > 0, "the program's file is not in the tmpfs: {text}");
        } else {
            assert_eq!(used, 0, "the file outlived the program: {text}");
        }
    }
}

#[test]
fn qemu_user_without_execveat() {
    let test = "qemu_user_without_execveat";
    let qemu = Path::new("/usr/bin/qemu-x86_64");
    if !qemu.exists() {
        return skipped(
            test,
            "qemu-x86_64 not installed (scripts/install-deps.sh installs it)",
        );
    }
    // The level the emulated CPU supports, found the way Go decides: the Go probe's variants
    // refuse to start on a CPU below their level (the C probe's do not check).
    let probe = go_probe();
    let mut expected = 0;
    for (i, variant) in probe.iter().enumerate() {
        if run(command(qemu).arg(variant)).status.success() {
            expected = i as u32 + 1;
        }
    }
    assert!(expected >= 1, "no Go probe variant runs under qemu");
    let bundle = go_bundle("fb-qemu");
    // QEMU 7.2 (Debian 12's) answers execveat with ENOSYS; QEMU 8 and later (bookworm-backports',
    // which install-deps installs) pass it to the host kernel. The host refusing it (ENOSYS, by
    // seccomp) gives the guest the same ENOSYS as QEMU 7.2 does, whichever QEMU this is.
    let out = run(seccomp(&["execveat=ENOSYS"], qemu)
        .arg(&bundle)
        .env("MGODEBUG", "log"));
    let report = ok_report(&out, "qemu-x86_64 BUNDLE");
    assert_eq!(level(&report), v(expected));
    // The program was started by execve of /proc/self/fd/N.
    assert!(exe(&report).starts_with("/memfd:"), "{}", exe(&report));
    let comm = report.get_str("comm").unwrap();
    assert!(comm.bytes().all(|b| b.is_ascii_digit()), "{comm}");
    // And with memfd refused too: the file, through its /proc/self/fd link.
    let out = run(seccomp(&["execveat=ENOSYS", "memfd_create=EPERM"], qemu).arg(&bundle));
    let report = ok_report(&out, "qemu-x86_64 BUNDLE, memfd refused");
    assert_eq!(level(&report), v(expected));
    assert!(exe(&report).starts_with("/dev/shm/#") || exe(&report).starts_with("/tmp/#"));
}

/// What a test needs to reach in a mount namespace where it mounts over `hidden` directories:
/// each file or directory where it is, or, when a hidden directory covers it (after symbolic
/// links are resolved: the checkout, the target directory or a link on the way may lead into
/// /tmp), a copy in a stage directory that none covers. Removed when dropped if it was made
/// outside the target directory.
struct Stage {
    hidden: Vec<PathBuf>,
    dir: PathBuf,
    remove: bool,
}

impl Stage {
    /// A fresh stage named `name`: in the target directory's scratch space when that stays
    /// visible, else in /var/tmp; `None` when both are hidden.
    fn outside(hidden: &[&Path], name: &str) -> Option<Stage> {
        let hidden: Vec<PathBuf> = hidden
            .iter()
            .map(|h| h.canonicalize().unwrap_or_else(|_| h.to_path_buf()))
            .collect();
        let scratch = scratch_dir(name);
        if !covered(&hidden, &scratch) {
            return Some(Stage {
                hidden,
                dir: scratch,
                remove: false,
            });
        }
        let _ = std::fs::remove_dir(&scratch);
        let dir = PathBuf::from(format!("/var/tmp/mgo-pack-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).ok()?;
        if covered(&hidden, &dir) {
            let _ = std::fs::remove_dir_all(&dir);
            return None;
        }
        Some(Stage {
            hidden,
            dir,
            remove: true,
        })
    }

    /// Where `file` can be reached once the directories are hidden: itself, or a copy.
    fn reach(&self, file: &Path) -> PathBuf {
        if !covered(&self.hidden, file) {
            return file.to_path_buf();
        }
        let copy = self.dir.join(file.file_name().unwrap());
        copy_executable(file, &copy).unwrap();
        copy
    }

    /// Where the (empty) directory `dir` can be reached: itself, or a fresh one in the stage.
    fn reach_dir(&self, dir: &Path) -> PathBuf {
        if !covered(&self.hidden, dir) {
            return dir.to_path_buf();
        }
        let fresh = self.dir.join(dir.file_name().unwrap());
        std::fs::create_dir_all(&fresh).unwrap();
        fresh
    }
}

/// Whether `path` (which exists) lies in one of the `hidden` directories once links are resolved.
fn covered(hidden: &[PathBuf], path: &Path) -> bool {
    let real = path
        .canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    hidden.iter().any(|h| real.starts_with(h))
}

impl Drop for Stage {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
