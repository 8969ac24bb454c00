//! End-to-end on the cache launch path (`--launch cache`, `MGODEBUG=cache`): the launcher writes
//! the chosen variant once, hash-checked, as a real file in the user's cache directory and execs
//! it at every start. First every launch behaviour check that `tests/launch.rs` runs on the memfd
//! path (`mgo_tests::checks`), then what only the cache path has: the entry's name, mode, owner
//! and bytes, a second start that execs it without rewriting it, compressed bundles decoded once,
//! tampered entries never run, 200 first starts at once, the conditions that send the launch to
//! the memfd (no home, read-only, noexec, full), secure-execution mode, and the bounds (a newer
//! bundle at the same path, entries unused for 30 days). docs/ARCHITECTURE.md ("The cache")
//! describes the path; `packer/tests/cache_cli.rs` tests `mgo-pack cache`.
//!
//! Every test points `XDG_CACHE_HOME` (or `HOME`) at a scratch directory of its own. Tests that
//! need something this machine cannot give (a mount namespace, root, set-user-ID programs) print
//! `SKIPPED: <test>: <reason>` and return.

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use mgo_pack::{BundleOptions, Compression, Launch};
use mgo_tests::checks::cache_entry;
use mgo_tests::fixtures::{c_probe_dynamic, c_probe_static, go_probe, Report};
use mgo_tests::harness::{
    command, copy_executable, numbered, ok_report, oracle_level, pack, pack_options, run,
    scratch_dir, skipped, spawn, stderr, stdout, write_executable, Sleeper,
};
use mgo_tests::hostile::{
    best_static, can_mount_privately, nobody, setuid_bundle, with_tmpfs_options,
};
use mgo_tests::page_cache::{folios, large_folio_share, Folios};

const PATH: Launch = Launch::Cache;
const SECCOMP_RUN: &str = env!("CARGO_BIN_EXE_mgo-seccomp-run");

// One test per shared check (`runs_the_best_variant_for_this_cpu`, ...), on the cache path.
mgo_tests::launch_checks!(PATH);

const DAY: u64 = 24 * 60 * 60;

/// `variants`' four builds packed for the cache path into `out`.
fn cache_bundle(out: &Path, variants: &[PathBuf; 4], compression: Compression) -> PathBuf {
    let options = BundleOptions::default()
        .with_launch(Launch::Cache)
        .with_compression(compression);
    pack_options(out, &numbered(variants), &options)
}

/// A fresh scratch directory (canonical, as the launcher names it) and a cache directory in it
/// that does not exist yet.
fn scratch(name: &str) -> (PathBuf, PathBuf) {
    let dir = scratch_dir(name).canonicalize().unwrap();
    let home = dir.join("xdg");
    (dir, home)
}

/// `program` run with `XDG_CACHE_HOME=home`.
fn cached(program: &Path, home: &Path) -> Command {
    let mut cmd = command(program);
    cmd.env("XDG_CACHE_HOME", home);
    cmd
}

/// Runs `cmd` with `MGODEBUG=log` (replacing any other value) and returns its report (it must have succeeded) and the line
/// that names the launch path.
fn logged(cmd: &mut Command, what: &str) -> (Report, String) {
    let out = run(cmd.env("MGODEBUG", "log"));
    let report = ok_report(&out, what);
    (report, path_line(&out))
}

fn path_line(out: &Output) -> String {
    stderr(out)
        .lines()
        .find(|l| l.starts_with("[mgo] launcher: launch path"))
        .unwrap_or_else(|| panic!("no launch path line: {}", stderr(out)))
        .to_string()
}

fn made(entry: &Path) -> String {
    format!(
        "[mgo] launcher: launch path cache (made {})",
        entry.display()
    )
}

fn found(entry: &Path) -> String {
    format!("[mgo] launcher: launch path cache ({})", entry.display())
}

fn memfd_because(why: &str) -> String {
    format!("[mgo] launcher: launch path memfd (cannot use the cache: {why})")
}

fn exe(report: &Report) -> String {
    report.get_str("exe").expect("exe in the probe's report")
}

/// The best level of `variants` on this machine (`v3`), and its build.
fn best(variants: &[PathBuf; 4]) -> (String, &Path) {
    let level = oracle_level(variants);
    (format!("v{level}"), &variants[level as usize - 1])
}

