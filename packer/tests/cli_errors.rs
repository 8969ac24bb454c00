//! Bad inputs to the real `mgo-pack` command, each built for real: a script, a 32-bit i386
//! program, an arm64 program mixed with x86-64 ones, shared libraries, an object file,
//! unreadable and missing inputs, FIFOs, devices and files over the size limits (as inputs and
//! as bundles), a level given twice, outputs that are directories, FIFOs, inputs, in missing or
//! read-only directories, and a full disk. Each must give one clear `mgo-pack: error:` line
//! naming the file (escaped, should its name hold a newline or bytes that are not UTF-8), exit
//! with status 1, leave an existing output exactly as it was and leave nothing else behind in
//! the output's directory. `extract` failing to write says what it could not write.
//!
//! Cases that need something this machine lacks (a cross compiler, namespaces, root) print
//! `SKIPPED: ...` straight to the test process's stderr, which `cargo test` shows.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use mgo_tests::fixtures::{c_probe_dynamic, go_probe};
use mgo_tests::harness::scratch_dir;

const MGO_PACK: &str = env!("CARGO_BIN_EXE_mgo-pack");
const SENTINEL: &[u8] = b"an earlier bundle, which a failed pack must leave alone\n";

fn skipped(test: &str, why: &str) {
    // Not eprintln!: the test harness captures that and shows it only for failing tests.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}");
}

