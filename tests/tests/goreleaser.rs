//! The GoReleaser recipe (docs/GORELEASER.md, scripts/goreleaser-pack.sh) run on the layout
//! GoReleaser's build step leaves for `goamd64: [v1, v2, v3, v4]`:
//! `dist/<build id>_linux_amd64_<vN>/<binary>`, here filled with real Go builds of the probe.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::build_mgo_pack;
use mgo_tests::fixtures::{go_probe, parse_report, workspace_root};
use mgo_tests::harness::{oracle_level, scratch_dir};

/// A `dist/` as GoReleaser writes it for build `id` of `binary`, with the given levels, plus the
/// metadata files it writes beside the builds.
fn goreleaser_dist(root: &Path, id: &str, binary: &str, levels: &[u32]) -> PathBuf {
    let dist = root.join("dist");
    fs::create_dir_all(&dist).unwrap();
    for &level in levels {
        let dir = dist.join(format!("{id}_linux_amd64_v{level}"));
        fs::create_dir_all(&dir).unwrap();
        fs::copy(&go_probe()[level as usize - 1], dir.join(binary)).unwrap();
    }
    fs::write(dist.join("config.yaml"), "project_name: probe\n").unwrap();
    fs::write(dist.join("metadata.json"), "{\"project_name\":\"probe\"}\n").unwrap();
    fs::write(dist.join("artifacts.json"), "[]\n").unwrap();
    dist
}

fn recipe(dist: &Path, args: &[&str]) -> Output {
    Command::new(workspace_root().join("scripts/goreleaser-pack.sh"))
        .arg("-d")
        .arg(dist)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("MGO_PACK", build_mgo_pack("x86-64"))
        .stdin(Stdio::null())
        .output()
        .expect("running scripts/goreleaser-pack.sh")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn check(out: &Output) {
    assert!(
        out.status.success(),
        "{:?}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn recipe_packs_goreleasers_per_level_builds() {
    let root = scratch_dir("goreleaser-full");
    let dist = goreleaser_dist(&root, "probe", "probe", &[1, 2, 3, 4]);
    let out = recipe(&dist, &["probe"]);
    check(&out);
    let bundle = dist.join("probe_linux_amd64_packed/probe");
    assert!(
        text(&out.stdout).contains("(v1 v2 v3 v4)"),
        "{}",
        text(&out.stdout)
    );

    let info = mgo_pack::inspect(&bundle).unwrap();
    let held: Vec<(u32, u64)> = info
        .variants
        .iter()
        .map(|v| (v.level, v.content_hash))
        .collect();
    let expected: Vec<(u32, u64)> = (1..=4)
        .map(|l| {
            let build = dist.join(format!("probe_linux_amd64_v{l}/probe"));
            (l, mgo_format::content_hash(&fs::read(build).unwrap()))
        })
        .collect();
    assert_eq!(held, expected);

    // The packed program runs, as the best build for this CPU.
    let run = Command::new(&bundle).env_clear().output().unwrap();
    check(&run);
    let level = oracle_level(go_probe());
    assert_eq!(
        parse_report(&text(&run.stdout)).get_str("level"),
        Some(format!("v{level}"))
    );

    // The one-liner from the docs gives the same bundle: levels come from the build info, so
    // the shell's glob order does not matter.
    let one_liner = root.join("one-liner");
    let out = Command::new("sh")
        .arg("-c")
        .arg("\"$0\" -o \"$1\" \"$2\"/probe_linux_amd64_v*/probe")
        .arg(build_mgo_pack("x86-64"))
        .arg(&one_liner)
        .arg(&dist)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    check(&out);
    assert!(fs::read(&one_liner).unwrap() == fs::read(&bundle).unwrap());
}

#[test]
fn recipe_handles_build_ids_output_paths_and_missing_levels() {
    let root = scratch_dir("goreleaser-id");
    // A build id other than the binary's name, and only v1 and v3 built.
    let dist = goreleaser_dist(&root, "cli-linux", "probe", &[1, 3]);
    let out_path = root.join("release/probe");
    let out = recipe(
        &dist,
        &["-i", "cli-linux", "-o", out_path.to_str().unwrap(), "probe"],
    );
    check(&out);
    let info = mgo_pack::inspect(&out_path).unwrap();
    let levels: Vec<u32> = info.variants.iter().map(|v| v.level).collect();
    assert_eq!(levels, [1, 3]);

    // Without v1: packed, with a warning that old CPUs are left out.
    let root = scratch_dir("goreleaser-no-v1");
    let dist = goreleaser_dist(&root, "probe", "probe", &[2, 4]);
    let out = recipe(&dist, &["probe"]);
    check(&out);
    assert!(
        text(&out.stderr).contains("no v1 build"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn recipe_refuses_mislabelled_or_missing_builds() {
    // A v3 build in the v2 directory: mgo-pack's check against the build info stops it.
    let root = scratch_dir("goreleaser-mislabelled");
    let dist = goreleaser_dist(&root, "probe", "probe", &[1, 3]);
    fs::create_dir_all(dist.join("probe_linux_amd64_v2")).unwrap();
    fs::copy(&go_probe()[2], dist.join("probe_linux_amd64_v2/probe")).unwrap();
    let out = recipe(&dist, &["probe"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("is named v2, but its Go build info says GOAMD64=v3"),
        "{err}"
    );
    assert!(!dist.join("probe_linux_amd64_packed/probe").exists());

    // Nothing built under that name.
    let out = recipe(&dist, &["other"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no builds found"),
        "{}",
        text(&out.stderr)
    );

    // Usage.
    let out = recipe(&dist, &[]);
    assert_eq!(out.status.code(), Some(2));
}