/// What identifies a file's inode and its last change: a rewrite or a replacement changes it.
fn identity(path: &Path) -> (u64, u64, i64, i64) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.dev(), meta.ino(), meta.ctime(), meta.ctime_nsec())
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// Asserts that `entry` is what the launcher makes: a regular file of this user's, mode 0500,
/// holding exactly `build`'s bytes, in directories of this user's with mode 0700.
fn assert_good_entry(entry: &Path, build: &Path) {
    let meta = std::fs::symlink_metadata(entry).unwrap();
    assert!(meta.is_file(), "{}: {meta:?}", entry.display());
    assert_eq!(meta.mode() & 0o7777, 0o500, "{}", entry.display());
    assert_eq!(meta.uid(), euid(), "{}", entry.display());
    assert!(
        std::fs::read(entry).unwrap() == std::fs::read(build).unwrap(),
        "{} is not {} byte for byte",
        entry.display(),
        build.display()
    );
    for dir in entry.ancestors().skip(1).take(3) {
        let meta = std::fs::symlink_metadata(dir).unwrap();
        assert!(meta.is_dir(), "{}", dir.display());
        assert_eq!(meta.mode() & 0o7777, 0o700, "{}", dir.display());
        assert_eq!(meta.uid(), euid(), "{}", dir.display());
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The bundle's directory in the cache (`<cache>/mgo-pack/<key>`) of an entry.
fn bundle_dir(entry: &Path) -> &Path {
    entry.parent().unwrap().parent().unwrap()
}

/// The first start writes the entry, named after the bundle, with the level in its path, mode
/// 0500, in private directories, holding the build's bytes; a later start execs it as it is (same
/// inode, never rewritten), and the running program's `/proc/PID/exe` is that real file, its name
/// the program's (`comm`, `pgrep -x`), its bytes the build's.
#[test]
fn first_start_makes_the_entry_and_later_starts_exec_it() {
    let (dir, home) = scratch("cache-first");
    let bundle = cache_bundle(
        &dir.join("cachedprog"),
        c_probe_dynamic(),
        Compression::None,
    );
    let (level, build) = best(c_probe_dynamic());
    let entry = cache_entry(&home, &bundle, &level);
    assert!(!home.exists());

    let (report, line) = logged(&mut cached(&bundle, &home), "first start");
    assert_eq!(line, made(&entry));
    assert_eq!(exe(&report), entry.to_str().unwrap());
    assert_eq!(report.get_str("level").unwrap(), level);
    assert!(exe(&report).contains(&format!(" GOAMD64={level}/")));
    assert_good_entry(&entry, build);
    // The missing XDG_CACHE_HOME was made, private, as the XDG specification asks.
    assert_eq!(std::fs::metadata(&home).unwrap().mode() & 0o7777, 0o700);
    assert_eq!(
        std::fs::read_link(bundle_dir(&entry).join("bundle")).unwrap(),
        bundle
    );
    let made_as = identity(&entry);

    let (report, line) = logged(&mut cached(&bundle, &home), "second start");
    assert_eq!(line, found(&entry));
    assert_eq!(exe(&report), entry.to_str().unwrap());
    assert_eq!(identity(&entry), made_as, "the entry was rewritten");

    let sleeper = Sleeper::start(&mut cached(&bundle, &home));
    let pid = sleeper.child.id();
    let exe_link = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(exe_link, entry);
    assert_eq!(sleeper.proc("comm").trim_end(), "cachedprog");
    assert!(
        std::fs::read(format!("/proc/{pid}/exe")).unwrap() == std::fs::read(build).unwrap(),
        "/proc/{pid}/exe is not the build's bytes"
    );
    match Command::new("pgrep").args(["-x", "cachedprog"]).output() {
        Ok(out) => assert!(
            stdout(&out).lines().any(|l| l == pid.to_string()),
            "pgrep -x cachedprog: {}",
            stdout(&out)
        ),
        Err(e) => skipped(
            "first_start_makes_the_entry_and_later_starts_exec_it",
            &format!("pgrep not available ({e}); the rest was checked"),
        ),
    }
    drop(sleeper);
    assert_eq!(identity(&entry), made_as, "the entry was rewritten");
}

/// `MGODEBUG=cache` takes a bundle packed for the memfd path onto the cache path, and
/// `MGODEBUG=memfd` a cache bundle onto the memfd path; the last word wins.
#[test]
fn switches_choose_the_cache_path_at_run_time() {
    let (dir, home) = scratch("cache-switches");
    let memfd_bundle = pack(&dir.join("plain"), &numbered(c_probe_dynamic()));
    let cache_bundle = cache_bundle(&dir.join("cached"), c_probe_dynamic(), Compression::None);
    let (level, _) = best(c_probe_dynamic());

    let entry = cache_entry(&home, &memfd_bundle, &level);
    let out = run(cached(&memfd_bundle, &home).env("MGODEBUG", "memfd,log,cache"));
    assert_eq!(path_line(&out), made(&entry));
    assert_eq!(exe(&ok_report(&out, "cache")), entry.to_str().unwrap());

    let out = run(cached(&cache_bundle, &home).env("MGODEBUG", "cache,log,memfd"));
    assert_eq!(path_line(&out), "[mgo] launcher: launch path memfd");
    let exe = exe(&ok_report(&out, "memfd"));
    assert!(exe.starts_with("/memfd:"), "{exe}");
    // Nothing was cached for the bundle run on the memfd path.
    assert_eq!(names(&home.join("mgo-pack")).len(), 1);
}

/// A compressed variant is decoded once, into the entry (hash-checked), and the later starts
/// exec the entry without decoding anything: the same file, untouched.
#[test]
fn compressed_bundles_decode_once() {
    let (level, build) = best(c_probe_static());
    for (name, compression) in [
        ("gzip", Compression::Gzip(1)),
        ("zstd", Compression::Zstd(1)),
    ] {
        let (dir, home) = scratch(&format!("cache-{name}"));
        let bundle = cache_bundle(&dir.join("prog"), c_probe_static(), compression);
        let entry = cache_entry(&home, &bundle, &level);
        let (report, line) = logged(&mut cached(&bundle, &home), name);
        assert_eq!(line, made(&entry), "{name}");
        assert_eq!(exe(&report), entry.to_str().unwrap(), "{name}");
        assert_good_entry(&entry, build);
        let made_as = identity(&entry);
        for _ in 0..2 {
            let (report, line) = logged(&mut cached(&bundle, &home), name);
            assert_eq!(line, found(&entry), "{name}");
            assert_eq!(report.get_str("level").unwrap(), level, "{name}");
        }
        assert_eq!(identity(&entry), made_as, "{name}: the entry was rewritten");
    }
}

/// How the page cache holds a copy of `build` written at once into `dir`: what the folio tests
/// compare an entry with. `None`, and `test` reported skipped, where the kernel does not show
/// page flags.
fn written_copy(test: &str, dir: &Path, build: &Path) -> Option<Folios> {
    let reference = dir.join("reference");
    std::fs::write(&reference, std::fs::read(build).unwrap()).unwrap();
    let held = folios(&reference);
    if held.is_none() {
        skipped(
            test,
            "the kernel does not show page flags (/proc/kpageflags)",
        );
    }
    held
}

/// A compressed variant is written into its entry with write(2), as any installed program is, not
/// through a shared mapping: the page cache then holds the entry in large folios, like the build
/// itself, and the program starts from it as fast as from the build (from an entry written
/// through a mapping, in single pages, `go version` started 13% slower here). Skipped where the
/// page flags cannot be read, or where this kernel and file system cache even a written file in
/// single pages (ext4 before Linux 6.16, tmpfs).
#[test]
fn a_decoded_entry_is_cached_like_a_written_file() {
    let test = "a_decoded_entry_is_cached_like_a_written_file";
    let (level, build) = best(c_probe_static());
    let (dir, home) = scratch("cache-folios");
    let Some(written) = written_copy(test, &dir, build) else {
        return;
    };
    let written = written.in_large as f64 / written.pages as f64;
    if written < 0.5 {
        return skipped(
            test,
            &format!(
                "this file system caches a written file in single pages \
                 ({:.0}% in large folios)",
                written * 100.0
            ),
        );
    }
    for (name, compression) in [
        ("gzip", Compression::Gzip(1)),
        ("zstd", Compression::Zstd(1)),
    ] {
        let bundle = cache_bundle(&dir.join(name), c_probe_static(), compression);
        let entry = cache_entry(&home, &bundle, &level);
        let (_, line) = logged(&mut cached(&bundle, &home), name);
        assert_eq!(line, made(&entry), "{name}");
        let share = large_folio_share(&entry).unwrap();
        assert!(
            share >= 0.5,
            "{name}: {:.0}% of the entry in large folios, {:.0}% of a written copy",
            share * 100.0,
            written * 100.0
        );
    }
}

/// A stored variant is copied into its entry in writes of 2 MiB: the page cache sizes a file's
/// folios by the writes that fill it. Copied 128 KiB at a time, as it once was, an entry sat in
/// 128 KiB folios, and `go version` started 4% slower from it than from the same bytes written at
/// once, in 2 MiB folios (docs/ARCHITECTURE.md). Skipped where the page flags cannot be read, or
/// where a file written at once is not held in fewer folios than 128 KiB writes would give.
#[test]
fn a_stored_entry_is_cached_in_folios_as_large_as_a_copy_written_at_once() {
    let test = "a_stored_entry_is_cached_in_folios_as_large_as_a_copy_written_at_once";
    let (level, build) = best(go_probe());
    let (dir, home) = scratch("cache-stored-folios");
    let Some(written) = written_copy(test, &dir, build) else {
        return;
    };
    let in_128k_writes = written.pages.div_ceil(32);
    if written.count * 2 > in_128k_writes {
        return skipped(
            test,
            &format!(
                "a file written at once is held in {} folios for {} pages, about as many as \
                 128 KiB writes give",
                written.count, written.pages
            ),
        );
    }
    let bundle = cache_bundle(&dir.join("stored"), go_probe(), Compression::None);
    let entry = cache_entry(&home, &bundle, &level);
    let (_, line) = logged(&mut cached(&bundle, &home), "stored");
    assert_eq!(line, made(&entry));
    let held = folios(&entry).unwrap();
    assert!(
        held.count <= written.count * 2,
        "the entry is held in {} folios, a copy written at once in {} ({} pages)",
        held.count,
        written.count,
        written.pages
    );
}

/// A bundle started by the path of a symbolic link is cached under that path, with the link's
/// name, which is also the name the kernel gives a program started by that link (comm, `ps`,
/// `pgrep`): the process looks as its build started the same way does. The launcher takes the
/// path the kernel recorded (`AT_EXECFN`) and does not ask `/proc` where the link leads.
#[test]
fn a_bundle_started_by_a_link_is_cached_under_the_link() {
    let (level, build) = best(c_probe_static());
    let (dir, home) = scratch("cache-linked-bundle");
    let bundle = cache_bundle(&dir.join("app"), c_probe_static(), Compression::None);
    let link = dir.join("tool");
    std::os::unix::fs::symlink(&bundle, &link).unwrap();
    let build_link = dir.join("build").join("tool");
    std::fs::create_dir(build_link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(build, &build_link).unwrap();

    let info = mgo_pack::inspect(&bundle).unwrap();
    let variant = info
        .variants
        .iter()
        .find(|v| v.level_name() == level)
        .unwrap();
    let key = mgo_format::content_hash(link.as_os_str().as_encoded_bytes());
    let entry = home
        .join("mgo-pack")
        .join(format!("{key:016x}"))
        .join(format!("{:016x} GOAMD64={level}", variant.content_hash))
        .join("tool");
    let (report, line) = logged(&mut cached(&link, &home), "by a link");
    assert_eq!(line, made(&entry));
    assert_good_entry(&entry, build);
    let direct = ok_report(&run(&mut command(&build_link)), "build by a link");
    assert_eq!(report.get_str("comm"), direct.get_str("comm"));
    assert_eq!(report.get_str("comm").as_deref(), Some("tool"));
    let (_, again) = logged(&mut cached(&link, &home), "by a link, again");
    assert_eq!(again, found(&entry));
}

/// The extended attribute on a variant's directory that says when its entry is trusted.
const RECORD: &str = "user.mgo-pack.entry";
/// A boot that is not this one.
const OTHER_BOOT: &str = "00000000-0000-4000-8000-000000000000";

/// This boot's identity, as the kernel gives it.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim_end()
        .to_string()
}

fn inode(path: &Path) -> u64 {
    std::fs::symlink_metadata(path).unwrap().ino()
}

/// The boot record on `dir`, if it has one.
fn record(dir: &Path) -> Option<String> {
    let path = CString::new(dir.as_os_str().as_bytes()).unwrap();
    let name = CString::new(RECORD).unwrap();
    let mut buf = [0u8; 256];
    // SAFETY: NUL-terminated strings and a buffer of the length given.
    let len = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (len >= 0).then(|| String::from_utf8_lossy(&buf[..len as usize]).into_owned())
}

/// Sets the boot record on `dir` to `value`.
fn set_record(dir: &Path, value: &str) {
    let path = CString::new(dir.as_os_str().as_bytes()).unwrap();
    let name = CString::new(RECORD).unwrap();
    // SAFETY: NUL-terminated strings and a value of the length given.
    let rc = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        rc,
        0,
        "setxattr {}: {}",
        dir.display(),
        std::io::Error::last_os_error()
    );
}

/// The record that says `entry`, as it is now (its inode), was written or checked in `boot`.
fn vouching(entry: &Path, boot: &str) -> String {
    format!("{:016x}:{boot}", inode(entry))
}

/// Sets the record on `entry`'s directory to vouch for it in `boot`.
fn vouch(entry: &Path, boot: &str) {
    set_record(entry.parent().unwrap(), &vouching(entry, boot));
}

/// Overwrites `entry` with `bytes` in place (same inode, same length), as a crash that lost its
/// blocks or a damaged disk leaves it: its mode, owner and length still pass every check.
fn damage_in_place(entry: &Path, bytes: &[u8]) {
    let before = std::fs::symlink_metadata(entry).unwrap();
    assert_eq!(before.len(), bytes.len() as u64);
    std::fs::set_permissions(entry, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(entry)
        .unwrap()
        .write_all(bytes)
        .unwrap();
    std::fs::set_permissions(entry, std::fs::Permissions::from_mode(0o500)).unwrap();
    assert_eq!(inode(entry), before.ino());
}

/// A shell script of exactly `len` bytes that says TAMPERED if it is ever run.
fn tampered_script(len: u64) -> Vec<u8> {
    let mut script = b"#!/bin/sh\necho TAMPERED\nexit 0\n".to_vec();
    script.resize(len as usize, b'#');
    script
}

/// Whatever is found under an entry's name that is not exactly what the launcher makes (another
/// mode, another length, a symbolic link, another owner, a directory) is never run, and is
/// replaced by a good entry. Each stand-in is a script that would say TAMPERED, alike to a good
/// entry in all but the one respect. The control: a stand-in alike in every checked respect does
/// run, which is what makes the others' silence mean something (an entry's bytes are checked
/// when it is made, not at every start: docs/ARCHITECTURE.md).
#[test]
fn tampered_entries_are_never_run_and_are_replaced() {
    let (dir, home) = scratch("cache-tampered");
    let bundle = cache_bundle(&dir.join("prog"), c_probe_dynamic(), Compression::None);
    let (level, build) = best(c_probe_dynamic());
    let entry = cache_entry(&home, &bundle, &level);
    logged(&mut cached(&bundle, &home), "first start");
    let len = std::fs::metadata(build).unwrap().len();
    let elsewhere = dir.join("evil");

    let put = |bytes: &[u8], mode: u32| {
        let _ = std::fs::remove_file(&entry);
        write_executable(&entry, bytes).unwrap();
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let script = tampered_script(len);
    let cases: [(&str, &dyn Fn()); 8] = [
        ("mode 0755", &|| put(&script, 0o755)),
        ("mode 0700", &|| put(&script, 0o700)),
        ("group-writable", &|| put(&script, 0o520)),
        ("one byte longer", &|| put(&tampered_script(len + 1), 0o500)),
        ("one byte shorter", &|| {
            put(&tampered_script(len - 1), 0o500)
        }),
        ("a symbolic link", &|| {
            let _ = std::fs::remove_file(&elsewhere);
            write_executable(&elsewhere, &script).unwrap();
            std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o500)).unwrap();
            std::fs::remove_file(&entry).unwrap();
            std::os::unix::fs::symlink(&elsewhere, &entry).unwrap();
        }),
        ("another user's", &|| {
            put(&script, 0o500);
            std::os::unix::fs::lchown(&entry, Some(65534), Some(65534)).unwrap();
        }),
        ("a directory", &|| {
            std::fs::remove_file(&entry).unwrap();
            std::fs::create_dir(&entry).unwrap();
            std::fs::write(entry.join("inside"), b"x").unwrap();
        }),
    ];
    for (what, tamper) in cases {
        if what == "another user's" && euid() != 0 {
            skipped(
                "tampered_entries_are_never_run_and_are_replaced",
                "not root: cannot give a file to another user (that case only)",
            );
            continue;
        }
        tamper();
        let out = run(cached(&bundle, &home).env("MGODEBUG", "log"));
        assert!(!stdout(&out).contains("TAMPERED"), "{what}: it ran");
        let report = ok_report(&out, what);
        assert_eq!(path_line(&out), made(&entry), "{what}");
        assert_eq!(exe(&report), entry.to_str().unwrap(), "{what}");
        assert_good_entry(&entry, build);
    }

    // The control: alike to a good entry in every checked respect, the boot record on its
    // directory included (this boot, this inode), it runs.
    put(&script, 0o500);
    vouch(&entry, &boot_id());
    let out = run(&mut cached(&bundle, &home));
    assert!(stdout(&out).contains("TAMPERED"), "{}", stdout(&out));

    // A directory of the cache's that is not private is replaced as well; the cache directory
    // itself, which the user may have set up otherwise, is left alone and the cache not used.
    std::fs::remove_file(&entry).unwrap();
    let variant_dir = entry.parent().unwrap();
    std::fs::set_permissions(variant_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (_, line) = logged(&mut cached(&bundle, &home), "open variant directory");
    assert_eq!(line, made(&entry));
    assert_good_entry(&entry, build);
    let root_dir = home.join("mgo-pack");
    std::fs::set_permissions(&root_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (report, line) = logged(&mut cached(&bundle, &home), "open cache directory");
    assert_eq!(
        line,
        memfd_because("the cache directory is not the user's alone (mode 0700)")
    );
    assert!(exe(&report).starts_with("/memfd:"));
    std::fs::set_permissions(&root_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (_, line) = logged(&mut cached(&bundle, &home), "private again");
    assert_eq!(line, found(&entry));
}

/// `count` starts of `bundle` on the cache path, all spawned before any is waited for; start `i`
/// gets the argument `launch-i`.
fn launch_at_once(bundle: &Path, home: &Path, count: usize) -> Vec<std::process::Child> {
    (0..count)
        .map(|i| {
            spawn(
                cached(bundle, home)
                    .arg(format!("launch-{i}"))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped()),
            )
        })
        .collect()
}

/// 200 first starts at once all run, each through the cache, and leave exactly one entry: the
/// entries are linked in whole, the first link wins, and the others use it.
#[test]
fn concurrent_first_starts_all_run_and_leave_one_entry() {
    const LAUNCHES: usize = 200;
    let (dir, home) = scratch("cache-concurrent");
    let bundle = cache_bundle(&dir.join("prog"), c_probe_static(), Compression::None);
    let (level, build) = best(c_probe_static());
    let entry = cache_entry(&home, &bundle, &level);
    let children = launch_at_once(&bundle, &home, LAUNCHES);
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let report = ok_report(&out, &format!("launch {i}"));
        assert_eq!(report.get_str("level").unwrap(), level, "launch {i}");
        assert_eq!(exe(&report), entry.to_str().unwrap(), "launch {i}");
        let argv = report.get_str_array("argv").unwrap();
        assert_eq!(argv.last().unwrap(), &format!("launch-{i}"));
    }
    assert_good_entry(&entry, build);
    let variant_dir = entry.parent().unwrap();
    assert_eq!(names(variant_dir), ["prog"]);
    assert_eq!(
        names(bundle_dir(&entry)).len(),
        2,
        "{:?}",
        names(bundle_dir(&entry))
    );
    assert_eq!(names(&home.join("mgo-pack")).len(), 1);
}

/// Without a usable cache directory the program starts through the memfd, and `MGODEBUG=log`
/// says why: no HOME and no (absolute) XDG_CACHE_HOME, a directory above the cache that others
/// could change (world-writable, another user's), or a cache directory that is read-only,
/// mounted noexec, or full (a stored and a compressed variant). Without the switch, nothing is
/// said at all.
#[test]
fn unusable_cache_directories_fall_back_to_the_memfd() {
    let test = "unusable_cache_directories_fall_back_to_the_memfd";
    let (dir, home) = scratch("cache-unusable");
    let bundle = cache_bundle(&dir.join("prog"), c_probe_static(), Compression::None);
    let zstd = cache_bundle(&dir.join("zprog"), c_probe_static(), Compression::Zstd(1));
    let (level, _) = best(c_probe_static());
    let on_memfd = |out: &Output, why: &str, what: &str| {
        let report = ok_report(out, what);
        assert_eq!(report.get_str("level").unwrap(), level, "{what}");
        assert!(
            exe(&report).starts_with("/memfd:"),
            "{what}: {}",
            exe(&report)
        );
        assert_eq!(path_line(out), memfd_because(why), "{what}");
    };

    let out = run(command(&bundle).env("MGODEBUG", "log"));
    on_memfd(
        &out,
        "neither XDG_CACHE_HOME nor HOME is an absolute path",
        "no home",
    );
    let out = run(command(&bundle)
        .env("MGODEBUG", "log")
        .env("XDG_CACHE_HOME", "relative/cache"));
    on_memfd(
        &out,
        "neither XDG_CACHE_HOME nor HOME is an absolute path",
        "relative",
    );
    let out = run(&mut command(&bundle));
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        stderr(&out)
    );
    // A relative XDG_CACHE_HOME is unset: HOME's .cache is used.
    let home_dir = dir.join("home");
    std::fs::create_dir(&home_dir).unwrap();
    let (report, _) = logged(
        command(&bundle)
            .env("XDG_CACHE_HOME", "relative/cache")
            .env("HOME", &home_dir),
        "HOME",
    );
    assert_eq!(
        exe(&report),
        cache_entry(&home_dir.join(".cache"), &bundle, &level)
            .to_str()
            .unwrap()
    );

    // A directory above the cache that someone else could change: writable by others (and not
    // sticky), or another user's (root running with a user's HOME, as `sudo` may leave it).
    let open_dir = dir.join("open");
    std::fs::create_dir(&open_dir).unwrap();
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = run(cached(&bundle, &open_dir.join("xdg")).env("MGODEBUG", "log"));
    let why = "a directory above the cache belongs to another user or is writable by others";
    on_memfd(&out, why, "world-writable");
    if euid() == 0 {
        let users = dir.join("users");
        std::fs::create_dir(&users).unwrap();
        std::os::unix::fs::chown(&users, Some(65534), Some(65534)).unwrap();
        let out = run(command(&bundle).env("HOME", &users).env("MGODEBUG", "log"));
        on_memfd(&out, why, "another user's home");
        assert!(!users.join(".cache").exists());
    } else {
        skipped(
            test,
            "not root: cannot give a directory to another user (that case only)",
        );
    }

    if !can_mount_privately(test) {
        return;
    }
    std::fs::create_dir(&home).unwrap();
    let cases = [
        (
            "read-only",
            libc::MS_RDONLY,
            "",
            "the cache directory: mkdir: EROFS",
        ),
        (
            "noexec",
            libc::MS_NOEXEC,
            "",
            "the cache directory is mounted noexec",
        ),
        (
            "full",
            0,
            "size=64k",
            "the cached program: fallocate: ENOSPC",
        ),
    ];
    for (what, flags, options, why) in cases {
        for program in [&bundle, &zstd] {
            let mut cmd = cached(program, &home);
            cmd.env("MGODEBUG", "log");
            let out = run(with_tmpfs_options(&mut cmd, &[&home], flags, options));
            on_memfd(&out, why, &format!("{what}: {}", program.display()));
        }
    }
    assert!(names(&home).is_empty(), "{:?}", names(&home));
}

/// System calls a sandbox refuses (seccomp), each at its step: the entry cannot be linked in
/// (`linkat`), its blocks cannot be reserved (`fallocate` `EDQUOT`, as a full quota answers), or
/// the kernel will not exec it (`execve`): the program starts through the memfd, and the log
/// says why. When the memfd cannot be exec'd either, the direct path is the last resort.
#[test]
fn refused_system_calls_fall_back_to_the_memfd() {
    let (dir, home) = scratch("cache-seccomp");
    let bundle = cache_bundle(&dir.join("prog"), c_probe_static(), Compression::None);
    let (level, _) = best(c_probe_static());
    let entry = cache_entry(&home, &bundle, &level);
    let seccomp = |rules: &[&str]| {
        let mut cmd = command(Path::new(SECCOMP_RUN));
        cmd.args(rules)
            .arg("--")
            .arg(&bundle)
            .env("XDG_CACHE_HOME", &home)
            .env("MGODEBUG", "log");
        run(&mut cmd)
    };
    for (rule, why) in [
        ("linkat=EPERM", "the cached program: link: EPERM"),
        ("fallocate=122", "the cached program: fallocate: EDQUOT"),
    ] {
        let out = seccomp(&[rule]);
        let report = ok_report(&out, rule);
        assert!(
            exe(&report).starts_with("/memfd:"),
            "{rule}: {}",
            exe(&report)
        );
        assert_eq!(path_line(&out), memfd_because(why), "{rule}");
        assert!(!entry.exists(), "{rule}: an entry was left");
    }
    let out = seccomp(&["execve=EACCES"]);
    let report = ok_report(&out, "execve refused");
    assert!(exe(&report).starts_with("/memfd:"), "{}", exe(&report));
    let err = stderr(&out);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("[mgo] launcher: launch path"))
        .collect();
    assert_eq!(
        lines,
        [made(&entry), memfd_because("execve: EACCES")],
        "{err}"
    );
    let out = seccomp(&["execve=EACCES", "execveat=EACCES:arg4&0x1000"]);
    let report = ok_report(&out, "every exec refused");
    assert_eq!(exe(&report), bundle.to_str().unwrap());
    assert!(
        stderr(&out)
            .lines()
            .last()
            .unwrap()
            .ends_with("; launch path direct"),
        "{}",
        stderr(&out)
    );
}

