//! Reproducible output. The same inputs and options give the same bundle, byte for byte, whatever
//! the paths, argument order, times, locale or umask; and mgo-pack packs itself, mgo's sanity
//! check: its four x86-64 level builds packed by the plain build, then by that bundle, then by the
//! bundle that one made, all with the same hash.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use common::{build_mgo_pack, CPUS};
use mgo_format::content_hash;
use mgo_tests::fixtures::go_probe;
use mgo_tests::harness::{copy_executable, oracle_level, scratch_dir};

fn hash_file(path: &Path) -> u64 {
    content_hash(&fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `packer -o out inputs...` with a clean environment; returns its stderr.
fn pack_with(packer: &Path, out: &Path, inputs: &[PathBuf]) -> String {
    let result = Command::new(packer)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("MGODEBUG", "log")
        .stdin(Stdio::null())
        .arg("-o")
        .arg(out)
        .args(inputs)
        .output()
        .expect("running the packer");
    check(
        &result,
        &format!("{} -o {}", packer.display(), out.display()),
    );
    String::from_utf8_lossy(&result.stderr).into_owned()
}

#[test]
fn mgo_pack_packs_itself_and_every_stage_is_identical() {
    let dir = scratch_dir("selfhost");
    // Copies, so that the stages read stable files even if cargo rebuilds meanwhile.
    let builds: Vec<PathBuf> = CPUS
        .iter()
        .enumerate()
        .map(|(i, cpu)| {
            let copy = dir.join(format!("mgo-pack.v{}", i + 1));
            copy_executable(&build_mgo_pack(cpu), &copy).unwrap();
            copy
        })
        .collect();
    let distinct: BTreeSet<u64> = builds.iter().map(|b| hash_file(b)).collect();
    assert_eq!(
        distinct.len(),
        4,
        "the four target-cpu builds are not all different"
    );

    // Stage 1: the plain x86-64 build packs the four, like mgo's `go build` then `./mgo`.
    let stage1 = dir.join("stage1");
    pack_with(&builds[0], &stage1, &builds);
    // Stages 2 and 3: the bundle of the previous stage does the packing.
    let level = oracle_level(go_probe());
    let mut stages = vec![stage1];
    for n in 2..=3 {
        let out = dir.join(format!("stage{n}"));
        let log = pack_with(stages.last().unwrap(), &out, &builds);
        assert!(
            log.contains(&format!(
                "[mgo] launcher: starting variant GOAMD64=v{level}"
            )),
            "stage {n} was not packed by the v{level} build: {log}"
        );
        stages.push(out);
    }
    let hashes: Vec<u64> = stages.iter().map(|s| hash_file(s)).collect();
    // Which launcher each stage embedded tells a real difference in the packing from builds
    // that picked up different committed runtime images.
    let launchers: Vec<String> = stages
        .iter()
        .map(|s| format!("{:016x}", mgo_pack::inspect(s).unwrap().runtime.id))
        .collect();
    assert!(
        hashes.iter().all(|&h| h == hashes[0]),
        "stage hashes differ: {hashes:016x?}; their launcher ids: {launchers:?}"
    );

    // The library linked into this test builds the same bytes as the command did.
    let inputs: Vec<mgo_pack::Input> = builds
        .iter()
        .enumerate()
        .map(|(i, b)| mgo_pack::Input::with_level(b, i as u32 + 1))
        .collect();
    let packed = mgo_pack::Packer::new(mgo_pack::PackOptions::default())
        .pack(&inputs)
        .unwrap();
    assert_eq!(
        content_hash(&packed.bytes),
        hashes[0],
        "library and command differ"
    );

    // And the bundle holds exactly the four builds.
    let info = mgo_pack::inspect(&stages[2]).unwrap();
    let held: Vec<(u32, u64)> = info
        .variants
        .iter()
        .map(|v| (v.level, v.content_hash))
        .collect();
    let expected: Vec<(u32, u64)> = builds
        .iter()
        .enumerate()
        .map(|(i, b)| (i as u32 + 1, hash_file(b)))
        .collect();
    assert_eq!(held, expected);
    assert!(mgo_pack::verify(&stages[2]).unwrap().is_ok());
}

#[test]
fn same_inputs_give_the_same_bytes_whatever_the_surroundings() {
    let packer = build_mgo_pack("x86-64");
    let probes = go_probe();

    // Here: the fixtures where they are, in order, plain environment.
    let here = scratch_dir("repro-here");
    let first = here.join("bundle");
    pack_with(&packer, &first, probes);

    // Elsewhere: renamed copies in another directory, old times, another order, another working
    // directory, time zone, locale, SOURCE_DATE_EPOCH and umask.
    let marker = "elsewhere-7c1e5d";
    let elsewhere = scratch_dir(marker).join("deeper path with spaces");
    fs::create_dir_all(&elsewhere).unwrap();
    let mut copies = Vec::new();
    for (i, probe) in probes.iter().enumerate().rev() {
        let copy = elsewhere.join(format!("renamed-{}", 4 - i));
        fs::copy(probe, &copy).unwrap();
        let file = fs::File::options().write(true).open(&copy).unwrap();
        file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000 + i as u64))
            .unwrap();
        copies.push(copy);
    }
    let second = elsewhere.join("bundle");
    let script = format!("umask 077 && exec \"$0\" -o '{}' \"$@\"", second.display());
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .arg(&packer)
        .args(&copies)
        .current_dir("/")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("TZ", "Asia/Tokyo")
        .env("LC_ALL", "fr_FR.UTF-8")
        .env("SOURCE_DATE_EPOCH", "1")
        .output()
        .unwrap();
    check(&out, "packing elsewhere");
    let bytes = fs::read(&second).unwrap();
    assert!(bytes == fs::read(&first).unwrap(), "bundles differ");
    assert_eq!(
        fs::metadata(&second).unwrap().permissions().mode() & 0o777,
        0o755,
        "the umask changed the bundle's mode"
    );
    assert!(
        !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
        "the bundle contains an input's path"
    );

    // In process, through the library, repeatedly (hash maps are seeded differently each time).
    for _ in 0..3 {
        let inputs: Vec<mgo_pack::Input> = copies.iter().map(mgo_pack::Input::detect).collect();
        let packed = mgo_pack::Packer::new(mgo_pack::PackOptions::default())
            .pack(&inputs)
            .unwrap();
        assert!(packed.bytes == bytes, "library output differs");
    }
}
