//! The launch behaviour checks, written once and run on each launch path: `tests/launch.rs` runs
//! them on bundles packed for the memfd path, `tests/direct.rs` on bundles packed for the direct
//! path, `tests/cache.rs` on bundles packed for the cache path, each through [`launch_checks!`](crate::launch_checks), which makes one test per check.
//! Each check compares what the program saw through the bundle with what it sees when run
//! directly (or with what the kernel documents), and also checks that the path asked for is the
//! path taken, so that a silent fallback cannot pass for the path under test.
//!
//! A check is a `pub fn NAME(launch: Launch)` here, listed in `launch_checks!`; a unit test below
//! fails for one that is not listed, so that every check runs on every path.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

pub use mgo_pack::Launch;

use crate::fixtures::{c_probe_dynamic, c_probe_static, go_probe, gofmt, parse_report, Report};
use crate::harness::{
    cache_home, command, numbered, oracle_level, pack_with, run, scratch_dir, spawn, stderr,
    stdout, write_executable,
};

/// `launch_checks!(LAUNCH)`: one `#[test]` per launch behaviour check in [`checks`](crate::checks),
/// named after the check and running it on `LAUNCH` (a [`Launch`]). A test file for a launch
/// path is this one line, plus the tests that only that path has.
#[macro_export]
macro_rules! launch_checks {
    ($launch:expr) => {
        $crate::launch_checks!(@list tests $launch);
    };
    // The checks, once; `@list NAME ARGS` hands them to the `@NAME` arm below.
    (@list $then:ident $($args:tt)*) => {
        $crate::launch_checks! {
            @$then $($args)*;
            runs_the_best_variant_for_this_cpu,
            program_sees_same_argv_env_cwd_and_pid,
            exit_statuses_pass_through,
            death_by_signal_is_what_the_caller_sees,
            stdin_is_the_program_stdin,
            proc_exe_and_comm_name_what_was_executed,
            no_descriptor_is_leaked_or_lost,
            goamd64_forces_a_level,
            missing_forced_level_runs_the_highest_below,
            forced_level_below_every_variant_is_a_clear_error,
            bad_goamd64_value_is_refused,
            mgodebug_log_prints_the_mgo_line,
            mgodebug_extract_writes_each_variant_byte_for_byte,
            c_programs_static_and_dynamic,
            gofmt_bundle_formats_go_code,
            very_long_install_path_still_runs,
            corrupted_payload_is_never_executed,
        }
    };
    (@tests $launch:expr; $($check:ident),+ $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::checks::$check($launch);
            }
        )+
    };
    (@names; $($check:ident),+ $(,)?) => {
        [$(stringify!($check)),+]
    };
}

fn tag(launch: Launch) -> &'static str {
    match launch {
        Launch::Direct => "direct",
        Launch::Memfd => "memfd",
        Launch::Cache => "cache",
    }
}

/// [`command`] for running a bundle packed for `launch`: on the cache path with a cache directory
/// (without one the launch would silently take the memfd path).
pub fn command_for(launch: Launch, program: &Path) -> std::process::Command {
    let mut cmd = command(program);
    if launch == Launch::Cache {
        cmd.env("XDG_CACHE_HOME", cache_home());
    }
    cmd
}

/// The cache entry of the `level` variant of `bundle` under `cache`
/// (`<cache>/mgo-pack/<key>/<content hash> GOAMD64=vN/<bundle's name>`).
pub fn cache_entry(cache: &Path, bundle: &Path, level: &str) -> PathBuf {
    let bundle = bundle.canonicalize().unwrap();
    let info = mgo_pack::inspect(&bundle).unwrap();
    let variant = info
        .variants
        .iter()
        .find(|v| v.level_name() == level)
        .unwrap_or_else(|| panic!("no {level} in {}", bundle.display()));
    let key = mgo_format::content_hash(bundle.as_os_str().as_encoded_bytes());
    cache
        .join("mgo-pack")
        .join(format!("{key:016x}"))
        .join(format!("{:016x} GOAMD64={level}", variant.content_hash))
        .join(bundle.file_name().unwrap())
}

