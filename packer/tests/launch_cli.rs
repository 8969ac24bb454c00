//! `mgo-pack --launch`: the pack-time choice of the launch path, as the command line exposes it,
//! seen both in the bundle's index (the `ENTRY_DIRECT` flags) and in what the packed program
//! reports about itself when it runs.

use std::path::Path;
use std::process::Command;

use mgo_format::{Bundle, ENTRY_DIRECT};
use mgo_tests::fixtures::{c_probe_dynamic, go_probe, parse_report};
use mgo_tests::harness::scratch_dir;

fn pack(out: &Path, launch: Option<&str>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mgo-pack"));
    cmd.arg("-q").arg("-o").arg(out).env_remove("MGO_COMPRESS");
    if let Some(launch) = launch {
        cmd.args(["--launch", launch]);
    }
    cmd.arg(format!("v1={}", go_probe()[0].display()))
        .arg(format!("v2={}", c_probe_dynamic()[1].display()));
    let out = cmd.output().expect("running mgo-pack");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn flags(bundle: &Path) -> Vec<bool> {
    let bytes = std::fs::read(bundle).unwrap();
    let parsed = Bundle::parse_file(&bytes).unwrap();
    parsed
        .entries()
        .map(|e| e.flags & ENTRY_DIRECT != 0)
        .collect()
}

/// What `/proc/self/exe` shows the Go probe (v1) packed into `bundle`.
fn exe_seen(bundle: &Path) -> String {
    let out = Command::new(bundle)
        .env_clear()
        .env("GOAMD64", "v1")
        .output()
        .expect("running the bundle");
    assert!(out.status.success());
    parse_report(&String::from_utf8_lossy(&out.stdout))
        .get_str("exe")
        .unwrap()
}

#[test]
fn launch_path_is_chosen_at_pack_time() {
    let dir = scratch_dir("cli-launch");
    let default = dir.join("default");
    let direct = dir.join("direct");
    let memfd = dir.join("memfd");
    pack(&default, None);
    pack(&direct, Some("direct"));
    pack(&memfd, Some("memfd"));
    // memfd is the default, so that /proc/PID/exe names the variant as mgo documents.
    assert_eq!(flags(&default), [false, false]);
    assert_eq!(flags(&direct), [true, true]);
    assert_eq!(flags(&memfd), [false, false]);
    assert!(exe_seen(&default).starts_with("/memfd:"));
    assert_eq!(
        exe_seen(&direct),
        direct.canonicalize().unwrap().to_str().unwrap()
    );
    assert!(exe_seen(&memfd).starts_with("/memfd:"));

    let out = Command::new(env!("CARGO_BIN_EXE_mgo-pack"))
        .args(["-o"])
        .arg(dir.join("bad"))
        .args(["--launch", "copy"])
        .arg(format!("v1={}", go_probe()[0].display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values: direct, memfd"));
    assert!(!dir.join("bad").exists());
}
