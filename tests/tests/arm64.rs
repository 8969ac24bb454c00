//! End-to-end on arm64: real arm64 Go and C programs packed with the aarch64 launcher, run under
//! `qemu-aarch64 -cpu MODEL` with the launch checks the x86-64 tests make. Expectations come from
//! the programs themselves, from the same program run directly on the same model, from oracle
//! programs that execute LSE and crypto instructions, and from the CPU models QEMU defines.
//!
//! QEMU 7.2 answers `execveat` with ENOSYS, so every launch there takes the launcher's fallback,
//! `execve("/proc/self/fd/N")`; QEMU 8 and later pass `execveat` on. Either exec goes to the host
//! kernel, which runs the arm64 program through binfmt_misc (see mgo_tests::fixtures_arm64). Tests that need to exec print
//! `SKIPPED: reason` and pass when this host cannot (no QEMU, no private binfmt_misc).

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use mgo_format::{Arch, Bundle};
use mgo_pack::Launch;
use mgo_tests::fixtures::{go_probe, parse_report, Report};
use mgo_tests::fixtures_arm64::{
    c_probe_arm64, c_probes_arm64, go_probe_arm64, oracles, Qemu, C_PROBE_LEVELS,
};
use mgo_tests::harness::{
    ok_report, pack, pack_with, scratch_dir, stderr, stdout, write_executable,
};

const SECCOMP_RUN: &str = env!("CARGO_BIN_EXE_mgo-seccomp-run");

