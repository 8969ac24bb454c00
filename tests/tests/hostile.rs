//! Bundles started in hostile conditions, each created for real (mgo_tests::hostile): no `/proc`
//! and an `argv[0]` that names another bundle, resource limits (`RLIMIT_FSIZE` below the
//! program's size, `RLIMIT_DATA` below the payload region, `RLIMIT_NOFILE` of 3, arguments at
//! the exact exec limit), seccomp filters refusing `execveat` with `EPERM` or `EACCES` or making
//! every exec target fail, and the names the launcher gives the failures it reports. Secure
//! execution (set-user-ID bundles, execute-only files) is in `tests/secure.rs`.
//!
//! The program is the static C probe (`tests/fixtures/cprobe.c`), packed for the memfd path
//! unless a test says otherwise; the direct path is the launcher's last resort when no exec
//! target works, which a static program can always take. Tests that need what this machine
//! cannot give print `SKIPPED: ...` and return.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mgo_format::elf::{Elf, ProgramHeader};
use mgo_pack::{Compression, Launch};
use mgo_tests::fixtures::c_probe_static;
use mgo_tests::harness::{
    command, level, numbered, ok_report, pack_with, run, scratch_dir, stderr, write_executable,
};
use mgo_tests::hostile::{
    best_static as best, can_mount_privately, ignoring, only_standard_descriptors, static_bundle,
    with_rlimit, with_tmpfs_over,
};

const SECCOMP_RUN: &str = env!("CARGO_BIN_EXE_mgo-seccomp-run");

const KIB: u64 = 1024;

/// `mgo-seccomp-run RULES -- program`, in the tests' clean environment.
fn seccomp(rules: &[&str], program: &Path) -> Command {
    let mut cmd = command(Path::new(SECCOMP_RUN));
    cmd.args(rules).arg("--").arg(program);
    cmd
}

/// The static C probe's four builds packed into `<scratch>/<name>/cprobe`.
fn bundle(name: &str, launch: Launch, compression: Compression) -> PathBuf {
    static_bundle(&scratch_dir(name).join("cprobe"), launch, compression)
}

fn memfd_bundle(name: &str) -> PathBuf {
    bundle(name, Launch::Memfd, Compression::None)
}

/// The attempts and the final launch path that the last `MGODEBUG=log` line `[mgo] launcher:
/// fallback after A; B; ...; launch path P` names.
fn fallback(out: &Output) -> (Vec<String>, String) {
    let err = stderr(out);
    let line = err
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("[mgo] launcher: fallback after "))
        .unwrap_or_else(|| panic!("no fallback line (exit {:?}):\n{err}", out.status));
    let (tried, path) = line
        .rsplit_once("; launch path ")
        .unwrap_or_else(|| panic!("no launch path in the fallback line: {line}"));
    (tried.split("; ").map(str::to_string).collect(), path.into())
}

