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

/// Packs `(level, path)` variants into `out` through the library, as the CLI does.
pub fn pack(out: &Path, variants: &[(u32, &Path)]) -> PathBuf {
    let variants: Vec<mgo_pack::Variant> = variants
        .iter()
        .map(|&(level, path)| mgo_pack::Variant::read(path, Some(level)).expect("reading variant"))
        .collect();
    let bytes = mgo_pack::build_bundle(&variants).expect("building bundle");
    mgo_pack::write_executable(out, &bytes).expect("writing bundle");
    out.to_path_buf()
}

/// Packs all four levels of a fixture.
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
    cmd.output().expect("spawning")
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
