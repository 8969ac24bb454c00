//! Sanitizer builds packed for the direct path run and report as the build run directly does.
//! AddressSanitizer reserves the range between 2 GiB and 2 TiB (its shadow gap), ThreadSanitizer
//! and Go's race detector want PIE programs where the kernel loads them and nothing of the
//! launcher in their shadow: before the launcher unmapped itself (it is linked at 0x1000000000)
//! and placed PIEs at `ELF_ET_DYN_BASE`, ASan builds aborted at start.

use std::path::{Path, PathBuf};
use std::process::Command;

use mgo_pack::Launch;
use mgo_tests::harness::{command, pack_with, run, scratch_dir, skipped, stderr, stdout};

/// Builds `source` (C) with `flags` into `dir`, or says why it cannot.
fn gcc(dir: &Path, name: &str, source: &str, flags: &[&str]) -> Result<PathBuf, String> {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).unwrap();
    let out = dir.join(name);
    let built = Command::new("gcc")
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .output()
        .map_err(|e| e.to_string())?;
    if !built.status.success() {
        return Err(String::from_utf8_lossy(&built.stderr).into_owned());
    }
    Ok(out)
}

/// Runs the build directly and packed for the direct path; returns both outputs' (status, stdout,
/// whether stderr holds `report`).
fn both(dir: &Path, build: &Path, args: &[&str], report: &str) -> [(Option<i32>, String, bool); 2] {
    let bundle = pack_with(&dir.join("bundle"), &[(1, build)], Launch::Direct);
    [build, bundle.as_path()].map(|program| {
        let out = run(command(program).args(args).env("MGODEBUG", "log"));
        let err = stderr(&out);
        (out.status.code(), stdout(&out), err.contains(report))
    })
}

#[test]
fn address_sanitizer_builds_run_and_report() {
    let test = "address_sanitizer_builds_run_and_report";
    let dir = scratch_dir("san-asan");
    let source = "#include <stdio.h>\n#include <stdlib.h>\n\
        int main(int c, char **v) { char *p = malloc(8); if (c > 1) p[8] = 1;\n\
        printf(\"ok\\n\"); free(p); return 0; }\n";
    let build = match gcc(&dir, "asan", source, &["-fsanitize=address", "-g"]) {
        Ok(build) => build,
        Err(why) => return skipped(test, &format!("gcc cannot build with ASan: {why}")),
    };
    for (args, expect_report) in [(&[][..], false), (&["overflow"][..], true)] {
        let [direct, packed] = both(&dir, &build, args, "AddressSanitizer: heap-buffer-overflow");
        assert_eq!(direct.2, expect_report, "the build itself: {direct:?}");
        assert_eq!(packed.0, direct.0, "{args:?}: {packed:?}");
        assert_eq!(packed.1, direct.1, "{args:?}");
        assert_eq!(packed.2, direct.2, "{args:?}: {packed:?}");
    }
}

#[test]
fn thread_sanitizer_builds_run_and_report() {
    let test = "thread_sanitizer_builds_run_and_report";
    let dir = scratch_dir("san-tsan");
    // Both threads store the same value without a lock, so the output does not depend on the
    // interleaving. The main thread stores 20 ms after the other: TSan misses a race now and then
    // (3 in 1,000 runs of this build, run directly) when the two stores meet at the same moment.
    let source = "#include <pthread.h>\n#include <stdio.h>\n#include <unistd.h>\nint x;\n\
        void *f(void *a) { x = 1; return 0; }\n\
        int main(void) { pthread_t t; pthread_create(&t, 0, f, 0); usleep(20000); x = 1;\n\
        pthread_join(t, 0); printf(\"x=%d\\n\", x); return 0; }\n";
    let build = match gcc(
        &dir,
        "tsan",
        source,
        &["-fsanitize=thread", "-g", "-pthread"],
    ) {
        Ok(build) => build,
        Err(why) => return skipped(test, &format!("gcc cannot build with TSan: {why}")),
    };
    let [direct, packed] = both(&dir, &build, &[], "ThreadSanitizer: data race");
    if !direct.2 {
        return skipped(
            test,
            &format!("the TSan build itself reports nothing here: {direct:?}"),
        );
    }
    assert_eq!(packed.0, direct.0, "{packed:?}");
    assert_eq!(packed.1, direct.1);
    assert!(packed.2, "{packed:?}");
}

#[test]
fn go_race_detector_builds_run_and_report() {
    let test = "go_race_detector_builds_run_and_report";
    let dir = scratch_dir("san-gorace");
    std::fs::write(dir.join("go.mod"), "module gorace\n\ngo 1.19\n").unwrap();
    std::fs::write(
        dir.join("main.go"),
        // As in the TSan test: equal stores, the second 20 ms after the first.
        "package main\n\nimport (\n\t\"fmt\"\n\t\"time\"\n)\n\nfunc main() {\n\tc := 0\n\
         \tdone := make(chan bool)\n\tgo func() { c = 1; done <- true }()\n\
         \ttime.Sleep(20 * time.Millisecond)\n\tc = 1\n\t<-done\n\tfmt.Println(\"c\", c)\n}\n",
    )
    .unwrap();
    let build = dir.join("race");
    let built = Command::new("go")
        .args(["build", "-race", "-o"])
        .arg(&build)
        .arg(".")
        .current_dir(&dir)
        .env("CGO_ENABLED", "1")
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOCACHE", dir.join("gocache"))
        .output();
    match built {
        Ok(out) if out.status.success() => {}
        Ok(out) => return skipped(test, &format!("go build -race: {}", stderr(&out))),
        Err(e) => return skipped(test, &format!("no go: {e}")),
    }
    let [direct, packed] = both(&dir, &build, &[], "WARNING: DATA RACE");
    assert!(direct.2, "the race build itself: {direct:?}");
    assert_eq!(packed.0, direct.0, "{packed:?}");
    assert_eq!(packed.1, direct.1);
    assert!(packed.2, "{packed:?}");
}