fn mgo_pack() -> Command {
    let mut cmd = Command::new(MGO_PACK);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null());
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn listing(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Runs `mgo-pack ARGS` and checks the failure: status 1, one `mgo-pack: error:` line holding
/// every one of `expect`, the directory `dir` (where the output goes) listing the same files
/// before and after, and `keep` (an existing output, if given) unchanged.
fn fails(what: &str, cmd: &mut Command, dir: &Path, keep: Option<&Path>, expect: &[&str]) {
    let before = listing(dir);
    let kept = keep.map(|k| fs::read(k).unwrap());
    let out = cmd.output().expect("running mgo-pack");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{what}: {err}");
    assert!(
        out.stdout.is_empty(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(err.lines().count(), 1, "{what}: {err}");
    assert!(err.starts_with("mgo-pack: error: "), "{what}: {err}");
    for part in expect {
        assert!(err.contains(part), "{what}: `{part}` not in: {err}");
    }
    assert_eq!(listing(dir), before, "{what}: files appeared or vanished");
    if let (Some(keep), Some(kept)) = (keep, kept) {
        assert_eq!(
            fs::read(keep).unwrap(),
            kept,
            "{what}: the existing output changed"
        );
    }
}

fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
}

/// Packs `input` into `out`, which must work.
fn pack_ok(out: &Path, input: &Path) {
    let packed = mgo_pack().arg("-o").arg(out).arg(input).output().unwrap();
    assert!(packed.status.success(), "{}", stderr(&packed));
}

/// A scratch directory holding an existing output `out` with known contents.
fn with_output(name: &str) -> (PathBuf, PathBuf) {
    let dir = scratch_dir(name);
    let out = dir.join("out");
    fs::write(&out, SENTINEL).unwrap();
    (dir, out)
}

fn compile(test: &str, cc: &str, args: &[&str], source: &str, out: &Path) -> bool {
    let dir = out.parent().unwrap();
    let src = dir.join(format!("{}.c", out.file_name().unwrap().to_string_lossy()));
    fs::write(&src, source).unwrap();
    match Command::new(cc)
        .args(args)
        .arg("-o")
        .arg(out)
        .arg(&src)
        .output()
    {
        Ok(o) if o.status.success() => true,
        Ok(o) => panic!("{cc} {args:?}: {}", stderr(&o)),
        Err(e) => {
            skipped(
                test,
                &format!("{cc} not available ({e}); scripts/install-deps.sh installs it"),
            );
            false
        }
    }
}

#[test]
fn inputs_that_are_not_x86_64_programs() {
    let test = "inputs_that_are_not_x86_64_programs";
    let (dir, out) = with_output("cli-err-inputs");
    let inputs = scratch_dir("cli-err-inputs-files");
    let v1 = &c_probe_dynamic()[0];
    let pack = |args: &[&dyn AsRef<std::ffi::OsStr>]| {
        let mut cmd = mgo_pack();
        cmd.arg("-o").arg(&out);
        for a in args {
            cmd.arg(a);
        }
        cmd
    };

    // A shell script: executable, but not ELF.
    let script = inputs.join("script.sh");
    fs::write(&script, "#!/bin/sh\necho hello\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    fails(
        "script",
        &mut pack(&[&script]),
        &dir,
        Some(&out),
        &["script.sh: not an ELF file"],
    );

    // A 32-bit i386 program, assembled and linked here.
    let i386 = inputs.join("i386");
    let asm = inputs.join("i386.s");
    fs::write(
        &asm,
        ".globl _start\n_start:\n movl $1, %eax\n xorl %ebx, %ebx\n int $0x80\n",
    )
    .unwrap();
    let obj = inputs.join("i386.o");
    let built = Command::new("as")
        .args(["--32", "-o"])
        .arg(&obj)
        .arg(&asm)
        .status();
    if built.is_ok_and(|s| s.success())
        && Command::new("ld")
            .args(["-m", "elf_i386", "-o"])
            .arg(&i386)
            .arg(&obj)
            .status()
            .is_ok_and(|s| s.success())
    {
        fails(
            "i386",
            &mut pack(&[&i386]),
            &dir,
            Some(&out),
            &["i386: built for", "32-bit"],
        );
    } else {
        skipped(
            test,
            "binutils cannot build an i386 program here (as --32, ld -m elf_i386)",
        );
    }

    // An arm64 program is a program, but not for the same bundle as x86-64 ones.
    let arm = inputs.join("arm64");
    if compile(
        test,
        "aarch64-linux-gnu-gcc",
        &[],
        "int main(void) { return 0; }\n",
        &arm,
    ) {
        let mut cmd = mgo_pack();
        cmd.arg("-o")
            .arg(&out)
            .arg(format!("v1={}", v1.display()))
            .arg(format!("v8.0={}", arm.display()));
        fails(
            "arm64 with x86-64",
            &mut cmd,
            &dir,
            Some(&out),
            &["arm64", "one architecture"],
        );
    }

    // Shared libraries: one built here, and libc, which names an interpreter (it can be run to
    // print its version) but is a library all the same.
    let lib = inputs.join("libx.so");
    if compile(
        test,
        "gcc",
        &["-shared", "-fPIC"],
        "int f(void) { return 1; }\n",
        &lib,
    ) {
        fails(
            "gcc -shared",
            &mut pack(&[&lib]),
            &dir,
            Some(&out),
            &["libx.so: is a shared library"],
        );
    }
    let libc = Path::new("/lib/x86_64-linux-gnu/libc.so.6");
    if libc.exists() {
        fails(
            "libc.so.6",
            &mut pack(&[&libc]),
            &dir,
            Some(&out),
            &["libc.so.6: is a shared library"],
        );
    } else {
        skipped(test, "no /lib/x86_64-linux-gnu/libc.so.6 on this machine");
    }

    // An object file.
    let object = inputs.join("probe.o");
    if compile(
        test,
        "gcc",
        &["-c"],
        "int main(void) { return 0; }\n",
        &object,
    ) {
        fails(
            "gcc -c",
            &mut pack(&[&object]),
            &dir,
            Some(&out),
            &["probe.o: is an object file"],
        );
    }

    // A good input after a bad one: still nothing written.
    fails(
        "bad after good",
        &mut pack(&[v1, &script]),
        &dir,
        Some(&out),
        &["script.sh: not an ELF file"],
    );
}

#[test]
fn unreadable_and_missing_inputs() {
    let test = "unreadable_and_missing_inputs";
    let (dir, out) = with_output("cli-err-unreadable");
    let v1 = &c_probe_dynamic()[0];
    let pack = |input: &Path| {
        let mut cmd = mgo_pack();
        cmd.arg("-o").arg(&out).arg(v1).arg(input);
        cmd
    };
    let missing = dir.join("no-such-program");
    fails(
        "missing",
        &mut pack(&missing),
        &dir,
        Some(&out),
        &["no-such-program: No such file"],
    );
    let subdir = scratch_dir("cli-err-unreadable-dir");
    fails(
        "a directory",
        &mut pack(&subdir),
        &dir,
        Some(&out),
        &["cli-err-unreadable-dir", "directory"],
    );
    // A file whose every read fails: this process's own memory at offset 0 (EIO).
    fails(
        "/proc/self/mem",
        &mut pack(Path::new("/proc/self/mem")),
        &dir,
        Some(&out),
        &["/proc/self/mem: Input/output error"],
    );
    // A file without read permission, for a user other than root (root reads anything).
    let secret = scratch_dir("cli-err-secret").join("secret");
    fs::copy(v1, &secret).unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    if is_root {
        // setpriv runs mgo-pack as nobody; nobody may write the output's directory.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", MGO_PACK])
            .env_clear()
            .arg("-o")
            .arg(&out)
            .arg(&secret);
        match Command::new("setpriv").arg("--version").output() {
            Ok(_) => fails(
                "chmod 000",
                &mut cmd,
                &dir,
                Some(&out),
                &["secret: Permission denied"],
            ),
            Err(e) => skipped(test, &format!("setpriv (util-linux) not available: {e}")),
        }
    } else {
        fails(
            "chmod 000",
            &mut pack(&secret),
            &dir,
            Some(&out),
            &["secret: Permission denied"],
        );
    }
}

#[test]
fn the_same_level_twice() {
    let (dir, out) = with_output("cli-err-twice");
    let p = c_probe_dynamic();
    let mut cmd = mgo_pack();
    cmd.arg("-o")
        .arg(&out)
        .arg(format!("v2={}", p[1].display()))
        .arg(format!("v2={}", p[2].display()));
    fails(
        "v2 twice",
        &mut cmd,
        &dir,
        Some(&out),
        &["level v2 is given twice", "cprobe-dyn-v2", "cprobe-dyn-v3"],
    );
}

#[test]
fn outputs_that_cannot_be_written() {
    let dir = scratch_dir("cli-err-outputs");
    let v1 = c_probe_dynamic()[0].clone();
    let pack_to = |out: &Path, inputs: &[&Path]| {
        let mut cmd = mgo_pack();
        cmd.arg("-o").arg(out).args(inputs);
        cmd
    };
    // A directory.
    let subdir = dir.join("a-directory");
    fs::create_dir(&subdir).unwrap();
    fails(
        "-o DIR",
        &mut pack_to(&subdir, &[&v1]),
        &dir,
        None,
        &["a-directory: is a directory; -o needs a file name"],
    );
    assert!(listing(&subdir).is_empty());
    // A FIFO: renaming over it would replace it (as it would /dev/null, for root).
    let fifo = dir.join("a-fifo");
    mkfifo(&fifo);
    fails(
        "-o FIFO",
        &mut pack_to(&fifo, &[&v1]),
        &dir,
        None,
        &["a-fifo: is a FIFO; -o needs the name of a regular file"],
    );
    // One of the inputs, however it is named.
    let input = dir.join("input");
    fs::copy(&v1, &input).unwrap();
    let link = dir.join("link-to-input");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    for (what, out) in [
        ("the input itself", input.clone()),
        ("through a symbolic link", link.clone()),
        ("through ..", dir.join("../cli-err-outputs/input")),
    ] {
        fails(
            what,
            &mut pack_to(&out, &[&input]),
            &dir,
            Some(&input),
            &["the output would overwrite one of the inputs"],
        );
    }
    let mut positional = mgo_pack();
    positional
        .arg("-o")
        .arg(&input)
        .arg(format!("v1={}", input.display()));
    fails(
        "vN=input",
        &mut positional,
        &dir,
        Some(&input),
        &["the output would overwrite one of the inputs"],
    );
    // A directory that does not exist, and a "directory" that is a file.
    fails(
        "missing directory",
        &mut pack_to(&dir.join("missing/out"), &[&v1]),
        &dir,
        None,
        &["missing: cannot create the bundle in this directory: No such file or directory"],
    );
    fails(
        "file as directory",
        &mut pack_to(&input.join("out"), &[&v1]),
        &dir,
        Some(&input),
        &["input: cannot create the bundle in this directory: Not a directory"],
    );
}

/// A full disk and a read-only one: a small tmpfs in a private mount namespace.
#[test]
fn full_and_read_only_file_systems() {
    let test = "full_and_read_only_file_systems";
    match Command::new("unshare").args(["-m", "true"]).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => return skipped(test, &format!("unshare -m: {}", stderr(&o).trim())),
        Err(e) => return skipped(test, &format!("unshare (util-linux) not available: {e}")),
    }
    let mnt = scratch_dir("cli-err-full");
    let probe = go_probe();
    // The script sets up the mounts and prints what the directory held before and after; the
    // test checks the messages and statuses it collects.
    let script = r#"mount -t tmpfs -o size=1m tmpfs "$M" || exit 99
        printf '%s' "$SENTINEL" > "$M/out"
        "$P" -o "$M/out" "$V1" "$V2" 2> "$E/full-existing.err"; echo "full-existing=$?"
        "$P" -o "$M/new" "$V1" 2> "$E/full-new.err"; echo "full-new=$?"
        "$P" -o "$E/bundle" "$V1" || exit 98
        "$P" extract "$E/bundle" --variant v1 -o "$M/extracted" 2> "$E/extract-full.err"
        echo "extract-full=$?"
        echo "listing=$(ls -A "$M" | tr '\n' ' ')"
        echo "out=$(cat "$M/out")"
        echo "used=$(stat -f -c '%b %f' "$M" | awk '{print $1 - $2}')"
        mount -o remount,ro "$M" || exit 99
        "$P" -o "$M/out" "$V1" 2> "$E/read-only.err"; echo "read-only=$?"
        echo "out=$(cat "$M/out")"
        "#;
    let errs = scratch_dir("cli-err-full-errs");
    let out = Command::new("unshare")
        .args(["-m", "/bin/sh", "-c", script])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("M", &mnt)
        .env("E", &errs)
        .env("P", MGO_PACK)
        .env("V1", &probe[0])
        .env("V2", &probe[1])
        .env(
            "SENTINEL",
            std::str::from_utf8(SENTINEL).unwrap().trim_end(),
        )
        .output()
        .unwrap();
    if out.status.code() == Some(99) {
        return skipped(test, &format!("set-up failed: {}", stderr(&out).trim()));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let sentinel = std::str::from_utf8(SENTINEL).unwrap().trim_end();
    let expected = format!(
        "full-existing=1\nfull-new=1\nextract-full=1\nlisting=out \nout={sentinel}\nused=1\nread-only=1\nout={sentinel}\n"
    );
    let err = |name: &str| fs::read_to_string(errs.join(format!("{name}.err"))).unwrap();
    assert_eq!(
        text,
        expected,
        "{}\n{}\n{}\n{}\n{}",
        stderr(&out),
        err("full-existing"),
        err("full-new"),
        err("extract-full"),
        err("read-only")
    );
    // What could not be written, and where: the variant, not "the bundle".
    assert!(
        err("extract-full").contains(&format!(
            "{}/extracted: cannot write the extracted v1 variant: No space left on device (ENOSPC)",
            mnt.display()
        )),
        "{}",
        err("extract-full")
    );
    for (name, output, why) in [
        ("full-existing", "out", "No space left on device"),
        ("full-new", "new", "No space left on device"),
        ("read-only", "", "Read-only file system"),
        ("extract-full", "", "No space left on device (ENOSPC)"),
    ] {
        let e = err(name);
        assert_eq!(e.lines().count(), 1, "{name}: {e}");
        assert!(e.starts_with("mgo-pack: error: "), "{name}: {e}");
        assert!(e.contains(why), "{name}: {e}");
        if !output.is_empty() {
            assert!(
                e.contains(&format!(
                    "{}/{output}: cannot write the bundle",
                    mnt.display()
                )) && e.contains("nothing was written"),
                "{name}: {e}"
            );
        }
    }
}

/// `sh -c 'ulimit -v ...; exec mgo-pack ARGS'`: mgo-pack with its address space capped at 2 GiB,
/// so that a packer that did read `/dev/zero` or a huge file would fail at once instead of
/// filling this machine's memory.
fn mgo_pack_capped() -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .args(["-c", "ulimit -v 2097152 && exec \"$0\" \"$@\"", MGO_PACK]);
    cmd
}

/// A thread that opens `fifo` for writing and closes it at once: should mgo-pack open the FIFO
/// to read it, it reads an empty file instead of waiting forever. [`unblock`] ends the thread
/// when mgo-pack, as it should, never opened the FIFO.
fn empty_writer(fifo: &Path) -> std::thread::JoinHandle<()> {
    let fifo = fifo.to_path_buf();
    std::thread::spawn(move || {
        let _ = fs::OpenOptions::new().write(true).open(&fifo);
    })
}

fn unblock(fifo: &Path, writer: std::thread::JoinHandle<()>) {
    use std::os::unix::fs::OpenOptionsExt;
    let reader = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo)
        .unwrap();
    writer.join().unwrap();
    drop(reader);
}