/// Without `/proc` the bundle's path is the one exec was given, and the entry is made under a
/// temporary name in its private directory, linked in whole. A relative path is made absolute
/// against the working directory, where exec looked it up, so `./prog` finds the entry that
/// `/dir/prog` made; one with `..` (which a symbolic link could make lie) has no known path then,
/// and starts through the memfd.
#[test]
fn without_proc_the_entry_is_made_under_a_temporary_name() {
    let test = "without_proc_the_entry_is_made_under_a_temporary_name";
    if !can_mount_privately(test) {
        return;
    }
    let (dir, home) = scratch("cache-no-proc");
    let bundle = cache_bundle(&dir.join("prog"), c_probe_dynamic(), Compression::None);
    let (level, build) = best(c_probe_dynamic());
    let entry = cache_entry(&home, &bundle, &level);
    let mut cmd = cached(&bundle, &home);
    cmd.env("MGODEBUG", "log");
    let out = run(with_tmpfs_options(&mut cmd, &[Path::new("/proc")], 0, ""));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(path_line(&out), made(&entry));
    assert_good_entry(&entry, build);
    assert_eq!(names(entry.parent().unwrap()), ["prog"]);

    let dir_name = dir.file_name().unwrap().to_str().unwrap();
    for (relative, line) in [
        ("./prog".to_string(), found(&entry)),
        (".//./prog".to_string(), found(&entry)),
        (
            format!("../{dir_name}/prog"),
            memfd_because(
                "the bundle's path is unknown (no /proc, and a relative path was run that cannot \
                 be made absolute)",
            ),
        ),
    ] {
        let mut cmd = command(Path::new(&relative));
        cmd.current_dir(&dir)
            .env("XDG_CACHE_HOME", &home)
            .env("MGODEBUG", "log");
        let out = run(with_tmpfs_options(&mut cmd, &[Path::new("/proc")], 0, ""));
        assert!(out.status.success(), "{relative}: {}", stderr(&out));
        assert_eq!(path_line(&out), line, "{relative}");
    }
    assert_eq!(names(entry.parent().unwrap()), ["prog"]);
}

