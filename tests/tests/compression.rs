//! Compressed bundles end to end: real programs packed with every compression mode, extracted
//! back byte for byte through the launcher (`MGODEBUG=extract`), run, and damaged on purpose.
//! The expected bytes are the input files themselves; the expected levels come from running the
//! variants directly.

use std::path::{Path, PathBuf};
use std::process::Command;

use mgo_format::{Bundle, Encoding, Entry};
use mgo_pack::{BundleOptions, Compression, Launch};
use mgo_tests::fixtures::{c_probe_static, go_probe, gofmt, parse_report};
use mgo_tests::harness::{
    command, oracle_level, run, scratch_dir, stderr, stdout, write_executable,
};

/// The modes every fixture is packed with: both ends of each codec's levels, ultra included.
const MODES: &[Compression] = &[
    Compression::Gzip(1),
    Compression::Gzip(9),
    Compression::Zstd(1),
    Compression::Zstd(19),
    Compression::Zstd(22),
    Compression::ZstdDict(1),
    Compression::ZstdDict(19),
];

fn pack(out: &Path, variants: &[(u32, &Path)], compression: Compression) -> PathBuf {
    let variants: Vec<mgo_pack::Variant> = variants
        .iter()
        .map(|&(level, path)| mgo_pack::Variant::read(path, Some(level)).expect("reading variant"))
        .collect();
    let options = BundleOptions::default()
        .with_launch(Launch::Memfd)
        .with_compression(compression);
    let bytes = mgo_pack::build_bundle_with(&variants, &options).expect("building bundle");
    write_executable(out, &bytes).expect("writing bundle");
    out.to_path_buf()
}

fn pack_levels(out: &Path, levels: &[PathBuf; 4], compression: Compression) -> PathBuf {
    let variants: Vec<(u32, &Path)> = levels
        .iter()
        .enumerate()
        .map(|(i, p)| (i as u32 + 1, p.as_path()))
        .collect();
    pack(out, &variants, compression)
}

fn name(mode: Compression) -> String {
    mode.to_string().replace(':', "")
}

/// The bundle's index, and where its payload region starts in the file.
fn entries(bundle: &[u8]) -> (Vec<Entry>, usize) {
    let parsed = Bundle::parse_file(bundle).expect("a bundle");
    let region = mgo_format::Region::locate(bundle).unwrap();
    (parsed.entries().collect(), region.file_offset as usize)
}

/// `MGODEBUG=extract` for `level` must give back exactly `expected`.
fn assert_extracts(bundle: &Path, level: u32, expected: &Path, what: &str) {
    let out = run(command(bundle)
        .env("MGODEBUG", "extract")
        .env("GOAMD64", format!("v{level}")));
    assert!(
        out.status.success(),
        "{what}: extract v{level} failed: {}",
        stderr(&out)
    );
    let want = std::fs::read(expected).unwrap();
    assert!(
        out.stdout == want,
        "{what}: extracted v{level} differs from {} ({} bytes, expected {})",
        expected.display(),
        out.stdout.len(),
        want.len()
    );
}

fn round_trips(fixture: &str, levels: &[PathBuf; 4]) {
    let dir = scratch_dir(&format!("compress-{fixture}"));
    for &mode in MODES {
        let what = format!("{fixture} {mode}");
        let bundle = pack_levels(&dir.join(name(mode)), levels, mode);
        let bytes = std::fs::read(&bundle).unwrap();
        let (index, _) = entries(&bytes);
        assert!(
            index.iter().any(|e| e.encoding != Encoding::Stored),
            "{what}: nothing was compressed"
        );
        for (i, expected) in levels.iter().enumerate() {
            assert_extracts(&bundle, i as u32 + 1, expected, &what);
        }
    }
}

#[test]
fn go_probe_round_trips_in_every_mode() {
    round_trips("goprobe", go_probe());
}

#[test]
fn static_c_program_round_trips_in_every_mode() {
    round_trips("cprobe", c_probe_static());
}

#[test]
fn gofmt_round_trips_in_every_mode() {
    round_trips("gofmt", gofmt());
}

#[test]
fn compressed_bundles_run_the_right_level_with_their_argv() {
    let levels = go_probe();
    let best = oracle_level(levels);
    assert!(best >= 1, "no probe variant runs directly on this machine");
    let dir = scratch_dir("compress-run");
    for mode in [
        Compression::Gzip(6),
        Compression::Zstd(3),
        Compression::ZstdDict(3),
    ] {
        let bundle = pack_levels(&dir.join(name(mode)), levels, mode);
        let args = ["one", "two words", ""];
        let out = run(command(&bundle).args(args));
        assert!(out.status.success(), "{mode}: {}", stderr(&out));
        let report = parse_report(&stdout(&out));
        assert_eq!(report.get_str("level"), Some(format!("v{best}")), "{mode}");
        let mut argv = vec![bundle.to_str().unwrap().to_string()];
        argv.extend(args.iter().map(|s| s.to_string()));
        assert_eq!(report.get_str_array("argv").unwrap(), argv, "{mode}");
        // Every level this CPU can run, forced: the base of dictionary mode and the others.
        for level in 1..=best {
            let out = run(command(&bundle).env("GOAMD64", format!("v{level}")));
            assert!(out.status.success(), "{mode} v{level}: {}", stderr(&out));
            let report = parse_report(&stdout(&out));
            assert_eq!(
                report.get_str("level"),
                Some(format!("v{level}")),
                "{mode} forced v{level}"
            );
        }
    }
}

