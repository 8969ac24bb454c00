//! The fixtures run directly, without any packing: this pins down what a
//! correct run looks like, so that when a packed run differs, the launcher
//! is to blame and not the probe. The host must run x86-64-v4 code (all
//! four variants are executed).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use mgo_tests::fixtures::{
    c_probe_dynamic, c_probe_static, go_probe, gofmt, parse_report, Report, LEVELS,
};

/// Every probe build, labelled for assertion messages.
fn probes() -> Vec<(String, &'static str, &'static PathBuf)> {
    let sets = [
        ("go", go_probe()),
        ("c-static", c_probe_static()),
        ("c-dynamic", c_probe_dynamic()),
    ];
    sets.into_iter()
        .flat_map(|(kind, paths)| {
            LEVELS
                .iter()
                .zip(paths)
                .map(move |(level, path)| (format!("{kind} {level}"), *level, path))
        })
        .collect()
}

struct Run {
    status: ExitStatus,
    stdout: String,
    report: Report,
}

fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Run {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    if let Some(data) = stdin {
        // Small inputs only, so this cannot fill the pipe and deadlock.
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(data).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(output.stdout).expect("probe output is UTF-8");
    Run {
        status: output.status,
        report: parse_report(&stdout),
        stdout,
    }
}

#[test]
fn each_probe_reports_its_own_level_and_identity() {
    let cwd = std::env::temp_dir().canonicalize().unwrap();
    for (label, level, path) in probes() {
        let mut cmd = Command::new(path);
        cmd.current_dir(&cwd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let pid = i64::from(child.id());
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{label}: {}", output.status);
        let r = parse_report(std::str::from_utf8(&output.stdout).unwrap());

        assert_eq!(r.get_str("level").as_deref(), Some(level), "{label}");
        assert_eq!(r.get_i64("pid"), Some(pid), "{label}");
        assert_eq!(
            r.get_i64("ppid"),
            Some(i64::from(std::process::id())),
            "{label}"
        );
        assert_eq!(
            r.get_str("exe").map(PathBuf::from),
            Some(path.canonicalize().unwrap()),
            "{label}"
        );
        // The kernel keeps at most 15 bytes of the name.
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            r.get_str("comm").as_deref(),
            Some(&name[..name.len().min(15)]),
            "{label}"
        );
        assert_eq!(r.get_str("cwd").map(PathBuf::from), Some(cwd.clone()));

        let fds = r.get_i64_array("fds").unwrap();
        assert!(fds.starts_with(&[0, 1, 2]), "{label}: {fds:?}");
        let targets = r.get_str_map("fd_targets").unwrap();
        let listed: Vec<i64> = targets.keys().map(|k| k.parse().unwrap()).collect();
        let mut sorted = listed.clone();
        sorted.sort();
        assert_eq!(sorted, fds, "{label}: fd_targets must cover fds exactly");
        // The probe's own directory handle must not be reported.
        let own_dir = format!("/proc/{pid}/fd");
        assert!(
            targets.values().all(|t| *t != own_dir),
            "{label}: {targets:?}"
        );
        assert_eq!(targets["0"], "/dev/null", "{label}");
    }
}

#[test]
fn argv_round_trips_exactly() {
    let args = [
        "a b",
        "ünï",
        "",
        "q\"uote \\ back\nnew\ttab",
        "\u{1}ctl",
        "😀",
    ];
    for (label, _, path) in probes() {
        let r = run(Command::new(path).args(args), None);
        assert!(r.status.success(), "{label}: {}", r.status);
        let mut expected = vec![path.to_str().unwrap().to_string()];
        expected.extend(args.iter().map(|a| a.to_string()));
        assert_eq!(r.report.get_str_array("argv"), Some(expected), "{label}");
    }
}

#[test]
fn environment_round_trips_exactly() {
    let vars = [
        ("PLAIN", "value"),
        ("SPACED", "a b  c"),
        ("UNICODE", "ünï 😀"),
        ("EMPTY", ""),
        ("EQUALS", "x=y=z"),
    ];
    for (label, _, path) in probes() {
        let r = run(Command::new(path).env_clear().envs(vars), None);
        assert!(r.status.success(), "{label}: {}", r.status);
        let mut expected: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
        expected.sort();
        assert_eq!(r.report.get_str_array("env"), Some(expected), "{label}");
    }
}

#[test]
fn exit_code_is_passed_through() {
    for (label, _, path) in probes() {
        let r = run(Command::new(path).env("PROBE_EXIT", "42"), None);
        assert_eq!(r.status.code(), Some(42), "{label}");
        // The report still comes out in full before the exit.
        assert!(
            r.report.get("fd_targets").is_some(),
            "{label}: {}",
            r.stdout
        );
    }
}

#[test]
fn probe_dies_by_the_requested_signal() {
    // INT is left out: a test run started in the background may inherit
    // SIGINT as ignored, and the probe would then survive it.
    for (name, signal) in [("TERM", 15), ("KILL", 9)] {
        for (label, _, path) in probes() {
            let r = run(Command::new(path).env("PROBE_SIGNAL", name), None);
            assert_eq!(
                r.status.signal(),
                Some(signal),
                "{label} {name}: {}",
                r.status
            );
            assert!(r.report.get("level").is_some(), "{label}: {}", r.stdout);
        }
    }
}

#[test]
fn stdin_is_echoed() {
    let input = "first line\nwörld \"quoted\" \\ \t\u{1}\nno newline at end";
    for (label, _, path) in probes() {
        let r = run(
            Command::new(path).env("PROBE_STDIN", "1"),
            Some(input.as_bytes()),
        );
        assert!(r.status.success(), "{label}: {}", r.status);
        assert_eq!(r.report.get_str("stdin").as_deref(), Some(input), "{label}");
    }
}

#[test]
fn running_probe_can_be_observed_while_it_sleeps() {
    for (label, _, path) in probes() {
        let mut child = Command::new(path)
            .args(["x", "y z"])
            .env("PROBE_SLEEP_MS", "20000")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // The report is flushed before the sleep starts, so once its last
        // line is in, the process is known to be alive and idle.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut report = String::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            report.push_str(&line);
            report.push('\n');
            if line.starts_with("fd_targets=") {
                break;
            }
        }
        let proc_dir = Path::new("/proc").join(child.id().to_string());
        let cmdline = std::fs::read(proc_dir.join("cmdline")).unwrap();
        let expected = format!("{}\0x\0y z\0", path.display());
        assert_eq!(
            String::from_utf8_lossy(&cmdline),
            expected,
            "{label}: {report}"
        );
        assert!(child.try_wait().unwrap().is_none(), "{label} exited early");
        child.kill().unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(9), "{label}");
    }
}

