//! 200 launches of one bundle at the same time, on each launch path: every one runs the right
//! variant with its own arguments, and nothing is left behind in the temporary directories.
//! The programs sleep after reporting, so that all 200 hold their exec targets at once.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mgo_tests::fixtures::{c_probe_dynamic, go_probe, parse_report};
use mgo_tests::harness::{
    command, oracle_level, pack_all, pack_with, run, scratch_dir, spawn, stderr, stdout,
};

const LAUNCHES: usize = 200;
const SECCOMP_RUN: &str = env!("CARGO_BIN_EXE_mgo-seccomp-run");

fn skipped(test: &str, why: &str) {
    // Not eprintln!: the test harness captures that and shows it only for failing tests.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}");
}

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Starts `LAUNCHES` copies of `make(i)` at once, then checks each one's report: the expected
/// level, its own argument, its own pid, exit status 0. Returns the `exe` each one saw.
fn launch_all(what: &str, expected: u32, make: impl Fn(usize) -> Command) -> Vec<String> {
    let children: Vec<_> = (0..LAUNCHES)
        .map(|i| {
            let mut cmd = make(i);
            cmd.arg(format!("launch-{i}"))
                .env("PROBE_SLEEP_MS", "300")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            spawn(&mut cmd)
        })
        .collect();
    let mut exes = Vec::new();
    for (i, child) in children.into_iter().enumerate() {
        let pid = child.id() as i64;
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{what}: launch {i}: {:?}: {}",
            out.status,
            stderr(&out)
        );
        let report = parse_report(&stdout(&out));
        assert_eq!(
            report.get_str("level"),
            Some(format!("v{expected}")),
            "{what}: launch {i}"
        );
        let argv = report.get_str_array("argv").unwrap();
        assert_eq!(argv.last().unwrap(), &format!("launch-{i}"), "{what}");
        // The launcher execs in place (or jumps): the program is the process that was started,
        // unless a helper (mgo-seccomp-run) exec'd it, which keeps the pid too.
        assert_eq!(report.get_i64("pid"), Some(pid), "{what}: launch {i}");
        assert!(out.stderr.is_empty(), "{what}: {}", stderr(&out));
        exes.push(report.get_str("exe").unwrap());
    }
    exes
}

#[test]
fn concurrent_launches_on_the_default_path() {
    // A static Go program packed with the library's defaults: the direct path.
    let bundle = pack_with(
        &scratch_dir("load-direct").join("probe"),
        &go_probe()
            .iter()
            .enumerate()
            .map(|(i, p)| (i as u32 + 1, p.as_path()))
            .collect::<Vec<_>>(),
        mgo_pack::Launch::Direct,
    );
    let shm_before = names(Path::new("/dev/shm"));
    let expected = oracle_level(go_probe());
    let exes = launch_all("direct", expected, |_| command(&bundle));
    assert!(
        exes.iter().all(|e| Path::new(e) == bundle),
        "{:?}",
        &exes[0]
    );
    assert_eq!(names(Path::new("/dev/shm")), shm_before);
}

#[test]
fn concurrent_launches_through_memfds() {
    let bundle = pack_all(&scratch_dir("load-memfd").join("cprobe"), c_probe_dynamic());
    let shm_before = names(Path::new("/dev/shm"));
    let expected = oracle_level(c_probe_dynamic());
    let exes = launch_all("memfd", expected, |_| command(&bundle));
    assert!(
        exes.iter().all(|e| e.starts_with("/memfd:")),
        "{:?}",
        &exes[0]
    );
    assert_eq!(names(Path::new("/dev/shm")), shm_before);
}