#[test]
fn dictionary_mode_uses_v3_as_base_and_decodes_the_rest_against_it() {
    let dir = scratch_dir("compress-dict");
    let bundle = pack_levels(&dir.join("probe"), go_probe(), Compression::ZstdDict(3));
    let (index, _) = entries(&std::fs::read(&bundle).unwrap());
    let alone = pack_levels(&dir.join("alone"), go_probe(), Compression::Zstd(3));
    let (alone, _) = entries(&std::fs::read(&alone).unwrap());
    let base = index.iter().position(|e| e.level == 3).unwrap();
    for (entry, alone) in index.iter().zip(&alone) {
        if entry.level == 3 {
            assert_eq!(entry.encoding, Encoding::Zstd);
            assert_eq!(entry.stored_len, alone.stored_len);
        } else {
            assert_eq!(entry.encoding, Encoding::ZstdDictionary, "v{}", entry.level);
            assert_eq!(entry.dictionary as usize, base);
            // The whole point: a variant against its base is much smaller than alone.
            assert!(
                entry.stored_len * 3 < alone.stored_len * 2,
                "{entry:?} against {alone:?}"
            );
        }
    }
}

#[test]
fn identical_variants_are_stored_once_when_compressed() {
    // A program that gains nothing from v2 and v4 (say) is the same file at those levels.
    let probe = go_probe();
    let levels = [
        probe[0].clone(),
        probe[0].clone(),
        probe[2].clone(),
        probe[2].clone(),
    ];
    let dir = scratch_dir("compress-dedup");
    for mode in [
        Compression::Gzip(6),
        Compression::Zstd(3),
        Compression::ZstdDict(3),
    ] {
        let bundle = pack_levels(&dir.join(name(mode)), &levels, mode);
        let (index, _) = entries(&std::fs::read(&bundle).unwrap());
        assert_eq!(index[0].offset, index[1].offset, "{mode}: {index:?}");
        assert_eq!(index[2].offset, index[3].offset, "{mode}: {index:?}");
        assert_ne!(index[0].offset, index[2].offset, "{mode}: {index:?}");
        if mode == Compression::ZstdDict(3) {
            // v3 is the base; v1 and v2 (one content) are encoded against it once.
            assert_eq!(index[2].encoding, Encoding::Zstd);
            assert_eq!(index[0].encoding, Encoding::ZstdDictionary);
            assert_eq!(index[1].dictionary, 2);
        }
        for (i, expected) in levels.iter().enumerate() {
            assert_extracts(&bundle, i as u32 + 1, expected, &format!("dedup {mode}"));
        }
    }
}

/// Runs `bundle` (damaged on purpose) and asserts that the launcher refused it, without running
/// the program or writing anything to stdout.
fn assert_refused(bundle: &Path, env: &[(&str, &str)], what: &str) {
    let out = run(command(bundle).envs(env.iter().copied()));
    assert_eq!(out.status.code(), Some(122), "{what}: {}", stderr(&out));
    assert!(out.stdout.is_empty(), "{what}: the damaged program ran");
    let err = stderr(&out);
    assert!(
        err.starts_with("mgo: this bundle is damaged") && err.lines().count() == 1,
        "{what}: {err}"
    );
}

#[test]
fn damaged_compressed_data_is_refused_never_run() {
    let dir = scratch_dir("compress-corrupt");
    for mode in [
        Compression::Gzip(6),
        Compression::Zstd(3),
        Compression::ZstdDict(3),
    ] {
        let bundle = pack_levels(&dir.join(name(mode)), go_probe(), mode);
        let bytes = std::fs::read(&bundle).unwrap();
        let (index, region) = entries(&bytes);
        // For each level: a byte in the middle of its stored data, one of its first frame's
        // magic bytes, and its last byte.
        for entry in &index {
            let start = region + entry.offset as usize;
            let len = entry.stored_len as usize;
            let spots = [
                ("middle", start + len / 2),
                ("magic", start + 2),
                ("end", start + len - 1),
            ];
            for (spot, at) in spots {
                let mut damaged = bytes.clone();
                damaged[at] ^= 0x5a;
                let path = dir.join(format!("{}-v{}-{spot}", name(mode), entry.level));
                write_executable(&path, &damaged).unwrap();
                let level = format!("v{}", entry.level);
                let what = format!("{mode}, v{} damaged at {spot}", entry.level);
                assert_refused(&path, &[("GOAMD64", &level)], &what);
                assert_refused(
                    &path,
                    &[("GOAMD64", &level), ("MGODEBUG", "extract")],
                    &format!("{what}, extract"),
                );
            }
        }
        if mode == Compression::ZstdDict(3) {
            // The base's first frame damaged: the variants decoded against it are refused too.
            let base = index.iter().find(|e| e.level == 3).unwrap();
            let mut damaged = bytes.clone();
            damaged[region + base.offset as usize + 1] ^= 0x01;
            let path = dir.join("dict-base-damaged");
            write_executable(&path, &damaged).unwrap();
            for level in ["v1", "v2", "v4"] {
                assert_refused(
                    &path,
                    &[("GOAMD64", level)],
                    &format!("base damaged, {level}"),
                );
            }
        }
    }
}

