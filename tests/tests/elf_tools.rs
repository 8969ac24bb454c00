//! The bundle as other tools see it: Go's build-info reader, binutils' strip and objcopy, readelf,
//! objdump and file. Each test runs the real tool on a real bundle and then runs the result.

use std::path::{Path, PathBuf};
use std::process::Command;

use mgo_pack::compress::Compression;
use mgo_pack::{build_bundle_with, BundleOptions, Variant};
use mgo_tests::fixtures::{c_probe_dynamic, go_probe, gofmt, parse_report};
use mgo_tests::harness::{
    command, copy_executable, run, scratch_dir, stderr, stdout, write_executable,
};

fn pack_with(out: &Path, levels: &[PathBuf; 4], compression: Compression) -> PathBuf {
    let variants: Vec<Variant> = levels
        .iter()
        .enumerate()
        .map(|(i, p)| Variant::read(p, Some(i as u32 + 1)).unwrap())
        .collect();
    let options = BundleOptions::default().with_compression(compression);
    write_executable(out, &build_bundle_with(&variants, &options).unwrap()).unwrap();
    out.to_path_buf()
}

fn tool(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"))
}

/// `go version -m` output without its first field (the file name).
fn go_version_m(path: &Path) -> Vec<String> {
    let out = tool("go", &["version", "-m", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "go version -m {}: {}",
        path.display(),
        stderr(&out)
    );
    stdout(&out)
        .lines()
        .map(|l| {
            l.split_once(':')
                .filter(|_| !l.starts_with('\t'))
                .map_or(l, |(_, rest)| rest)
                .to_string()
        })
        .collect()
}

#[test]
fn go_version_m_reads_the_packed_programs_build_info() {
    for (name, compression) in [
        ("bi-stored", Compression::None),
        ("bi-zstd", Compression::Zstd(3)),
    ] {
        let bundle = pack_with(&scratch_dir(name).join("gofmt"), gofmt(), compression);
        let expected = go_version_m(&gofmt()[0]);
        assert!(
            expected.iter().any(|l| l.contains("build\tGOAMD64=")),
            "{expected:?}"
        );
        assert_eq!(go_version_m(&bundle), expected, "{name}");
    }
}

/// Runs the bundle and checks the probe it holds started and saw its argument.
fn assert_probe_runs(bundle: &Path, level: &str) {
    let out = run(command(bundle).arg("after tools").env("GOAMD64", level));
    assert!(
        out.status.success(),
        "{}: {}",
        bundle.display(),
        stderr(&out)
    );
    let report = parse_report(&stdout(&out));
    assert_eq!(report.get_str("level").as_deref(), Some(level));
    assert_eq!(report.get_str_array("argv").unwrap()[1], "after tools");
}

#[test]
fn strip_and_objcopy_keep_the_payloads() {
    let modes = [
        ("st-stored", Compression::None),
        ("st-gzip", Compression::Gzip(6)),
        ("st-zstd", Compression::Zstd(3)),
        ("st-dict", Compression::ZstdDict(3)),
    ];
    for (name, compression) in modes {
        let dir = scratch_dir(name);
        for (fixture, levels) in [("go", go_probe()), ("c-dyn", c_probe_dynamic())] {
            let bundle = pack_with(&dir.join(fixture), levels, compression);
            let commands: [(&str, &[&str]); 4] = [
                ("strip", &[]),
                ("strip", &["--strip-all"]),
                ("objcopy", &[]),
                ("objcopy", &["--strip-debug"]),
            ];
            for (i, (program, flags)) in commands.iter().enumerate() {
                let copy = dir.join(format!("{fixture}-{program}-{i}"));
                copy_executable(&bundle, &copy).unwrap();
                let mut args: Vec<&str> = flags.to_vec();
                args.push(copy.to_str().unwrap());
                let out = tool(program, &args);
                assert!(out.status.success(), "{program} {args:?}: {}", stderr(&out));
                for level in ["v1", "v3"] {
                    assert_probe_runs(&copy, level);
                }
                let extracted = run(command(&copy)
                    .env("MGODEBUG", "extract")
                    .env("GOAMD64", "v2"));
                assert!(
                    extracted.stdout == std::fs::read(&levels[1]).unwrap(),
                    "{name} {fixture} {program}"
                );
            }
        }
    }
}

#[test]
fn readelf_objdump_and_file_describe_the_bundle_cleanly() {
    for (name, compression) in [
        ("tools-stored", Compression::None),
        ("tools-zstd", Compression::Zstd(3)),
    ] {
        let bundle = pack_with(&scratch_dir(name).join("probe"), go_probe(), compression);
        let path = bundle.to_str().unwrap();
        for (program, args) in [
            ("readelf", vec!["-a", "-W", path]),
            ("objdump", vec!["-h", path]),
        ] {
            let out = tool(program, &args);
            let all = format!("{}{}", stdout(&out), stderr(&out));
            assert!(out.status.success(), "{program}: {all}");
            assert!(
                !all.contains("Warning") && !all.contains("Error"),
                "{program} complains:\n{all}"
            );
        }
        let sections = stdout(&tool("readelf", &["-S", "-W", path]));
        for section in [".mgo.header", ".go.buildinfo", ".mgo.payload"] {
            assert!(sections.contains(section), "{section} missing:\n{sections}");
        }
        let file = stdout(&tool("file", &["-b", path]));
        assert!(
            file.starts_with("ELF 64-bit LSB executable, x86-64"),
            "{file}"
        );
    }
}