/// A symbolic link in the cache directory's path (`XDG_CACHE_HOME` pointing at another disk, as
/// users set it up) is resolved, and the real path is what the program runs from.
#[test]
fn a_symlinked_cache_directory_is_resolved() {
    let (dir, real) = scratch("cache-symlinked");
    std::fs::create_dir(&real).unwrap();
    let link = dir.join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let bundle = cache_bundle(&dir.join("prog"), c_probe_dynamic(), Compression::None);
    let (level, build) = best(c_probe_dynamic());
    let entry = cache_entry(&real, &bundle, &level);
    let (report, line) = logged(&mut cached(&bundle, &link), "symlinked");
    assert_eq!(line, made(&entry));
    assert_eq!(exe(&report), entry.to_str().unwrap());
    assert_good_entry(&entry, build);
}

/// A cache directory written loosely (doubled and trailing slashes, which the launcher walks as
/// written, or `.` and `..`, which it resolves through `/proc`) is run from by its plain path.
#[test]
fn a_loosely_written_cache_directory_is_run_by_its_plain_path() {
    let (dir, real) = scratch("cache-loose");
    std::fs::create_dir(&real).unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    let bundle = cache_bundle(&dir.join("prog"), c_probe_static(), Compression::None);
    let (level, build) = best(c_probe_static());
    let entry = cache_entry(&real, &bundle, &level);
    let name = real.file_name().unwrap().to_str().unwrap();
    let slashes = format!("{}//{name}/", dir.display());
    let dots = format!("{}/./sub/../{name}", dir.display());
    for (written, first) in [(slashes, true), (dots, false)] {
        let (report, line) = logged(&mut cached(&bundle, Path::new(&written)), &written);
        let expected = if first { made(&entry) } else { found(&entry) };
        assert_eq!(line, expected, "{written}");
        assert_eq!(exe(&report), entry.to_str().unwrap(), "{written}");
    }
    assert_good_entry(&entry, build);
}

