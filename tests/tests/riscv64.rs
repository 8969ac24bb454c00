//! End-to-end on riscv64: real riscv64 C programs (one build per `GORISCV64` profile, from
//! Debian's cross gcc: Go 1.19 cannot build profiles) packed with the riscv64 launcher and run
//! under `qemu-riscv64 -cpu MODEL`. The expectation under each model is the oracle: the highest
//! build that really starts there when run directly (see mgo_tests::fixtures_riscv64).
//!
//! Tests that need to exec a riscv64 program print `SKIPPED: reason` and check nothing more when
//! this host cannot (no QEMU, no private binfmt_misc).

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use mgo_format::{Arch, Bundle};
use mgo_pack::{BundleOptions, Compression, Launch};
use mgo_tests::fixtures::{go_probe, parse_report};
use mgo_tests::fixtures_arm64::c_probe_arm64;
use mgo_tests::fixtures_riscv64::{
    go_probe_riscv64, probes, probes_dynamic, Qemu, RvBuild, PROFILES,
};
use mgo_tests::harness::{
    can_exec as can_exec_with, level_code as level, pack_with, reported_level, run, scratch_dir,
    stderr, stdout, write_executable,
};

/// Every model tested: named CPUs, QEMU's profile CPUs, and `rv64` (the generic CPU: RVA22's
/// extensions, without V, Zicond and Zfa by default) with single extensions taken away or added.
const MODELS: &[&str] = &[
    "max",
    "rva23u64",
    "rva23u64,zicond=false",
    "rva23u64,zfa=false",
    "rva22u64",
    "rva22u64,zbb=false",
    "rv64",
    "rv64,v=true,zicond=true,zfa=true",
    "rv64,v=false,zicond=true,zfa=true",
    "rv64,v=true,zicond=false,zfa=true",
    "rv64,v=true,zicond=true,zfa=false",
    "rv64,zba=false",
    "rv64,zbb=false",
    "rv64,zbs=false",
    "rv64,zba=false,zbb=false,zbs=false",
    "sifive-u54",
    "thead-c906",
    "veyron-v1",
    "xiangshan-nanhu",
    "tt-ascalon",
];

/// Models where the launcher, going by what the kernel interface reports, chooses below the
/// oracle, with the profile it chooses: `rva23u64,v=false` reports no V (in `riscv_hwprobe` and
/// `AT_HWCAP`), yet QEMU keeps the vector subsets the profile also mandates (Zve64d, through
/// Zvbb and Zvkt), which execute the probe's one vector add. A real build for rva23u64 may use
/// all of V, so the launcher is right not to trust it.
const BELOW_THE_ORACLE: &[(&str, &str)] = &[("rva23u64,v=false", "rva22u64")];

fn can_exec(test: &str) -> bool {
    can_exec_with(test, Qemu::unavailable())
}

fn variants(builds: &[RvBuild]) -> Vec<(u32, &Path)> {
    builds
        .iter()
        .map(|b| (level(b.level), b.path.as_path()))
        .collect()
}

fn bundle(name: &str, builds: &[RvBuild], launch: Launch) -> PathBuf {
    pack_with(
        &scratch_dir(name).join("rvprobe"),
        &variants(builds),
        launch,
    )
}

fn bundle_with(name: &str, builds: &[RvBuild], options: &BundleOptions) -> PathBuf {
    let variants: Vec<mgo_pack::Variant> = builds
        .iter()
        .map(|b| mgo_pack::Variant::read(&b.path, Some(level(b.level))).unwrap())
        .collect();
    let bytes = mgo_pack::build_bundle_with(&variants, options).expect("packing");
    let path = scratch_dir(name).join("rvprobe");
    write_executable(&path, &bytes).unwrap();
    path
}

#[test]
fn the_riscv64_launcher_runs_under_qemu() {
    let bare = scratch_dir("rv-bare").join("bare");
    write_executable(
        &bare,
        mgo_pack::runtime_image::for_arch(Arch::Riscv64).unwrap(),
    )
    .unwrap();
    // rv64 without the bit-manipulation extensions is RVA20: the launcher itself needs no more.
    let out =
        run(&mut Qemu::new("rv64,zba=false,zbb=false,zbs=false").command_without_binfmt(&bare));
    assert_eq!(out.status.code(), Some(122), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("mgo: this bundle is damaged"), "{err}");
}

