//! Damaged bundles, run for real: truncated at every byte of the region header and index and at
//! samples across the payloads and the launcher image, a bit flipped anywhere in the header, the
//! index, the payload program header or a payload, and consistent-looking bundles (hashes
//! recomputed) whose sizes and offsets point outside the file or are absurd. The launcher must
//! refuse with one `mgo:` line and status 122 before anything runs: the probe prints nothing, no
//! launcher dies by a signal, and no altered byte is ever executed.
//!
//! Where the damage is in the launcher's own code or program headers, the kernel decides before
//! the launcher exists (docs/RELIABILITY.md): those tests check that the program never runs and
//! record what the kernel did.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use mgo_format::elf::{Elf, PHDR_LEN, PT_LOAD};
use mgo_format::{content_hash, Bundle, Entry, Header, Region, ENTRY_LEN, HEADER_LEN};
use mgo_pack::{BundleOptions, Compression, Launch};
use mgo_tests::fixtures::{c_probe_dynamic, c_probe_static, go_probe};
use mgo_tests::harness::{command, pack, pack_with, scratch_dir, write_executable};

const BAD_BUNDLE: i32 = 122;

/// Environment variables for one run.
type Env = Vec<(&'static str, String)>;

/// What running one damaged bundle did.
#[derive(Debug)]
enum Outcome {
    /// The launcher refused: its status and its stderr.
    Refused(i32, String),
    /// Something printed on stdout: the program ran.
    Ran(String),
    /// The kernel refused the exec itself (spawn failed).
    ExecFailed(String),
    /// Killed by a signal before printing anything.
    Signal(i32),
}

/// Where things are in a bundle file.
struct Layout {
    /// File offset of the payload region.
    region: usize,
    /// File offset of the index.
    index: usize,
    /// File offset of the payload program header.
    phdr: usize,
    /// End of the launcher image's own file contents (the highest end of its other segments).
    image_end: usize,
    /// (level, file offset, stored length) of each entry.
    entries: Vec<(u32, usize, usize)>,
    /// End of the payload region; the section header table the packer appends follows it.
    region_end: usize,
    len: usize,
}

fn layout(bytes: &[u8]) -> Layout {
    let region = Region::locate(bytes).unwrap();
    let bundle = Bundle::parse_file(bytes).unwrap();
    let base = region.file_offset as usize;
    let elf = Elf::parse(bytes).unwrap();
    let mut phdr = None;
    let mut image_end = 0;
    for i in 0..elf.phnum() {
        let ph = elf.phdr(i);
        if ph.p_type == PT_LOAD && ph.p_offset == region.file_offset {
            phdr = Some(elf.phdr_offset(i));
        } else if ph.p_type == PT_LOAD {
            image_end = image_end.max((ph.p_offset + ph.p_filesz) as usize);
        }
    }
    Layout {
        region: base,
        index: base + bundle.header.index_offset as usize,
        phdr: phdr.unwrap(),
        image_end,
        entries: bundle
            .entries()
            .map(|e| (e.level, base + e.offset as usize, e.stored_len as usize))
            .collect(),
        region_end: base + region.len as usize,
        len: bytes.len(),
    }
}

/// Runs every case (bytes, environment) on a few threads, returning the outcomes in order.
fn run_all(dir: &Path, cases: &[(Vec<u8>, Env)]) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((bytes, env)) = cases.get(i) else {
                    break;
                };
                let path = dir.join(format!("case-{i}"));
                write_executable(&path, bytes).unwrap();
                let outcome = launch(&path, env);
                std::fs::remove_file(&path).unwrap();
                results.lock().unwrap().insert(i, outcome);
            });
        }
    });
    results.into_inner().unwrap().into_values().collect()
}