/// A set-user-ID root bundle packed for the cache path, run by `nobody` (secure-execution mode):
/// the caller's XDG_CACHE_HOME and MGODEBUG=cache choose nothing, the program runs from a memfd
/// and nothing is written (a launcher running as root would otherwise write root's files where
/// the caller says, and run them). Root running the same bundle (no secure mode) uses the cache.
#[test]
fn secure_execution_never_uses_the_cache() {
    let test = "secure_execution_never_uses_the_cache";
    let Some((dir, app)) = setuid_bundle(test, Launch::Cache) else {
        return;
    };
    let (best_level, _) = best_static();
    let home = dir.join("xdg");
    std::fs::create_dir(&home).unwrap();
    for debug in ["", "cache", "cache,log"] {
        let mut cmd = nobody(&app);
        cmd.env("XDG_CACHE_HOME", &home)
            .env("HOME", &home)
            .env("MGODEBUG", debug)
            .env("PROBE_CREDS", "1");
        let out = run(&mut cmd);
        let report = ok_report(&out, debug);
        assert_eq!(
            (report.get_i64("euid"), report.get_i64("at_secure")),
            (Some(0), Some(1)),
            "not the program in secure mode"
        );
        assert_eq!(report.get_str("level").unwrap(), best_level);
        assert!(
            exe(&report).starts_with("/memfd:"),
            "{debug}: {}",
            exe(&report)
        );
        assert!(out.stderr.is_empty(), "{debug}: {}", stderr(&out));
        assert!(names(&home).is_empty(), "{debug}: {:?}", names(&home));
    }
    let (report, _) = logged(&mut cached(&app, &home), "root");
    assert_eq!(
        exe(&report),
        cache_entry(&home, &app, &best_level).to_str().unwrap()
    );
}