fn level(name: &str) -> u32 {
    mgo_pack::parse_level(name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Whether arm64 programs can be run here; says why not (visibly) when they cannot.
fn can_exec(test: &str) -> bool {
    match Qemu::unavailable() {
        None => true,
        Some(why) => {
            println!("SKIPPED: {test}: {why}");
            false
        }
    }
}

/// Every C probe in one bundle.
fn c_bundle(name: &str) -> PathBuf {
    let variants: Vec<(u32, &Path)> = c_probes_arm64()
        .iter()
        .map(|b| (level(b.level), b.path.as_path()))
        .collect();
    pack(&scratch_dir(name).join("cprobe"), &variants)
}

/// The Go probe (a v8.0 build) packed as v8.0 and as v8.1,lse: one stored copy, two entries, so
/// that the launcher has a choice to make.
fn go_bundle(name: &str) -> PathBuf {
    let go = go_probe_arm64();
    pack(
        &scratch_dir(name).join("probe"),
        &[(level("v8.0"), go), (level("v8.1,lse"), go)],
    )
}

fn run(cmd: &mut std::process::Command) -> Output {
    cmd.output().expect("spawning")
}

fn report(out: &Output) -> Report {
    ok_report(out, "the program")
}

#[test]
fn the_aarch64_launcher_runs_under_qemu() {
    // The image alone: a launcher without payload says so in one line and exits 122.
    let dir = scratch_dir("a64-bare");
    let bare = dir.join("bare");
    write_executable(
        &bare,
        mgo_pack::runtime_image::for_arch(Arch::Aarch64).unwrap(),
    )
    .unwrap();
    let out = run(&mut Qemu::new("cortex-a53").command_without_binfmt(&bare));
    assert_eq!(out.status.code(), Some(122), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("mgo: this bundle is damaged"), "{err}");
}

#[test]
fn arm64_bundles_carry_the_aarch64_launcher() {
    let bundle = c_bundle("a64-layout");
    let bytes = std::fs::read(&bundle).unwrap();
    assert_eq!(u16::from_le_bytes([bytes[18], bytes[19]]), 183, "e_machine");
    let parsed = Bundle::parse_file(&bytes).unwrap();
    assert_eq!(parsed.arch, Arch::Aarch64);
    assert_eq!(parsed.len(), C_PROBE_LEVELS.len());
    let image = mgo_pack::runtime_image::for_arch(Arch::Aarch64).unwrap();
    let region = mgo_format::Region::locate(&bytes).unwrap();
    assert_eq!(region.file_offset % 0x10000, 0, "64 KiB-aligned payload");
    for entry in parsed.entries() {
        assert_eq!(entry.offset % 0x10000, 0);
        let name = mgo_pack::level_name(entry.level);
        let original = &c_probe_arm64(name).path;
        assert_eq!(
            mgo_format::content_hash(&std::fs::read(original).unwrap()),
            entry.content_hash,
            "{name}"
        );
    }
    // The launcher's code and data follow its headers unchanged (the packer rewrites only the
    // ELF header's section table fields and the spare program header).
    let phdrs_end = 64 + 56 * usize::from(u16::from_le_bytes([image[56], image[57]]));
    assert_eq!(bytes[..18], image[..18]);
    assert_eq!(bytes[phdrs_end..image.len()], image[phdrs_end..]);
}

#[test]
fn packing_refuses_mixed_architectures_and_foreign_levels() {
    let arm = c_probe_arm64("v8.0");
    let x86 = &go_probe()[0];
    let variants = [
        mgo_pack::Variant::read(&arm.path, Some(level("v8.0"))).unwrap(),
        mgo_pack::Variant::read(x86, Some(level("v2"))).unwrap(),
    ];
    let err = mgo_pack::build_bundle(&variants).unwrap_err();
    assert!(
        matches!(err, mgo_pack::PackError::MixedArch { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("arm64") && text.contains("x86-64"), "{text}");

    for (path, wrong) in [(&arm.path, "v3"), (x86, "v8.0")] {
        let err = mgo_pack::Variant::read(path, Some(level(wrong))).unwrap_err();
        assert!(
            matches!(err, mgo_pack::PackError::LevelNotForArch { .. }),
            "{wrong}: {err}"
        );
    }
}

#[test]
fn arm64_level_names_parse_as_go_spells_them() {
    assert_eq!(mgo_pack::level_name(level("v8.1")), "v8.1,lse");
    assert_eq!(
        mgo_pack::level_name(level("v8.0,crypto,lse")),
        "v8.0,lse,crypto"
    );
    assert_eq!(mgo_pack::level_name(level("v3")), "v3");
    for bad in ["v8.10", "v9.6", "v8.0,sve", "v5"] {
        assert!(mgo_pack::parse_level(bad).is_err(), "{bad}");
    }
}

/// The C probe level QEMU 7.2 should get on each model, from the models' ID registers: Cortex-A53,
/// A57 and A72 are Armv8.0 with the crypto extension; Cortex-A76 and Neoverse-N1 are Armv8.2 with
/// crypto; A64FX is Armv8.2 with SVE but no PAuth. `max` depends on the QEMU version and is
/// checked against the HWCAP words it reports.
const MODELS: &[(&str, &str)] = &[
    ("cortex-a53", "v8.0,lse,crypto"),
    ("cortex-a72", "v8.0,lse,crypto"),
    ("cortex-a76", "v8.2,lse,crypto"),
    ("neoverse-n1", "v8.2,lse,crypto"),
    ("a64fx", "v8.2,lse,crypto"),
];

#[test]
fn runs_the_variant_each_cpu_model_supports() {
    if !can_exec("runs_the_variant_each_cpu_model_supports") {
        return;
    }
    let bundle = c_bundle("a64-models");
    for &(model, expected) in MODELS {
        let qemu = Qemu::new(model);
        // Cortex-A53 and A72 lack LSE: the v8.0 builds are all they can run.
        let expected = if qemu.runs(&oracles()[0]) {
            expected
        } else {
            "v8.0,crypto"
        };
        let out = run(&mut qemu.command(&bundle));
        assert_eq!(
            report(&out).get_str("level").as_deref(),
            Some(expected),
            "{model}"
        );
    }
    // QEMU 7.2's `max` reports v8.3's features but not DIT or USCAT (v8.4).
    let max = Qemu::new("max");
    let (hwcap, hwcap2) = max.hwcaps();
    let out = run(&mut max.command(&bundle));
    let chosen = report(&out).get_str("level").unwrap();
    if (hwcap, hwcap2) == (0xecff_fffb, 0x7f87_7fff) {
        assert_eq!(chosen, "v8.3,lse", "max");
    } else {
        println!(
            "note: this QEMU's max reports hwcap={hwcap:#x} hwcap2={hwcap2:#x}; chose {chosen}"
        );
        assert!(level(&chosen) >= level("v8.2,lse,crypto"), "{chosen}");
    }
}

#[test]
fn lse_and_crypto_follow_what_the_cpu_executes() {
    if !can_exec("lse_and_crypto_follow_what_the_cpu_executes") {
        return;
    }
    // Only the four v8.0 builds: the suffixes alone decide.
    let v8_0: Vec<(u32, &Path)> = ["v8.0", "v8.0,lse", "v8.0,crypto", "v8.0,lse,crypto"]
        .iter()
        .map(|l| (level(l), c_probe_arm64(l).path.as_path()))
        .collect();
    let bundle = pack(&scratch_dir("a64-suffixes").join("cprobe"), &v8_0);
    let [lse_oracle, crypto_oracle, _] = oracles();
    for model in ["cortex-a53", "cortex-a57", "cortex-a76", "max"] {
        let qemu = Qemu::new(model);
        let expected = match (qemu.runs(lse_oracle), qemu.runs(crypto_oracle)) {
            (true, true) => "v8.0,lse,crypto",
            (true, false) => "v8.0,lse",
            (false, true) => "v8.0,crypto",
            (false, false) => "v8.0",
        };
        let out = run(&mut qemu.command(&bundle));
        assert_eq!(
            report(&out).get_str("level").as_deref(),
            Some(expected),
            "{model}"
        );
    }
}

#[test]
fn goarm64_forces_a_level() {
    if !can_exec("goarm64_forces_a_level") {
        return;
    }
    let bundle = c_bundle("a64-force");
    let qemu = Qemu::new("max");
    for (forced, expected) in [
        ("v8.0", "v8.0"),
        ("v8.0,crypto", "v8.0,crypto"),
        ("v8.1", "v8.1,lse"),
        // A higher version is preferred to a suffix.
        ("v8.3,crypto", "v8.3,lse"),
        ("v8.2,crypto", "v8.2,lse,crypto"),
        ("v8.9", "v8.3,lse"),
        ("v9.0,crypto", "v9.0,lse"),
    ] {
        let out = run(qemu.command(&bundle).env("GOARM64", forced));
        assert_eq!(
            report(&out).get_str("level").as_deref(),
            Some(expected),
            "GOARM64={forced}"
        );
    }
    // GOARM64 is not GOAMD64: an empty value counts as unset, and the CPU decides (`max` is
    // v8.3,lse under QEMU 7.2, v9.0,lse under QEMU 10).
    let unset = report(&run(&mut qemu.command(&bundle))).get_str("level");
    let out = run(qemu.command(&bundle).env("GOARM64", ""));
    assert_eq!(report(&out).get_str("level"), unset, "GOARM64=");
    // GOAMD64 means nothing to the arm64 launcher, even when it is no x86-64 level.
    let out = run(qemu
        .command(&bundle)
        .env("GOAMD64", "v9")
        .env("GOARM64", "v8.0"));
    assert_eq!(report(&out).get_str("level").as_deref(), Some("v8.0"));
}

#[test]
fn bad_goarm64_value_is_refused() {
    // Refused before anything is exec'd: no binfmt needed.
    let bundle = c_bundle("a64-bad-override");
    for bad in ["v8.10", "v3", "v8.0,sve", "8.0"] {
        let out = run(Qemu::new("max")
            .command_without_binfmt(&bundle)
            .env("GOARM64", bad));
        assert_eq!(out.status.code(), Some(120), "{bad}");
        assert!(out.stdout.is_empty());
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("mgo: GOARM64 must be v8.0 to v8.9"),
            "{err}"
        );
    }
}

#[test]
fn no_fitting_variant_is_a_clear_error() {
    let high: Vec<(u32, &Path)> = ["v8.2,lse,crypto", "v8.4,lse,crypto"]
        .iter()
        .map(|l| (level(l), c_probe_arm64(l).path.as_path()))
        .collect();
    let bundle = pack(&scratch_dir("a64-too-high").join("cprobe"), &high);
    let out = run(&mut Qemu::new("cortex-a53").command_without_binfmt(&bundle));
    assert_eq!(out.status.code(), Some(123), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert_eq!(
        stderr(&out),
        "mgo: this program needs an arm64 CPU with GOARM64=v8.2,lse,crypto or better, but this \
         CPU supports GOARM64=v8.0,crypto\n"
    );
    let forced = run(Qemu::new("max")
        .command_without_binfmt(&bundle)
        .env("GOARM64", "v8.1"));
    assert_eq!(forced.status.code(), Some(123));
}

#[test]
fn mgodebug_log_prints_the_mgo_lines() {
    if !can_exec("mgodebug_log_prints_the_mgo_lines") {
        return;
    }
    let bundle = go_bundle("a64-log");
    for (model, cpu, variant) in [
        ("cortex-a53", "v8.0,crypto", "v8.0"),
        ("cortex-a76", "v8.2,lse,crypto", "v8.1,lse"),
    ] {
        let out = run(Qemu::new(model).command(&bundle).env("MGODEBUG", "log"));
        assert!(out.status.success(), "{}", stderr(&out));
        let err = stderr(&out);
        let lines: Vec<&str> = err.lines().collect();
        assert!(
            lines.contains(&format!("[mgo] launcher: CPU supports GOARM64={cpu}").as_str()),
            "{model}: {err}"
        );
        assert!(
            lines.contains(&format!("[mgo] launcher: starting variant GOARM64={variant}").as_str()),
            "{model}: {err}"
        );
    }
    let out = run(Qemu::new("cortex-a76")
        .command(&bundle)
        .env("MGODEBUG", "log")
        .env("GOARM64", "v8.0"));
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l == "[mgo] launcher: GOARM64=v8.0 set in the environment"),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l == "[mgo] launcher: starting variant GOARM64=v8.0"),
        "{err}"
    );
    // Without the switch the launcher says nothing at all.
    assert!(run(&mut Qemu::new("cortex-a76").command(&bundle))
        .stderr
        .is_empty());
}

/// `MGODEBUG=extract` with each C probe's level forced gives back exactly that probe.
fn extracts_every_c_probe(bundle: &Path, what: &str) {
    let qemu = Qemu::new("max");
    for build in c_probes_arm64() {
        let out = run(qemu
            .command_without_binfmt(bundle)
            .env("MGODEBUG", "extract")
            .env("GOARM64", build.level));
        assert_eq!(out.status.code(), Some(0), "{what}: {}", stderr(&out));
        assert!(
            out.stdout == std::fs::read(&build.path).unwrap(),
            "{what}: extracted {} differs from the packed input",
            build.level
        );
    }
}

#[test]
fn mgodebug_extract_writes_each_variant_byte_for_byte() {
    let bundle = c_bundle("a64-extract");
    extracts_every_c_probe(&bundle, "stored");
    // And as the CPU chooses, through the whole sandbox.
    if can_exec("mgodebug_extract (CPU's choice)") {
        let out = run(Qemu::new("cortex-a53")
            .command(&bundle)
            .env("MGODEBUG", "extract"));
        assert!(out.stdout == std::fs::read(&c_probe_arm64("v8.0,crypto").path).unwrap());
    }
}

#[test]
fn program_sees_same_argv_env_cwd_and_pid() {
    if !can_exec("program_sees_same_argv_env_cwd_and_pid") {
        return;
    }
    let bundle = go_bundle("a64-argv");
    let direct = go_probe_arm64();
    let dir = scratch_dir("a64-argv-cwd");
    let args = ["plain", "with space", "ünïcødé ✓", "", "--flag=x"];
    let qemu = Qemu::new("cortex-a76");
    let observe = |program: &Path| {
        let mut cmd = qemu.command(program);
        cmd.args(args)
            .current_dir(&dir)
            .env("SOME_VAR", "a value")
            .env("EMPTY", "");
        let child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let pid = child.id() as i64;
        let out = child.wait_with_output().unwrap();
        (report(&out), pid)
    };
    let (through_bundle, pid) = observe(&bundle);
    let (directly, _) = observe(direct);

    let mut expected_argv = vec![bundle.to_str().unwrap().to_string()];
    expected_argv.extend(args.iter().map(|s| s.to_string()));
    assert_eq!(through_bundle.get_str_array("argv").unwrap(), expected_argv);
    // The environment is the caller's, whatever QEMU and the sandbox add to both.
    let env = through_bundle.get_str_array("env").unwrap();
    assert_eq!(env, directly.get_str_array("env").unwrap());
    for var in ["SOME_VAR=a value", "EMPTY="] {
        assert!(env.iter().any(|e| e == var), "{env:?}");
    }
    assert_eq!(
        through_bundle.get_str("cwd").unwrap(),
        dir.canonicalize().unwrap().to_str().unwrap()
    );
    // The launcher execs in place: the program is the very process that was spawned.
    assert_eq!(through_bundle.get_i64("pid"), Some(pid));
    assert_eq!(through_bundle.get_i64("ppid"), directly.get_i64("ppid"));
}

#[test]
fn exit_statuses_and_signals_pass_through() {
    if !can_exec("exit_statuses_and_signals_pass_through") {
        return;
    }
    let bundle = go_bundle("a64-exit");
    let qemu = Qemu::new("cortex-a53");
    for code in [0, 1, 42, 255] {
        let out = run(qemu.command(&bundle).env("PROBE_EXIT", code.to_string()));
        assert_eq!(out.status.code(), Some(code), "stderr: {}", stderr(&out));
    }
    for (name, number) in [("TERM", 15), ("KILL", 9)] {
        let out = run(qemu.command(&bundle).env("PROBE_SIGNAL", name));
        assert_eq!(out.status.signal(), Some(number), "PROBE_SIGNAL={name}");
    }
}

#[test]
fn stdin_is_the_program_stdin() {
    if !can_exec("stdin_is_the_program_stdin") {
        return;
    }
    let bundle = go_bundle("a64-stdin");
    let mut child = Qemu::new("cortex-a76")
        .command(&bundle)
        .env("PROBE_STDIN", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped\nbytes \xe2\x9c\x93")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(report(&out).get_str("stdin").unwrap(), "piped\nbytes ✓");
}

#[test]
fn no_descriptor_is_leaked_or_lost() {
    if !can_exec("no_descriptor_is_leaked_or_lost") {
        return;
    }
    let bundle = go_bundle("a64-fds");
    let qemu = Qemu::new("cortex-a76");
    let observe = |program: &Path| {
        let out = run(&mut qemu.command(program));
        let report = report(&out);
        (
            report.get_i64_array("fds").unwrap(),
            report.get_str_map("fd_targets").unwrap(),
        )
    };
    let (direct_fds, _) = observe(go_probe_arm64());
    let (bundle_fds, targets) = observe(&bundle);
    assert_eq!(bundle_fds, direct_fds, "bundle targets: {targets:?}");
    assert!(
        !targets
            .values()
            .any(|t| t.contains("memfd") || t.contains("probe")),
        "{targets:?}"
    );
}

/// Runs `program` (which sleeps) until its process maps a memfd, and returns that memfd's path
/// as /proc/PID/maps shows it. Under QEMU the program's `/proc/self/exe` is QEMU's emulation,
/// but QEMU maps the program from the descriptor binfmt_misc opened: the memfd itself.
fn mapped_memfd(mut cmd: std::process::Command) -> String {
    let mut child = cmd
        .env("PROBE_SLEEP_MS", "600000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let maps = format!("/proc/{}/maps", child.id());
    let found = loop {
        if let Ok(text) = std::fs::read_to_string(&maps) {
            if let Some(line) = text.lines().find(|l| l.contains("/memfd:")) {
                break Some(line[line.find("/memfd:").unwrap()..].to_string());
            }
        }
        if child.try_wait().unwrap().is_some() {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let _ = child.kill();
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    let _ = child.wait();
    found.unwrap_or_else(|| panic!("the program never mapped a memfd; stderr: {err}"))
}

#[test]
fn memfd_names_the_bundle_and_variant() {
    if !can_exec("memfd_names_the_bundle_and_variant") {
        return;
    }
    let bundle = go_bundle("a64-exe");
    let name = mapped_memfd(Qemu::new("cortex-a76").command(&bundle));
    assert_eq!(
        name,
        format!("/memfd:{} [GOARM64=v8.1,lse] (deleted)", bundle.display())
    );
    let forced = mapped_memfd({
        let mut cmd = Qemu::new("cortex-a76").command(&bundle);
        cmd.env("GOARM64", "v8.0,crypto");
        cmd
    });
    assert_eq!(
        forced,
        format!("/memfd:{} [GOARM64=v8.0] (deleted)", bundle.display())
    );
}

#[test]
fn qemu_answers_execveat_with_enosys_and_the_fallback_runs_the_program() {
    let bundle = go_bundle("a64-fallback");
    // Without binfmt_misc the fallback's execve has nothing to run the arm64 program with: the
    // direct path, the last resort, starts it in the launcher's process.
    let out = run(Qemu::new("cortex-a76")
        .command_without_binfmt(&bundle)
        .env("MGODEBUG", "log"));
    assert!(
        report(&out).get_str_array("argv").is_some(),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out)
            .lines()
            .any(|l| l.starts_with("[mgo] launcher: fallback after memfd: ")
                && l.ends_with("; launch path direct")),
        "{}",
        stderr(&out)
    );
    // Ruling the direct path out, the errors are reported, in one line, with the launcher's
    // "cannot execute" status. QEMU 8 and later pass execveat on to the host kernel instead of
    // answering ENOSYS as QEMU 7.2 does; the host refusing it (by seccomp) gives the guest the
    // same ENOSYS whichever QEMU this is.
    let mut cmd = Command::new(SECCOMP_RUN);
    cmd.args([
        "execveat=ENOSYS",
        "--",
        "/usr/bin/qemu-aarch64",
        "-cpu",
        "cortex-a76",
    ])
    .arg(&bundle)
    .env_clear()
    .env("PATH", "/usr/bin:/bin")
    .env("MGODEBUG", "memfd")
    .stdin(Stdio::null());
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("mgo: cannot start the program"), "{err}");
    assert!(err.contains("ENOSYS") && err.contains("ENOEXEC"), "{err}");
    if !can_exec("the fallback runs the program") {
        return;
    }
    // With it, QEMU's own trace of the launcher shows the execveat, refused (QEMU 7.2: ENOSYS;
    // QEMU 8 and later pass it on, and the kernel answers ENOENT: binfmt_misc cannot reach a
    // close-on-exec descriptor by its /dev/fd name), then the execve of the memfd's
    // /proc/self/fd link, after which the program runs.
    let out = run(&mut Qemu::new("cortex-a76").command_traced(&bundle));
    assert!(report(&out).get_str_array("argv").is_some());
    let trace = stderr(&out);
    let execveat = trace
        .lines()
        .find(|l| l.contains(" execveat("))
        .unwrap_or_else(|| panic!("no execveat in the trace:\n{trace}"));
    assert!(
        execveat.ends_with("= -1 errno=38 (Function not implemented)")
            || execveat.ends_with("= -1 errno=2 (No such file or directory)"),
        "{execveat}"
    );
    assert!(
        trace
            .lines()
            .any(|l| l.contains(" execve(\"/proc/self/fd/")),
        "{trace}"
    );
}

#[test]
fn bundles_run_when_executed_directly() {
    // As on an arm64 machine: `./app`, the kernel (here binfmt_misc) starting the launcher.
    if !can_exec("bundles_run_when_executed_directly") {
        return;
    }
    let bundle = c_bundle("a64-direct");
    let out = run(Qemu::new("cortex-a53").command_direct(&bundle).arg("x y"));
    let report = report(&out);
    assert_eq!(report.get_str("level").as_deref(), Some("v8.0,crypto"));
    assert_eq!(
        report.get_str_array("argv").unwrap(),
        [bundle.to_str().unwrap(), "x y"]
    );
}

#[test]
fn direct_launch_path_on_arm64() {
    // The launcher maps a static variant from the bundle and jumps to it: no exec, so QEMU alone
    // runs the whole launch, binfmt_misc or not.
    let c_bundle = pack_with(
        &scratch_dir("a64-direct-c").join("cprobe"),
        &c_probes_arm64()
            .iter()
            .map(|b| (level(b.level), b.path.as_path()))
            .collect::<Vec<_>>(),
        Launch::Direct,
    );
    for (model, expected) in [
        ("cortex-a53", "v8.0,crypto"),
        ("cortex-a76", "v8.2,lse,crypto"),
    ] {
        let out = run(Qemu::new(model)
            .command_without_binfmt(&c_bundle)
            .arg("x y")
            .env("MGODEBUG", "log")
            .env("PROBE_EXIT", "7"));
        assert_eq!(out.status.code(), Some(7), "{model}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.lines()
                .any(|l| l == "[mgo] launcher: launch path direct"),
            "{model}: {err}"
        );
        let report = parse_report(&stdout(&out));
        assert_eq!(
            report.get_str("level").as_deref(),
            Some(expected),
            "{model}"
        );
        assert_eq!(
            report.get_str_array("argv").unwrap(),
            [c_bundle.to_str().unwrap(), "x y"]
        );
    }
    // A Go program too, with its signals and exit statuses.
    let go = go_probe_arm64();
    let go_bundle = pack_with(
        &scratch_dir("a64-direct-go").join("probe"),
        &[(level("v8.0"), go), (level("v8.1,lse"), go)],
        Launch::Direct,
    );
    let qemu = Qemu::new("cortex-a76");
    let out = run(qemu
        .command_without_binfmt(&go_bundle)
        .env("PROBE_EXIT", "42"));
    assert_eq!(out.status.code(), Some(42), "{}", stderr(&out));
    assert!(parse_report(&stdout(&out)).get_str_array("argv").is_some());
    let out = run(qemu
        .command_without_binfmt(&go_bundle)
        .env("PROBE_SIGNAL", "TERM"));
    assert_eq!(out.status.signal(), Some(15));
}

/// Compressed arm64 bundles (the aarch64-zstd and aarch64-gzip launchers): every variant
/// extracts byte for byte in every mode, the direct path decodes the chosen one into its segments
/// (no exec, so no binfmt_misc needed), and the memfd path runs it too where arm64 programs can be
/// exec'd.
#[test]
fn compressed_bundles_extract_and_run_in_every_mode() {
    use mgo_pack::{BundleOptions, Compression};
    let dir = scratch_dir("a64-compressed");
    let variants: Vec<mgo_pack::Variant> = c_probes_arm64()
        .iter()
        .map(|b| mgo_pack::Variant::read(&b.path, Some(level(b.level))).unwrap())
        .collect();
    let expected = "v8.0,crypto";
    for mode in [
        Compression::Gzip(9),
        Compression::Zstd(19),
        Compression::ZstdDict(19),
    ] {
        let options = BundleOptions::default()
            .with_launch(Launch::Direct)
            .with_compression(mode);
        let bytes = mgo_pack::build_bundle_with(&variants, &options).expect("packing");
        let bundle = dir.join(mode.to_string().replace(':', ""));
        write_executable(&bundle, &bytes).unwrap();
        extracts_every_c_probe(&bundle, &mode.to_string());
        let out = run(Qemu::new("cortex-a53")
            .command_without_binfmt(&bundle)
            .arg("x y")
            .env("MGODEBUG", "log"));
        let err = stderr(&out);
        assert!(
            err.lines()
                .any(|l| l == "[mgo] launcher: launch path direct"),
            "{mode}: {err}"
        );
        let seen = report(&out);
        assert_eq!(seen.get_str("level").as_deref(), Some(expected), "{mode}");
        assert_eq!(seen.get_str_array("argv").unwrap()[1], "x y", "{mode}");
        if can_exec("compressed bundles on the memfd path") {
            let out = run(Qemu::new("cortex-a53")
                .command(&bundle)
                .env("MGODEBUG", "memfd"));
            assert_eq!(
                report(&out).get_str("level").as_deref(),
                Some(expected),
                "{mode}, memfd path"
            );
        }
    }
}