/// Runs `mgo-pack ARGS FILE` (capped, in `dir`) with FILE `fifo`, `/dev/zero` and `huge`, each
/// of which must fail with its message (see [`fails`]); the FIFO gets an [`empty_writer`]
/// meanwhile.
fn refused(
    args: &[&std::ffi::OsStr],
    (dir, keep): (&Path, &Path),
    fifo: (&Path, &str),
    huge: (&Path, &str),
) {
    let zero = (Path::new("/dev/zero"), "/dev/zero: is a device, not a file");
    for (file, message) in [fifo, zero, huge] {
        let writer = (file == fifo.0).then(|| empty_writer(file));
        let case = format!("{args:?} {}", file.display());
        let mut cmd = mgo_pack_capped();
        cmd.current_dir(dir).args(args).arg(file);
        fails(&case, &mut cmd, dir, Some(keep), &[message]);
        if let Some(writer) = writer {
            unblock(file, writer);
        }
    }
}

/// Inputs and bundles that are not regular files, or are larger than mgo-pack reads, are refused
/// before anything is read from them; a symbolic link to a regular file is followed.
#[test]
fn fifos_devices_and_huge_files_are_refused_before_reading() {
    let (dir, out) = with_output("cli-err-hostile");
    let files = scratch_dir("cli-err-hostile-files");
    let v1 = &c_probe_dynamic()[0];
    let fifo = files.join("a-fifo");
    mkfifo(&fifo);
    // Sparse: a real program followed by nothing, just over each limit.
    let huge_input = files.join("huge-program");
    fs::copy(v1, &huge_input).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&huge_input)
        .unwrap()
        .set_len(mgo_pack::MAX_INPUT_LEN + 1)
        .unwrap();
    let huge_bundle = files.join("huge-bundle");
    fs::File::create(&huge_bundle)
        .unwrap()
        .set_len(mgo_pack::MAX_BUNDLE_LEN + 1)
        .unwrap();

    // Bundles are refused as inputs are, with status 1, as for a missing file (3 is for files
    // read and found not to be bundles).
    let bundle = dir.join("bundle");
    pack_ok(&bundle, v1);
    let as_input = "give the path of a built program";
    let as_bundle = "give the path of an mgo-pack bundle";
    let input_limit = "is larger than 4 GiB, the most mgo-pack reads as an input";
    let bundle_limit = "is larger than 64 GiB, the most mgo-pack reads as a bundle";
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    let cases: [(Vec<&std::ffi::OsStr>, &Path, &str, &Path, &str); 4] = [
        (
            vec![os("-o"), out.as_os_str(), v1.as_os_str()],
            &out,
            as_input,
            &huge_input,
            input_limit,
        ),
        (
            vec![os("inspect")],
            &bundle,
            as_bundle,
            &huge_bundle,
            bundle_limit,
        ),
        (
            vec![os("verify")],
            &bundle,
            as_bundle,
            &huge_bundle,
            bundle_limit,
        ),
        (
            ["extract", "--variant", "v1", "-o", "extracted"]
                .map(os)
                .to_vec(),
            &bundle,
            as_bundle,
            &huge_bundle,
            bundle_limit,
        ),
    ];
    for (args, keep, fifo_why, huge, huge_why) in cases {
        let fifo_message = format!("a-fifo: is a FIFO, not a file; {fifo_why}");
        let huge_name = huge.file_name().unwrap().to_str().unwrap();
        let huge_message = format!("{huge_name}: {huge_why}");
        refused(
            &args,
            (&dir, keep),
            (&fifo, &fifo_message),
            (huge, &huge_message),
        );
    }

    // Symbolic links to regular files are what they point to.
    let link = files.join("link-to-program");
    std::os::unix::fs::symlink(v1, &link).unwrap();
    let bundle_link = files.join("link-to-bundle");
    std::os::unix::fs::symlink(&bundle, &bundle_link).unwrap();
    pack_ok(&dir.join("from-link"), &link);
    let verified = mgo_pack().arg("verify").arg(&bundle_link).output().unwrap();
    assert!(verified.status.success(), "{}", stderr(&verified));
}

