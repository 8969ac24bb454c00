//! End-to-end on riscv64: real riscv64 C programs (one build per `GORISCV64` profile, from
//! Debian's cross gcc: Go 1.19 cannot build profiles) packed with the riscv64 launcher and run
//! under `qemu-riscv64 -cpu MODEL`. The expectation under each model is the oracle: the highest
//! build that really starts there when run directly (see mgo_tests::fixtures_riscv64).
//!
//! Tests that need to exec a riscv64 program print `SKIPPED: reason` and check nothing more when
//! this host cannot (no QEMU, no private binfmt_misc).

use std::os::unix::process::ExitStatusExt;

use mgo_format::Arch;
use mgo_pack::Launch;
use mgo_tests::fixtures::{go_probe, parse_report};
use mgo_tests::fixtures_arm64::c_probe_arm64;
use mgo_tests::fixtures_riscv64::{
    go_probe_riscv64, probes, probes_dynamic, Qemu, Riscv64, PROFILES,
};
use mgo_tests::guest_checks::{self, bundle, level, reported_level, run};
use mgo_tests::harness::{pack_with, scratch_dir, stderr, stdout, write_executable};

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
    guest_checks::can_exec::<Riscv64>(test)
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
    assert_eq!(Arch::Riscv64.elf_machine(), 243, "EM_RISCV");
    guest_checks::layout_inspect_verify_extract::<Riscv64>("rv-layout", probes());
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
    guest_checks::the_override::<Riscv64>(
        "rv-force",
        probes(),
        "max",
        &[("GOAMD64", "v9"), ("GOARM64", "v8.0")],
        &["rva21u64", "RVA22U64", "rva22u64,zacas", "v1"],
        "mgo: GORISCV64 must be rva20u64, rva22u64 or rva23u64 (or unset)",
    );
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

/// Every compression mode: each variant extracts byte for byte, `verify` passes, and the
/// chosen one runs (through the memfd where riscv64 programs can be exec'd).
#[test]
fn every_compression_mode_extracts_verifies_and_runs() {
    guest_checks::every_compression_mode::<Riscv64>(
        "rv-compressed",
        probes(),
        "max",
        ("rva22u64", "rva22u64"),
    );
}

#[test]
fn exit_statuses_and_signals_pass_through() {
    guest_checks::exit_statuses_and_signals::<Riscv64>("rv-status", probes(), "rva23u64");
}

/// The direct path: the launcher maps the variant from the bundle (decodes it, when compressed)
/// and jumps to it, or to its dynamic loader: no exec, so QEMU alone runs the whole launch.
#[test]
fn direct_launch_path_runs_static_and_dynamic_programs() {
    guest_checks::direct_launch_path::<Riscv64>(
        "rv-direct",
        &[("static", probes()), ("dynamic", probes_dynamic())],
        &[
            ("rva23u64", "rva23u64"),
            ("rva22u64", "rva22u64"),
            ("sifive-u54", "rva20u64"),
        ],
        "max",
    );
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