#[test]
fn riscv64_bundles_carry_the_riscv64_launcher_and_inspect_verify_extract() {
    let path = bundle("rv-layout", probes(), Launch::Memfd);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(u16::from_le_bytes([bytes[18], bytes[19]]), 243, "e_machine");
    let parsed = Bundle::parse_file(&bytes).unwrap();
    assert_eq!(parsed.arch, Arch::Riscv64);
    assert_eq!(parsed.len(), PROFILES.len());
    let info = mgo_pack::inspect(&path).unwrap();
    assert_eq!(info.arch, Arch::Riscv64);
    let names: Vec<&str> = info
        .variants
        .iter()
        .map(|v| mgo_pack::level_name(v.level))
        .collect();
    assert_eq!(names, ["rva20u64", "rva22u64", "rva23u64"]);
    let verification = mgo_pack::verify(&path).unwrap();
    assert!(verification.is_ok(), "{:?}", verification.first_error());
    for build in probes() {
        assert!(
            mgo_pack::extract(&path, level(build.level)).unwrap()
                == std::fs::read(&build.path).unwrap(),
            "{}",
            build.level
        );
    }
}

#[test]
fn profile_names_parse_as_go_spells_them_and_others_are_refused() {
    for (name, _) in PROFILES {
        assert_eq!(mgo_pack::level_name(level(name)), *name);
    }
    for bad in ["rva21u64", "RVA22U64", "rva23u64,zacas", "rv64gc"] {
        assert!(mgo_pack::parse_level(bad).is_err(), "{bad}");
    }
}

