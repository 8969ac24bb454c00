//! End-to-end: real Go and C programs packed into bundles, launched, and observed from inside.
//! Each test compares what the program saw through the bundle with what it sees when run
//! directly, so the expectations come from the kernel, not from this file.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use mgo_tests::fixtures::{c_probe_dynamic, c_probe_static, go_probe, gofmt, parse_report};
use mgo_tests::harness::{command, oracle_level, pack, pack_all, run, scratch_dir, stderr, stdout};

fn go_bundle(name: &str) -> PathBuf {
    pack_all(&scratch_dir(name).join("probe"), go_probe())
}

fn level_name(level: u32) -> String {
    format!("v{level}")
}

#[test]
fn runs_the_best_variant_for_this_cpu() {
    let expected = oracle_level(go_probe());
    assert!(
        expected >= 1,
        "no probe variant runs directly on this machine"
    );
    let bundle = go_bundle("best");
    let out = run(&mut command(&bundle));
    assert!(out.status.success(), "bundle failed: {}", stderr(&out));
    let report = parse_report(&stdout(&out));
    assert_eq!(report.get_str("level"), Some(level_name(expected)));
}

#[test]
fn program_sees_same_argv_env_cwd_and_pid() {
    let bundle = go_bundle("argv");
    let dir = scratch_dir("argv-cwd");
    let args = ["plain", "with space", "ünïcødé ✓", "", "--flag=x"];
    let mut cmd = command(&bundle);
    cmd.args(args)
        .current_dir(&dir)
        .env("SOME_VAR", "a value")
        .env("EMPTY", "");
    let child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let pid = child.id() as i64;
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let report = parse_report(&stdout(&out));

    let mut expected_argv = vec![bundle.to_str().unwrap().to_string()];
    expected_argv.extend(args.iter().map(|s| s.to_string()));
    assert_eq!(report.get_str_array("argv").unwrap(), expected_argv);
    let mut env = report.get_str_array("env").unwrap();
    env.sort();
    assert_eq!(env, ["EMPTY=", "PATH=/usr/bin:/bin", "SOME_VAR=a value"]);
    assert_eq!(
        report.get_str("cwd").unwrap(),
        dir.canonicalize().unwrap().to_str().unwrap()
    );
    // The launcher execs in place: the program is the very process that was spawned.
    assert_eq!(report.get_i64("pid"), Some(pid));
}

#[test]
fn exit_statuses_pass_through() {
    let bundle = go_bundle("exit");
    for code in [0, 1, 42, 255] {
        let out = run(command(&bundle).env("PROBE_EXIT", code.to_string()));
        assert_eq!(out.status.code(), Some(code), "stderr: {}", stderr(&out));
    }
}

#[test]
fn death_by_signal_is_what_the_caller_sees() {
    let bundle = go_bundle("signal");
    for (name, number) in [("TERM", 15), ("KILL", 9)] {
        let out = run(command(&bundle).env("PROBE_SIGNAL", name));
        assert_eq!(out.status.signal(), Some(number), "PROBE_SIGNAL={name}");
    }
}

#[test]
fn stdin_is_the_program_stdin() {
    let bundle = go_bundle("stdin");
    let mut child = command(&bundle)
        .env("PROBE_STDIN", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped\nbytes \xe2\x9c\x93")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        parse_report(&stdout(&out)).get_str("stdin").unwrap(),
        "piped\nbytes ✓"
    );
}

#[test]
fn proc_exe_names_the_bundle_and_variant() {
    let bundle = go_bundle("exe");
    let out = run(command(&bundle).env("GOAMD64", "v2"));
    let exe = parse_report(&stdout(&out)).get_str("exe").unwrap();
    assert_eq!(
        exe,
        format!("/memfd:{} [GOAMD64=v2] (deleted)", bundle.display())
    );
}

#[test]
fn no_descriptor_is_leaked_or_lost() {
    let direct = &go_probe()[0];
    let bundle = go_bundle("fds");
    // Descriptor 5 is inherited on purpose (no close-on-exec): it must reach the program too.
    let observe = |program: &Path| {
        let script = format!("exec 5</dev/null; exec '{}'", program.display());
        let out = run(command(Path::new("/bin/bash"))
            .args(["-c", &script])
            .env("GOAMD64", "v1"));
        assert!(out.status.success(), "{}", stderr(&out));
        let report = parse_report(&stdout(&out));
        (
            report.get_i64_array("fds").unwrap(),
            report.get_str_map("fd_targets").unwrap(),
        )
    };
    let (direct_fds, _) = observe(direct);
    let (bundle_fds, targets) = observe(&bundle);
    assert!(direct_fds.contains(&5));
    assert_eq!(bundle_fds, direct_fds, "bundle targets: {targets:?}");
    assert!(
        !targets
            .values()
            .any(|t| t.contains("memfd") || t.contains("probe")),
        "{targets:?}"
    );
}

#[test]
fn goamd64_forces_a_level() {
    let bundle = go_bundle("force");
    for level in 1..=4 {
        let out = run(command(&bundle).env("GOAMD64", level_name(level)));
        let report = parse_report(&stdout(&out));
        assert_eq!(report.get_str("level"), Some(level_name(level)));
    }
}

