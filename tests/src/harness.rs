//! Packing fixtures into bundles and running them, for the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::fixtures::target_dir;

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
    let variants: Vec<mgo_pack::Variant> = variants
        .iter()
        .map(|&(level, path)| mgo_pack::Variant::read(path, Some(level)).expect("reading variant"))
        .collect();
    let options = mgo_pack::BundleOptions::default().with_launch(launch);
    let bytes = mgo_pack::build_bundle_with(&variants, &options).expect("building bundle");
    mgo_pack::write_executable(out, &bytes).expect("writing bundle");
    out.to_path_buf()
}

/// Packs all four levels of a fixture, for the memfd launch path.
pub fn pack_all(out: &Path, levels: &[PathBuf; 4]) -> PathBuf {
    let variants: Vec<(u32, &Path)> = levels
        .iter()
        .enumerate()
        .map(|(i, p)| (i as u32 + 1, p.as_path()))
        .collect();
    pack(out, &variants)
}

/// A command that runs `program` with a clean, known environment.
pub fn command(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null());
    cmd
}

pub fn run(cmd: &mut Command) -> Output {
    retry_busy(|| cmd.output())
}

/// Starts `cmd`, as [`run`] does.
pub fn spawn(cmd: &mut Command) -> std::process::Child {
    retry_busy(|| cmd.spawn())
}

/// Tests pack bundles while other threads of the same test process fork: a child forked while a
/// bundle was still open for writing holds that descriptor until its own exec closes it, and
/// executing the bundle meanwhile fails with ETXTBSY. The window is short; wait it out.
fn retry_busy<T>(mut attempt: impl FnMut() -> std::io::Result<T>) -> T {
    const ETXTBSY: i32 = 26;
    for _ in 0..100 {
        match attempt() {
            Err(e) if e.raw_os_error() == Some(ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            result => return result.expect("spawning"),
        }
    }
    attempt().expect("spawning (text file still busy after a second)")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
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