fn launch(path: &Path, env: &Env) -> Outcome {
    let mut cmd = command(path);
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let out: Output = match cmd.output() {
        Err(e) => return Outcome::ExecFailed(e.to_string()),
        Ok(out) => out,
    };
    if !out.stdout.is_empty() {
        return Outcome::Ran(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    match (out.status.code(), out.status.signal()) {
        (Some(code), _) => Outcome::Refused(code, String::from_utf8_lossy(&out.stderr).into()),
        (None, Some(signal)) => Outcome::Signal(signal),
        _ => unreachable!(),
    }
}

/// Asserts that every case was refused by the launcher with one `mgo: ...` line starting with
/// `message` and status 122.
fn assert_refused(what: &str, labels: &[String], outcomes: &[Outcome], message: &str) {
    let mut wrong = Vec::new();
    for (label, outcome) in labels.iter().zip(outcomes) {
        let ok = match outcome {
            Outcome::Refused(BAD_BUNDLE, err) => {
                err.lines().count() == 1 && err.starts_with(message)
            }
            _ => false,
        };
        if !ok {
            wrong.push(format!("{label}: {outcome:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{what}: {} of {} cases not refused as expected:\n{}",
        wrong.len(),
        outcomes.len(),
        wrong[..wrong.len().min(20)].join("\n")
    );
}

/// Up to `n` positions spread evenly over `range`, always including both ends.
fn spread(range: std::ops::Range<usize>, n: usize) -> Vec<usize> {
    if range.len() <= n {
        return range.collect();
    }
    let mut v: Vec<usize> = (0..n)
        .map(|i| range.start + i * (range.len() - 1) / (n - 1))
        .collect();
    v.dedup();
    v
}

/// Writes a note straight to the test process's stderr, which `cargo test` shows even when the
/// test passes (the harness captures only `eprintln!`).
fn note(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

fn memfd_bundle(name: &str) -> (PathBuf, Vec<u8>) {
    let probe = c_probe_dynamic();
    let variants: Vec<(u32, &Path)> = (0..4).map(|i| (i as u32 + 1, probe[i].as_path())).collect();
    let path = pack(&scratch_dir(name).join("bundle"), &variants);
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

/// One static variant, packed for the direct path (mapped from the file, not copied).
fn direct_bundle(name: &str) -> (PathBuf, Vec<u8>) {
    let probe = c_probe_static();
    let path = pack_with(
        &scratch_dir(name).join("bundle"),
        &[(1, probe[0].as_path())],
        Launch::Direct,
    );
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

/// The four levels of `probe`, packed with `compression` (memfd path), as bytes.
fn compressed_bundle(probe: &[PathBuf; 4], compression: Compression) -> Vec<u8> {
    let variants: Vec<mgo_pack::Variant> = (0..4)
        .map(|i| mgo_pack::Variant::read(&probe[i], Some(i as u32 + 1)).unwrap())
        .collect();
    let options = BundleOptions::default().with_compression(compression);
    mgo_pack::build_bundle_with(&variants, &options).unwrap()
}

const TRUNCATED: &str =
    "mgo: this bundle is damaged: bundle is truncated: its payload region extends past the end of the file";

#[test]
fn truncated_anywhere_in_the_region_is_refused() {
    for (name, (_, bytes)) in [
        ("memfd", memfd_bundle("bad-trunc-memfd")),
        ("direct", direct_bundle("bad-trunc-direct")),
    ] {
        let at = layout(&bytes);
        let dir = scratch_dir(&format!("bad-trunc-{name}-cases"));
        // Every cut in the region header and the index (the end of the region), a sample across
        // the payloads, and the region's very first byte.
        let mut cuts: Vec<usize> = (at.region..=at.region + HEADER_LEN).collect();
        cuts.extend(at.index - 8..at.region_end);
        cuts.extend(spread(at.region + HEADER_LEN..at.index, 128));
        for &(_, offset, len) in &at.entries {
            cuts.extend([
                offset,
                offset + 1,
                offset + len / 2,
                offset + len - 1,
                offset + len,
            ]);
        }
        cuts.sort_unstable();
        cuts.dedup();
        let cases: Vec<_> = cuts
            .iter()
            .map(|&c| (bytes[..c].to_vec(), vec![]))
            .collect();
        let outcomes = run_all(&dir, &cases);
        // The launcher sees the file through the kernel's mapping, which reads zeros past the end
        // of the file up to the end of its last page: a cut inside the region's last page looks
        // like a damaged header or index (refused all the same); a cut before it, truncated.
        let last_page = (at.region_end - 1) & !4095;
        let (in_last, before): (Vec<_>, Vec<_>) = cuts
            .iter()
            .zip(outcomes)
            .partition(|(&c, _)| c >= last_page);
        for (cases, message) in [
            (before, TRUNCATED),
            (in_last, "mgo: this bundle is damaged: "),
        ] {
            let labels: Vec<String> = cases
                .iter()
                .map(|(c, _)| format!("{name}: cut at {c}"))
                .collect();
            let outcomes: Vec<Outcome> = cases.into_iter().map(|(_, o)| o).collect();
            assert_refused(name, &labels, &outcomes, message);
        }
        note(&format!(
            "bad_bundles: {name}: {} cuts in the region, all refused with status 122",
            cuts.len()
        ));
    }
}

#[test]
fn truncated_inside_the_launcher_image_never_runs_the_program() {
    let (_, bytes) = memfd_bundle("bad-trunc-image");
    let at = layout(&bytes);
    let dir = scratch_dir("bad-trunc-image-cases");
    let mut cuts: Vec<usize> = (0..at.region).step_by(61).collect();
    cuts.extend([
        1,
        4,
        63,
        64,
        65,
        at.image_end - 1,
        at.image_end,
        at.region - 1,
    ]);
    cuts.sort_unstable();
    cuts.dedup();
    let cases: Vec<_> = cuts
        .iter()
        .map(|&c| (bytes[..c].to_vec(), vec![]))
        .collect();
    let outcomes = run_all(&dir, &cases);
    let mut classes: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    for (&cut, outcome) in cuts.iter().zip(&outcomes) {
        let class = match outcome {
            Outcome::Ran(out) => panic!("cut at {cut}: the program ran: {out}"),
            Outcome::ExecFailed(e) => format!("exec refused by the kernel ({e})"),
            Outcome::Signal(s) => format!("killed by signal {s} before the launcher could run"),
            Outcome::Refused(code, err) => {
                // Wherever the launcher gets to run, it refuses.
                assert_eq!(*code, BAD_BUNDLE, "cut at {cut}: {err}");
                assert!(err.starts_with(TRUNCATED), "cut at {cut}: {err}");
                "refused by the launcher (status 122)".to_string()
            }
        };
        let entry = classes.entry(class).or_insert((cut, cut, 0));
        entry.0 = entry.0.min(cut);
        entry.1 = entry.1.max(cut);
        entry.2 += 1;
    }
    // From the end of the launcher's own contents on, always the launcher's refusal.
    for (&cut, outcome) in cuts.iter().zip(&outcomes) {
        if cut >= at.image_end {
            assert!(
                matches!(outcome, Outcome::Refused(BAD_BUNDLE, _)),
                "cut at {cut}: {outcome:?}"
            );
        }
    }
    note(&format!(
        "bad_bundles: {} cuts inside the launcher image (its contents end at {}, the region starts at {}):",
        cuts.len(),
        at.image_end,
        at.region
    ));
    for (class, (lo, hi, n)) in classes {
        note(&format!("  {n:4} cuts in {lo}..={hi}: {class}"));
    }
}

#[test]
fn flipped_bit_in_header_or_index_is_refused() {
    let (_, bytes) = memfd_bundle("bad-flip-index");
    let at = layout(&bytes);
    let dir = scratch_dir("bad-flip-index-cases");
    let mut positions: Vec<usize> = (at.region..at.region + HEADER_LEN).collect();
    positions.extend(at.index..at.region_end);
    let mut cases = Vec::new();
    let mut labels = Vec::new();
    for &p in &positions {
        for bit in 0..8 {
            let mut damaged = bytes.clone();
            damaged[p] ^= 1 << bit;
            cases.push((damaged, vec![]));
            labels.push(format!("byte {p} bit {bit}"));
        }
    }
    let outcomes = run_all(&dir, &cases);
    note(&format!(
        "bad_bundles: {} flipped bits in the region header and index",
        outcomes.len()
    ));
    assert_refused(
        "header/index",
        &labels,
        &outcomes,
        "mgo: this bundle is damaged: ",
    );
}

/// A flipped bit in a variant's bytes: only the content hash can tell, and the launcher checks
/// it while copying, before the exec.
#[test]
fn flipped_bit_in_a_payload_is_never_executed() {
    let probe = go_probe();
    let go = pack(
        &scratch_dir("bad-flip-go").join("bundle"),
        &[(1, probe[0].as_path()), (2, probe[1].as_path())],
    );
    let bundles = [
        ("C", memfd_bundle("bad-flip-payload").1, vec![]),
        ("Go", std::fs::read(go).unwrap(), vec![]),
        // A bundle packed for the direct path checks the hash when asked to copy.
        (
            "direct, MGODEBUG=memfd",
            direct_bundle("bad-flip-direct").1,
            vec![("MGODEBUG", "memfd".to_string())],
        ),
    ];
    for (name, bytes, env) in bundles {
        let at = layout(&bytes);
        let dir = scratch_dir("bad-flip-payload-cases");
        let mut cases = Vec::new();
        let mut labels = Vec::new();
        let mut messages = Vec::new();
        for &(level, offset, len) in &at.entries {
            for (k, p) in spread(offset..offset + len, 40).into_iter().enumerate() {
                let mut damaged = bytes.clone();
                damaged[p] ^= 1 << (k % 8);
                let mut env = env.clone();
                env.push(("GOAMD64", format!("v{level}")));
                cases.push((damaged, env));
                labels.push(format!("{name}: v{level} byte {p} bit {}", k % 8));
                messages.push(level);
            }
        }
        let outcomes = run_all(&dir, &cases);
        for level in 1..=4 {
            let (l, o): (Vec<String>, Vec<&Outcome>) = labels
                .iter()
                .zip(&outcomes)
                .zip(&messages)
                .filter(|(_, &m)| m == level)
                .map(|((l, o), _)| (l.clone(), o))
                .unzip();
            if l.is_empty() {
                continue;
            }
            let message = format!(
                "mgo: this bundle is damaged: variant GOAMD64=v{level} does not match its checksum; refusing to run it"
            );
            let owned: Vec<Outcome> = o.into_iter().map(clone_outcome).collect();
            assert_refused(name, &l, &owned, &message);
        }
        note(&format!(
            "bad_bundles: {name}: {} flipped bits in payloads, all refused",
            outcomes.len()
        ));
    }
}

/// Compressed variants: a flipped bit either breaks decoding or changes the decoded bytes (and
/// the hash check refuses them), or it sits in a field that does not change them (a gzip header's
/// time stamp, an unused zstd field), and then the program runs intact.
#[test]
fn flipped_bit_in_a_compressed_payload_is_never_executed() {
    let probe = c_probe_dynamic();
    for (name, compression) in [
        ("gzip", Compression::Gzip(6)),
        ("zstd", Compression::Zstd(3)),
        ("zstd-dict", Compression::ZstdDict(3)),
    ] {
        let bytes = compressed_bundle(probe, compression);
        let at = layout(&bytes);
        let dir = scratch_dir(&format!("bad-flip-{name}-cases"));
        let mut cases = Vec::new();
        let mut labels = Vec::new();
        for &(level, offset, len) in &at.entries {
            for (k, p) in spread(offset..offset + len, 60).into_iter().enumerate() {
                let mut damaged = bytes.clone();
                damaged[p] ^= 1 << (k % 8);
                cases.push((damaged, vec![("GOAMD64", format!("v{level}"))]));
                labels.push((level, format!("{name}: v{level} byte {p} bit {}", k % 8)));
            }
        }
        let outcomes = run_all(&dir, &cases);
        let (mut refused, mut intact) = (0, 0);
        for ((level, label), outcome) in labels.iter().zip(&outcomes) {
            match outcome {
                Outcome::Refused(BAD_BUNDLE, err)
                    if err.lines().count() == 1
                        && err.starts_with("mgo: this bundle is damaged") =>
                {
                    refused += 1
                }
                Outcome::Ran(out) if out.starts_with(&format!("level=\"v{level}\"")) => intact += 1,
                other => panic!("{label}: {other:?}"),
            }
        }
        note(&format!(
            "bad_bundles: {name}: {} flipped bits in payloads: {refused} refused, {intact} ran intact",
            outcomes.len()
        ));
        assert!(
            refused > outcomes.len() * 3 / 4,
            "{name}: {refused} refused"
        );
    }
}

fn clone_outcome(o: &Outcome) -> Outcome {
    match o {
        Outcome::Refused(c, s) => Outcome::Refused(*c, s.clone()),
        Outcome::Ran(s) => Outcome::Ran(s.clone()),
        Outcome::ExecFailed(s) => Outcome::ExecFailed(s.clone()),
        Outcome::Signal(s) => Outcome::Signal(*s),
    }
}

/// The payload program header is read by the kernel before the launcher runs. A flipped bit
/// that makes the segment unloadable (a file offset not congruent to the address modulo the
/// page size or beyond what a file offset can be, a file size above the memory size, memory
/// beyond user space or more than the machine will map) makes the kernel kill the process
/// during exec, before any launcher code exists (SIGSEGV, as for any such ELF file); a changed
/// type may make it refuse the exec outright. Everything else reaches the launcher, which must
/// refuse, or, for bits nobody reads (`p_paddr`, `p_align`), run the program intact. A death by
/// signal is confirmed under strace to come from the kernel's exec: the bundle's execve fails
/// and no system call of the launcher follows.
#[test]
fn flipped_bit_in_the_payload_program_header() {
    let (_, bytes) = memfd_bundle("bad-flip-phdr");
    let at = layout(&bytes);
    let dir = scratch_dir("bad-flip-phdr-cases");
    let mut cases = Vec::new();
    let mut labels = Vec::new();
    let mut unloadable = Vec::new();
    for p in at.phdr..at.phdr + PHDR_LEN {
        for bit in 0..8 {
            let mut damaged = bytes.clone();
            damaged[p] ^= 1 << bit;
            let field = |o: usize| {
                u64::from_le_bytes(damaged[at.phdr + o..at.phdr + o + 8].try_into().unwrap())
            };
            let (offset, vaddr, filesz, memsz) = (field(8), field(16), field(32), field(40));
            let is_load = damaged[at.phdr..at.phdr + 4] == [1, 0, 0, 0];
            unloadable.push(
                is_load
                    && ((offset ^ vaddr) & 0xfff != 0
                        || filesz > memsz
                        || offset
                            .checked_add(filesz)
                            .is_none_or(|end| end > i64::MAX as u64)
                        || vaddr.checked_add(memsz).is_none_or(|end| end > 1 << 47)),
            );
            cases.push((damaged, vec![]));
            labels.push(format!("phdr byte {} bit {bit}", p - at.phdr));
        }
    }
    let outcomes = run_all(&dir, &cases);
    let mut classes: BTreeMap<String, usize> = BTreeMap::new();
    for (((label, outcome), &unloadable), (bytes, _)) in
        labels.iter().zip(&outcomes).zip(&unloadable).zip(&cases)
    {
        let class = match outcome {
            Outcome::Signal(11) if unloadable => {
                "unloadable segment: killed by the kernel during exec (SIGSEGV)".to_string()
            }
            Outcome::Signal(11) => match killed_in_exec(&dir, bytes) {
                Some(Ok(errno)) => format!(
                    "killed by the kernel during exec (execve {errno}, SIGSEGV), confirmed by strace"
                ),
                Some(Err(log)) => panic!("{label}: died after the launcher started:\n{log}"),
                None => panic!("{label}: SIGSEGV, and no strace to tell who crashed"),
            },
            Outcome::ExecFailed(e) => format!("exec refused by the kernel ({e})"),
            Outcome::Refused(BAD_BUNDLE, err)
                if !unloadable && err.starts_with("mgo: this bundle is damaged: ") =>
            {
                assert_eq!(err.lines().count(), 1, "{label}: {err}");
                "refused by the launcher (status 122)".to_string()
            }
            Outcome::Ran(out) if !unloadable && out.starts_with("level=") => {
                "ran intact (a bit neither the kernel nor the launcher reads)".to_string()
            }
            other => panic!("{label} (unloadable: {unloadable}): {other:?}"),
        };
        *classes.entry(class).or_default() += 1;
    }
    note(&format!(
        "bad_bundles: {} flipped bits in the payload program header:",
        outcomes.len()
    ));
    for (class, n) in classes {
        note(&format!("  {n:4}: {class}"));
    }
}

/// Runs `bytes` under strace: `Ok(errno)` if the process died in its own execve (which returned
/// `errno`) before making any other system call, `Err(log)` otherwise; `None` without strace.
fn killed_in_exec(dir: &Path, bytes: &[u8]) -> Option<Result<String, String>> {
    let path = dir.join("strace-case");
    let log = dir.join("strace.log");
    write_executable(&path, bytes).unwrap();
    let out = command(Path::new("/usr/bin/strace"))
        .arg("-f")
        .arg("-o")
        .arg(&log)
        .arg(&path)
        .output()
        .ok()?;
    let text = std::fs::read_to_string(&log).ok()?;
    let _ = (std::fs::remove_file(&path), std::fs::remove_file(&log));
    let calls: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("+++ killed") && !l.contains("--- SIG"))
        .collect();
    match calls[..] {
        [execve] if execve.contains("execve(") && execve.contains(" = -1 ") => {
            let errno = execve.split(" = -1 ").nth(1).unwrap();
            Some(Ok(errno.split(' ').next().unwrap().to_string()))
        }
        _ => Some(Err(format!(
            "{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        ))),
    }
}

/// Bundles whose hashes were recomputed after the damage, so that only the bounds and sanity
/// checks stand between them and the launcher's memory: offsets and sizes pointing outside the
/// region or the file, absurd counts and lengths, unknown encodings and dictionaries.
#[test]
fn consistent_but_absurd_bundles_are_refused() {
    let (_, bytes) = memfd_bundle("bad-absurd");
    let at = layout(&bytes);
    let header = Header::parse(&bytes[at.region..]).unwrap();
    let entry = |i: usize| {
        let bundle = Bundle::parse_file(&bytes).unwrap();
        bundle.entry(i).unwrap()
    };
    // Rewrites the header (and its hash) with `edit` applied.
    let with_header = |edit: &dyn Fn(&mut Header)| {
        let mut h = header;
        edit(&mut h);
        let mut b = bytes.clone();
        b[at.region..at.region + HEADER_LEN].copy_from_slice(&h.to_bytes());
        b
    };
    // Rewrites entry `i` and the index and header hashes.
    let with_entry = |i: usize, edit: &dyn Fn(&mut Entry)| {
        let mut e = entry(i);
        edit(&mut e);
        let mut b = bytes.clone();
        let at_entry = at.index + i * ENTRY_LEN;
        b[at_entry..at_entry + ENTRY_LEN].copy_from_slice(&e.to_bytes());
        let mut h = header;
        h.index_hash = content_hash(&b[at.index..at.index + header.index_len as usize]);
        b[at.region..at.region + HEADER_LEN].copy_from_slice(&h.to_bytes());
        b
    };
    // Rewrites a byte range of entry `i` directly (fields the Entry type cannot hold).
    let with_entry_bytes = |i: usize, offset: usize, value: &[u8]| {
        let mut b = bytes.clone();
        let at_entry = at.index + i * ENTRY_LEN + offset;
        b[at_entry..at_entry + value.len()].copy_from_slice(value);
        let mut h = header;
        h.index_hash = content_hash(&b[at.index..at.index + header.index_len as usize]);
        b[at.region..at.region + HEADER_LEN].copy_from_slice(&h.to_bytes());
        b
    };
    // Rewrites the payload program header's field at `offset` (8 bytes).
    let with_phdr = |offset: usize, value: u64| {
        let mut b = bytes.clone();
        b[at.phdr + offset..at.phdr + offset + 8].copy_from_slice(&value.to_le_bytes());
        b
    };
    let region_len = header.region_len;
    let top = 4; // the variant the launcher picks with GOAMD64=v4
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "index past the region",
            with_header(&|h| h.index_offset = region_len),
        ),
        (
            "index at u64::MAX",
            with_header(&|h| h.index_offset = u64::MAX),
        ),
        (
            "index offset + length overflows",
            with_header(&|h| h.index_offset = u64::MAX - 8),
        ),
        (
            "index length not count * 48",
            with_header(&|h| h.index_len += 48),
        ),
        (
            "index length huge",
            with_header(&|h| h.index_len = u64::MAX),
        ),
        (
            "no variants",
            with_header(&|h| {
                h.variant_count = 0;
                h.index_len = 0
            }),
        ),
        (
            "65535 variants",
            with_header(&|h| {
                h.variant_count = u16::MAX;
                h.index_len = u16::MAX as u64 * 48
            }),
        ),
        (
            "region length larger than the segment",
            with_header(&|h| h.region_len += 4096),
        ),
        (
            "region length u64::MAX",
            with_header(&|h| h.region_len = u64::MAX),
        ),
        ("version 2", with_header(&|h| h.version = 2)),
        (
            "arm64 machine in an x86-64 file",
            with_header(&|h| h.machine = 183),
        ),
        (
            "entry past the region",
            with_entry(top - 1, &|e| e.offset = region_len),
        ),
        (
            "entry at u64::MAX",
            with_entry(top - 1, &|e| e.offset = u64::MAX),
        ),
        (
            "entry length u64::MAX",
            with_entry(top - 1, &|e| e.stored_len = u64::MAX),
        ),
        (
            "entry offset + length overflows",
            with_entry(top - 1, &|e| {
                e.offset = u64::MAX - 4096;
                e.stored_len = 8192
            }),
        ),
        (
            "entry one byte past the region",
            with_entry(top - 1, &|e| e.stored_len = region_len - e.offset + 1),
        ),
        (
            "entry covering the index",
            with_entry(top - 1, &|e| e.stored_len = region_len - e.offset),
        ),
        (
            "entry pointing at another variant",
            with_entry(top - 1, &|e| e.offset = entry(0).offset),
        ),
        (
            "entry shorter by one byte",
            with_entry(top - 1, &|e| e.stored_len -= 1),
        ),
        (
            "entry's hash of another variant",
            with_entry(top - 1, &|e| e.content_hash = entry(0).content_hash),
        ),
        ("unknown encoding 9", with_entry_bytes(top - 1, 4, &[9])),
        (
            "zstd-dict with itself as dictionary",
            with_entry_bytes(top - 1, 4, &[3, (top - 1) as u8]),
        ),
        (
            "zstd-dict with a dictionary out of range",
            with_entry_bytes(top - 1, 4, &[3, 200]),
        ),
        (
            "stored with a dictionary",
            with_entry_bytes(top - 1, 5, &[0]),
        ),
        // The payload segment itself pointing outside the file: the kernel maps it anyway (its
        // pages past the end would fault), the launcher must see it from the file's size.
        (
            "segment length past the end of the file",
            with_phdr(32, (at.len - at.region) as u64 + 4096),
        ),
        ("segment length huge", with_phdr(32, 1 << 40)),
        (
            "segment offset past the end of the file",
            with_phdr(8, (at.len as u64 + 4095) & !4095),
        ),
    ];
    // The mem size is the kernel's business; keep it equal to the file size as the packer does.
    for (_, b) in cases.iter_mut() {
        let filesz = u64::from_le_bytes(b[at.phdr + 32..at.phdr + 40].try_into().unwrap());
        b[at.phdr + 40..at.phdr + 48].copy_from_slice(&filesz.to_le_bytes());
    }
    let dir = scratch_dir("bad-absurd-cases");
    let runs: Vec<_> = cases
        .iter()
        .map(|(_, b)| (b.clone(), vec![("GOAMD64", "v4".to_string())]))
        .collect();
    let outcomes = run_all(&dir, &runs);
    let mut wrong = Vec::new();
    for ((name, _), outcome) in cases.iter().zip(&outcomes) {
        match outcome {
            Outcome::Refused(BAD_BUNDLE, err)
                if err.lines().count() == 1 && err.starts_with("mgo: this bundle is damaged") => {}
            Outcome::Refused(BAD_BUNDLE, err)
                if err.lines().count() == 1
                    && err.starts_with("mgo: this launcher cannot decode") => {}
            Outcome::ExecFailed(e) if name.starts_with("segment") => note(&format!(
                "bad_bundles: {name}: exec refused by the kernel ({e})"
            )),
            other => wrong.push(format!("{name}: {other:?}")),
        }
    }
    assert!(wrong.is_empty(), "not refused:\n{}", wrong.join("\n"));
}

/// Runs `path` with a deadline: `None` if it had to be killed (a hang).
fn launch_timed(path: &Path, deadline: std::time::Duration) -> Option<Outcome> {
    use std::process::Stdio;
    let mut child = match command(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return Some(Outcome::ExecFailed(e.to_string())),
    };
    let started = std::time::Instant::now();
    loop {
        if child.try_wait().ok()?.is_some() {
            break;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let out = child.wait_with_output().ok()?;
    Some(if !out.stdout.is_empty() {
        Outcome::Ran(String::from_utf8_lossy(&out.stdout).into_owned())
    } else if let Some(signal) = out.status.signal() {
        Outcome::Signal(signal)
    } else {
        Outcome::Refused(
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    })
}

/// A bit flipped in the launcher image (its code, tables, ELF or program headers) never runs the
/// wrong variant, never hangs and never exits without a word: the launcher's self-check refuses
/// it (122), or the kernel does (exec refused, or a signal before the launcher can check), or
/// code run before the check says something else on its `mgo:` line, or the bit is one nothing
/// reads and the right program runs. Sampled here over stored and gzip
/// bundles (`cargo xtask flips` runs every bit); byte 1249 bit 0 of a gzip bundle hung forever
/// before the launcher checked itself.
#[test]
fn flipped_bit_in_the_launcher_image_never_runs_the_wrong_thing() {
    let probe = c_probe_static();
    for (name, compression, extra) in [
        ("stored", Compression::None, None),
        ("gzip", Compression::Gzip(6), Some((1249, 0))),
    ] {
        let bytes = compressed_bundle(probe, compression);
        let at = layout(&bytes);
        let dir = scratch_dir(&format!("bad-flip-launcher-{name}"));
        let intact = dir.join("intact");
        write_executable(&intact, &bytes).unwrap();
        let Some(Outcome::Ran(expected)) = launch_timed(&intact, DEADLINE) else {
            panic!("{name}: the intact bundle does not run");
        };
        let expected = expected.lines().next().unwrap().to_string();
        let mut flips: Vec<(usize, u8)> = spread(0..at.image_end, 240)
            .into_iter()
            .enumerate()
            .map(|(k, p)| (p, (k % 8) as u8))
            .collect();
        flips.extend(extra);
        let results = run_flipped(&bytes, &flips, &dir);
        let mut classes: BTreeMap<&str, usize> = BTreeMap::new();
        let mut wrong = Vec::new();
        for (p, bit, outcome) in results {
            let class = match &outcome {
                None => "hang",
                Some(Outcome::Refused(BAD_BUNDLE, err))
                    if err.lines().count() == 1
                        && err.starts_with("mgo: this bundle is damaged: ") =>
                {
                    "refused by the launcher (122)"
                }
                // Damage in a status the launcher exits with (an instruction's operand).
                Some(Outcome::Refused(_, err))
                    if err.lines().count() == 1 && err.starts_with("mgo: ") =>
                {
                    "refused with another line or status"
                }
                Some(Outcome::Signal(_)) => "killed before the launcher could check (signal)",
                Some(Outcome::ExecFailed(_)) => "exec refused by the kernel",
                Some(Outcome::Ran(out)) if out.lines().next() == Some(expected.as_str()) => {
                    "ran the right program (a bit nothing reads)"
                }
                Some(_) => "wrong variant, silent exit or other status",
            };
            if matches!(class, "hang" | "wrong variant, silent exit or other status") {
                wrong.push(format!("byte {p} bit {bit}: {outcome:?}"));
            }
            *classes.entry(class).or_default() += 1;
        }
        note(&format!(
            "bad_bundles: {name}: {} flipped bits in the launcher image:",
            flips.len()
        ));
        for (class, n) in &classes {
            note(&format!("  {n:4}: {class}"));
        }
        assert!(wrong.is_empty(), "{name}:\n{}", wrong.join("\n"));
        assert!(
            classes
                .get("refused by the launcher (122)")
                .copied()
                .unwrap_or(0)
                > flips.len() / 2,
            "{name}: {classes:?}"
        );
    }
}

const DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// Runs a copy of `bytes` with each of `flips` (byte, bit) applied, four at a time.
fn run_flipped(
    bytes: &[u8],
    flips: &[(usize, u8)],
    dir: &Path,
) -> Vec<(usize, u8, Option<Outcome>)> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(p, bit)) = flips.get(i) else {
                    break;
                };
                let mut damaged = bytes.to_vec();
                damaged[p] ^= 1 << bit;
                let path = dir.join(format!("case-{i}"));
                write_executable(&path, &damaged).unwrap();
                let outcome = launch_timed(&path, DEADLINE);
                std::fs::remove_file(&path).unwrap();
                results.lock().unwrap().push((p, bit, outcome));
            });
        }
    });
    results.into_inner().unwrap()
}

/// The line a launcher that fails its own check writes (runtime/src/launcher/damaged.rs).
const LAUNCHER_DAMAGED: &str = "mgo: this bundle is damaged: the launcher does not match its checksum (its code or program headers are damaged)\n";

/// The report of a damaged launcher is made by code and text that are themselves among the
/// damaged bytes when the damage lies there. Every bit of its three copies of the line and of
/// the code around the hash it checks them against (found by that hash, an immediate operand in
/// its code) is flipped: each run ends with the line and status 122, another status with an
/// `mgo:` line (a damaged operand), or a signal (a trap, a fault, the watchdog), never a hang
/// or an exit without the line.
#[test]
fn a_damaged_report_of_a_damaged_launcher_is_never_silent() {
    let probe = c_probe_static();
    let bytes = compressed_bundle(probe, Compression::None);
    let at = layout(&bytes);
    let image = &bytes[..at.image_end];
    let find = |needle: &[u8]| {
        let hits: Vec<usize> = image
            .windows(needle.len())
            .enumerate()
            .filter(|(_, w)| *w == needle)
            .map(|(p, _)| p)
            .collect();
        assert_eq!(
            hits.len(),
            1,
            "{:?} found {} times",
            &needle[..8],
            hits.len()
        );
        hits[0]
    };
    let fnv = LAUNCHER_DAMAGED
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
        });
    let hash_at = find(&fnv.to_le_bytes());
    let code = hash_at.saturating_sub(256)..(hash_at + 192).min(image.len());
    let mut spans = Vec::from([code]);
    for mask in [0x00u8, 0x5a, 0xa5] {
        let copy: Vec<u8> = LAUNCHER_DAMAGED.bytes().map(|b| b ^ mask).collect();
        let p = find(&copy);
        spans.push(p..p + copy.len());
    }
    let flips: Vec<(usize, u8)> = spans
        .into_iter()
        .flatten()
        .flat_map(|p| (0..8).map(move |bit| (p, bit)))
        .collect();
    let dir = scratch_dir("bad-flip-report");
    let mut classes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (p, bit, outcome) in run_flipped(&bytes, &flips, &dir) {
        let class = match &outcome {
            Some(Outcome::Refused(BAD_BUNDLE, err)) if err == LAUNCHER_DAMAGED => "the line, 122",
            // A damaged operand or jump: another status, or the launcher's panic line after
            // the report.
            Some(Outcome::Refused(_, err))
                if err.starts_with(LAUNCHER_DAMAGED)
                    && err.lines().all(|l| l.starts_with("mgo: ")) =>
            {
                "the line, another status or line"
            }
            Some(Outcome::Refused(_, err))
                if err.lines().count() == 1 && err.starts_with("mgo: ") =>
            {
                "an mgo: line, another status"
            }
            Some(Outcome::Signal(_)) => "a signal",
            Some(Outcome::Ran(_)) => "ran (a bit nothing reads)",
            _ => "bad",
        };
        if class == "bad" {
            wrong.push(format!("byte {p} bit {bit}: {outcome:?}"));
        }
        *classes.entry(class).or_default() += 1;
    }
    note(&format!(
        "bad_bundles: {} flipped bits in the damaged launcher's report: {classes:?}",
        flips.len()
    ));
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        classes.get("the line, 122").copied().unwrap_or(0) > flips.len() / 2,
        "{classes:?}"
    );
}

/// `verify` refuses a bundle whose launcher was damaged, naming the launcher, and the launcher
/// refuses it with its own line.
/// The C decoders' segment of the gzip and zstd images is checked only before the first decode
/// (docs/FORMAT.md): damage there refuses every start that decodes, with the damaged
/// launcher's line and status 122, and `verify` refuses the file; a warm start from the cache,
/// which decodes nothing, never reads those pages and runs its entry, which was made and
/// hash-checked before the damage.
#[test]
fn damaged_decoders_are_refused_where_they_would_run_and_never_read_elsewhere() {
    let line = "mgo: this bundle is damaged: the launcher does not match its checksum (its code or program headers are damaged)\n";
    for (name, compression) in [
        ("zstd", Compression::Zstd(3)),
        ("gzip", Compression::Gzip(6)),
    ] {
        let dir = scratch_dir(&format!("bad-decoders-{name}"));
        let home = dir.join("xdg");
        let probe = c_probe_static();
        let variants: Vec<(u32, &Path)> =
            (0..4).map(|i| (i as u32 + 1, probe[i].as_path())).collect();
        let options = BundleOptions::default()
            .with_launch(Launch::Cache)
            .with_compression(compression);
        let path = mgo_tests::harness::pack_options(&dir.join("bundle"), &variants, &options);
        let cached = |path: &Path| {
            let mut cmd = command(path);
            cmd.env("XDG_CACHE_HOME", &home);
            cmd.output().unwrap()
        };
        // The entry, made before the damage.
        let made = cached(&path);
        assert!(made.status.success(), "{name}: {made:?}");

        let mut bytes = std::fs::read(&path).unwrap();
        let elf = Elf::parse(&bytes).unwrap();
        let arch = mgo_format::Arch::from_elf_machine(elf.machine).unwrap();
        let decoders = elf
            .phdrs()
            .find(|ph| mgo_format::is_decoder_segment(arch, ph))
            .unwrap_or_else(|| panic!("{name}: the image has no decoder segment"));
        let at = (decoders.p_offset + decoders.p_filesz / 2) as usize;
        bytes[at] ^= 0x04;
        write_executable(&path, &bytes).unwrap();

        let warm = cached(&path);
        assert!(warm.status.success(), "{name}: the warm start: {warm:?}");
        assert!(
            !warm.stdout.is_empty(),
            "{name}: the warm start ran nothing"
        );
        let decoding = command(&path).env("MGODEBUG", "memfd").output().unwrap();
        assert_eq!(
            decoding.status.code(),
            Some(BAD_BUNDLE),
            "{name}: {decoding:?}"
        );
        assert_eq!(String::from_utf8_lossy(&decoding.stderr), line, "{name}");
        assert!(decoding.stdout.is_empty(), "{name}");
        let err = mgo_pack::verify(&path)
            .unwrap()
            .into_result()
            .unwrap_err()
            .to_string();
        assert!(err.contains("its decoders do not match"), "{name}: {err}");
    }
}

#[test]
fn damaged_launcher_is_refused_by_verify_and_by_itself() {
    let (path, mut bytes) = memfd_bundle("bad-launcher-verify");
    let at = layout(&bytes);
    // A byte of a message in the launcher's read-only data: never run, and not read before the
    // check (unlike its code and the addresses in its data).
    let text = b"must be v1, v2, v3 or v4";
    let p = bytes[..at.image_end]
        .windows(text.len())
        .position(|w| w == text)
        .expect("the launcher's message")
        + 5;
    bytes[p] ^= 0x10;
    write_executable(&path, &bytes).unwrap();
    let out = command(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(BAD_BUNDLE), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "mgo: this bundle is damaged: the launcher does not match its checksum (its code or program headers are damaged)\n"
    );
    assert!(out.stdout.is_empty());
    let verification = mgo_pack::verify(&path).unwrap();
    assert!(!verification.is_ok());
    let err = verification.into_result().unwrap_err().to_string();
    assert!(
        err.contains("the launcher does not match its checksum"),
        "{err}"
    );
}