/// Two real programs of 10 to 17 MB, so that each is cut into several frames and decoded on
/// several threads. They are not builds of one program, which the launcher does not need.
fn large_programs() -> Option<[PathBuf; 2]> {
    let goroot = Command::new("go").args(["env", "GOROOT"]).output().ok()?;
    let goroot = PathBuf::from(String::from_utf8(goroot.stdout).ok()?.trim());
    let go = goroot.join("bin/go");
    let tools = Command::new("go")
        .args(["env", "GOTOOLDIR"])
        .output()
        .ok()?;
    let compile = PathBuf::from(String::from_utf8(tools.stdout).ok()?.trim()).join("compile");
    (go.is_file() && compile.is_file()).then_some([go, compile])
}

#[test]
fn large_programs_decode_in_several_frames_on_any_number_of_cpus() {
    let Some([go, compile]) = large_programs() else {
        println!("SKIPPED: the Go toolchain's go and compile binaries are not available");
        return;
    };
    let dir = scratch_dir("compress-large");
    let variants: [(u32, &Path); 2] = [(1, &go), (2, &compile)];
    let has_taskset = Command::new("taskset").arg("-V").output().is_ok();
    for mode in [
        Compression::Gzip(1),
        Compression::Zstd(1),
        Compression::ZstdDict(1),
    ] {
        let bundle = pack(&dir.join(name(mode)), &variants, mode);
        let bytes = std::fs::read(&bundle).unwrap();
        let (index, region) = entries(&bytes);
        // Several frames per variant (the packer's rule: 4 MiB or more each).
        for entry in &index {
            let stored = &bytes[region + entry.offset as usize..][..entry.stored_len as usize];
            let frames = count_frames(entry.encoding, stored);
            assert!(frames >= 2, "{mode} v{}: {frames} frame(s)", entry.level);
        }
        for (level, path) in variants {
            assert_extracts(&bundle, level, path, &format!("large {mode}"));
            if has_taskset {
                // One CPU: the launcher's own thread decodes every frame.
                let out = run(Command::new("taskset")
                    .args(["-c", "0"])
                    .arg(&bundle)
                    .env_clear()
                    .env("MGODEBUG", "extract")
                    .env("GOAMD64", format!("v{level}")));
                assert!(out.status.success(), "{mode} one CPU: {}", stderr(&out));
                assert!(out.stdout == std::fs::read(path).unwrap(), "{mode} one CPU");
            }
        }
        // And it runs: `go version` from the v1 slot.
        let out = run(command(&bundle).arg("version").env("GOAMD64", "v1"));
        assert!(out.status.success(), "{mode}: {}", stderr(&out));
        assert!(
            stdout(&out).starts_with("go version go"),
            "{mode}: {}",
            stdout(&out)
        );
    }
    if !has_taskset {
        println!("SKIPPED (part): taskset is not installed, the one-CPU decode was not run");
    }
}

/// Frames in stored data: zstd frames (magic 28 b5 2f fd at each start, found by walking the
/// frame sizes) or gzip members (their `MP` length field).
fn count_frames(encoding: Encoding, mut stored: &[u8]) -> usize {
    let mut count = 0;
    while !stored.is_empty() {
        let len = match encoding {
            Encoding::Deflate => mgo_format::gzip::parse_member(stored).unwrap().len,
            _ => zstd_frame_len(stored),
        };
        stored = &stored[len..];
        count += 1;
    }
    count
}

/// A zstd frame's length, from its header and block headers (RFC 8878).
fn zstd_frame_len(frame: &[u8]) -> usize {
    assert_eq!(frame[..4], [0x28, 0xb5, 0x2f, 0xfd], "zstd magic");
    let descriptor = frame[4];
    let single_segment = descriptor & 0x20 != 0;
    let fcs_len = match descriptor >> 6 {
        0 => usize::from(single_segment),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let dict_len = [0, 1, 2, 4][(descriptor & 3) as usize];
    let mut at = 5 + usize::from(!single_segment) + dict_len + fcs_len;
    loop {
        let header = u32::from_le_bytes([frame[at], frame[at + 1], frame[at + 2], 0]);
        let last = header & 1 != 0;
        let size = (header >> 3) as usize;
        let block = if (header >> 1) & 3 == 1 { 1 } else { size };
        at += 3 + block;
        if last {
            break;
        }
    }
    if descriptor & 4 != 0 {
        at += 4;
    }
    at
}