/// A newer bundle at the same path removes the older bundle's entries when it makes its own; two
/// levels of one bundle (`GOAMD64=v1` and the CPU's) live side by side.
#[test]
fn a_newer_bundle_at_the_same_path_replaces_the_older_entries() {
    let (dir, home) = scratch("cache-newer");
    let path = dir.join("prog");
    let old = cache_bundle(&path, c_probe_static(), Compression::None);
    let (level, _) = best(c_probe_static());
    let old_best = cache_entry(&home, &old, &level);
    let old_v1 = cache_entry(&home, &old, "v1");
    logged(&mut cached(&old, &home), "old");
    logged(cached(&old, &home).env("GOAMD64", "v1"), "old v1");
    assert!(old_best.exists() && old_v1.exists());

    let new = cache_bundle(&path, c_probe_dynamic(), Compression::None);
    let (level, build) = best(c_probe_dynamic());
    let new_best = cache_entry(&home, &new, &level);
    let (_, line) = logged(&mut cached(&new, &home), "new");
    assert_eq!(line, made(&new_best));
    assert_good_entry(&new_best, build);
    assert!(!old_best.parent().unwrap().exists());
    assert!(!old_v1.parent().unwrap().exists());
    let variant = new_best.parent().unwrap().file_name().unwrap();
    let mut expected = ["bundle".to_string(), variant.to_string_lossy().into_owned()];
    expected.sort();
    assert_eq!(names(bundle_dir(&new_best)), expected);
}

fn set_mtime(dir: &Path, time: SystemTime) {
    let file = std::fs::File::open(dir).unwrap();
    file.set_times(std::fs::FileTimes::new().set_modified(time))
        .unwrap();
}

fn mtime(dir: &Path) -> SystemTime {
    std::fs::metadata(dir).unwrap().modified().unwrap()
}

/// The bounds on what the cache keeps: a bundle's directory records its last use (refreshed at
/// most once a day), and when an entry is made, or a last use refreshed, bundles unused for more
/// than 30 days go, with all their entries.
#[test]
fn entries_unused_for_30_days_are_removed() {
    let (dir, home) = scratch("cache-unused");
    let first = cache_bundle(&dir.join("a"), c_probe_dynamic(), Compression::None);
    let (level, _) = best(c_probe_dynamic());
    let bundles: Vec<PathBuf> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|name| {
            let path = dir.join(name);
            if path != first {
                copy_executable(&first, &path).unwrap();
            }
            path
        })
        .collect();
    let key = |i: usize| bundle_dir(&cache_entry(&home, &bundles[i], &level)).to_path_buf();
    let start = |i: usize| logged(&mut cached(&bundles[i], &home), "start").1;
    start(0);
    start(1);
    // The times are set relative to the clock; what is checked is only what the launcher did.
    let now = SystemTime::now();
    let days = |n: u64| now - Duration::from_secs(n * DAY);
    set_mtime(&key(0), days(31));
    set_mtime(&key(1), days(29));

    // Making c's entry removes a (31 days unused), keeps b (29 days).
    start(2);
    assert!(!key(0).exists(), "a's entries were kept");
    assert!(key(1).exists() && key(2).exists());

    // A use of b after two days is recorded, and recording it removes d (unused for 31 days).
    start(3);
    set_mtime(&key(3), days(31));
    set_mtime(&key(1), days(2));
    let line = start(1);
    assert_eq!(line, found(&cache_entry(&home, &bundles[1], &level)));
    assert!(mtime(&key(1)) > days(1), "b's use was not recorded");
    assert!(!key(3).exists(), "d's entries were kept");

    // A use an hour after the last recorded one is not recorded, and removes nothing.
    let hour_ago = now - Duration::from_secs(3600);
    set_mtime(&key(1), hour_ago);
    start(4);
    set_mtime(&key(4), days(31));
    start(1);
    assert_eq!(mtime(&key(1)), hour_ago);
    assert!(key(4).exists());
    assert_eq!(names(&home.join("mgo-pack")).len(), 3);
}

fn verified(entry: &Path) -> String {
    format!(
        "[mgo] launcher: launch path cache (verified {})",
        entry.display()
    )
}

const REMADE: &str = "[mgo] launcher: the cached program was written in an earlier boot and does \
                      not match its checksum; removed and made again";

/// An entry made without waiting for the disk and then cut short by a crash keeps its name,
/// mode, owner and length, over other bytes (zeros, or whatever the blocks held). Its record
/// names the boot it was written in; in a later boot it is hashed before it runs, found
/// damaged, never run, removed and made again, and the program runs from the new entry, which
/// is then recorded as this boot's. Both stand-ins pass every check but the hash: a script that
/// would say TAMPERED, and zeros (which the kernel would refuse to exec).
#[test]
fn an_entry_from_another_boot_with_damaged_bytes_is_remade() {
    let (dir, home) = scratch("cache-boot-damaged");
    let (level, build) = best(c_probe_dynamic());
    let len = std::fs::metadata(build).unwrap().len();
    for (what, compression) in [
        ("stored", Compression::None),
        ("zstd", Compression::Zstd(1)),
    ] {
        let bundle = cache_bundle(&dir.join(what), c_probe_dynamic(), compression);
        let entry = cache_entry(&home, &bundle, &level);
        let variant_dir = entry.parent().unwrap();
        let (_, line) = logged(&mut cached(&bundle, &home), "first start");
        assert_eq!(line, made(&entry), "{what}");
        // The first start recorded this boot for this inode.
        assert_eq!(
            record(variant_dir),
            Some(vouching(&entry, &boot_id())),
            "{what}"
        );
        for (damage, bytes) in [
            ("a script", tampered_script(len)),
            ("zeros", vec![0u8; len as usize]),
        ] {
            damage_in_place(&entry, &bytes);
            vouch(&entry, OTHER_BOOT);
            let out = run(cached(&bundle, &home).env("MGODEBUG", "log"));
            let case = format!("{what}, {damage}");
            assert!(!stdout(&out).contains("TAMPERED"), "{case}: it ran");
            let report = ok_report(&out, &case);
            assert!(
                stderr(&out).lines().any(|l| l == REMADE),
                "{case}: {}",
                stderr(&out)
            );
            assert_eq!(path_line(&out), made(&entry), "{case}");
            assert_eq!(exe(&report), entry.to_str().unwrap(), "{case}");
            assert_eq!(report.get_str("level").unwrap(), level, "{case}");
            assert_good_entry(&entry, build);
            assert_eq!(
                record(variant_dir),
                Some(vouching(&entry, &boot_id())),
                "{case}"
            );
        }
    }
}

