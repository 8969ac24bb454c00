//! Packing fixtures into bundles and running them, for the end-to-end tests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::fixtures::{parse_report, target_dir, Report};

/// A fresh directory for one test's files, under `target/e2e/`, emptied first.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = target_dir().join("e2e").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating scratch dir");
    dir
}

/// Packs `(level, path)` variants into `out` through the library, for the memfd launch path:
/// the path mgo takes, which these helpers' users (the memfd path's tests and its fallbacks) rely
/// on. [`pack_with`] chooses the path; the library's default is the direct path.
pub fn pack(out: &Path, variants: &[(u32, &Path)]) -> PathBuf {
    pack_with(out, variants, mgo_pack::Launch::Memfd)
}

/// Packs `(level, path)` variants into `out` through the library, as the CLI does, with the
/// launch path `launch`.
pub fn pack_with(out: &Path, variants: &[(u32, &Path)], launch: mgo_pack::Launch) -> PathBuf {
    let options = mgo_pack::BundleOptions::default().with_launch(launch);
    pack_options(out, variants, &options)
}

/// Packs `(level, path)` variants into `out` through the library with `options` (launch path,
/// compression).
pub fn pack_options(
    out: &Path,
    variants: &[(u32, &Path)],
    options: &mgo_pack::BundleOptions,
) -> PathBuf {
    let variants: Vec<mgo_pack::Variant> = variants
        .iter()
        .map(|&(level, path)| mgo_pack::Variant::read(path, Some(level)).expect("reading variant"))
        .collect();
    let bytes = mgo_pack::build_bundle_with(&variants, options).expect("building bundle");
    write_executable(out, &bytes).expect("writing bundle");
    out.to_path_buf()
}

/// [`mgo_pack::write_executable`], written so that the file can be executed as soon as this
/// returns, whatever other threads of the test process are doing. Tests that write a file they
/// will execute must write it through here (or [`copy_executable`]), never directly.
///
/// Exec fails with ETXTBSY while any process holds the file open for writing. A test process
/// starts children from many threads at once, and a child started while this thread has the
/// file open gets a copy of the whole descriptor table, writable descriptor included, and
/// keeps it until its own exec closes it. Under load that is long enough for a bundle that
/// was just written to be refused with "Text file busy" (a CI run failed one time in four that
/// way). So the file is written on a thread with a descriptor table of its own
/// (`unshare(CLONE_FILES)`): no other thread's child ever holds its descriptors.
pub fn write_executable(path: &Path, bytes: &[u8]) -> Result<(), mgo_pack::PackError> {
    with_private_descriptors(|| mgo_pack::write_executable(path, bytes))
}

/// Copies `from` to `to` (which ends up with `from`'s permissions, as [`std::fs::copy`] gives
/// it) so that `to` can be executed as soon as this returns; see [`write_executable`].
pub fn copy_executable(from: &Path, to: &Path) -> std::io::Result<u64> {
    with_private_descriptors(|| std::fs::copy(from, to))
}

/// Runs `f` on a new thread whose descriptor table is its own, so that the descriptors `f`
/// opens are never copied into a child that another thread starts.
fn with_private_descriptors<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            // SAFETY: unshare(CLONE_FILES) gives the calling thread a private copy of the
            // descriptor table; it touches no memory of this process.
            if unsafe { libc::unshare(libc::CLONE_FILES) } != 0 {
                panic!("unshare(CLONE_FILES): {}", std::io::Error::last_os_error());
            }
            f()
        });
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Packs all four levels of a fixture, for the memfd launch path.
pub fn pack_all(out: &Path, levels: &[PathBuf; 4]) -> PathBuf {
    pack(out, &numbered(levels))
}

/// A fixture's four builds as `(level, path)` variants, v1 to v4.
pub fn numbered(levels: &[PathBuf; 4]) -> Vec<(u32, &Path)> {
    levels
        .iter()
        .enumerate()
        .map(|(i, p)| (i as u32 + 1, p.as_path()))
        .collect()
}

