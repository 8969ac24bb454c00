//! `mgo-pack build`: mgo's build mode, run for real with Debian's Go on the probe's sources.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mgo_tests::fixtures::{fixtures_dir, parse_report, workspace_root};
use mgo_tests::harness::{command, run, scratch_dir, stderr, stdout};

/// A copy of the Go probe's module, so that each test builds in its own directory.
fn probe_module(name: &str) -> PathBuf {
    let dir = scratch_dir(name);
    for file in ["go.mod", "main.go"] {
        let from = workspace_root().join("tests/fixtures/goprobe").join(file);
        std::fs::copy(from, dir.join(file)).unwrap();
    }
    dir
}

fn mgo_pack_build(dir: &Path, args: &[&str]) -> Output {
    let cache = fixtures_dir();
    Command::new(env!("CARGO_BIN_EXE_mgo-pack"))
        .arg("build")
        .args(args)
        .current_dir(dir)
        .env("GOCACHE", cache.join("gocache"))
        .env("GOPATH", cache.join("gopath"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("CGO_ENABLED", "0")
        .env_remove("MGO_COMPRESS")
        .output()
        .unwrap()
}

#[test]
fn builds_every_level_and_packs_them() {
    let dir = probe_module("build-ok");
    let out = mgo_pack_build(&dir, &["-trimpath", "-o", "probe", "."]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bundle = dir.join("probe");
    for level in ["v1", "v2", "v3", "v4"] {
        let run = run(command(&bundle).env("GOAMD64", level));
        let report = parse_report(&stdout(&run));
        assert_eq!(
            report.get_str("level").as_deref(),
            Some(level),
            "{}",
            stderr(&run)
        );
    }
    let version = Command::new("go")
        .args(["version", "-m"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        stdout(&version).contains("build\t-trimpath=true"),
        "{}",
        stdout(&version)
    );
}

#[test]
fn default_output_name_and_compression_like_mgo() {
    let dir = probe_module("build-default");
    let out = mgo_pack_build(&dir, &["--compress", "zstd:3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bundle = dir.join("mgoprobe");
    let info = Command::new(env!("CARGO_BIN_EXE_mgo-pack"))
        .arg("inspect")
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(stdout(&info).contains("zstd"), "{}", stdout(&info));
    assert!(run(&mut command(&bundle)).status.success());
}

#[test]
fn first_failure_stops_and_leaves_no_output() {
    let dir = probe_module("build-fail");
    std::fs::write(
        dir.join("broken.go"),
        "package main\n\nvar broken int = \"not an int\"\n",
    )
    .unwrap();
    let out = mgo_pack_build(&dir, &["-o", "probe", "."]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.starts_with("[v") && l.contains("broken.go")),
        "{err}"
    );
    assert!(
        err.lines()
            .last()
            .unwrap()
            .starts_with("mgo-pack: error: go build failed for GOAMD64=v"),
        "{err}"
    );
    assert!(!dir.join("probe").exists());
}
