//! The end-to-end checks riscv64, ppc64le and 32-bit ARM share: packing a probe's per-level builds (see
//! crate::qemu_user) and running the bundles under QEMU models, on each launch path and with
//! each compression. Each probe prints `level=NAME` and its arguments, and ends as
//! `PROBE_EXIT` or `PROBE_SIGNAL` say.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mgo_pack::{BundleOptions, Compression, Launch};

use crate::harness::{pack_with, scratch_dir, stderr, stdout, write_executable};
use crate::qemu_user::{Build, Guest, Qemu};

/// A level code from its name as Go spells it.
pub fn level(name: &str) -> u32 {
    mgo_pack::parse_level(name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("spawning")
}

/// The level a probe's output names (`level=power9`, or `level="7"` as JSON from cprobe.c).
pub fn reported_level(out: &Output) -> Option<String> {
    stdout(out)
        .lines()
        .find_map(|l| l.strip_prefix("level="))
        .map(|l| l.trim_matches('"').to_string())
}

/// Whether the guest's programs can be exec'd here; prints `SKIPPED: test: why` if not.
pub fn can_exec<G: Guest>(test: &str) -> bool {
    match Qemu::<G>::unavailable() {
        None => true,
        Some(why) => {
            println!("SKIPPED: {test}: {why}");
            false
        }
    }
}

fn variants(builds: &[Build]) -> Vec<(u32, &Path)> {
    builds
        .iter()
        .map(|b| (level(b.level), b.path.as_path()))
        .collect()
}

/// `builds` packed into `target/e2e/NAME/probe` for `launch`.
pub fn bundle(name: &str, builds: &[Build], launch: Launch) -> PathBuf {
    pack_with(&scratch_dir(name).join("probe"), &variants(builds), launch)
}

/// `builds` packed into `target/e2e/NAME/probe` with `options`.
pub fn bundle_with(name: &str, builds: &[Build], options: &BundleOptions) -> PathBuf {
    let variants: Vec<mgo_pack::Variant> = builds
        .iter()
        .map(|b| mgo_pack::Variant::read(&b.path, Some(level(b.level))).unwrap())
        .collect();
    let bytes = mgo_pack::build_bundle_with(&variants, options).expect("packing");
    let path = scratch_dir(name).join("probe");
    write_executable(&path, &bytes).unwrap();
    path
}

/// What a file name can say of a compression mode (`zstd19`).
fn tag(mode: Compression) -> String {
    mode.to_string().replace(':', "")
}

/// Every compression mode: each variant extracts byte for byte (`MGODEBUG=extract` with its
/// level forced under `forcing_model`), `verify` passes, and under `model` the bundle runs
/// `expected` (through the memfd, where the guest's programs can be exec'd).
pub fn every_compression_mode<G: Guest>(
    name: &str,
    builds: &[Build],
    forcing_model: &str,
    (model, expected): (&str, &str),
) {
    for mode in [
        Compression::None,
        Compression::Gzip(9),
        Compression::Zstd(19),
        Compression::ZstdDict(19),
    ] {
        let options = BundleOptions::default()
            .with_launch(Launch::Memfd)
            .with_compression(mode);
        let path = bundle_with(&format!("{name}-{}", tag(mode)), builds, &options);
        let variable = mgo_format::level::variable(Qemu::<G>::arch());
        for build in builds {
            let out = run(Qemu::<G>::new(forcing_model)
                .command_without_binfmt(&path)
                .env("MGODEBUG", "extract")
                .env(variable, build.level));
            assert_eq!(out.status.code(), Some(0), "{mode}: {}", stderr(&out));
            assert!(
                out.stdout == std::fs::read(&build.path).unwrap(),
                "{mode}: extracted {} differs from the packed input",
                build.level
            );
        }
        let verification = mgo_pack::verify(&path).unwrap();
        assert!(
            verification.is_ok(),
            "{mode}: {:?}",
            verification.first_error()
        );
        if can_exec::<G>("compressed bundles run") {
            let out = run(Qemu::<G>::new(model).command(&path).arg("x y"));
            assert_eq!(out.status.code(), Some(0), "{mode}: {}", stderr(&out));
            assert_eq!(reported_level(&out).as_deref(), Some(expected), "{mode}");
        }
    }
}

/// The direct path: the launcher maps the variant from the bundle (decodes it, when compressed)
/// and jumps to it, or to its dynamic loader: no exec, so QEMU alone runs the whole launch. Each
/// set of builds, stored and compressed, under each `(model, expected level)`, with arguments,
/// exit status and a signal (under `signal_model`) passed through.
pub fn direct_launch_path<G: Guest>(
    name: &str,
    sets: &[(&str, &[Build])],
    models: &[(&str, &str)],
    signal_model: &str,
) {
    for &(what, builds) in sets {
        for mode in [
            Compression::None,
            Compression::Zstd(19),
            Compression::Gzip(9),
        ] {
            let options = BundleOptions::default()
                .with_launch(Launch::Direct)
                .with_compression(mode);
            let path = bundle_with(&format!("{name}-{what}-{}", tag(mode)), builds, &options);
            for &(model, expected) in models {
                let out = run(Qemu::<G>::new(model)
                    .command_without_binfmt(&path)
                    .arg("x y")
                    .env("MGODEBUG", "log")
                    .env("PROBE_EXIT", "7"));
                let err = stderr(&out);
                assert_eq!(out.status.code(), Some(7), "{what} {mode} {model}: {err}");
                assert!(
                    err.lines()
                        .any(|l| l == "[mgo] launcher: launch path direct"),
                    "{what} {mode} {model}: {err}"
                );
                assert_eq!(reported_level(&out).as_deref(), Some(expected));
                assert!(stdout(&out).contains("arg=x y\n"));
            }
            let out = run(Qemu::<G>::new(signal_model)
                .command_without_binfmt(&path)
                .env("PROBE_SIGNAL", "TERM"));
            assert_eq!(out.status.signal(), Some(15), "{what} {mode}");
        }
    }
}

/// Exit statuses and signals pass through the memfd path under `model`.
pub fn exit_statuses_and_signals<G: Guest>(name: &str, builds: &[Build], model: &str) {
    if !can_exec::<G>("exit_statuses_and_signals_pass_through") {
        return;
    }
    let path = bundle(name, builds, Launch::Memfd);
    let qemu = Qemu::<G>::new(model);
    let out = run(qemu.command(&path).env("PROBE_EXIT", "42"));
    assert_eq!(out.status.code(), Some(42), "{}", stderr(&out));
    let out = run(qemu.command(&path).env("PROBE_SIGNAL", "TERM"));
    assert_eq!(out.status.signal(), Some(15), "{}", stderr(&out));
}

/// The run-time override (`GORISCV64`, `GOPPC64`) under `model`, a CPU that runs every build
/// (`builds` in ascending order): each level forced runs that level, and `MGODEBUG=log` says it
/// was set; empty counts as unset (the CPU's choice, the highest, runs); a bundle without the
/// highest level runs the one below when the highest is forced; the other architectures'
/// variables (`foreign`) change nothing; `bad` values are refused with `message` (exit 120,
/// nothing run).
pub fn the_override<G: Guest>(
    name: &str,
    builds: &[Build],
    model: &str,
    foreign: &[(&str, &str)],
    bad: &[&str],
    message: &str,
) {
    if !can_exec::<G>("the override forces a level") {
        return;
    }
    let variable = mgo_format::level::variable(Qemu::<G>::arch());
    let path = bundle(name, builds, Launch::Memfd);
    let qemu = Qemu::<G>::new(model);
    let (lowest, highest) = (builds[0].level, builds[builds.len() - 1].level);
    let cases = builds.iter().map(|b| (b.level, b.level));
    for (forced, expected) in cases.chain([("", highest)]) {
        let out = run(qemu
            .command(&path)
            .env(variable, forced)
            .env("MGODEBUG", "log"));
        let err = stderr(&out);
        assert_eq!(
            reported_level(&out).as_deref(),
            Some(expected),
            "{variable}={forced}: {err}"
        );
        let said = format!("[mgo] launcher: {variable}={forced} set in the environment");
        assert_eq!(err.lines().any(|l| l == said), !forced.is_empty(), "{err}");
    }
    let lower = bundle(
        &format!("{name}-lower"),
        &builds[..builds.len() - 1],
        Launch::Memfd,
    );
    let out = run(qemu.command(&lower).env(variable, highest));
    assert_eq!(
        reported_level(&out).as_deref(),
        Some(builds[builds.len() - 2].level)
    );
    let mut cmd = qemu.command(&path);
    cmd.envs(foreign.iter().copied()).env(variable, lowest);
    assert_eq!(reported_level(&run(&mut cmd)).as_deref(), Some(lowest));
    for value in bad {
        let out = run(qemu.command_without_binfmt(&path).env(variable, value));
        assert_eq!(out.status.code(), Some(120), "{value}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
        assert_eq!(stderr(&out).trim_end(), message, "{value}");
    }
}

/// A bundle of `builds` starts with the guest's launcher (its `e_machine`), parses as the
/// guest's architecture, and `inspect`, `verify` and `extract` see each build as it was packed,
/// named as Go spells its level.
pub fn layout_inspect_verify_extract<G: Guest>(name: &str, builds: &[Build]) {
    let arch = Qemu::<G>::arch();
    let path = bundle(name, builds, Launch::Memfd);
    let bytes = std::fs::read(&path).unwrap();
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    assert_eq!(machine, arch.elf_machine(), "e_machine");
    let parsed = mgo_format::Bundle::parse_file(&bytes).unwrap();
    assert_eq!(parsed.arch, arch);
    assert_eq!(parsed.len(), builds.len());
    let info = mgo_pack::inspect(&path).unwrap();
    assert_eq!(info.arch, arch);
    let names: Vec<&str> = info
        .variants
        .iter()
        .map(|v| mgo_pack::level_name(v.level))
        .collect();
    let expected: Vec<&str> = builds.iter().map(|b| b.level).collect();
    assert_eq!(names, expected);
    let verification = mgo_pack::verify(&path).unwrap();
    assert!(verification.is_ok(), "{:?}", verification.first_error());
    for build in builds {
        assert!(
            mgo_pack::extract(&path, level(build.level)).unwrap()
                == std::fs::read(&build.path).unwrap(),
            "{}",
            build.level
        );
    }
}