/// A path holding a newline, an escape sequence or bytes that are not UTF-8 is shown escaped,
/// so that every message stays one line: in errors, warnings, `--verbose` reports and the text
/// of `inspect` and `verify`.
#[test]
fn paths_in_messages_stay_on_one_line() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let (dir, out) = with_output("cli-err-escaped");
    let odd = |name: &[u8]| dir.join(OsStr::from_bytes(name));
    let missing = odd(b"no\nsuch\rprogram");
    fails(
        "missing, with a newline",
        mgo_pack().arg("-o").arg(&out).arg(&missing),
        &dir,
        Some(&out),
        &["no\\nsuch\\rprogram: No such file"],
    );
    let text = odd(b"notes-\x1b[31m-\xff\n.txt");
    fs::write(&text, "just text\n").unwrap();
    fails(
        "not ELF, with an escape sequence and a bad byte",
        mgo_pack().arg("-o").arg(&out).arg(&text),
        &dir,
        Some(&out),
        &["notes-\\x1b[31m-\\xff\\n.txt: not an ELF file"],
    );
    fails(
        "output in a missing directory with a tab",
        mgo_pack()
            .arg("-o")
            .arg(odd(b"missing\tdir/out"))
            .arg(&c_probe_dynamic()[0]),
        &dir,
        Some(&out),
        &["missing\\tdir: cannot create the bundle in this directory"],
    );
    let level = mgo_pack()
        .arg("-o")
        .arg(&out)
        .arg("v7\n=x")
        .output()
        .unwrap();
    assert_eq!(level.status.code(), Some(2));
    assert_eq!(stderr(&level).lines().count(), 1, "{}", stderr(&level));
    assert!(
        stderr(&level).contains("`v7\\n` is not a level"),
        "{}",
        stderr(&level)
    );

    // Successes: one line per variant with --verbose, one per fact in inspect and verify.
    let input = odd(b"probe\nv1");
    fs::copy(&c_probe_dynamic()[0], &input).unwrap();
    let bundle = odd(b"bundle\n\xfe");
    let packed = mgo_pack()
        .arg("-v")
        .arg("-o")
        .arg(&bundle)
        .arg(&input)
        .output()
        .unwrap();
    assert!(packed.status.success(), "{}", stderr(&packed));
    let report = stderr(&packed);
    assert_eq!(report.lines().count(), 2, "{report}");
    assert!(report.contains("probe\\nv1 (by position"), "{report}");
    assert!(report.contains("bundle\\n\\xfe ("), "{report}");
    let inspect = mgo_pack().arg("inspect").arg(&bundle).output().unwrap();
    let first = String::from_utf8_lossy(&inspect.stdout)
        .lines()
        .next()
        .map(str::to_string);
    assert!(
        first.is_some_and(|l| l.starts_with(&format!(
            "{}/bundle\\n\\xfe: mgo-pack bundle",
            dir.display()
        ))),
        "{}",
        String::from_utf8_lossy(&inspect.stdout)
    );
    let verify = mgo_pack().arg("verify").arg(&bundle).output().unwrap();
    let text = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.contains("bundle\\n\\xfe: ok, 1 variants verified"),
        "{text}"
    );
    let extracted = odd(b"back\nv1");
    let extract = mgo_pack()
        .args(["extract", "-v"])
        .arg(&bundle)
        .args(["--variant", "v1", "-o"])
        .arg(&extracted)
        .output()
        .unwrap();
    let said = stderr(&extract);
    assert!(extract.status.success(), "{said}");
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(
        said.contains("back\\nv1") && said.contains("bundle\\n\\xfe"),
        "{said}"
    );
}

