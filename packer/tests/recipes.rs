//! The Make and CMake recipes of docs/BUILDING.md (`examples/c/`), run as a user would run them:
//! gcc builds the example once per x86-64 level with `-mneeded`, mgo-pack packs the four without
//! being told their levels, and the bundle runs the build `GOAMD64` asks for.

use std::path::{Path, PathBuf};
use std::process::Command;

use mgo_tests::fixtures::workspace_root;
use mgo_tests::harness::{command, run, scratch_dir, skipped, stderr, stdout};

/// `examples/c` copied into a scratch directory, so that the recipe builds there.
fn example(name: &str) -> PathBuf {
    let dir = scratch_dir(name);
    for file in ["app.c", "Makefile", "CMakeLists.txt"] {
        std::fs::copy(
            workspace_root().join("examples/c").join(file),
            dir.join(file),
        )
        .unwrap();
    }
    dir
}

/// The bundle holds v1..v4, each build records its level (v1: nothing above baseline), and
/// `GOAMD64=vN` runs the vN build wherever this CPU can run it.
fn check_bundle(bundle: &Path, builds: &[PathBuf]) {
    let info = mgo_pack::inspect(bundle).unwrap();
    let levels: Vec<u32> = info.variants.iter().map(|v| v.level).collect();
    assert_eq!(levels, [1, 2, 3, 4]);
    for (build, level) in builds.iter().zip(1..) {
        let recorded = mgo_pack::declared_level(&std::fs::read(build).unwrap()).level;
        let expected = if level == 1 { None } else { Some(level) };
        assert_eq!(recorded, expected, "{}", build.display());
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    for level in 1..=4 {
        // The v4 build needs AVX-512; v3 and below run on any CPU of the last decade.
        if level == 4 && !cpu.contains(" avx512bw") {
            skipped("recipes", "running the v4 build: this CPU has no AVX-512");
            continue;
        }
        let ran = run(command(bundle).env("GOAMD64", format!("v{level}")));
        assert_eq!(
            stdout(&ran),
            format!("hello from the x86-64 v{level} build\n"),
            "{}",
            stderr(&ran)
        );
    }
}

fn succeeded(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn make_recipe_builds_every_level_and_packs_without_names() {
    let dir = example("recipe-make");
    succeeded(
        Command::new("make")
            .arg(format!("MGO_PACK={}", env!("CARGO_BIN_EXE_mgo-pack")))
            .current_dir(&dir),
    );
    let builds: Vec<PathBuf> = ["x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4"]
        .iter()
        .map(|l| dir.join("build").join(l).join("app"))
        .collect();
    check_bundle(&dir.join("app"), &builds);
}

#[test]
fn cmake_recipe_builds_every_level_and_packs_without_names() {
    if Command::new("cmake").arg("--version").output().is_err() {
        skipped(
            "cmake_recipe_builds_every_level_and_packs_without_names",
            "cmake is not installed (scripts/install-deps.sh installs it)",
        );
        return;
    }
    let dir = example("recipe-cmake");
    let build = dir.join("build");
    succeeded(
        Command::new("cmake")
            .arg("-S")
            .arg(&dir)
            .arg("-B")
            .arg(&build)
            .arg(format!("-DMGO_PACK={}", env!("CARGO_BIN_EXE_mgo-pack"))),
    );
    succeeded(Command::new("cmake").arg("--build").arg(&build));
    let builds: Vec<PathBuf> = ["x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4"]
        .iter()
        .map(|l| build.join(format!("app-{l}")))
        .collect();
    check_bundle(&build.join("app"), &builds);
}

#[test]
fn the_documented_recipes_are_the_tested_ones() {
    let doc = std::fs::read_to_string(workspace_root().join("docs/BUILDING.md")).unwrap();
    for file in ["Makefile", "CMakeLists.txt", "app.c"] {
        let text = std::fs::read_to_string(workspace_root().join("examples/c").join(file)).unwrap();
        assert!(
            doc.contains(&text),
            "docs/BUILDING.md does not show examples/c/{file} as it is"
        );
    }
}