/// Whether `line` is the `MGODEBUG=log` line that names `launch` as the path taken: on the cache
/// path with the entry's path, found or made.
fn is_path_line(line: &str, launch: Launch) -> bool {
    match launch {
        Launch::Cache => {
            line.starts_with("[mgo] launcher: launch path cache (") && line.ends_with(')')
        }
        _ => line == format!("[mgo] launcher: launch path {}", tag(launch)),
    }
}

/// A scratch directory private to one check on one path.
pub fn scratch(name: &str, launch: Launch) -> PathBuf {
    scratch_dir(&format!("{}-{name}", tag(launch)))
}

/// Packs all four levels of a fixture for `launch` into `out`.
pub fn pack_all_for(out: &Path, levels: &[PathBuf; 4], launch: Launch) -> PathBuf {
    pack_with(out, &numbered(levels), launch)
}

fn go_bundle(name: &str, launch: Launch) -> PathBuf {
    pack_all_for(&scratch(name, launch).join("probe"), go_probe(), launch)
}

fn level_name(level: u32) -> String {
    format!("v{level}")
}

/// What `/proc/self/exe` shows the program: the memfd (named as mgo names it), on the direct
/// path the bundle file itself, on the cache path the entry.
pub fn expected_exe(bundle: &Path, level: &str, launch: Launch) -> String {
    match launch {
        Launch::Memfd => format!("/memfd:{} [GOAMD64={level}] (deleted)", bundle.display()),
        Launch::Direct => bundle.canonicalize().unwrap().display().to_string(),
        Launch::Cache => cache_entry(cache_home(), bundle, level)
            .display()
            .to_string(),
    }
}

/// Asserts from the probe's report that the program started through `launch`.
pub fn assert_path(report: &Report, bundle: &Path, launch: Launch) {
    let level = report.get_str("level").expect("level in the report");
    assert_eq!(
        report.get_str("exe").expect("exe in the report"),
        expected_exe(bundle, &level, launch),
        "the program did not start through the {} path",
        tag(launch)
    );
}

pub fn runs_the_best_variant_for_this_cpu(launch: Launch) {
    let expected = oracle_level(go_probe());
    assert!(
        expected >= 1,
        "no probe variant runs directly on this machine"
    );
    let bundle = go_bundle("best", launch);
    let out = run(&mut command_for(launch, &bundle));
    assert!(out.status.success(), "bundle failed: {}", stderr(&out));
    let report = parse_report(&stdout(&out));
    assert_eq!(report.get_str("level"), Some(level_name(expected)));
    assert_path(&report, &bundle, launch);
}

pub fn program_sees_same_argv_env_cwd_and_pid(launch: Launch) {
    let bundle = go_bundle("argv", launch);
    let dir = scratch("argv-cwd", launch);
    let args = ["plain", "with space", "ünïcødé ✓", "", "--flag=x"];
    let mut cmd = command_for(launch, &bundle);
    cmd.args(args)
        .current_dir(&dir)
        .env("SOME_VAR", "a value")
        .env("EMPTY", "");
    let child = spawn(cmd.stdout(Stdio::piped()));
    let pid = child.id() as i64;
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let report = parse_report(&stdout(&out));

    let mut expected_argv = vec![bundle.to_str().unwrap().to_string()];
    expected_argv.extend(args.iter().map(|s| s.to_string()));
    assert_eq!(report.get_str_array("argv").unwrap(), expected_argv);
    let mut env = report.get_str_array("env").unwrap();
    env.sort();
    let mut expected_env = vec!["EMPTY=".to_string(), "PATH=/usr/bin:/bin".into()];
    expected_env.push("SOME_VAR=a value".into());
    if launch == Launch::Cache {
        expected_env.push(format!("XDG_CACHE_HOME={}", cache_home().display()));
    }
    assert_eq!(env, expected_env);
    assert_eq!(
        report.get_str("cwd").unwrap(),
        dir.canonicalize().unwrap().to_str().unwrap()
    );
    // The program is the very process that was spawned (exec in place, or no exec at all).
    assert_eq!(report.get_i64("pid"), Some(pid));
    assert_path(&report, &bundle, launch);
}

