//! The direct path for compressed variants: frames decoded straight into the program's segments
//! (runtime/src/launcher/unpack.rs). Real programs packed in each compressed mode for the direct
//! path must start without a memfd (the program sees the bundle as its executable and the log
//! says so), at every level, with their arguments, environment and exit status; damaged
//! compressed bytes, wherever they lie, must never run; and a bundle that records no hash of its
//! compressed bytes must fall back to the memfd path rather than run unchecked bytes.

use std::path::{Path, PathBuf};

use mgo_format::{content_hash, Bundle, Encoding, Header, Region, ENTRY_LEN, HEADER_LEN};
use mgo_pack::{BundleOptions, Compression, Launch};
use mgo_tests::checks::formats_go_code;
use mgo_tests::fixtures::{c_probe_dynamic, c_probe_static, go_probe, gofmt, parse_report};
use mgo_tests::harness::{
    command, oracle_level, run, scratch_dir, stderr, stdout, write_executable,
};

const MODES: &[Compression] = &[
    Compression::Gzip(9),
    Compression::Zstd(19),
    Compression::ZstdDict(19),
];

const DIRECT: &str = "[mgo] launcher: launch path direct";

fn pack(out: &Path, levels: &[PathBuf; 4], compression: Compression, stored_base: bool) -> PathBuf {
    let variants: Vec<mgo_pack::Variant> = levels
        .iter()
        .enumerate()
        .map(|(i, p)| mgo_pack::Variant::read(p, Some(i as u32 + 1)).expect("reading variant"))
        .collect();
    let options = BundleOptions::default()
        .with_launch(Launch::Direct)
        .with_compression(compression)
        .with_stored_base(stored_base);
    let bytes = mgo_pack::build_bundle_with(&variants, &options).expect("building bundle");
    write_executable(out, &bytes).expect("writing bundle");
    out.to_path_buf()
}

fn name(mode: Compression) -> String {
    mode.to_string().replace(':', "")
}

/// Runs `bundle` at each level this machine can run (forced with GOAMD64, then unforced) and
/// checks that the program ran at that level, through the direct path, with what it was given.
fn starts_directly_at_every_level(bundle: &Path, levels: &[PathBuf; 4], what: &str) {
    let best = oracle_level(levels);
    let canonical = bundle.canonicalize().unwrap().display().to_string();
    let forced = (1..=best).map(Some);
    for level in forced.chain([None]) {
        let mut cmd = command(bundle);
        cmd.args(["first", "with space"])
            .env("MGODEBUG", "log")
            .env("SOME_VAR", "a value")
            .env("PROBE_EXIT", "7");
        if let Some(level) = level {
            cmd.env("GOAMD64", format!("v{level}"));
        }
        let out = run(&mut cmd);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(7), "{what} {level:?}: {err}");
        assert!(err.lines().any(|l| l == DIRECT), "{what} {level:?}: {err}");
        let report = parse_report(&stdout(&out));
        let want = format!("v{}", level.unwrap_or(best));
        assert_eq!(report.get_str("level"), Some(want), "{what}");
        // No memfd, no second exec: the program's executable is the bundle.
        assert_eq!(report.get_str("exe"), Some(canonical.clone()), "{what}");
        let argv = report.get_str_array("argv").unwrap();
        assert_eq!(argv[1..], ["first", "with space"], "{what}");
        if let Some(env) = report.get_str_array("env") {
            assert!(
                env.iter().any(|e| e == "SOME_VAR=a value"),
                "{what}: {env:?}"
            );
        }
    }
}

#[test]
fn go_program_starts_directly_in_every_compressed_mode() {
    let dir = scratch_dir("unpack-go");
    for &mode in MODES {
        let bundle = pack(&dir.join(name(mode)), go_probe(), mode, false);
        starts_directly_at_every_level(&bundle, go_probe(), &name(mode));
    }
    // Dictionary mode with the base kept uncompressed: the dictionary is the mapped bundle.
    let bundle = pack(
        &dir.join("Z19-stored"),
        go_probe(),
        Compression::ZstdDict(19),
        true,
    );
    starts_directly_at_every_level(&bundle, go_probe(), "Z19 with a stored base");
}

#[test]
fn c_programs_static_and_dynamic_start_directly_when_compressed() {
    let dir = scratch_dir("unpack-c");
    for (fixture, levels) in [("static", c_probe_static()), ("dynamic", c_probe_dynamic())] {
        for &mode in &[Compression::Gzip(9), Compression::Zstd(19)] {
            let bundle = pack(
                &dir.join(format!("{fixture}-{}", name(mode))),
                levels,
                mode,
                false,
            );
            starts_directly_at_every_level(&bundle, levels, &format!("c-{fixture} {mode}"));
        }
    }
}

#[test]
fn compressed_gofmt_formats_go_code_on_the_direct_path() {
    let dir = scratch_dir("unpack-gofmt");
    let bundle = pack(
        &dir.join("gofmt"),
        gofmt(),
        Compression::ZstdDict(19),
        false,
    );
    let out = formats_go_code(command(&bundle).env("MGODEBUG", "log"));
    assert!(
        stderr(&out).lines().any(|l| l == DIRECT),
        "{}",
        stderr(&out)
    );
}

/// The bundle, where its region starts in the file, and the stored byte range (in the file) of
/// the entry with `level`.
fn stored_range(bytes: &[u8], level: u32) -> std::ops::Range<usize> {
    let region = Region::locate(bytes).unwrap().file_offset as usize;
    let bundle = Bundle::parse_file(bytes).unwrap();
    let entry = bundle.entries().find(|e| e.level == level).unwrap();
    let start = region + entry.offset as usize;
    start..start + entry.stored_len as usize
}

