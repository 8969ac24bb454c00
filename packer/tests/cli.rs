//! The `mgo-pack` command as people use it: packing real Go, C, C++ and Rust programs (static and
//! dynamic), levels read from the files, `inspect` (text and JSON), `extract`, `verify`, and the
//! answers to mistakes. Every bundle is run or read back; expectations come from the programs
//! themselves and the files on disk.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use mgo_pack::{declared_level, detect::Source};
use mgo_tests::fixtures::{c_probe_dynamic, c_probe_static, go_probe, gofmt, parse_report};
use mgo_tests::harness::{oracle_level, scratch_dir};
use serde_json::Value;

const LEVELS: [&str; 4] = ["v1", "v2", "v3", "v4"];

fn mgo_pack() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mgo-pack"));
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null());
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("spawning")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn success(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

fn exit_code(out: &Output) -> i32 {
    out.status.code().expect("no exit code: killed by a signal")
}

/// Packs with the CLI and asserts success.
fn pack(out: &Path, inputs: &[&dyn AsRef<std::ffi::OsStr>]) {
    let mut cmd = mgo_pack();
    cmd.arg("-o").arg(out);
    for input in inputs {
        cmd.arg(input);
    }
    success(&run(&mut cmd));
}

fn inspect_json(bundle: &Path) -> Value {
    let out = run(mgo_pack().arg("inspect").arg("--json").arg(bundle));
    success(&out);
    serde_json::from_slice(&out.stdout).expect("inspect --json prints valid JSON")
}

fn json_levels(info: &Value) -> Vec<String> {
    info["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["level"].as_str().unwrap().to_string())
        .collect()
}

fn json_hashes(info: &Value) -> Vec<String> {
    info["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["content_hash"].as_str().unwrap().to_string())
        .collect()
}

fn xxh3_hex(path: &Path) -> String {
    format!(
        "{:016x}",
        mgo_format::content_hash(&fs::read(path).unwrap())
    )
}

/// The level this machine runs, as the Go probe's own start-up checks decide it.
fn machine_level() -> u32 {
    static LEVEL: OnceLock<u32> = OnceLock::new();
    *LEVEL.get_or_init(|| oracle_level(go_probe()))
}

#[test]
fn help_shows_usage_examples_levels_and_exit_statuses() {
    let out = run(mgo_pack().arg("--help"));
    success(&out);
    let help = stdout(&out);
    for needle in [
        "mgo-pack [OPTIONS] --output <OUT> <INPUT>...",
        "inspect",
        "extract",
        "verify",
        "--quiet",
        "--verbose",
        "--force",
        "Examples:",
        "mgo-pack -o app app.v1 app.v2 app.v3 app.v4",
        "Exit status: 0",
        "3 not a bundle",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
    for sub in ["inspect", "extract", "verify"] {
        let out = run(mgo_pack().args([sub, "--help"]));
        success(&out);
        assert!(stdout(&out).contains("Usage: mgo-pack"), "{sub} --help");
    }
}

#[test]
fn version_names_the_format_and_the_runtime() {
    let out = run(mgo_pack().arg("--version"));
    success(&out);
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("mgo-pack {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.contains("bundle format version 1"), "{text}");
    assert!(text.contains("runtime x86_64: launcher of"), "{text}");
    let short = run(mgo_pack().arg("-V"));
    success(&short);
    assert_eq!(
        stdout(&short).trim(),
        format!("mgo-pack {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_with_2() {
    let probe = &go_probe()[0];
    let dir = scratch_dir("cli-usage");
    for args in [
        vec![],
        vec!["-o".to_string()],
        vec!["--no-such-option".into()],
        vec!["-o".into(), "x".into()],
        vec!["extract".into(), probe.display().to_string()],
        vec![
            "extract".into(),
            probe.display().to_string(),
            "--variant".into(),
            "v5".into(),
            "-o".into(),
            "x".into(),
        ],
        vec![
            "--quiet".into(),
            "--verbose".into(),
            "-o".into(),
            "x".into(),
            "y".into(),
        ],
        // Invalid values, whichever part of mgo-pack checks them.
        vec![
            "--launch".into(),
            "copy".into(),
            "-o".into(),
            "x".into(),
            "y".into(),
        ],
        vec![
            "--compress".into(),
            "bogus".into(),
            "-o".into(),
            "x".into(),
            "y".into(),
        ],
        vec!["-o".into(), "x".into(), format!("v7={}", probe.display())],
        vec![
            "-o".into(),
            "x".into(),
            "a".into(),
            "b".into(),
            "c".into(),
            "d".into(),
            "e".into(),
        ],
        vec![
            "build".into(),
            "--compress".into(),
            "bogus".into(),
            ".".into(),
        ],
        vec!["build".into(), "--launch".into(), "copy".into(), ".".into()],
        vec!["build".into(), "-o".into()],
        // A bundle is an executable file, never written to stdout.
        vec!["-o".into(), "-".into(), probe.display().to_string()],
        vec!["build".into(), "-o".into(), "-".into(), ".".into()],
    ] {
        let out = run(mgo_pack().current_dir(&dir).args(&args));
        assert_eq!(exit_code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).is_empty(), "{args:?} printed no message");
        assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
        if args.iter().any(|a| a == "-") {
            assert_eq!(
                stderr(&out),
                "mgo-pack: error: -o -: a bundle must be written to a file, it is an executable \
                 (to name a file `-`, write -o ./-)\n"
            );
        }
    }
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0, "files written");
    // An invalid MGO_COMPRESS is the same mistake made in the environment.
    for args in [&["-o", "x", "y"][..], &["build", "."]] {
        let out = run(mgo_pack().env("MGO_COMPRESS", "bogus").args(args));
        assert_eq!(
            exit_code(&out),
            2,
            "MGO_COMPRESS=bogus {args:?}: {}",
            stderr(&out)
        );
        assert!(stderr(&out).contains("MGO_COMPRESS=\"bogus\" is not a compression mode"));
    }
}

#[test]
fn go_bundle_inspect_extract_verify() {
    let dir = scratch_dir("cli-go-roundtrip");
    let bundle = dir.join("probe");
    let probes = go_probe();
    pack(&bundle, &[&probes[0], &probes[1], &probes[2], &probes[3]]);

    // inspect, for people.
    let out = run(mgo_pack().arg("inspect").arg(&bundle));
    success(&out);
    let text = stdout(&out);
    assert!(
        text.contains("mgo-pack bundle, format version 1, x86_64"),
        "{text}"
    );
    assert!(text.contains("the one this mgo-pack embeds"), "{text}");
    for (level, probe) in LEVELS.iter().zip(probes) {
        let len = fs::metadata(probe).unwrap().len();
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(level))
            .unwrap_or_else(|| panic!("no {level} row:\n{text}"));
        assert!(line.contains("stored"), "{line}");
        assert!(line.contains(&xxh3_hex(probe)), "{line}");
        let grouped_len = len
            .to_string()
            .as_bytes()
            .rchunks(3)
            .rev()
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(",");
        assert!(line.contains(&grouped_len), "{line} lacks {grouped_len}");
    }

    // inspect, for machines.
    let info = inspect_json(&bundle);
    assert_eq!(info["format_version"], 1);
    assert_eq!(info["arch"], "x86_64");
    assert_eq!(info["size"], fs::metadata(&bundle).unwrap().len());
    assert_eq!(info["file"], bundle.to_str().unwrap());
    assert_eq!(info["runtime"]["builtin"], true);
    assert_eq!(info["runtime"]["id"].as_str().unwrap().len(), 16);
    let region_offset = info["payload"]["offset"].as_u64().unwrap();
    assert_eq!(region_offset, info["runtime"]["size"].as_u64().unwrap());
    assert_eq!(region_offset % 4096, 0);
    assert_eq!(json_levels(&info), LEVELS);
    for (v, probe) in info["variants"].as_array().unwrap().iter().zip(probes) {
        let len = fs::metadata(probe).unwrap().len();
        assert_eq!(v["encoding"], "stored");
        assert_eq!(v["original_size"], len);
        assert_eq!(v["stored_size"], len);
        assert_eq!(v["content_hash"], xxh3_hex(probe).as_str());
        assert_eq!(v["same_as"], Value::Null);
        assert_eq!(v["offset"].as_u64().unwrap() % 4096, 0);
        let flags = v["flags"].as_u64().unwrap();
        assert_eq!(v["direct"], flags & 1 == 1, "{v}");
        assert_eq!(v["cache"], flags & 2 == 2, "{v}");
    }

    // extract: byte-identical, to a file (executable) and to stdout.
    for (level, probe) in LEVELS.iter().zip(probes) {
        let file = dir.join(format!("extracted-{level}"));
        let out = run(mgo_pack()
            .args(["extract", "--variant", level, "-o"])
            .arg(&file)
            .arg(&bundle));
        success(&out);
        assert_eq!(
            fs::read(&file).unwrap(),
            fs::read(probe).unwrap(),
            "{level}"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o755
        );
        let out = run(mgo_pack()
            .arg("extract")
            .arg(&bundle)
            .args(["--variant", level, "-o", "-"]));
        success(&out);
        assert!(out.stdout == fs::read(probe).unwrap(), "{level} to stdout");
    }
    // The extracted program runs as itself.
    let extracted = dir.join("extracted-v1");
    let out = run(Command::new(&extracted).env_clear());
    success(&out);
    assert_eq!(
        parse_report(&stdout(&out)).get_str("level").as_deref(),
        Some("v1")
    );

    // verify.
    let out = run(mgo_pack().arg("verify").arg(&bundle));
    success(&out);
    let text = stdout(&out);
    for level in LEVELS {
        assert!(text.contains(&format!("{level} ok")), "{text}");
    }
    assert!(text.contains("ok, 4 variants verified"), "{text}");
    let quiet = run(mgo_pack().arg("verify").arg("-q").arg(&bundle));
    success(&quiet);
    assert!(quiet.stdout.is_empty() && quiet.stderr.is_empty());
}

#[test]
fn go_levels_are_read_from_build_info_in_any_order() {
    for set in [go_probe(), gofmt()] {
        for (i, path) in set.iter().enumerate() {
            let declared = declared_level(&fs::read(path).unwrap());
            assert_eq!(declared.level, Some(i as u32 + 1), "{}", path.display());
            let Source::GoBuildInfo {
                go_version,
                variable,
                setting,
            } = &declared.source
            else {
                panic!("{}: {:?}", path.display(), declared.source)
            };
            assert!(go_version.starts_with("go1."), "{go_version}");
            assert_eq!(*variable, "GOAMD64");
            assert_eq!(setting.as_deref(), Some(LEVELS[i]));
        }
    }
    // What `go version -m` says agrees (the tool people check with).
    let gv = Command::new("go")
        .args(["version", "-m"])
        .arg(&go_probe()[2])
        .output()
        .expect("running go version -m");
    assert!(stdout(&gv).contains("GOAMD64=v3"), "{}", stdout(&gv));

    let dir = scratch_dir("cli-go-order");
    let p = go_probe();
    let ordered = dir.join("ordered");
    let shuffled = dir.join("shuffled");
    pack(&ordered, &[&p[0], &p[1], &p[2], &p[3]]);
    pack(&shuffled, &[&p[3], &p[1], &p[0], &p[2]]);
    assert!(fs::read(&ordered).unwrap() == fs::read(&shuffled).unwrap());
    // Two of four, in reverse: still recorded levels, not positions.
    let two = dir.join("two");
    pack(&two, &[&p[3], &p[1]]);
    assert_eq!(json_levels(&inspect_json(&two)), ["v2", "v4"]);

    // Section headers removed (as sstrip does): found in the data segment, as Go's reader does.
    let mut bytes = fs::read(&p[2]).unwrap();
    bytes[0x28..0x30].fill(0); // e_shoff
    bytes[0x3c..0x40].fill(0); // e_shnum, e_shstrndx
    let stripped = dir.join("probe-v3-no-sections");
    fs::write(&stripped, &bytes).unwrap();
    assert_eq!(declared_level(&bytes).level, Some(3));
    let from_stripped = dir.join("from-stripped");
    pack(&from_stripped, &[&stripped, &p[0]]);
    assert_eq!(json_levels(&inspect_json(&from_stripped)), ["v1", "v3"]);
}

#[test]
fn contradicting_levels_are_refused_unless_forced() {
    let dir = scratch_dir("cli-contradiction");
    let p = go_probe();
    let c = c_probe_static();
    let out_path = dir.join("out");
    fs::write(&out_path, b"previous contents").unwrap();

    // Named: v2=<a v3 build>.
    let out = run(mgo_pack()
        .arg("-o")
        .arg(&out_path)
        .arg(format!("v2={}", p[2].display()))
        .arg(&p[0]));
    assert_eq!(exit_code(&out), 1);
    let err = stderr(&out);
    assert!(err.contains("is named v2"), "{err}");
    assert!(err.contains("GOAMD64=v3"), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert!(err.contains(p[2].to_str().unwrap()), "{err}");
    assert_eq!(fs::read(&out_path).unwrap(), b"previous contents");

    // By position: a silent C build first makes positions count; the v3 Go build is input 2.
    let out = run(mgo_pack().arg("-o").arg(&out_path).arg(&c[0]).arg(&p[2]));
    assert_eq!(exit_code(&out), 1);
    let err = stderr(&out);
    assert!(err.contains("is input 2 without a level, so v2"), "{err}");
    assert_eq!(fs::read(&out_path).unwrap(), b"previous contents");

    // --force: the given level wins, with a warning that names the file.
    let out = run(mgo_pack()
        .arg("--force")
        .arg("-o")
        .arg(&out_path)
        .arg(&c[0])
        .arg(&p[2]));
    success(&out);
    let err = stderr(&out);
    assert!(err.contains("warning"), "{err}");
    assert!(err.contains("packed as v2"), "{err}");
    let info = inspect_json(&out_path);
    assert_eq!(json_levels(&info), ["v1", "v2"]);
    assert_eq!(json_hashes(&info)[1], xxh3_hex(&p[2]));

    // Agreeing levels pass, named or by position.
    let out = run(mgo_pack()
        .arg("-o")
        .arg(&out_path)
        .arg(format!("v3={}", p[2].display()))
        .arg(&c[0]));
    success(&out);
    // The index is sorted by level.
    assert_eq!(json_levels(&inspect_json(&out_path)), ["v1", "v3"]);
}

/// gcc as Debian 12 ships it: what the GNU property note says with and without `-mneeded`.
#[test]
fn gcc_isa_notes_give_levels_only_when_asked_for() {
    // Plain `-march=x86-64-vN` builds all say "baseline" (from glibc's start files): silent.
    for set in [c_probe_static(), c_probe_dynamic()] {
        for path in set {
            let declared = declared_level(&fs::read(path).unwrap());
            assert_eq!(declared.level, None, "{}", path.display());
            assert_eq!(
                declared.source,
                Source::IsaNeeded { bits: 1 },
                "{}",
                path.display()
            );
        }
    }
    // With -mneeded the note names the level.
    let dir = scratch_dir("cli-gcc-notes");
    let src = mgo_tests::fixtures::workspace_root().join("tests/fixtures/cprobe.c");
    let mut built = Vec::new();
    for level in ["v2", "v3", "v4"] {
        let out = dir.join(format!("cprobe-needed-{level}"));
        let status = Command::new("gcc")
            .args(["-O2", &format!("-march=x86-64-{level}"), "-mneeded", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .expect("running gcc");
        assert!(status.success());
        let declared = declared_level(&fs::read(&out).unwrap());
        assert_eq!(declared.level, Some(level[1..].parse().unwrap()), "{level}");
        built.push(out);
    }
    // Recorded levels: any order.
    let bundle = dir.join("bundle");
    pack(&bundle, &[&built[2], &built[0], &built[1]]);
    assert_eq!(json_levels(&inspect_json(&bundle)), ["v2", "v3", "v4"]);
    let out = run(Command::new(&bundle).env_clear());
    success(&out);
    let expected = format!("v{}", machine_level().max(2));
    assert_eq!(parse_report(&stdout(&out)).get_str("level"), Some(expected));

    // A silent build next to them: positions count, and the v4 note at position 2 is refused.
    let c = c_probe_static();
    let out = run(mgo_pack()
        .arg("-o")
        .arg(dir.join("mixed"))
        .arg(&c[0])
        .arg(&built[2]));
    assert_eq!(exit_code(&out), 1);
    assert!(stderr(&out).contains("needs x86-64-v4"), "{}", stderr(&out));
    // Named levels fix it.
    pack(
        &dir.join("mixed"),
        &[
            &format!("v1={}", c[0].display()),
            &format!("v4={}", built[2].display()),
        ],
    );
}

/// One C++ or Rust program built four times, per x86-64 level.
struct Built {
    name: String,
    levels: [PathBuf; 4],
    static_link: bool,
}

fn build_cpp_and_rust(dir: &Path) -> Vec<Built> {
    let programs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs");
    let kinds: [(&str, bool); 4] = [
        ("cpp", false),
        ("cpp", true),
        ("rust", false),
        ("rust", true),
    ];
    std::thread::scope(|scope| {
        let handles: Vec<_> = kinds
            .iter()
            .map(|&(lang, static_link)| {
                let programs = &programs;
                scope.spawn(move || {
                    let name = format!("{lang}-{}", if static_link { "static" } else { "dynamic" });
                    let levels = [1, 2, 3, 4].map(|n| {
                        let cpu = if n == 1 {
                            "x86-64".to_string()
                        } else {
                            format!("x86-64-v{n}")
                        };
                        // One directory per build: rustc keeps its intermediate objects beside
                        // the output, named after the crate, so parallel builds must not share one.
                        let build_dir = dir.join(format!("build-{name}-v{n}"));
                        fs::create_dir_all(&build_dir).unwrap();
                        let out = build_dir.join(format!("{name}-v{n}"));
                        let mut cmd = match lang {
                            "cpp" => {
                                let mut c = Command::new("g++");
                                c.args(["-O2", &format!("-march={cpu}")]);
                                if static_link {
                                    c.arg("-static");
                                }
                                c.arg(programs.join("hello.cpp"));
                                c
                            }
                            _ => {
                                let mut c = Command::new("rustc");
                                c.args(["-O", "-C", &format!("target-cpu={cpu}")]);
                                if static_link {
                                    c.args(["-C", "target-feature=+crt-static"]);
                                }
                                c.arg(programs.join("hello.rs"));
                                c
                            }
                        };
                        cmd.arg("-o").arg(&out);
                        let result = cmd.output().expect("running the compiler");
                        assert!(
                            result.status.success(),
                            "{cmd:?}: {}",
                            String::from_utf8_lossy(&result.stderr)
                        );
                        out
                    });
                    Built {
                        name,
                        levels,
                        static_link,
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn cpp_and_rust_programs_static_and_dynamic_run_from_bundles() {
    let dir = scratch_dir("cli-cpp-rust");
    let expected = format!("v{}", machine_level());
    for built in build_cpp_and_rust(&dir) {
        // Really static, or really dynamic, as intended.
        let file = Command::new("file").arg(&built.levels[0]).output();
        if let Ok(file) = file {
            let text = stdout(&file);
            assert_eq!(
                text.contains("dynamically linked"),
                !built.static_link,
                "{}: {text}",
                built.name
            );
        }
        let bundle = dir.join(&built.name);
        let l = &built.levels;
        pack(&bundle, &[&l[0], &l[1], &l[2], &l[3]]);

        let out = run(Command::new(&bundle).env_clear().args(["one", "two words"]));
        assert_eq!(exit_code(&out), 2, "{}: {}", built.name, stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains(&format!("level={expected}\n")),
            "{}: {text}",
            built.name
        );
        assert!(
            text.contains("args=one two words\n"),
            "{}: {text}",
            built.name
        );

        // The GOAMD64 override reaches every kind of program.
        let out = run(Command::new(&bundle)
            .env_clear()
            .env("GOAMD64", "v2")
            .env("MGODEBUG", "log"));
        success(&out);
        assert!(
            stdout(&out).contains("level=v2\n"),
            "{}: {}",
            built.name,
            stdout(&out)
        );
        assert!(
            stderr(&out).contains("[mgo] launcher: starting variant GOAMD64=v2"),
            "{}: {}",
            built.name,
            stderr(&out)
        );

        success(&run(mgo_pack().arg("verify").arg("-q").arg(&bundle)));
        let back = dir.join(format!("{}-back-v3", built.name));
        success(&run(mgo_pack()
            .arg("extract")
            .arg(&bundle)
            .args(["--variant", "v3", "-o"])
            .arg(&back)));
        assert!(
            fs::read(&back).unwrap() == fs::read(&l[2]).unwrap(),
            "{}",
            built.name
        );
    }
}

#[test]
fn files_that_are_not_bundles_get_clear_messages() {
    let dir = scratch_dir("cli-not-bundles");
    let text = dir.join("notes.txt");
    fs::write(&text, "just text\n").unwrap();
    let program = &c_probe_dynamic()[0];
    let missing = dir.join("missing");
    for sub in [
        &["inspect"][..],
        &["verify"],
        &["extract", "--variant", "v1", "-o", "/dev/null"],
    ] {
        let out = run(mgo_pack().args(sub).arg(&text));
        assert_eq!(exit_code(&out), 3, "{sub:?}");
        let err = stderr(&out);
        assert!(
            err.contains("not an mgo-pack bundle (not an ELF file)"),
            "{err}"
        );
        assert!(err.contains(text.to_str().unwrap()), "{err}");

        let out = run(mgo_pack().args(sub).arg(program));
        assert_eq!(exit_code(&out), 3, "{sub:?}");
        let err = stderr(&out);
        assert!(err.contains("not an mgo-pack bundle"), "{err}");
        assert!(err.contains("no payload segment"), "{err}");

        let out = run(mgo_pack().args(sub).arg(&missing));
        assert_eq!(exit_code(&out), 1, "{sub:?}");
        assert!(stderr(&out).contains("No such file"), "{}", stderr(&out));
    }
}

#[test]
fn damaged_bundles_are_reported_as_such() {
    let dir = scratch_dir("cli-damaged");
    let p = go_probe();
    let bundle = dir.join("probe");
    pack(&bundle, &[&p[0], &p[1], &p[2], &p[3]]);
    let info = inspect_json(&bundle);
    let bytes = fs::read(&bundle).unwrap();

    // Truncated inside the payload region (tools may append a section table after it): the
    // program header says how long the region is.
    let region_end =
        info["payload"]["offset"].as_u64().unwrap() + info["payload"]["size"].as_u64().unwrap();
    let truncated = dir.join("truncated");
    fs::write(&truncated, &bytes[..region_end as usize - 100]).unwrap();
    for sub in ["inspect", "verify"] {
        let out = run(mgo_pack().arg(sub).arg(&truncated));
        assert_eq!(exit_code(&out), 3, "{sub}");
        assert!(
            stderr(&out).contains("damaged mgo-pack bundle"),
            "{}",
            stderr(&out)
        );
    }

    // One flipped bit inside v2's program: the index is intact, the content hash is not.
    let region = info["payload"]["offset"].as_u64().unwrap();
    let v2 = &info["variants"][1];
    let at = region + v2["offset"].as_u64().unwrap() + v2["stored_size"].as_u64().unwrap() / 2;
    let mut flipped = bytes.clone();
    flipped[at as usize] ^= 0x10;
    let damaged = dir.join("flipped");
    fs::write(&damaged, &flipped).unwrap();
    success(&run(mgo_pack().arg("inspect").arg(&damaged)));
    let out = run(mgo_pack().arg("verify").arg(&damaged));
    assert_eq!(exit_code(&out), 3);
    let text = stdout(&out);
    assert!(text.contains("v1 ok"), "{text}");
    assert!(text.contains("v2 FAILED"), "{text}");
    assert!(text.contains("1 of 4 variants FAILED"), "{text}");
    let out = run(mgo_pack().arg("verify").arg("--quiet").arg(&damaged));
    assert_eq!(exit_code(&out), 3);
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains("the v2 variant is damaged"),
        "{}",
        stderr(&out)
    );

    let out = run(mgo_pack()
        .arg("extract")
        .arg(&damaged)
        .args(["--variant", "v2", "-o"])
        .arg(dir.join("v2")));
    assert_eq!(exit_code(&out), 3);
    assert!(!dir.join("v2").exists(), "no output from a damaged variant");
    success(&run(mgo_pack()
        .arg("extract")
        .arg(&damaged)
        .args(["--variant", "v1", "-o"])
        .arg(dir.join("v1"))));
}

#[test]
fn extracting_a_missing_level_names_the_ones_held() {
    let dir = scratch_dir("cli-missing-level");
    let p = go_probe();
    let bundle = dir.join("probe");
    pack(&bundle, &[&p[0], &p[2]]);
    let out = run(mgo_pack()
        .arg("extract")
        .arg(&bundle)
        .args(["--variant", "v2", "-o"])
        .arg(dir.join("x")));
    assert_eq!(exit_code(&out), 1);
    assert!(
        stderr(&out).contains("holds no v2 variant (it holds v1, v3)"),
        "{}",
        stderr(&out)
    );
    // Extracting over the bundle itself is refused.
    let out = run(mgo_pack()
        .arg("extract")
        .arg(&bundle)
        .args(["--variant", "v1", "-o"])
        .arg(&bundle));
    assert_eq!(exit_code(&out), 1);
    success(&run(mgo_pack().arg("verify").arg(&bundle)));
}

#[test]
fn progress_is_shown_on_a_terminal_only() {
    let dir = scratch_dir("cli-progress");
    let p = gofmt();
    let bundle = dir.join("gofmt");
    let args = format!(
        "{} -o {} {} {} {} {}",
        env!("CARGO_BIN_EXE_mgo-pack"),
        bundle.display(),
        p[0].display(),
        p[1].display(),
        p[2].display(),
        p[3].display()
    );
    // Not a terminal: nothing at all.
    let out = run(Command::new("sh").args(["-c", &args]));
    success(&out);
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        stderr(&out)
    );

    // A terminal, through util-linux `script`, which runs the command on a pseudo-terminal.
    let script = Command::new("script")
        .args(["-qec", &args, "/dev/null"])
        .env("TERM", "dumb")
        .stdin(Stdio::null())
        .output();
    let Ok(out) = script else {
        println!("SKIPPED: progress on a terminal: util-linux `script` is not installed");
        return;
    };
    success(&out);
    let seen = stdout(&out);
    assert!(seen.contains("\r\x1b[Kmgo-pack: reading [1/4]"), "{seen:?}");
    assert!(seen.contains("reading [4/4]"), "{seen:?}");
    assert!(seen.contains("writing"), "{seen:?}");
    assert!(seen.contains("mgo-pack: wrote"), "{seen:?}");
    // --quiet: nothing even on a terminal.
    let out = Command::new("script")
        .args([
            "-qec",
            &args.replacen(" -o ", " --quiet -o ", 1),
            "/dev/null",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    success(&out);
    assert!(!stdout(&out).contains("mgo-pack"), "{:?}", stdout(&out));
}

#[test]
fn verbose_says_where_each_level_comes_from() {
    let dir = scratch_dir("cli-verbose");
    let p = go_probe();
    let c = c_probe_static();
    let out = run(mgo_pack()
        .arg("-v")
        .arg("-o")
        .arg(dir.join("b"))
        .arg(format!("v2={}", c[1].display()))
        .arg(&p[3])
        .arg(&p[0]));
    success(&out);
    let err = stderr(&out);
    let line = |level: &str| {
        err.lines()
            .find(|l| l.starts_with(&format!("mgo-pack: {level} ")))
            .unwrap_or_else(|| panic!("no {level} line: {err}"))
            .to_string()
    };
    assert!(
        line("v4").contains("as recorded; its Go build info says GOAMD64=v4"),
        "{err}"
    );
    assert!(line("v1").contains("as recorded"), "{err}");
    assert!(line("v2").contains("as named"), "{err}");
    assert!(line("v2").contains(&xxh3_hex(&c[1])), "{err}");
    assert!(err.contains("mgo-pack: wrote"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn identical_variants_are_stored_once_and_shown() {
    let dir = scratch_dir("cli-identical");
    let c = c_probe_static();
    let bundle = dir.join("b");
    pack(
        &bundle,
        &[
            &c[0],
            &format!("v2={}", c[0].display()),
            &format!("v3={}", c[2].display()),
        ],
    );
    let info = inspect_json(&bundle);
    let variants = info["variants"].as_array().unwrap();
    assert_eq!(variants[1]["same_as"], 0);
    assert_eq!(variants[1]["offset"], variants[0]["offset"]);
    assert_eq!(variants[2]["same_as"], Value::Null);
    let out = run(mgo_pack().arg("inspect").arg(&bundle));
    assert!(stdout(&out).contains("same data as v1"), "{}", stdout(&out));
    success(&run(mgo_pack().arg("verify").arg(&bundle)));
}

#[test]
fn a_bundle_is_not_accepted_as_an_input() {
    let dir = scratch_dir("cli-nested");
    let p = go_probe();
    let bundle = dir.join("b");
    pack(&bundle, &[&p[0], &p[1]]);
    let out = run(mgo_pack()
        .arg("-o")
        .arg(dir.join("nested"))
        .arg(format!("v3={}", bundle.display())));
    assert_eq!(exit_code(&out), 1);
    assert!(
        stderr(&out).contains("is already an mgo-pack bundle"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.join("nested").exists());
}

#[test]
fn library_and_command_line_write_the_same_bundle() {
    let dir = scratch_dir("cli-library");
    let p = go_probe();
    let by_cli = dir.join("cli");
    pack(&by_cli, &[&p[0], &p[1], &p[2], &p[3]]);
    let inputs: Vec<mgo_pack::Input> = p.iter().rev().map(mgo_pack::Input::detect).collect();
    let by_lib = dir.join("lib");
    let packed = mgo_pack::pack_files(&inputs, &by_lib, &mgo_pack::PackOptions::default()).unwrap();
    assert!(fs::read(&by_cli).unwrap() == fs::read(&by_lib).unwrap());
    assert!(packed.bytes == fs::read(&by_lib).unwrap());
    let levels: Vec<u32> = packed.variants.iter().map(|v| v.level).collect();
    assert_eq!(levels, [4, 3, 2, 1]);
    assert!(packed
        .variants
        .iter()
        .all(|v| v.origin == mgo_pack::LevelOrigin::Recorded));
    // And back through the library.
    let info = mgo_pack::inspect(&by_lib).unwrap();
    assert_eq!(info.variants.len(), 4);
    assert!(mgo_pack::verify(&by_lib).unwrap().is_ok());
    assert!(mgo_pack::extract(&by_lib, 3).unwrap() == fs::read(&p[2]).unwrap());
}

#[test]
fn compressed_bundles_inspect_extract_and_verify() {
    let dir = scratch_dir("cli-compressed");
    let p = go_probe();
    for (mode, encoding) in [
        ("gzip:1", "gzip"),
        ("zstd:1", "zstd"),
        ("zstd-dict:1", "zstd-dict"),
    ] {
        let bundle = dir.join(mode.replace(':', "-"));
        let out = run(mgo_pack()
            .args(["--compress", mode, "-o"])
            .arg(&bundle)
            .args(p));
        success(&out);
        let info = inspect_json(&bundle);
        for (v, probe) in info["variants"].as_array().unwrap().iter().zip(p) {
            let len = fs::metadata(probe).unwrap().len();
            assert_eq!(v["original_size"], len);
            assert!(v["stored_size"].as_u64().unwrap() < len, "{mode}: {v}");
            assert_eq!(v["content_hash"], xxh3_hex(probe).as_str());
            if encoding == "zstd-dict" {
                // One base stored as plain zstd, the others against it.
                let dict = &v["dictionary"];
                assert!(
                    v["encoding"] == "zstd" && dict.is_null()
                        || v["encoding"] == "zstd-dict" && dict.is_u64(),
                    "{v}"
                );
            } else {
                assert_eq!(v["encoding"], encoding, "{v}");
            }
        }
        let text = stdout(&run(mgo_pack().arg("verify").arg(&bundle)));
        assert!(text.contains("ok, 4 variants verified"), "{mode}: {text}");
        for (level, probe) in LEVELS.iter().zip(p) {
            let out =
                run(mgo_pack()
                    .arg("extract")
                    .arg(&bundle)
                    .args(["--variant", level, "-o", "-"]));
            success(&out);
            assert!(out.stdout == fs::read(probe).unwrap(), "{mode} {level}");
        }
    }

    // A flipped bit in one compressed variant: that one fails, the others still verify.
    let bundle = dir.join("zstd-1");
    let info = inspect_json(&bundle);
    let v3 = &info["variants"][2];
    let at = info["payload"]["offset"].as_u64().unwrap()
        + v3["offset"].as_u64().unwrap()
        + v3["stored_size"].as_u64().unwrap() / 2;
    let mut bytes = fs::read(&bundle).unwrap();
    bytes[at as usize] ^= 0x01;
    let damaged = dir.join("zstd-damaged");
    fs::write(&damaged, &bytes).unwrap();
    let out = run(mgo_pack().arg("verify").arg(&damaged));
    assert_eq!(exit_code(&out), 3);
    let text = stdout(&out);
    assert!(text.contains("v3 FAILED"), "{text}");
    // Caught by the hash of the stored bytes, the one the launcher's direct path relies on,
    // before anything is decoded.
    assert!(text.contains("stored bytes hash"), "{text}");
    assert!(text.contains("v1 ok") && text.contains("v4 ok"), "{text}");
}

/// A Go program for another architecture records no GOAMD64: it must not read as x86-64 v1.
#[test]
fn arm64_go_build_info_is_not_read_as_an_x86_level() {
    let dir = scratch_dir("cli-arm64-go");
    let root = mgo_tests::fixtures::workspace_root();
    let cache = mgo_tests::fixtures::fixtures_dir();
    let out = dir.join("goprobe-arm64");
    let status = Command::new("go")
        .args(["build", "-trimpath", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(root.join("tests/fixtures/goprobe"))
        .env("GOOS", "linux")
        .env("GOARCH", "arm64")
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "-mod=mod -modcacherw")
        .env("GOPROXY", "off")
        .env("GOWORK", "off")
        .env("GOENV", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GOCACHE", cache.join("gocache"))
        .env("GOPATH", cache.join("gopath"))
        .status()
        .expect("running go build");
    assert!(status.success());
    let declared = declared_level(&fs::read(&out).unwrap());
    assert_eq!(declared.level, None, "{declared}");
    let Source::GoBuildInfo {
        variable, setting, ..
    } = &declared.source
    else {
        panic!("{:?}", declared.source)
    };
    assert_eq!(*variable, "GOARM64");
    assert_eq!(*setting, None);
    assert!(
        declared
            .to_string()
            .contains("no GOARM64 setting (Go records one since 1.23)"),
        "{declared}"
    );
}

/// Text that cannot be written to stdout (help, version, `inspect`, `verify`) is an error, status
/// 1 with a message on stderr; a reader that stopped reading (EPIPE) is not.
#[test]
fn failed_writes_to_stdout_are_errors() {
    let dir = scratch_dir("cli-stdout-full");
    let bundle = dir.join("probe");
    pack(&bundle, &[&go_probe()[0]]);
    let b = bundle.to_str().unwrap();
    let cases: [&[&str]; 7] = [
        &["--help"],
        &["--version"],
        &["-V"],
        &["inspect", "--help"],
        &["inspect", b],
        &["inspect", "--json", b],
        &["verify", b],
    ];
    for args in cases {
        let full = fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = run(mgo_pack().args(args).stdout(full));
        assert_eq!(exit_code(&out), 1, "{args:?} >/dev/full: {}", stderr(&out));
        assert_eq!(
            stderr(&out),
            "mgo-pack: error: stdout: No space left on device (os error 28)\n",
            "{args:?}"
        );

        // A pipe whose reading end is closed before mgo-pack starts: `mgo-pack --help | head -0`.
        let writer = common::closed_pipe();
        let out = run(mgo_pack().args(args).stdout(writer));
        assert_eq!(exit_code(&out), 0, "{args:?} | head -0: {}", stderr(&out));
        assert!(out.stderr.is_empty(), "{args:?}: {}", stderr(&out));
    }
}

/// Linux paths are bytes: inputs (plain and `vN=`), `-o`, and the bundles `inspect`, `extract`
/// and `verify` read may be named by bytes that are not UTF-8.
#[test]
fn paths_that_are_not_utf8_are_accepted_everywhere() {
    use std::ffi::OsString;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let bytes_path = |dir: &Path, name: &[u8]| dir.join(std::ffi::OsStr::from_bytes(name));
    let base = scratch_dir("cli-not-utf8");
    let dir = bytes_path(&base, b"dir-\xff");
    fs::create_dir(&dir).unwrap();
    let p = go_probe();
    let v1 = bytes_path(&dir, b"probe-\xfe.v1");
    let v3 = bytes_path(&dir, b"probe-\xfd.v3");
    fs::copy(&p[0], &v1).unwrap();
    fs::copy(&p[2], &v3).unwrap();
    let bundle = bytes_path(&dir, b"bundle-\xfc");
    let mut named = OsString::from("v3=");
    named.push(&v3);
    let out = run(mgo_pack().arg("-o").arg(&bundle).arg(&v1).arg(&named));
    success(&out);
    assert_eq!(json_levels(&inspect_json(&bundle)), ["v1", "v3"]);
    success(&run(mgo_pack().arg("inspect").arg(&bundle)));
    success(&run(mgo_pack().arg("verify").arg(&bundle)));
    let extracted = bytes_path(&dir, b"extracted-\xfb");
    success(&run(mgo_pack()
        .arg("extract")
        .arg(&bundle)
        .args(["--variant", "v3", "-o"])
        .arg(&extracted)));
    assert!(fs::read(&extracted).unwrap() == fs::read(&p[2]).unwrap());

    // `build` takes such a -o too: the only complaint is the compression mode.
    let out = run(mgo_pack()
        .arg("build")
        .arg("-o")
        .arg(OsString::from_vec(b"app-\xff".to_vec()))
        .args(["--compress", "bogus", "."]));
    assert_eq!(exit_code(&out), 2);
    assert!(
        stderr(&out).contains("--compress \"bogus\" is not a compression mode"),
        "{}",
        stderr(&out)
    );
}