#[test]
fn concurrent_launches_through_unnamed_files() {
    // memfd_create refused: every launch makes its own O_TMPFILE file in XDG_RUNTIME_DIR.
    let bundle = pack_all(
        &scratch_dir("load-tmpfile").join("cprobe"),
        c_probe_dynamic(),
    );
    let dir = scratch_dir("load-tmpfile-xdg");
    let expected = oracle_level(c_probe_dynamic());
    let exes = launch_all("O_TMPFILE", expected, |_| {
        let mut cmd = command(Path::new(SECCOMP_RUN));
        cmd.args(["memfd_create=EPERM", "--"])
            .arg(&bundle)
            .env("XDG_RUNTIME_DIR", &dir);
        cmd
    });
    let prefix = format!("{}/#", dir.display());
    assert!(
        exes.iter().all(|e| e.starts_with(&prefix)),
        "{:?}",
        &exes[0]
    );
    assert!(names(&dir).is_empty(), "{:?}", names(&dir));
}

/// The same on a fresh tmpfs in a mount namespace, whose block count shows that the files' pages
/// are released too, not only their names; once with /proc (O_TMPFILE files), once without it
/// (private directories).
#[test]
fn concurrent_fallback_launches_release_every_page() {
    let test = "concurrent_fallback_launches_release_every_page";
    match Command::new("unshare").args(["-m", "true"]).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => return skipped(test, &format!("unshare -m: {}", stderr(&out).trim())),
        Err(e) => return skipped(test, &format!("unshare (util-linux) not available: {e}")),
    }
    let bundle = pack_all(&scratch_dir("load-tmpfs").join("cprobe"), c_probe_dynamic());
    let mnt: PathBuf = scratch_dir("load-tmpfs-mnt");
    let outs = scratch_dir("load-tmpfs-out");
    let expected = oracle_level(c_probe_dynamic());
    let script = r#"mount -t tmpfs -o size=512m tmpfs "$D" || exit 99
        used() { stat -f -c '%b %f' "$D" | awk '{print $1 - $2}'; }
        round() {
            i=0
            while [ $i -lt "$N" ]; do
                XDG_RUNTIME_DIR="$D" PROBE_SLEEP_MS=300 "$S" memfd_create=EPERM -- "$B" "$1-$i" \
                    > "$O/$1-$i.out" 2> "$O/$1-$i.err" &
                i=$((i + 1))
            done
            sleep 0.15
            echo "$1 running used=$(used) names=$(ls -A "$D" | wc -l)"
            wait
            echo "$1 done used=$(used) names=$(ls -A "$D" | wc -l)"
        }
        round proc
        umount -l /proc || exit 99
        round no-proc
        "#;
    let mut cmd = command(Path::new("/usr/bin/unshare"));
    cmd.args(["-m", "/bin/sh", "-c", script]);
    for (k, v) in [
        ("D", mnt.as_os_str()),
        ("O", outs.as_os_str()),
        ("B", bundle.as_os_str()),
        ("S", OsStr::new(SECCOMP_RUN)),
        ("N", OsStr::new(&LAUNCHES.to_string())),
    ] {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    if out.status.code() == Some(99) {
        return skipped(test, &format!("set-up failed: {}", stderr(&out).trim()));
    }
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    for line in &lines {
        let fields: Vec<&str> = line.split(' ').collect();
        let used: u64 = fields[2].strip_prefix("used=").unwrap().parse().unwrap();
        assert_eq!(fields[3], "names=0", "{text}");
        if fields[1] == "running" {
            assert!(used > 0, "the programs' files are not in the tmpfs: {text}");
        } else {
            assert_eq!(used, 0, "pages outlived the programs: {text}");
        }
    }
    for round in ["proc", "no-proc"] {
        for i in 0..LAUNCHES {
            let name = format!("{round}-{i}");
            let report =
                parse_report(&std::fs::read_to_string(outs.join(format!("{name}.out"))).unwrap());
            let err = std::fs::read_to_string(outs.join(format!("{name}.err"))).unwrap();
            assert_eq!(
                report.get_str("level"),
                Some(format!("v{expected}")),
                "{name}: {err}"
            );
            assert_eq!(report.get_str_array("argv").unwrap().last().unwrap(), &name);
            assert!(err.is_empty(), "{name}: {err}");
        }
    }
}