#[test]
fn packing_refuses_mixed_architectures_and_foreign_levels() {
    let rv = &probes()[0].path;
    let x86 = &go_probe()[0];
    let arm = &c_probe_arm64("v8.0").path;
    for (other, its_level) in [(x86, "v1"), (arm, "v8.0")] {
        let variants = [
            mgo_pack::Variant::read(rv, Some(level("rva20u64"))).unwrap(),
            mgo_pack::Variant::read(other, Some(level(its_level))).unwrap(),
        ];
        let err = mgo_pack::build_bundle(&variants).unwrap_err();
        assert!(
            matches!(err, mgo_pack::PackError::MixedArch { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("riscv64"), "{err}");
    }
    for (path, wrong) in [(rv, "v3"), (rv, "v8.0"), (x86, "rva22u64")] {
        let err = mgo_pack::Variant::read(path, Some(level(wrong))).unwrap_err();
        assert!(
            matches!(err, mgo_pack::PackError::LevelNotForArch { .. }),
            "{wrong}: {err}"
        );
    }
}

/// The table: under every model, the profile the bundle runs is the oracle's, the program runs,
/// and `MGODEBUG=log` names the CPU's profile and the variant.
#[test]
fn every_model_runs_the_profile_the_oracle_chooses() {
    if !can_exec("every_model_runs_the_profile_the_oracle_chooses") {
        return;
    }
    let path = bundle("rv-models", probes(), Launch::Memfd);
    let mut table = String::new();
    for model in MODELS {
        let qemu = Qemu::new(model);
        let oracle = qemu.oracle(probes());
        let out = run(qemu.command(&path).arg("x y").env("MGODEBUG", "log"));
        let chosen = reported_level(&out);
        table.push_str(&format!(
            "| {model} | {} | {} |\n",
            oracle.unwrap_or("none"),
            chosen.as_deref().unwrap_or("none")
        ));
        let err = stderr(&out);
        match oracle {
            Some(expected) => {
                assert_eq!(out.status.code(), Some(0), "{model}: {err}");
                assert_eq!(chosen.as_deref(), Some(expected), "{model}: {err}");
                assert!(stdout(&out).contains("arg=x y\n"), "{model}");
                assert!(
                    err.lines()
                        .any(|l| l == format!("[mgo] launcher: CPU supports GORISCV64={expected}")),
                    "{model}: {err}"
                );
                assert!(
                    err.lines()
                        .any(|l| l
                            == format!("[mgo] launcher: starting variant GORISCV64={expected}")),
                    "{model}: {err}"
                );
            }
            None => {
                assert_eq!(out.status.code(), Some(123), "{model}: {err}");
                assert!(err.contains("GORISCV64=rva20u64 or better"), "{err}");
            }
        }
    }
    for (model, expected) in BELOW_THE_ORACLE {
        let qemu = Qemu::new(model);
        let oracle = qemu.oracle(probes());
        let out = run(&mut qemu.command(&path));
        let chosen = reported_level(&out);
        table.push_str(&format!(
            "| {model} | {} | {} |\n",
            oracle.unwrap_or("none"),
            chosen.as_deref().unwrap_or("none")
        ));
        assert_eq!(
            chosen.as_deref(),
            Some(*expected),
            "{model}: {}",
            stderr(&out)
        );
        assert!(
            oracle.is_some_and(|o| level(o) > level(expected)),
            "{model}: {oracle:?}"
        );
    }
    println!("model | oracle | chosen\n{table}");
}

#[test]
fn goriscv64_forces_a_profile_and_bad_values_are_refused() {
    if !can_exec("goriscv64_forces_a_profile") {
        return;
    }
    let path = bundle("rv-force", probes(), Launch::Memfd);
    let qemu = Qemu::new("max");
    for (forced, expected) in [
        ("rva20u64", "rva20u64"),
        ("rva22u64", "rva22u64"),
        ("rva23u64", "rva23u64"),
        // Empty counts as unset: the CPU decides.
        ("", "rva23u64"),
    ] {
        let out = run(qemu
            .command(&path)
            .env("GORISCV64", forced)
            .env("MGODEBUG", "log"));
        assert_eq!(
            reported_level(&out).as_deref(),
            Some(expected),
            "GORISCV64={forced}: {}",
            stderr(&out)
        );
        if !forced.is_empty() {
            assert!(
                stderr(&out)
                    .lines()
                    .any(|l| l
                        == format!("[mgo] launcher: GORISCV64={forced} set in the environment")),
                "{}",
                stderr(&out)
            );
        }
    }
    // Only a bundle holding no more than rva22u64 runs rva22u64 when the override says rva23u64.
    let lower = bundle("rv-force-lower", &probes()[..2], Launch::Memfd);
    let out = run(qemu.command(&lower).env("GORISCV64", "rva23u64"));
    assert_eq!(reported_level(&out).as_deref(), Some("rva22u64"));
    // GOAMD64 and GOARM64 mean nothing to the riscv64 launcher.
    let out = run(qemu
        .command(&path)
        .env("GOAMD64", "v9")
        .env("GOARM64", "v8.0")
        .env("GORISCV64", "rva20u64"));
    assert_eq!(reported_level(&out).as_deref(), Some("rva20u64"));
    for bad in ["rva21u64", "RVA22U64", "rva22u64,zacas", "v1"] {
        let out = run(qemu.command_without_binfmt(&path).env("GORISCV64", bad));
        assert_eq!(out.status.code(), Some(120), "{bad}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
        assert_eq!(
            stderr(&out).trim_end(),
            "mgo: GORISCV64 must be rva20u64, rva22u64 or rva23u64 (or unset)",
            "{bad}"
        );
    }
}

#[test]
fn a_cpu_below_every_packed_profile_is_a_clear_error() {
    let path = bundle("rv-none", &probes()[1..], Launch::Memfd);
    let out = run(&mut Qemu::new("sifive-u54").command_without_binfmt(&path));
    assert_eq!(out.status.code(), Some(123), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim_end(),
        "mgo: this program needs a riscv64 CPU with GORISCV64=rva22u64 or better, but this CPU \
         supports GORISCV64=rva20u64"
    );
}

/// `MGODEBUG=extract` with each profile forced gives back exactly that build.
fn extracts_every_probe(path: &Path, what: &str) {
    let qemu = Qemu::new("max");
    for build in probes() {
        let out = run(qemu
            .command_without_binfmt(path)
            .env("MGODEBUG", "extract")
            .env("GORISCV64", build.level));
        assert_eq!(out.status.code(), Some(0), "{what}: {}", stderr(&out));
        assert!(
            out.stdout == std::fs::read(&build.path).unwrap(),
            "{what}: extracted {} differs from the packed input",
            build.level
        );
    }
}

/// Every compression mode: each variant extracts byte for byte, `verify` passes, and the
/// chosen one runs (through the memfd where riscv64 programs can be exec'd).
#[test]
fn every_compression_mode_extracts_verifies_and_runs() {
    for mode in [
        Compression::None,
        Compression::Gzip(9),
        Compression::Zstd(19),
        Compression::ZstdDict(19),
    ] {
        let options = BundleOptions::default()
            .with_launch(Launch::Memfd)
            .with_compression(mode);
        let path = bundle_with(
            &format!("rv-compressed-{}", mode.to_string().replace(':', "")),
            probes(),
            &options,
        );
        extracts_every_probe(&path, &mode.to_string());
        let verification = mgo_pack::verify(&path).unwrap();
        assert!(
            verification.is_ok(),
            "{mode}: {:?}",
            verification.first_error()
        );
        if can_exec("compressed riscv64 bundles run") {
            let qemu = Qemu::new("rva22u64");
            let out = run(qemu.command(&path).arg("x y"));
            assert_eq!(out.status.code(), Some(0), "{mode}: {}", stderr(&out));
            assert_eq!(reported_level(&out).as_deref(), Some("rva22u64"), "{mode}");
        }
    }
}

#[test]
fn exit_statuses_and_signals_pass_through() {
    if !can_exec("exit_statuses_and_signals_pass_through") {
        return;
    }
    let path = bundle("rv-status", probes(), Launch::Memfd);
    let qemu = Qemu::new("rva23u64");
    let out = run(qemu.command(&path).env("PROBE_EXIT", "42"));
    assert_eq!(out.status.code(), Some(42), "{}", stderr(&out));
    let out = run(qemu.command(&path).env("PROBE_SIGNAL", "TERM"));
    assert_eq!(out.status.signal(), Some(15), "{}", stderr(&out));
}

/// The direct path: the launcher maps the variant from the bundle (decodes it, when compressed)
/// and jumps to it, or to its dynamic loader: no exec, so QEMU alone runs the whole launch.
#[test]
fn direct_launch_path_runs_static_and_dynamic_programs() {
    for (what, builds) in [("static", probes()), ("dynamic", probes_dynamic())] {
        for mode in [
            Compression::None,
            Compression::Zstd(19),
            Compression::Gzip(9),
        ] {
            let options = BundleOptions::default()
                .with_launch(Launch::Direct)
                .with_compression(mode);
            let path = bundle_with(
                &format!("rv-direct-{what}-{}", mode.to_string().replace(':', "")),
                builds,
                &options,
            );
            for (model, expected) in [
                ("rva23u64", "rva23u64"),
                ("rva22u64", "rva22u64"),
                ("sifive-u54", "rva20u64"),
            ] {
                let qemu = Qemu::new(model);
                let out = run(qemu
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
            let out = run(Qemu::new("max")
                .command_without_binfmt(&path)
                .env("PROBE_SIGNAL", "TERM"));
            assert_eq!(out.status.signal(), Some(15), "{what} {mode}");
        }
    }
}

/// A real Go program: Go 1.19's riscv64 build (rva20u64 code that records no `GORISCV64`, so
/// the packer needs its profile named) packed as rva20u64 and rva22u64, run on the memfd and
/// the direct path.
#[test]
fn a_go_program_runs_on_both_paths() {
    let go = go_probe_riscv64();
    let declared = mgo_pack::declared_level(&std::fs::read(go).unwrap());
    assert_eq!(declared.level, None, "Go 1.19 records no GORISCV64");
    assert!(declared.to_string().contains("GORISCV64"), "{declared}");
    assert!(matches!(
        mgo_pack::Variant::read(go, None),
        Err(mgo_pack::PackError::LevelUnknown { .. })
    ));
    let variants = [(level("rva20u64"), go), (level("rva22u64"), go)];
    let direct = pack_with(
        &scratch_dir("rv-go-direct").join("probe"),
        &variants,
        Launch::Direct,
    );
    let qemu = Qemu::new("rva22u64");
    let out = run(qemu
        .command_without_binfmt(&direct)
        .arg("x y")
        .env("MGODEBUG", "log")
        .env("PROBE_EXIT", "42"));
    assert_eq!(out.status.code(), Some(42), "{}", stderr(&out));
    let report = parse_report(&stdout(&out));
    assert_eq!(
        report.get_str_array("argv").unwrap(),
        [direct.to_str().unwrap(), "x y"]
    );
    assert!(stderr(&out)
        .lines()
        .any(|l| l == "[mgo] launcher: starting variant GORISCV64=rva22u64"));
    let out = run(qemu
        .command_without_binfmt(&direct)
        .env("PROBE_SIGNAL", "TERM"));
    assert_eq!(out.status.signal(), Some(15));
    if can_exec("a Go program on the memfd path") {
        let memfd = pack_with(
            &scratch_dir("rv-go-memfd").join("probe"),
            &variants,
            Launch::Memfd,
        );
        let out = run(Qemu::new("sifive-u54").command(&memfd).arg("z"));
        let report = parse_report(&stdout(&out));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(report.get_str_array("argv").unwrap()[1], "z");
    }
}