#[test]
fn gofmt_formats_at_every_level() {
    let messy = "package main\nimport \"fmt\"\nfunc main(){x:=map[string]int{\"a\":1,\"bb\":2}\nfmt.Println(x)}\n";
    let tidy = "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tx := map[string]int{\"a\": 1, \"bb\": 2}\n\tfmt.Println(x)\n}\n";
    for (level, path) in LEVELS.iter().zip(gofmt()) {
        let r = run(&mut Command::new(path), Some(messy.as_bytes()));
        assert!(r.status.success(), "gofmt {level}: {}", r.status);
        assert_eq!(r.stdout, tidy, "gofmt {level}");
    }
}

/// Not a behaviour check but a guard on the helper itself: a parse of real
/// probe output yields every key the format promises.
#[test]
fn probe_reports_every_documented_key() {
    let keys = [
        "level",
        "argv",
        "env",
        "cwd",
        "pid",
        "ppid",
        "exe",
        "comm",
        "fds",
        "fd_targets",
    ];
    for (label, _, path) in probes() {
        let r = run(&mut Command::new(path), None);
        let got: BTreeMap<_, _> = r.report.fields.iter().collect();
        for key in keys {
            assert!(got.contains_key(&key.to_string()), "{label}: no {key}");
        }
        assert!(!got.contains_key(&"stdin".to_string()), "{label}");
    }
}