pub fn exit_statuses_pass_through(launch: Launch) {
    let bundle = go_bundle("exit", launch);
    for code in [0, 1, 42, 255] {
        let out = run(command_for(launch, &bundle).env("PROBE_EXIT", code.to_string()));
        assert_eq!(out.status.code(), Some(code), "stderr: {}", stderr(&out));
    }
}

pub fn death_by_signal_is_what_the_caller_sees(launch: Launch) {
    let bundle = go_bundle("signal", launch);
    for (name, number) in [("TERM", 15), ("KILL", 9), ("INT", 2)] {
        let out = run(command_for(launch, &bundle).env("PROBE_SIGNAL", name));
        assert_eq!(out.status.signal(), Some(number), "PROBE_SIGNAL={name}");
    }
}

pub fn stdin_is_the_program_stdin(launch: Launch) {
    let bundle = go_bundle("stdin", launch);
    let mut child = spawn(
        command_for(launch, &bundle)
            .env("PROBE_STDIN", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
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

/// `/proc/self/exe`, and the process name the kernel derives from what it executed: the memfd
/// (named after the bundle and the variant's level) or, on the direct path, the bundle itself.
pub fn proc_exe_and_comm_name_what_was_executed(launch: Launch) {
    let bundle = go_bundle("exe", launch);
    let out = run(command_for(launch, &bundle).env("GOAMD64", "v2"));
    let report = parse_report(&stdout(&out));
    assert_eq!(
        report.get_str("exe").unwrap(),
        expected_exe(&bundle, "v2", launch)
    );
    let comm = report.get_str("comm").unwrap();
    match launch {
        // Since Linux 6.14 the memfd's name; before, the descriptor number.
        Launch::Memfd => assert!(
            comm.starts_with("memfd:") || comm.bytes().all(|b| b.is_ascii_digit()),
            "{comm}"
        ),
        // What a direct run of the bundle file shows: its name; the cache's entry has it too.
        Launch::Direct | Launch::Cache => assert_eq!(comm, "probe"),
    }
}

pub fn no_descriptor_is_leaked_or_lost(launch: Launch) {
    let direct = &go_probe()[0];
    let bundle = go_bundle("fds", launch);
    // Descriptor 5 is inherited on purpose (no close-on-exec): it must reach the program too.
    let observe = |program: &Path| {
        let script = format!("exec 5</dev/null; exec '{}'", program.display());
        let out = run(command_for(launch, Path::new("/bin/bash"))
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

pub fn goamd64_forces_a_level(launch: Launch) {
    let bundle = go_bundle("force", launch);
    for level in 1..=4 {
        let out = run(command_for(launch, &bundle).env("GOAMD64", level_name(level)));
        let report = parse_report(&stdout(&out));
        assert_eq!(report.get_str("level"), Some(level_name(level)));
        assert_path(&report, &bundle, launch);
    }
}

pub fn missing_forced_level_runs_the_highest_below(launch: Launch) {
    let probe = go_probe();
    let bundle = pack_with(
        &scratch("partial", launch).join("probe"),
        &[(1, &probe[0]), (3, &probe[2])],
        launch,
    );
    let out = run(command_for(launch, &bundle).env("GOAMD64", "v2"));
    assert_eq!(parse_report(&stdout(&out)).get_str("level").unwrap(), "v1");
    let out = run(command_for(launch, &bundle).env("GOAMD64", "v4"));
    assert_eq!(parse_report(&stdout(&out)).get_str("level").unwrap(), "v3");
}

pub fn forced_level_below_every_variant_is_a_clear_error(launch: Launch) {
    let probe = go_probe();
    let bundle = pack_with(
        &scratch("too-low", launch).join("probe"),
        &[(3, &probe[2]), (4, &probe[3])],
        launch,
    );
    let out = run(command_for(launch, &bundle).env("GOAMD64", "v2"));
    assert_eq!(out.status.code(), Some(123));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("mgo: this program needs an x86-64-v3 CPU"),
        "{err}"
    );
}

pub fn bad_goamd64_value_is_refused(launch: Launch) {
    let bundle = go_bundle("bad-override", launch);
    let out = run(command_for(launch, &bundle).env("GOAMD64", "v9"));
    assert_eq!(out.status.code(), Some(120));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).starts_with("mgo: GOAMD64 must be"),
        "{}",
        stderr(&out)
    );
}

pub fn mgodebug_log_prints_the_mgo_line(launch: Launch) {
    let bundle = go_bundle("log", launch);
    let out = run(command_for(launch, &bundle)
        .env("MGODEBUG", "log")
        .env("GOAMD64", "v3"));
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l == "[mgo] launcher: starting variant GOAMD64=v3"),
        "{err}"
    );
    assert!(err.contains("GOAMD64=v3 set in the environment"), "{err}");
    assert!(err.lines().any(|l| is_path_line(l, launch)), "{err}");
    let detected = run(command_for(launch, &bundle).env("MGODEBUG", "log"));
    let expected = oracle_level(go_probe());
    let line = format!("[mgo] launcher: starting variant GOAMD64=v{expected}");
    assert!(
        stderr(&detected).lines().any(|l| l == line),
        "{}",
        stderr(&detected)
    );
    // Without the switch the launcher says nothing at all.
    assert!(run(&mut command_for(launch, &bundle)).stderr.is_empty());
}

pub fn mgodebug_extract_writes_each_variant_byte_for_byte(launch: Launch) {
    let probe = go_probe();
    let bundle = go_bundle("extract", launch);
    for level in 1..=4u32 {
        let out = run(command_for(launch, &bundle)
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

/// C programs, static and dynamically linked (whose dynamic loader the direct path maps as the
/// kernel would), take the path asked for.
pub fn c_programs_static_and_dynamic(launch: Launch) {
    for (name, variants) in [
        ("c-static", c_probe_static()),
        ("c-dynamic", c_probe_dynamic()),
    ] {
        let expected = oracle_level(variants);
        let bundle = pack_all_for(&scratch(name, launch).join("cprobe"), variants, launch);
        let out = run(command_for(launch, &bundle)
            .arg("x y")
            .env("MGODEBUG", "log"));
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let report = parse_report(&stdout(&out));
        assert_eq!(
            report.get_str("level"),
            Some(level_name(expected)),
            "{name}"
        );
        assert_eq!(report.get_str_array("argv").unwrap()[1], "x y");
        assert!(
            stderr(&out).lines().any(|l| is_path_line(l, launch)),
            "{name}: {}",
            stderr(&out)
        );
        assert_path(&report, &bundle, launch);
        let forced = run(command_for(launch, &bundle)
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

pub fn gofmt_bundle_formats_go_code(launch: Launch) {
    let bundle = pack_all_for(&scratch("gofmt", launch).join("gofmt"), gofmt(), launch);
    formats_go_code(&mut command_for(launch, &bundle));
}

/// Runs `cmd`, a gofmt (bundle), on a badly formatted Go file and checks what it prints. Returns
/// its output, stderr included, for further checks.
pub fn formats_go_code(cmd: &mut std::process::Command) -> std::process::Output {
    let mut child = spawn(
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"package main\nfunc  main( ) {x:=1;_=x}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "package main\n\nfunc main() { x := 1; _ = x }\n"
    );
    out
}

pub fn very_long_install_path_still_runs(launch: Launch) {
    let mut dir = scratch("long-path", launch);
    for i in 0..6 {
        dir.push(format!("{i}-{}", "d".repeat(60)));
    }
    std::fs::create_dir_all(&dir).unwrap();
    let bundle = pack_all_for(&dir.join("probe"), go_probe(), launch);
    assert!(bundle.as_os_str().len() > 300);
    let out = run(command_for(launch, &bundle).env("GOAMD64", "v1"));
    assert!(out.status.success(), "{}", stderr(&out));
    let exe = parse_report(&stdout(&out)).get_str("exe").unwrap();
    match launch {
        // The memfd name is cut to what the kernel accepts, keeping the end.
        Launch::Memfd => assert!(
            exe.starts_with("/memfd:...") && exe.ends_with("/probe [GOAMD64=v1] (deleted)"),
            "{exe}"
        ),
        Launch::Direct => assert_eq!(exe, bundle.canonicalize().unwrap().to_str().unwrap()),
        Launch::Cache => assert_eq!(exe, expected_exe(&bundle, "v1", launch)),
    }
}

/// A flipped bit in the payload is refused before it runs on the memfd path, which hashes every
/// byte it copies. The direct path reads pages only as the program touches them and so cannot
/// hash them first (docs/ARCHITECTURE.md); it checks the program's headers, and a damaged header
/// sends the launch to the memfd path, whose hash refuses it.
pub fn corrupted_payload_is_never_executed(launch: Launch) {
    let bundle = go_bundle("corrupt", launch);
    let bytes = std::fs::read(&bundle).unwrap();
    let refused = |damaged: &[u8], name: &str, env: &[(&str, &str)]| {
        let path = bundle.with_file_name(name);
        write_executable(&path, damaged).unwrap();
        let mut cmd = command_for(launch, &path);
        cmd.env("GOAMD64", "v4").envs(env.iter().copied());
        let out = run(&mut cmd);
        assert_eq!(out.status.code(), Some(122), "{name}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "the damaged program ran ({name})");
        assert!(
            stderr(&out).starts_with("mgo: this bundle is damaged"),
            "{name}: {}",
            stderr(&out)
        );
    };
    // A bit in the middle of the last variant's bytes (not the index): only the hash can tell.
    let mut body = bytes.clone();
    let at = body.len() - 700_000;
    body[at] ^= 0x10;
    match launch {
        // The cache path hashes what it writes into the entry, as the memfd path does.
        Launch::Memfd | Launch::Cache => refused(&body, "damaged-body", &[]),
        Launch::Direct => {
            refused(&body, "damaged-body", &[("MGODEBUG", "memfd")]);
            // The v4 variant's first loadable segment made unmappable (p_offset off by one).
            let v4 = std::fs::read(&go_probe()[3]).unwrap();
            let start = find(&bytes, &v4[..4096]).expect("the v4 variant in the bundle");
            let phoff = u64::from_le_bytes(v4[32..40].try_into().unwrap()) as usize;
            let phnum = u16::from_le_bytes([v4[56], v4[57]]) as usize;
            let load = (0..phnum)
                .map(|i| phoff + i * 56)
                .find(|&at| v4[at..at + 4] == [1, 0, 0, 0])
                .expect("a PT_LOAD in the probe");
            let mut header = bytes.clone();
            header[start + load + 8] ^= 1;
            refused(&header, "damaged-header", &[]);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    // Variants start on page boundaries: only those need looking at.
    (0..haystack.len().saturating_sub(needle.len()))
        .step_by(4096)
        .find(|&at| &haystack[at..at + needle.len()] == needle)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Every `pub fn NAME(launch: Launch)` in this file is listed in `launch_checks!`, and so runs
    /// on every launch path; nothing listed is missing.
    #[test]
    fn launch_checks_lists_every_check() {
        let defined: BTreeSet<&str> = include_str!("checks.rs")
            .lines()
            .filter_map(|l| {
                l.strip_prefix("pub fn ")?
                    .strip_suffix("(launch: Launch) {")
            })
            .collect();
        let listed: BTreeSet<&str> = crate::launch_checks!(@list names).into_iter().collect();
        assert!(defined.len() > 10, "the checks were not found: {defined:?}");
        assert_eq!(
            defined, listed,
            "the checks defined (left) and those launch_checks! runs (right) differ"
        );
    }
}