#[test]
fn missing_forced_level_runs_the_highest_below() {
    let probe = go_probe();
    let bundle = pack(
        &scratch_dir("partial").join("probe"),
        &[(1, &probe[0]), (3, &probe[2])],
    );
    let out = run(command(&bundle).env("GOAMD64", "v2"));
    assert_eq!(parse_report(&stdout(&out)).get_str("level").unwrap(), "v1");
    let out = run(command(&bundle).env("GOAMD64", "v4"));
    assert_eq!(parse_report(&stdout(&out)).get_str("level").unwrap(), "v3");
}

#[test]
fn forced_level_below_every_variant_is_a_clear_error() {
    let probe = go_probe();
    let bundle = pack(
        &scratch_dir("too-low").join("probe"),
        &[(3, &probe[2]), (4, &probe[3])],
    );
    let out = run(command(&bundle).env("GOAMD64", "v2"));
    assert_eq!(out.status.code(), Some(123));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("mgo: this program needs an x86-64-v3 CPU"),
        "{err}"
    );
}

#[test]
fn bad_goamd64_value_is_refused() {
    let bundle = go_bundle("bad-override");
    let out = run(command(&bundle).env("GOAMD64", "v9"));
    assert_eq!(out.status.code(), Some(120));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).starts_with("mgo: GOAMD64 must be"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn mgodebug_log_prints_the_mgo_line() {
    let bundle = go_bundle("log");
    let out = run(command(&bundle).env("MGODEBUG", "log").env("GOAMD64", "v3"));
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l == "[mgo] launcher: starting variant GOAMD64=v3"),
        "{err}"
    );
    assert!(err.contains("GOAMD64=v3 set in the environment"), "{err}");
    let detected = run(command(&bundle).env("MGODEBUG", "log"));
    let expected = oracle_level(go_probe());
    let line = format!("[mgo] launcher: starting variant GOAMD64=v{expected}");
    assert!(
        stderr(&detected).lines().any(|l| l == line),
        "{}",
        stderr(&detected)
    );
    // Without the switch the launcher says nothing at all.
    assert!(run(&mut command(&bundle)).stderr.is_empty());
}

#[test]
fn mgodebug_extract_writes_each_variant_byte_for_byte() {
    let probe = go_probe();
    let bundle = go_bundle("extract");
    for level in 1..=4u32 {
        let out = run(command(&bundle)
            .env("MGODEBUG", "extract")
            .env("GOAMD64", level_name(level)));
        assert_eq!(out.status.code(), Some(0));
        let original = std::fs::read(&probe[level as usize - 1]).unwrap();
        assert!(
            out.stdout == original,
            "extracted v{level} differs from the packed input"
        );
    }
}

#[test]
fn c_programs_static_and_dynamic() {
    for (name, variants) in [
        ("c-static", c_probe_static()),
        ("c-dynamic", c_probe_dynamic()),
    ] {
        let expected = oracle_level(variants);
        let bundle = pack_all(&scratch_dir(name).join("cprobe"), variants);
        let out = run(command(&bundle).arg("x y"));
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let report = parse_report(&stdout(&out));
        assert_eq!(
            report.get_str("level"),
            Some(level_name(expected)),
            "{name}"
        );
        assert_eq!(report.get_str_array("argv").unwrap()[1], "x y");
        let forced = run(command(&bundle)
            .env("GOAMD64", "v2")
            .env("PROBE_EXIT", "42"));
        assert_eq!(forced.status.code(), Some(42));
        assert_eq!(
            parse_report(&stdout(&forced)).get_str("level").unwrap(),
            "v2",
            "{name}"
        );
    }
}

#[test]
fn gofmt_bundle_formats_go_code() {
    let bundle = pack_all(&scratch_dir("gofmt").join("gofmt"), gofmt());
    let mut child = command(&bundle)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"package main\nfunc  main( ) {x:=1;_=x}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        "package main\n\nfunc main() { x := 1; _ = x }\n"
    );
}

#[test]
fn very_long_install_path_still_runs() {
    let mut dir = scratch_dir("long-path");
    for i in 0..6 {
        dir.push(format!("{i}-{}", "d".repeat(60)));
    }
    std::fs::create_dir_all(&dir).unwrap();
    let bundle = pack_all(&dir.join("probe"), go_probe());
    assert!(bundle.as_os_str().len() > 300);
    let out = run(command(&bundle).env("GOAMD64", "v1"));
    assert!(out.status.success(), "{}", stderr(&out));
    let exe = parse_report(&stdout(&out)).get_str("exe").unwrap();
    assert!(
        exe.starts_with("/memfd:...") && exe.ends_with("/probe [GOAMD64=v1] (deleted)"),
        "{exe}"
    );
}

#[test]
fn corrupted_payload_is_never_executed() {
    let bundle = go_bundle("corrupt");
    let mut bytes = std::fs::read(&bundle).unwrap();
    // A bit in the middle of the last variant's bytes (not the index): only the hash can tell.
    let at = bytes.len() - 700_000;
    bytes[at] ^= 0x10;
    let damaged = bundle.with_file_name("damaged");
    mgo_pack::write_executable(&damaged, &bytes).unwrap();
    let out = run(command(&damaged).env("GOAMD64", "v4"));
    assert_eq!(out.status.code(), Some(122), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "the damaged program ran");
    assert!(
        stderr(&out).starts_with("mgo: this bundle is damaged"),
        "{}",
        stderr(&out)
    );
}