/// An entry whose record names another boot (or another inode, or is missing: nothing says when
/// it was written) but whose bytes are intact is hashed once, run as it is (the same file, never
/// rewritten), and recorded as this boot's: the next start runs it without hashing. A record that
/// says the entry was synced before it was linked is trusted in every boot.
#[test]
fn an_entry_from_another_boot_is_hashed_once_then_marked_current() {
    let (dir, home) = scratch("cache-boot-intact");
    let bundle = cache_bundle(&dir.join("prog"), c_probe_dynamic(), Compression::None);
    let (level, build) = best(c_probe_dynamic());
    let entry = cache_entry(&home, &bundle, &level);
    let variant_dir = entry.parent().unwrap();
    logged(&mut cached(&bundle, &home), "first start");
    let made_as = identity(&entry);
    let current = vouching(&entry, &boot_id());
    assert_eq!(record(variant_dir), Some(current.clone()));

    let unrecorded = |dir: &Path| {
        let path = CString::new(dir.as_os_str().as_bytes()).unwrap();
        let name = CString::new(RECORD).unwrap();
        // SAFETY: NUL-terminated strings.
        assert_eq!(
            unsafe { libc::lremovexattr(path.as_ptr(), name.as_ptr()) },
            0
        );
    };
    let other_inode = format!("{:016x}:{}", inode(&entry) + 1, boot_id());
    let cases: [(&str, &dyn Fn()); 4] = [
        ("another boot", &|| vouch(&entry, OTHER_BOOT)),
        ("another inode", &|| set_record(variant_dir, &other_inode)),
        ("no record", &|| unrecorded(variant_dir)),
        ("a record it cannot read", &|| {
            set_record(variant_dir, "v2 something else")
        }),
    ];
    for (what, set) in cases {
        set();
        let (report, line) = logged(&mut cached(&bundle, &home), what);
        assert_eq!(line, verified(&entry), "{what}");
        assert_eq!(exe(&report), entry.to_str().unwrap(), "{what}");
        assert_eq!(record(variant_dir), Some(current.clone()), "{what}");
        let (_, line) = logged(&mut cached(&bundle, &home), what);
        assert_eq!(line, found(&entry), "{what}: hashed again");
        // That start, the first to find it good in this boot, synced it.
        let synced = vouching(&entry, "synced");
        assert_eq!(record(variant_dir), Some(synced), "{what}: not synced");
    }
    assert_eq!(identity(&entry), made_as, "the entry was rewritten");
    assert_good_entry(&entry, build);

    vouch(&entry, "synced");
    let (_, line) = logged(&mut cached(&bundle, &home), "synced");
    assert_eq!(line, found(&entry));
    assert_eq!(record(variant_dir), Some(vouching(&entry, "synced")));
}

/// Starts `bundle` (cache in `home`, `MGODEBUG=log`) under `strace -f -e trace=<calls>`, checks it
/// ran, and returns its `launch path` line and the calls strace saw, pids left out.
fn traced_start(bundle: &Path, home: &Path, calls: &str, what: &str) -> (String, Vec<String>) {
    let log = bundle.with_file_name("strace.log");
    let mut cmd = command(Path::new("strace"));
    cmd.args(["-f", "-qq", "-e", &format!("trace={calls}"), "-o"])
        .arg(&log)
        .arg(bundle)
        .env("XDG_CACHE_HOME", home)
        .env("MGODEBUG", "log");
    let out = run(&mut cmd);
    ok_report(&out, what);
    let calls = std::fs::read_to_string(&log).unwrap();
    let calls = calls
        .lines()
        .filter_map(|line| Some(line.split_once(' ')?.1.trim_start().to_string()))
        .collect();
    (path_line(&out), calls)
}

/// The start after the one that made an entry (in the same boot: the record names it) syncs the
/// entry and records it synced; the starts after that trust the record alone and never read the
/// boot's id (an open in `/proc`) nor sync again. Seen from outside, with strace.
#[test]
fn the_first_warm_start_syncs_the_entry_so_later_ones_read_no_boot_id() {
    let test = "the_first_warm_start_syncs_the_entry_so_later_ones_read_no_boot_id";
    if !mgo_tests::fidelity::tool(test, "strace", &["-V"]) {
        return;
    }
    let (dir, home) = scratch("cache-synced-later");
    let bundle = cache_bundle(&dir.join("prog"), c_probe_static(), Compression::None);
    let (level, _) = best(c_probe_static());
    let entry = cache_entry(&home, &bundle, &level);
    let variant_dir = entry.parent().unwrap();
    let traced = |what: &str| {
        let (line, calls) = traced_start(&bundle, &home, "open,openat,fdatasync", what);
        let boot_read = calls
            .iter()
            .any(|c| c.contains("/proc/sys/kernel/random/boot_id"));
        let synced = calls.iter().any(|c| c.starts_with("fdatasync("));
        (line, boot_read, synced)
    };
    let this_boot = boot_id();
    let expected = [
        ("first start", made(&entry), true, false, this_boot.as_str()),
        ("second start", found(&entry), true, true, "synced"),
        ("third start", found(&entry), false, false, "synced"),
    ];
    for (what, line, boot_read, synced_now, record_after) in expected {
        assert_eq!(traced(what), (line, boot_read, synced_now), "{what}");
        let record_after = vouching(&entry, record_after);
        assert_eq!(record(variant_dir), Some(record_after), "{what}");
    }
}

/// A warm start (its entry synced, its bundle's use recorded within the day) looks the cache up
/// by path, one `stat` per directory, with the walk's checks: between its own exec and the
/// entry's it opens nothing, and so closes nothing. Seen from outside, with strace.
#[test]
fn a_warm_start_opens_nothing_before_it_execs_the_entry() {
    let test = "a_warm_start_opens_nothing_before_it_execs_the_entry";
    if !mgo_tests::fidelity::tool(test, "strace", &["-V"]) {
        return;
    }
    let (dir, home) = scratch("cache-warm-look");
    let bundle = cache_bundle(&dir.join("prog"), c_probe_static(), Compression::None);
    let (level, _) = best(c_probe_static());
    let entry = cache_entry(&home, &bundle, &level);
    // Made, then synced by the first warm start.
    for what in ["first start", "second start"] {
        logged(&mut cached(&bundle, &home), what);
    }
    let calls = "open,openat,openat2,close,execve";
    let (line, calls) = traced_start(&bundle, &home, calls, "warm start");
    assert_eq!(line, found(&entry));
    let entry_exec = format!("execve(\"{}\"", entry.display());
    let execs: Vec<usize> = (0..calls.len())
        .filter(|&i| calls[i].starts_with("execve("))
        .collect();
    assert!(
        execs.len() >= 2 && calls[execs[1]].starts_with(&entry_exec),
        "{calls:#?}"
    );
    let launcher = &calls[execs[0] + 1..execs[1]];
    assert!(launcher.is_empty(), "the launcher opened: {launcher:#?}");
}