/// `extract` that cannot write says what it could not write (the variant), where, and the
/// errno: to a device that is full, to stdout, to a closed pipe. A device or FIFO given as `-o`
/// is written into, as stdout is.
#[test]
fn extract_failures_name_the_variant_and_the_errno() {
    let dir = scratch_dir("cli-err-extract");
    let program = &c_probe_dynamic()[0];
    let bundle = dir.join("bundle");
    pack_ok(&bundle, program);
    let extract = |output: &str| {
        let mut cmd = mgo_pack();
        cmd.arg("extract")
            .arg(&bundle)
            .args(["--variant", "v1", "-o", output]);
        cmd
    };
    let full = || {
        fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let cases: [(&str, Command, &str); 3] = [
        (
            "-o /dev/full",
            extract("/dev/full"),
            "/dev/full: cannot write the extracted v1 variant: No space left on device (ENOSPC)",
        ),
        (
            "-o - >/dev/full",
            {
                let mut cmd = extract("-");
                cmd.stdout(full());
                cmd
            },
            "stdout: cannot write the extracted v1 variant: No space left on device (ENOSPC)",
        ),
        // Unlike inspect's text, a program cut short is not what was asked for.
        (
            "-o - | (closed)",
            {
                let mut cmd = extract("-");
                cmd.stdout(common::closed_pipe());
                cmd
            },
            "stdout: cannot write the extracted v1 variant: Broken pipe (EPIPE)",
        ),
    ];
    for (what, mut cmd, message) in cases {
        fails(what, &mut cmd, &dir, None, &[message]);
    }

    // Devices and FIFOs are written into.
    let out = extract("/dev/null").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = extract("/dev/stdout").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout == fs::read(program).unwrap());
}
