//! `--compress` and `MGO_COMPRESS` on the command line: which one wins, what a bad value says,
//! and that the bundle holds what was asked for (read back from its index, then extracted and
//! verified by mgo-pack itself).

use std::path::Path;
use std::process::{Command, Output, Stdio};

use mgo_format::{Bundle, Encoding};
use mgo_tests::fixtures::go_probe;
use mgo_tests::harness::scratch_dir;

fn mgo_pack(env: Option<&str>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mgo-pack"));
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null());
    if let Some(value) = env {
        cmd.env("MGO_COMPRESS", value);
    }
    cmd
}

fn pack(out: &Path, env: Option<&str>, option: Option<&str>) -> Output {
    let probe = go_probe();
    let mut cmd = mgo_pack(env);
    cmd.arg("-o").arg(out);
    if let Some(value) = option {
        cmd.args(["--compress", value]);
    }
    cmd.args(&probe[..]).output().expect("spawning mgo-pack")
}

/// The encodings of the bundle's entries, in index order.
fn encodings(path: &Path) -> Vec<Encoding> {
    let bytes = std::fs::read(path).unwrap();
    let bundle = Bundle::parse_file(&bytes).unwrap();
    bundle.entries().map(|e| e.encoding).collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn option_wins_over_the_variable_and_the_variable_over_nothing() {
    let dir = scratch_dir("compress-cli");
    use Encoding::*;
    let cases: [(Option<&str>, Option<&str>, [Encoding; 4]); 6] = [
        (None, None, [Stored; 4]),
        (Some("g1"), None, [Deflate; 4]),
        (Some("z3"), None, [Zstd; 4]),
        // v3 is the base; the others are encoded against it.
        (
            Some("Z3"),
            None,
            [ZstdDictionary, ZstdDictionary, Zstd, ZstdDictionary],
        ),
        (Some("g1"), Some("zstd:1"), [Zstd; 4]),
        (Some("Z3"), Some("none"), [Stored; 4]),
    ];
    for (i, (env, option, expected)) in cases.into_iter().enumerate() {
        let out_path = dir.join(format!("case{i}"));
        let out = pack(&out_path, env, option);
        assert!(out.status.success(), "{env:?} {option:?}: {}", stderr(&out));
        assert_eq!(
            encodings(&out_path),
            expected,
            "MGO_COMPRESS={env:?} --compress {option:?}"
        );
        // mgo-pack reads back what it wrote.
        let verify = mgo_pack(None)
            .arg("verify")
            .arg(&out_path)
            .output()
            .unwrap();
        assert!(verify.status.success(), "verify {i}: {}", stderr(&verify));
        let extracted = dir.join(format!("case{i}.v2"));
        let extract = mgo_pack(None)
            .args(["extract", "--variant", "v2", "-o"])
            .arg(&extracted)
            .arg(&out_path)
            .output()
            .unwrap();
        assert!(
            extract.status.success(),
            "extract {i}: {}",
            stderr(&extract)
        );
        assert_eq!(
            std::fs::read(&extracted).unwrap(),
            std::fs::read(&go_probe()[1]).unwrap()
        );
    }
}

#[test]
fn bad_values_are_clear_errors_and_write_nothing() {
    let dir = scratch_dir("compress-cli-bad");
    let cases = [
        (
            Some("z0"),
            None,
            "MGO_COMPRESS=\"z0\" is not a compression mode",
        ),
        (
            Some("gzip"),
            None,
            "MGO_COMPRESS=\"gzip\" is not a compression mode",
        ),
        (Some("Z23"), None, "MGO_COMPRESS=\"Z23\""),
        (
            None,
            Some("lz4"),
            "--compress \"lz4\" is not a compression mode",
        ),
        (None, Some("zstd:23"), "--compress \"zstd:23\""),
        (None, Some("g9"), "--compress \"g9\""),
        // A broken variable is reported even when --compress would win.
        (Some("z99"), Some("zstd"), "MGO_COMPRESS=\"z99\""),
    ];
    for (i, (env, option, message)) in cases.into_iter().enumerate() {
        let out_path = dir.join(format!("bad{i}"));
        let out = pack(&out_path, env, option);
        // A usage error, as for any invalid option value, whether typed or in the environment.
        assert_eq!(out.status.code(), Some(2), "{env:?} {option:?}");
        let err = stderr(&out);
        assert!(err.contains(message), "{env:?} {option:?}: {err}");
        assert!(!out_path.exists(), "{env:?} {option:?}: output written");
    }
}