/// `command` in a mount namespace of its own with a ramfs (a file system without user extended
/// attributes) mounted over `over`.
fn with_ramfs<'a>(cmd: &'a mut Command, over: &Path) -> &'a mut Command {
    use std::os::unix::process::CommandExt;
    let target = CString::new(over.as_os_str().as_bytes()).unwrap();
    let setup = move || {
        let check = |failed: bool| {
            if failed {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        let none = std::ptr::null();
        // SAFETY: unshare and mount with C strings that live in this closure.
        unsafe {
            check(libc::unshare(libc::CLONE_NEWNS) != 0)?;
            let private = libc::MS_REC | libc::MS_PRIVATE;
            check(libc::mount(none, c"/".as_ptr(), none, private, none.cast()) != 0)?;
            let fs = c"ramfs".as_ptr();
            check(libc::mount(fs, target.as_ptr(), fs, 0, none.cast()) != 0)?;
        }
        Ok(())
    };
    // SAFETY: the closure makes system calls only; its string was allocated before the fork.
    unsafe { cmd.pre_exec(setup) }
}

/// Where the record cannot be kept, the first start waits for the disk as it always did: the
/// entry is synced before it is linked. Shown by refusing `fdatasync` (seccomp, EIO): where the
/// record is kept, the entry is made all the same (no sync is needed); where `fsetxattr` is
/// refused, or the file system has no user extended attributes (ramfs, in a mount namespace),
/// the refused sync sends the launch to the memfd and leaves no entry. With the sync allowed, an
/// entry made there runs at every later start, trusted without a hash (it was synced).
#[test]
fn without_a_boot_record_the_entry_is_synced_before_it_is_linked() {
    let test = "without_a_boot_record_the_entry_is_synced_before_it_is_linked";
    let (dir, home) = scratch("cache-no-record");
    let bundle = cache_bundle(&dir.join("prog"), c_probe_static(), Compression::None);
    let (level, build) = best(c_probe_static());
    let seccomp = |home: &Path, rules: &[&str]| {
        let mut cmd = command(Path::new(SECCOMP_RUN));
        cmd.args(rules)
            .arg("--")
            .arg(&bundle)
            .env("XDG_CACHE_HOME", home)
            .env("MGODEBUG", "log");
        cmd
    };
    let entry = cache_entry(&home, &bundle, &level);
    let out = run(&mut seccomp(&home, &["fdatasync=EIO"]));
    let report = ok_report(&out, "fdatasync refused");
    assert_eq!(path_line(&out), made(&entry));
    assert_eq!(exe(&report), entry.to_str().unwrap());
    assert_good_entry(&entry, build);
    assert_eq!(
        record(entry.parent().unwrap()),
        Some(vouching(&entry, &boot_id()))
    );

    std::fs::remove_dir_all(home.join("mgo-pack")).unwrap();
    let out = run(&mut seccomp(
        &home,
        &["fsetxattr=EOPNOTSUPP", "fdatasync=EIO"],
    ));
    let report = ok_report(&out, "fsetxattr and fdatasync refused");
    assert!(exe(&report).starts_with("/memfd:"), "{}", exe(&report));
    assert_eq!(
        path_line(&out),
        memfd_because("the cached program: fdatasync: EIO")
    );
    assert!(!entry.exists());
    // Synced, but with no record at all: the next start cannot tell, and hashes it once.
    let (_, line) = logged(
        &mut seccomp(&home, &["fsetxattr=EPERM"]),
        "fsetxattr refused",
    );
    assert_eq!(line, made(&entry));
    assert_eq!(record(entry.parent().unwrap()), None);
    let (_, line) = logged(&mut cached(&bundle, &home), "after");
    assert_eq!(line, verified(&entry));

    if !can_mount_privately(test) {
        return;
    }
    let ram = dir.join("ram");
    std::fs::create_dir(&ram).unwrap();
    let mut cmd = seccomp(&ram, &["fdatasync=EIO"]);
    let out = run(with_ramfs(&mut cmd, &ram));
    let report = ok_report(&out, "ramfs, fdatasync refused");
    assert!(exe(&report).starts_with("/memfd:"), "{}", exe(&report));
    assert_eq!(
        path_line(&out),
        memfd_because("the cached program: fdatasync: EIO")
    );
    let ram_entry = cache_entry(&ram, &bundle, &level);
    let mut cmd = command(Path::new("/bin/sh"));
    cmd.args([
        "-c",
        "\"$1\" >/dev/null && \"$1\" >/dev/null && cmp \"$2\" \"$3\" && echo SAME",
        "sh",
    ])
    .arg(&bundle)
    .arg(&ram_entry)
    .arg(build)
    .env("XDG_CACHE_HOME", &ram)
    .env("MGODEBUG", "log");
    let out = run(with_ramfs(&mut cmd, &ram));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().last(),
        Some("SAME"),
        "{}",
        stdout(&out)
    );
    let err = stderr(&out);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("[mgo] launcher: launch path"))
        .collect();
    assert_eq!(lines, [made(&ram_entry), found(&ram_entry)], "{err}");
    assert!(
        names(&ram).is_empty(),
        "the ramfs was not private to the test"
    );
}

/// 200 starts at once in a later boot, all finding the same damaged entry: none runs it, each
/// runs the build (from the cache, or, for a launch whose fresh entry another removed in the
/// instant between its check and its exec, from the memfd), and one good entry is left, recorded
/// as this boot's.
#[test]
fn concurrent_starts_after_a_reboot_never_run_a_damaged_entry() {
    const LAUNCHES: usize = 200;
    let (dir, home) = scratch("cache-boot-concurrent");
    let bundle = cache_bundle(&dir.join("prog"), c_probe_static(), Compression::None);
    let (level, build) = best(c_probe_static());
    let entry = cache_entry(&home, &bundle, &level);
    logged(&mut cached(&bundle, &home), "first start");
    let len = std::fs::metadata(build).unwrap().len();
    damage_in_place(&entry, &tampered_script(len));
    vouch(&entry, OTHER_BOOT);
    let children = launch_at_once(&bundle, &home, LAUNCHES);
    let mut from_cache = 0;
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(!stdout(&out).contains("TAMPERED"), "launch {i} ran it");
        let report = ok_report(&out, &format!("launch {i}"));
        assert_eq!(report.get_str("level").unwrap(), level, "launch {i}");
        let exe = exe(&report);
        if exe == entry.to_str().unwrap() {
            from_cache += 1;
        } else {
            assert!(exe.starts_with("/memfd:"), "launch {i}: {exe}");
        }
    }
    assert!(from_cache > 0, "no launch ran from the cache");
    assert_good_entry(&entry, build);
    assert_eq!(names(entry.parent().unwrap()), ["prog"]);
    // Found as it is; or hashed once more, if the record was last set for an entry that lost
    // a race to the one that stands.
    let (_, line) = logged(&mut cached(&bundle, &home), "after");
    assert!(line == found(&entry) || line == verified(&entry), "{line}");
    let (_, line) = logged(&mut cached(&bundle, &home), "after that");
    assert_eq!(line, found(&entry));
}