/// The cache directory (`XDG_CACHE_HOME`) the tests run bundles packed for the cache path with,
/// emptied once per test process: without one, such a bundle would silently start on the memfd
/// path.
pub fn cache_home() -> &'static Path {
    static HOME: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    HOME.get_or_init(|| scratch_dir("cache-home").canonicalize().unwrap())
}

/// A command that runs `program` with a clean, known environment.
pub fn command(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd` to completion, capturing its output. Files the tests wrote are never busy here
/// (see [`write_executable`]), so a failure to start is a failure of the test.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {:?}: {e}", cmd.get_program()))
}

/// Starts `cmd`, as [`run`] does.
pub fn spawn(cmd: &mut Command) -> std::process::Child {
    cmd.spawn()
        .unwrap_or_else(|e| panic!("starting {:?}: {e}", cmd.get_program()))
}

/// A program that stays alive (`PROBE_SLEEP_MS`) once it has printed its report, so that its
/// `/proc` entries can be read. Killed and reaped when dropped.
pub struct Sleeper {
    pub child: std::process::Child,
    pub report: String,
}

impl Sleeper {
    /// Starts `cmd`, a probe (or a bundle of one), and waits for its report.
    pub fn start(cmd: &mut Command) -> Sleeper {
        let mut child = spawn(cmd.env("PROBE_SLEEP_MS", "30000").stdout(Stdio::piped()));
        let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut report = String::new();
        // The report's last line (without PROBE_STDIN) is fd_targets; then the probe sleeps.
        while !report.contains("fd_targets=") {
            let before = report.len();
            std::io::BufRead::read_line(&mut reader, &mut report).unwrap();
            assert!(report.len() > before, "the probe ended early: {report}");
        }
        Sleeper { child, report }
    }

    /// `/proc/PID/FILE` of the program, as text.
    pub fn proc(&self, file: &str) -> String {
        std::fs::read_to_string(format!("/proc/{}/{file}", self.child.id())).unwrap()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The probe's report from a run that must have succeeded.
pub fn ok_report(out: &Output, what: &str) -> Report {
    assert!(
        out.status.success(),
        "{what}: exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        stdout(out),
        stderr(out)
    );
    parse_report(&stdout(out))
}

/// The level the probe says it was built for.
pub fn level(report: &Report) -> String {
    report
        .get_str("level")
        .expect("level in the probe's report")
}

/// Says on the test process's stderr that `test` checked nothing, and why. (Not `eprintln!`: the
/// test harness captures that and shows it only for failing tests.)
pub fn skipped(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}");
}

/// The level this machine runs, found the way Go itself decides: the highest variant of the
/// probe that starts when run directly.
pub fn oracle_level(levels: &[PathBuf; 4]) -> u32 {
    let mut best = 0;
    for (i, path) in levels.iter().enumerate() {
        if command(path).output().is_ok_and(|o| o.status.success()) {
            best = i as u32 + 1;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// The race [`write_executable`] closes, made likely: threads start children without pause
    /// while executables are written and each is run at once, without any retry. With the file
    /// written on the calling thread's shared descriptor table, about one run in four here fails
    /// with ETXTBSY.
    #[test]
    fn written_executables_run_at_once_while_other_threads_start_children() {
        let dir = scratch_dir("harness-busy");
        let program = std::fs::read("/bin/true").expect("reading /bin/true");
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        run(&mut command(Path::new("/bin/true")));
                    }
                });
            }
            let stopper = StopOnDrop(&stop);
            for i in 0..200 {
                let path = dir.join(format!("true-{i}"));
                if i % 2 == 0 {
                    write_executable(&path, &program).unwrap();
                } else {
                    copy_executable(Path::new("/bin/true"), &path).unwrap();
                }
                let status = Command::new(&path).status();
                assert!(
                    status.as_ref().is_ok_and(|s| s.success()),
                    "run {i}: {status:?}"
                );
            }
            drop(stopper);
        });
    }

    /// Stops the spawning threads however the loop ends, so that a failure is reported rather
    /// than the scope waiting for them forever.
    struct StopOnDrop<'a>(&'a AtomicBool);

    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}
