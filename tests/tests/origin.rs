//! A program whose libraries sit beside it, found through `$ORIGIN` in its RUNPATH (or RPATH),
//! still finds them packed: the packer starts it from the bundle's own location (the direct
//! path) whatever launch path was asked for, and says so in `--verbose` and `inspect`. From a
//! memfd the dynamic loader would look beside the memfd, find nothing, and stop with status 127.

use std::path::{Path, PathBuf};
use std::process::Command;

use mgo_tests::harness::{command, pack, scratch_dir};

/// Builds `libanswer.so` into `dir/lib` and the program against it once per level, with
/// `$ORIGIN/lib` as RUNPATH (`new_dtags`) or RPATH.
fn build(dir: &Path, new_dtags: bool) -> [PathBuf; 4] {
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    std::fs::write(dir.join("lib.c"), "int answer(void) { return 42; }\n").unwrap();
    std::fs::write(
        dir.join("main.c"),
        "#include <stdio.h>\nint answer(void);\n\
         int main(void) { printf(\"answer=%d\\n\", answer()); return 0; }\n",
    )
    .unwrap();
    gcc(
        dir,
        &["-shared", "-fPIC", "-o", "lib/libanswer.so", "lib.c"],
    );
    let tags = if new_dtags {
        "-Wl,--enable-new-dtags"
    } else {
        "-Wl,--disable-new-dtags"
    };
    ["x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4"].map(|march| {
        let out = format!("app.{march}");
        gcc(
            dir,
            &[
                &format!("-march={march}"),
                "-o",
                &out,
                "main.c",
                "-Llib",
                "-lanswer",
                "-Wl,-rpath,$ORIGIN/lib",
                tags,
            ],
        );
        dir.join(out)
    })
}

fn gcc(dir: &Path, args: &[&str]) {
    let out = Command::new("gcc")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "gcc {args:?}: {out:?}");
}

#[test]
fn origin_programs_run_from_the_bundle_whatever_the_launch_path() {
    for (name, new_dtags, kind) in [
        ("origin-runpath", true, "RUNPATH"),
        ("origin-rpath", false, "RPATH"),
    ] {
        let dir = scratch_dir(name);
        let builds = build(&dir, new_dtags);
        // The build itself, run directly: the library beside it is found.
        let direct_run = command(&builds[0]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&direct_run.stdout), "answer=42\n");
        // Packed for the memfd path (the default), beside the same lib/ directory.
        let levels: Vec<(u32, &Path)> = (0..4)
            .map(|i| (i as u32 + 1, builds[i].as_path()))
            .collect();
        let bundle = pack(&dir.join("app"), &levels);
        let out = command(&bundle).env("MGODEBUG", "log").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "answer=42\n",
            "{name}: {err}"
        );
        assert!(
            err.lines()
                .any(|l| l == "[mgo] launcher: launch path direct"),
            "{err}"
        );
        // Forced through a memfd, the loader looks beside the memfd: the reason for the choice.
        let forced = command(&bundle).env("MGODEBUG", "memfd").output().unwrap();
        assert_eq!(forced.status.code(), Some(127), "{forced:?}");
        // inspect says which variants and why.
        let info = mgo_pack::inspect(&bundle).unwrap();
        for v in &info.variants {
            assert_ne!(v.flags & mgo_format::ENTRY_OWN_LOCATION, 0, "{name}: {v:?}");
            assert_ne!(v.flags & mgo_format::ENTRY_DIRECT, 0, "{name}: {v:?}");
        }
        let reason = mgo_pack::needs_own_location(&std::fs::read(&builds[0]).unwrap());
        assert_eq!(
            reason,
            Some(if kind == "RUNPATH" {
                "its RUNPATH finds libraries through $ORIGIN"
            } else {
                "its RPATH finds libraries through $ORIGIN"
            })
        );
    }
}

#[test]
fn programs_without_origin_keep_the_path_asked_for() {
    let probe = mgo_tests::fixtures::c_probe_dynamic();
    assert_eq!(
        mgo_pack::needs_own_location(&std::fs::read(&probe[0]).unwrap()),
        None
    );
    let levels: Vec<(u32, &Path)> = (0..4).map(|i| (i as u32 + 1, probe[i].as_path())).collect();
    let bundle = pack(&scratch_dir("origin-none").join("app"), &levels);
    for v in mgo_pack::inspect(&bundle).unwrap().variants {
        assert_eq!(
            v.flags & (mgo_format::ENTRY_DIRECT | mgo_format::ENTRY_OWN_LOCATION),
            0
        );
    }
}
