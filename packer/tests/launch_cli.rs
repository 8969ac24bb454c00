//! `mgo-pack --launch`: the pack-time choice of the launch path, as the command line exposes it,
//! seen both in the bundle's index (the `ENTRY_DIRECT` and `ENTRY_CACHE` flags) and in what the
//! packed program reports about itself when it runs.

use std::path::Path;
use std::process::Command;

use mgo_format::{Bundle, ENTRY_CACHE, ENTRY_DIRECT};
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

fn flags(bundle: &Path, flag: u16) -> Vec<bool> {
    let bytes = std::fs::read(bundle).unwrap();
    let parsed = Bundle::parse_file(&bytes).unwrap();
    parsed.entries().map(|e| e.flags & flag != 0).collect()
}

/// What `/proc/self/exe` shows the Go probe (v1) packed into `bundle`, run with `env`.
fn exe_seen(bundle: &Path, env: &[(&str, &Path)]) -> String {
    let out = Command::new(bundle)
        .env_clear()
        .env("GOAMD64", "v1")
        .envs(env.iter().copied())
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
    let cache = dir.join("cache");
    pack(&default, None);
    pack(&direct, Some("direct"));
    pack(&memfd, Some("memfd"));
    pack(&cache, Some("cache"));
    // memfd is the default, so that /proc/PID/exe names the variant as mgo documents.
    for (bundle, direct, cached) in [
        (&default, false, false),
        (&direct, true, false),
        (&memfd, false, false),
        (&cache, false, true),
    ] {
        assert_eq!(flags(bundle, ENTRY_DIRECT), [direct; 2], "{bundle:?}");
        assert_eq!(flags(bundle, ENTRY_CACHE), [cached; 2], "{bundle:?}");
    }
    assert!(exe_seen(&default, &[]).starts_with("/memfd:"));
    assert_eq!(
        exe_seen(&direct, &[]),
        direct.canonicalize().unwrap().to_str().unwrap()
    );
    assert!(exe_seen(&memfd, &[]).starts_with("/memfd:"));
    // The cache path: a file in the cache directory, named after the bundle, at the level run.
    let home = dir.canonicalize().unwrap().join("xdg");
    let exe = exe_seen(&cache, &[("XDG_CACHE_HOME", &home)]);
    let prefix = format!("{}/mgo-pack/", home.display());
    assert!(
        exe.starts_with(&prefix) && exe.ends_with(" GOAMD64=v1/cache"),
        "{exe}"
    );
    // Without a cache directory, the memfd.
    assert!(exe_seen(&cache, &[]).starts_with("/memfd:"));

    let out = Command::new(env!("CARGO_BIN_EXE_mgo-pack"))
        .args(["-o"])
        .arg(dir.join("bad"))
        .args(["--launch", "copy"])
        .arg(format!("v1={}", go_probe()[0].display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values: cache, direct, memfd"));
    assert!(!dir.join("bad").exists());
}