#[test]
fn damaged_compressed_bytes_never_run_wherever_they_are() {
    let dir = scratch_dir("unpack-damaged");
    let levels = go_probe();
    let best = oracle_level(levels);
    for &mode in MODES {
        let bundle = pack(&dir.join(name(mode)), levels, mode, false);
        let bytes = std::fs::read(&bundle).unwrap();
        let range = stored_range(&bytes, best);
        // The first frame (the headers), the middle (program text), and the last bytes: symbols
        // and debug information, which no segment loads and the direct path never decodes.
        for (place, at) in [
            ("head", range.start + 20),
            ("middle", range.start + range.len() / 2),
            ("tail", range.end - 40),
        ] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x04;
            let path = dir.join(format!("{}-{place}", name(mode)));
            write_executable(&path, &damaged).unwrap();
            let out = run(command(&path).env("PROBE_EXIT", "7"));
            let what = format!("{mode} damaged in the {place}");
            assert_eq!(out.status.code(), Some(122), "{what}: {}", stderr(&out));
            assert!(out.stdout.is_empty(), "{what}: the damaged program ran");
            let err = stderr(&out);
            assert_eq!(err.lines().count(), 1, "{what}: {err}");
            assert!(
                err.starts_with("mgo: this bundle is damaged"),
                "{what}: {err}"
            );
        }
    }
}

#[test]
fn a_dictionary_base_damaged_is_refused_too() {
    let dir = scratch_dir("unpack-damaged-base");
    let levels = go_probe();
    let best = oracle_level(levels);
    if best == 3 {
        // The base is v3: damaging it is the case above.
        return;
    }
    let bundle = pack(&dir.join("Z19"), levels, Compression::ZstdDict(19), false);
    let bytes = std::fs::read(&bundle).unwrap();
    let parsed = Bundle::parse_file(&bytes).unwrap();
    let chosen = parsed.entries().find(|e| e.level == best).unwrap();
    assert_eq!(chosen.encoding, Encoding::ZstdDictionary);
    let base = parsed.entry(chosen.dictionary as usize).unwrap();
    let range = stored_range(&bytes, base.level);
    let mut damaged = bytes.clone();
    damaged[range.end - 40] ^= 0x04;
    let path = dir.join("damaged-base");
    write_executable(&path, &damaged).unwrap();
    let out = run(command(&path).env("PROBE_EXIT", "7"));
    assert_eq!(out.status.code(), Some(122), "{}", stderr(&out));
    assert!(
        out.stdout.is_empty(),
        "the program ran from a damaged dictionary"
    );
}

#[test]
fn without_a_hash_of_the_compressed_bytes_the_memfd_path_runs_it() {
    let dir = scratch_dir("unpack-no-stored-hash");
    let levels = go_probe();
    let bundle = pack(&dir.join("z19"), levels, Compression::Zstd(19), false);
    let mut bytes = std::fs::read(&bundle).unwrap();
    // What an older packer wrote: no stored_hash (bytes 40..48 of each entry zero).
    let region = Region::locate(&bytes).unwrap().file_offset as usize;
    let mut header = Header::parse(&bytes[region..]).unwrap();
    let index = region + header.index_offset as usize;
    for i in 0..header.variant_count as usize {
        let at = index + i * ENTRY_LEN + 40;
        bytes[at..at + 8].fill(0);
    }
    header.index_hash = content_hash(&bytes[index..index + header.index_len as usize]);
    bytes[region..region + HEADER_LEN].copy_from_slice(&header.to_bytes());
    let old = dir.join("old");
    write_executable(&old, &bytes).unwrap();

    let out = run(command(&old).env("MGODEBUG", "log").env("PROBE_EXIT", "7"));
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let line = "[mgo] launcher: launch path memfd (cannot map the variant directly: the bundle \
                records no hash of its compressed bytes)";
    assert!(stderr(&out).lines().any(|l| l == line), "{}", stderr(&out));
    let exe = parse_report(&stdout(&out)).get_str("exe").unwrap();
    assert!(exe.starts_with("/memfd:"), "{exe}");
}

#[test]
fn the_packer_records_the_hash_of_every_stored_form() {
    let dir = scratch_dir("unpack-stored-hash");
    for &mode in MODES.iter().chain(&[Compression::None]) {
        let bundle = pack(&dir.join(name(mode)), go_probe(), mode, false);
        let bytes = std::fs::read(&bundle).unwrap();
        let parsed = Bundle::parse_file(&bytes).unwrap();
        for entry in parsed.entries() {
            assert_eq!(
                entry.stored_hash,
                content_hash(parsed.stored(&entry)),
                "{mode}: v{}",
                entry.level
            );
        }
    }
}

/// Under qemu-user each CPU model's CPUID picks the level, and the compressed variant is decoded
/// into its segments by the launcher running under the model (qemu has no `execveat`, which the
/// direct path does not need).
#[test]
fn compressed_direct_launch_under_other_cpu_models() {
    let dir = scratch_dir("unpack-qemu");
    let bundle = pack(&dir.join("z19"), go_probe(), Compression::Zstd(19), false);
    for (model, level) in [("Haswell", "v3"), ("Nehalem", "v2"), ("qemu64", "v1")] {
        let out = run(std::process::Command::new("qemu-x86_64")
            .args(["-cpu", model])
            .arg(&bundle)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("MGODEBUG", "log"));
        let err = stderr(&out);
        assert!(out.status.success(), "{model}: {err}");
        assert!(err.lines().any(|l| l == DIRECT), "{model}: {err}");
        let report = parse_report(&stdout(&out));
        assert_eq!(report.get_str("level").as_deref(), Some(level), "{model}");
    }
}