/// Asserts that the attempts after the memfd are the two temporary directories, in order, each
/// failing in a way that `check` accepts.
fn assert_dirs_failed(tried: &[String], check: impl Fn(&str) -> bool) {
    let dirs: Vec<&str> = tried[1..]
        .iter()
        .map(|t| {
            t.strip_prefix("file in ")
                .unwrap_or(t)
                .split(": ")
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(dirs, ["/dev/shm", "/tmp"], "{tried:?}");
    assert!(tried[1..].iter().all(|t| check(t)), "{tried:?}");
}

/// The program headers of the file at `path`.
fn program_headers(path: &Path) -> Vec<ProgramHeader> {
    let bytes = std::fs::read(path).unwrap();
    Elf::parse(&bytes).unwrap().phdrs().collect()
}

const TAG: &str = "mgo-probe-tag:original";
const OTHER_TAG: &str = "mgo-probe-tag:patched!";

/// Without `/proc`, a bundle started through a descriptor (`AT_EXECFN` is `/dev/fd/N`, which
/// nothing can open) with `argv[0]` naming another bundle made by the same launcher from builds
/// of the same sizes runs its own program: the bytes that run come from the file the kernel
/// executed, on both launch paths. Today the launcher opens `argv[0]`, finds the program headers
/// it was loaded with, and runs the other bundle's program.
#[test]
fn runs_the_executed_bundle_not_the_one_argv0_names() {
    let test = "runs_the_executed_bundle_not_the_one_argv0_names";
    if !can_mount_privately(test) {
        return;
    }
    let dir = scratch_dir("hostile-argv0");
    let probe = c_probe_static();
    // The other bundle's builds: the same bytes but the probe's tag, replaced at equal length.
    let others: [PathBuf; 4] = std::array::from_fn(|i| {
        let mut bytes = std::fs::read(&probe[i]).unwrap();
        let at: Vec<usize> = (0..bytes.len() - TAG.len())
            .filter(|&at| bytes[at..].starts_with(TAG.as_bytes()))
            .collect();
        assert_eq!(at.len(), 1, "the tag in {}", probe[i].display());
        bytes[at[0]..at[0] + TAG.len()].copy_from_slice(OTHER_TAG.as_bytes());
        let other = dir.join(format!("other-v{}", i + 1));
        write_executable(&other, &bytes).unwrap();
        other
    });
    let tag = |out: &Output, what: &str| ok_report(out, what).get_str("tag").unwrap();
    for launch in [Launch::Memfd, Launch::Direct] {
        let ours = pack_with(&dir.join(format!("{launch:?}-a")), &numbered(probe), launch);
        let other = pack_with(
            &dir.join(format!("{launch:?}-b")),
            &numbered(&others),
            launch,
        );
        assert_eq!(program_headers(&ours), program_headers(&other));
        // Each tells its own tag when started by its path, as today.
        let tag_of = |bundle: &Path| tag(&run(command(bundle).env("PROBE_TAG", "1")), "by path");
        assert_eq!(tag_of(&ours), TAG);
        assert_eq!(tag_of(&other), OTHER_TAG);

        let mut cmd = command(Path::new(SECCOMP_RUN));
        cmd.args(["--by-fd", "--argv0"])
            .arg(&other)
            .arg("--")
            .arg(&ours)
            .env("PROBE_TAG", "1");
        let out = run(with_tmpfs_over(&mut cmd, &[Path::new("/proc")], 0));
        assert_eq!(
            tag(&out, &format!("{launch:?}: by descriptor, without /proc")),
            TAG,
            "{launch:?}: the program of {} (argv[0]) ran instead of the executed bundle's",
            other.display()
        );
    }
}

/// `RLIMIT_FSIZE` of 16 KiB, far below the program, on stored and gzip bundles packed for the
/// memfd path: the program runs (no target can hold it, so it starts on the direct path), and it
/// inherits the caller's `SIGXFSZ` disposition and signal mask exactly as the build run directly
/// does, default or ignored. Today the launcher is killed by `SIGXFSZ` writing the memfd, and with
/// the signal ignored every target fails with `EFBIG` (status 126).
#[test]
fn file_size_limit_below_the_program_still_runs_it() {
    let (best, build) = best();
    for (name, compression) in [
        ("stored", Compression::None),
        ("gzip", Compression::Gzip(6)),
    ] {
        let bundle = bundle(&format!("hostile-fsize-{name}"), Launch::Memfd, compression);
        for ignored in [false, true] {
            let observe = |program: &Path| {
                let mut cmd = command(program);
                cmd.env("PROBE_SIGNALS", "1");
                with_rlimit(&mut cmd, libc::RLIMIT_FSIZE, 16 * KIB);
                if ignored {
                    ignoring(&mut cmd, libc::SIGXFSZ);
                }
                let what = format!("{name}, SIGXFSZ ignored: {ignored}, {}", program.display());
                ok_report(&run(&mut cmd), &what)
            };
            let direct = observe(build);
            let sigign = direct.get_i64_array("sigign").unwrap();
            assert_eq!(sigign.contains(&25), ignored, "{sigign:?}");
            let report = observe(&bundle);
            assert_eq!(level(&report), best, "{name}");
            for key in ["sigign", "sigblocked"] {
                assert_eq!(
                    report.get_i64_array(key),
                    direct.get_i64_array(key),
                    "{name}, SIGXFSZ ignored: {ignored}: {key}"
                );
            }
        }
    }
}

/// `RLIMIT_DATA` of 2 MiB, which the static probe's heap fits in when run directly but the
/// payload region of its direct-path bundle (four builds, several MiB) does not: the program's
/// `sbrk` succeeds as it does for the build. Today it fails: the kernel counts the data segment
/// from the launcher's last segment, the payload region, so the program's heap has no room.
#[test]
fn data_limit_below_the_payload_region_leaves_the_heap_its_room() {
    let limit = 2 * KIB * KIB;
    let (best, build) = best();
    let bundle = bundle("hostile-data", Launch::Direct, Compression::None);
    let region = mgo_format::Region::locate(&std::fs::read(&bundle).unwrap()).unwrap();
    assert!(region.len > limit, "region of {} bytes", region.len);
    let observe = |program: &Path| {
        let mut cmd = command(program);
        cmd.env("PROBE_SBRK", (256 * KIB).to_string());
        with_rlimit(&mut cmd, libc::RLIMIT_DATA, limit);
        ok_report(&run(&mut cmd), &program.display().to_string())
    };
    assert_eq!(observe(build).get("sbrk"), Some("true"), "the build itself");
    let report = observe(&bundle);
    assert_eq!(level(&report), best);
    assert_eq!(
        report.get("sbrk"),
        Some("true"),
        "sbrk in the bundle's program"
    );
}

/// `RLIMIT_NOFILE` of 3, with descriptors 0, 1 and 2 open and no other: the static probe's
/// bundles run, on both launch paths, as the build does. Today the launcher cannot open its own
/// file (status 121, `EMFILE`).
#[test]
fn three_descriptors_are_enough() {
    let (best, build) = best();
    let observe = |program: &Path| {
        let mut cmd = command(program);
        with_rlimit(&mut cmd, libc::RLIMIT_NOFILE, 3);
        only_standard_descriptors(&mut cmd);
        ok_report(&run(&mut cmd), &program.display().to_string())
    };
    assert_eq!(level(&observe(build)), best);
    for launch in [Launch::Memfd, Launch::Direct] {
        let bundle = bundle(
            &format!("hostile-nofile-{launch:?}"),
            launch,
            Compression::None,
        );
        assert_eq!(level(&observe(&bundle)), best, "{launch:?}");
    }
}

/// `execveat(fd, "", AT_EMPTY_PATH)` refused with `EPERM`, and separately `EACCES` (seccomp): the
/// memfd path still starts the program, through `execve("/proc/self/fd/N")`, and `MGODEBUG=log`
/// names the memfd as the launch path with no fallback. Today only `ENOSYS` and `ENOENT` lead to
/// `execve`; these fail every target (status 126).
#[test]
fn execveat_refused_with_eperm_or_eacces_runs_through_proc_self_fd() {
    let (best, _) = best();
    let bundle = memfd_bundle("hostile-execveat");
    for errno in ["EPERM", "EACCES"] {
        let rule = format!("execveat={errno}:arg4&0x1000");
        let out = run(seccomp(&[&rule], &bundle).env("MGODEBUG", "log"));
        let report = ok_report(&out, &rule);
        assert_eq!(level(&report), best, "{rule}");
        let exe = report.get_str("exe").unwrap();
        assert!(exe.starts_with("/memfd:"), "{rule}: {exe}");
        // Started by execve of /proc/self/fd/N: the kernel names the process N.
        let comm = report.get_str("comm").unwrap();
        assert!(comm.bytes().all(|b| b.is_ascii_digit()), "{rule}: {comm}");
        let err = stderr(&out);
        assert!(
            err.lines()
                .any(|l| l == "[mgo] launcher: launch path memfd"),
            "{rule}: {err}"
        );
        assert!(!err.contains("fallback"), "{rule}: {err}");
    }
}

/// Arguments at the exact limit of exec: one argument as long as the build, run directly as
/// `./b`, still starts with (found by bisection, under a 512 KiB stack limit that makes the exec
/// limit 128 KiB). The bundle run as `./p` with the same argument must run the program too,
/// although a second exec, whose path (`/dev/fd/N`, `/proc/self/fd/N`) is longer than `./p`,
/// cannot fit it: the direct path is the last resort. A few bytes below the limit the memfd path
/// still starts it, as today. Today, at the limit: every exec fails with `E2BIG`, status 126.
#[test]
fn arguments_at_the_exec_limit_still_run() {
    let dir = scratch_dir("hostile-arg-max");
    let (best, build) = best();
    write_executable(&dir.join("b"), &std::fs::read(build).unwrap()).unwrap();
    static_bundle(&dir.join("p"), Launch::Memfd, Compression::None);
    let start = |name: &str, len: usize| {
        let mut cmd = command(Path::new(name));
        cmd.current_dir(&dir).arg("a".repeat(len));
        with_rlimit(&mut cmd, libc::RLIMIT_STACK, 512 * KIB).output()
    };
    // The longest argument the build starts with, and proof that one byte more is too many.
    let (mut fits, mut too_long) = (1, 128 * KIB as usize);
    while too_long - fits > 1 {
        let mid = (fits + too_long) / 2;
        match start("./b", mid) {
            Ok(out) if out.status.success() => fits = mid,
            Err(e) if e.kind() == ErrorKind::ArgumentListTooLong => too_long = mid,
            other => panic!("./b with {mid} bytes: {other:?}"),
        }
    }
    let e = start("./b", fits + 1).expect_err("one byte over the limit");
    assert_eq!(e.kind(), ErrorKind::ArgumentListTooLong, "{e}");

    let out = start("./p", fits - 16).unwrap();
    let report = ok_report(&out, "16 bytes below the limit");
    assert!(report.get_str("exe").unwrap().starts_with("/memfd:"));

    let out = start("./p", fits).unwrap();
    let report = ok_report(&out, &format!("an argument of {fits} bytes, at the limit"));
    assert_eq!(level(&report), best);
    assert_eq!(report.get_str_array("argv").unwrap()[1].len(), fits);
}

/// No target can be made (seccomp: `memfd_create` fails with `EMFILE`, every open that creates a
/// file with `ENOMEM`) or written (`RLIMIT_FSIZE` of 16 KiB, with `SIGXFSZ` ignored by the
/// caller): the launch moves on through every target and ends on the direct path, and the
/// `MGODEBUG=log` line names each failed target and the final path. Today both end with status
/// 126 and no fallback line.
#[test]
fn unusable_targets_end_on_the_direct_path() {
    let (best, _) = best();
    let bundle = memfd_bundle("hostile-no-target");
    let direct_exe = bundle.canonicalize().unwrap();
    let assert_direct = |out: &Output, what: &str| {
        let report = ok_report(out, what);
        assert_eq!(level(&report), best, "{what}");
        assert_eq!(report.get_str("exe").unwrap(), direct_exe.to_str().unwrap());
        let (tried, path) = fallback(out);
        assert_eq!(path, "direct", "{what}: {tried:?}");
        tried
    };

    let mut cmd = seccomp(
        &[
            "memfd_create=EMFILE",
            // O_TMPFILE's own bit, and O_CREAT, in the flags of open (arg 1) and openat (arg 2).
            "open=ENOMEM:arg1&0x400040",
            "openat=ENOMEM:arg2&0x400040",
        ],
        &bundle,
    );
    let tried = assert_direct(&run(cmd.env("MGODEBUG", "log")), "no target can be made");
    assert_eq!(tried[0], "memfd: create: EMFILE", "{tried:?}");
    assert_dirs_failed(&tried, |t| t.ends_with(": ENOMEM"));

    let mut cmd = command(&bundle);
    with_rlimit(cmd.env("MGODEBUG", "log"), libc::RLIMIT_FSIZE, 16 * KIB);
    let tried = assert_direct(&run(ignoring(&mut cmd, libc::SIGXFSZ)), "RLIMIT_FSIZE");
    assert!(tried[0].starts_with("memfd: "), "{tried:?}");
    assert!(tried.iter().all(|t| t.ends_with(": EFBIG")), "{tried:?}");
    assert_dirs_failed(&tried, |_| true);
}

/// A denied `ftruncate` (seccomp `EPERM`; a gzip variant's memfd is sized before it is decoded
/// into) is named as such in the fallback line, `memfd: ftruncate: EPERM`. Today the line names
/// it `write: EPERM`.
#[test]
fn denied_ftruncate_is_named() {
    let bundle = bundle("hostile-ftruncate", Launch::Memfd, Compression::Gzip(6));
    let out = run(seccomp(&["ftruncate=EPERM"], &bundle).env("MGODEBUG", "log"));
    let (tried, _) = fallback(&out);
    assert_eq!(tried[0], "memfd: ftruncate: EPERM", "{tried:?}");
    assert!(!tried.iter().any(|t| t.contains("write:")), "{tried:?}");
}

/// With memfds refused, a denied `fallocate` and a denied `fchmod` of the file targets are named
/// as such in the fallback line: `file in /dev/shm: fallocate: EPERM`, `... fchmod: EPERM`.
/// Today they are named `write: EPERM` and `create: EPERM`.
#[test]
fn denied_fallocate_and_fchmod_are_named() {
    let bundle = memfd_bundle("hostile-fallocate-fchmod");
    for (rules, step) in [
        (&["fallocate=EPERM"][..], "fallocate"),
        (
            &["fchmod=EPERM", "fchmodat=EPERM", "fchmodat2=EPERM"][..],
            "fchmod",
        ),
    ] {
        let out = run(
            seccomp(&[&["memfd_create=EPERM"], rules].concat(), &bundle).env("MGODEBUG", "log")
        );
        let (tried, _) = fallback(&out);
        assert_eq!(tried[0], "memfd: create: EPERM", "{tried:?}");
        let expected = format!(": {step}: EPERM");
        assert_dirs_failed(&tried, |t| t.ends_with(&expected));
    }
}

/// Errno values missing from today's table are named as Linux names them (`EPIPE` for 32, ...),
/// here as the reason `memfd_create` failed in the fallback line; a value Linux has no name for
/// stays a number. Today every one of them prints as `errno N`.
#[test]
fn errnos_are_named_as_linux_names_them() {
    let bundle = memfd_bundle("hostile-errno-names");
    for (errno, name) in [
        (6, "ENXIO"),
        (11, "EAGAIN"),
        (19, "ENODEV"),
        (32, "EPIPE"),
        (75, "EOVERFLOW"),
        (122, "EDQUOT"),
        (1000, "errno 1000"),
    ] {
        let rule = format!("memfd_create={errno}");
        let out = run(seccomp(&[&rule], &bundle).env("MGODEBUG", "log"));
        ok_report(&out, &rule);
        let (tried, _) = fallback(&out);
        assert_eq!(tried[0], format!("memfd: create: {name}"), "{rule}");
    }
}
