//! End-to-end on ppc64le: real ppc64le programs packed with the ppc64le launcher and run under
//! `qemu-ppc64le -cpu MODEL`. Go 1.19's own `GOPPC64=power8` and `power9` builds, whose level
//! the packer reads from Go's build information, and C builds for power8, power9 and power10
//! from Debian's cross gcc (Go 1.19 cannot build power10). The expectation under each model is
//! the oracle: the highest build that really starts there when run directly (see
//! mgo_tests::fixtures_ppc64le).
//!
//! Tests that need to exec a ppc64le program print `SKIPPED: reason` and check nothing more when
//! this host cannot (no QEMU, no private binfmt_misc).

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Output;

use mgo_format::Arch;
use mgo_pack::Launch;
use mgo_tests::fixtures::{go_probe, parse_report};
use mgo_tests::fixtures_ppc64le::{
    c_probes, c_probes_dynamic, go_probes, Ppc64le, Qemu, GO_LEVELS, LEVELS,
};
use mgo_tests::fixtures_riscv64::probes as riscv64_probes;
use mgo_tests::guest_checks::{self, bundle, level, reported_level as c_level, run};
use mgo_tests::harness::{scratch_dir, stderr, stdout, write_executable};
use mgo_tests::qemu_user::Build;

/// Every model tested: each POWER CPU QEMU lists that runs little-endian code, every revision.
/// QEMU's ppc64 CPUs have no properties that take a single feature away, so the CPUs below
/// POWER8 stand in for that: POWER7 and POWER7+ lack ISA 2.07 (no build starts there, and the
/// launcher must say so rather than run one). 970 and POWER5+ cannot run little-endian code at
/// all, the launcher included.
const MODELS: &[&str] = &[
    "power7_v2.3",
    "power7p_v2.1",
    "power8e_v2.1",
    "power8_v2.0",
    "power8nvl_v1.0",
    "power9_v2.0",
    "power9_v2.2",
    "power10_v2.0",
    "power11_v2.0",
];

fn can_exec(test: &str) -> bool {
    guest_checks::can_exec::<Ppc64le>(test)
}

/// The level the Go probe's report names (its `GOPPC64` build setting).
fn go_level(out: &Output) -> Option<String> {
    parse_report(&stdout(out)).get_str("level")
}

#[test]
fn the_ppc64le_launcher_runs_on_power8() {
    let bare = scratch_dir("ppc-bare").join("bare");
    write_executable(
        &bare,
        mgo_pack::runtime_image::for_arch(Arch::Ppc64le).unwrap(),
    )
    .unwrap();
    // A launcher without a payload region says its bundle is damaged: it ran, on the oldest CPU
    // ppc64le Linux supports.
    let out = run(&mut Qemu::new("power8_v2.0").command_without_binfmt(&bare));
    assert_eq!(out.status.code(), Some(122), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("mgo: this bundle is damaged"), "{err}");
}

#[test]
fn go_builds_declare_their_level_and_pack_without_naming_it() {
    for build in go_probes() {
        let declared = mgo_pack::declared_level(&std::fs::read(&build.path).unwrap());
        assert_eq!(declared.level, Some(level(build.level)), "{declared}");
        assert!(
            declared
                .to_string()
                .contains(&format!("GOPPC64={}", build.level)),
            "{declared}"
        );
    }
    // Given in reverse order and unnamed, each build is packed at the level it records.
    let dir = scratch_dir("ppc-go-unnamed");
    let paths: Vec<&Path> = go_probes().iter().rev().map(|b| b.path.as_path()).collect();
    let inputs = mgo_pack::Input::parse_args(&paths).unwrap();
    mgo_pack::pack_files(&inputs, &dir.join("probe"), &Default::default()).unwrap();
    let info = mgo_pack::inspect(dir.join("probe")).unwrap();
    let mut names: Vec<&str> = info
        .variants
        .iter()
        .map(|v| mgo_pack::level_name(v.level))
        .collect();
    names.sort();
    assert_eq!(names, GO_LEVELS);
    // A level named against the build information is refused.
    let named = format!("power8={}", go_probes()[1].path.display());
    let inputs = mgo_pack::Input::parse_args(&[named]).unwrap();
    let err = mgo_pack::pack_files(&inputs, &dir.join("wrong"), &Default::default()).unwrap_err();
    assert!(
        matches!(err, mgo_pack::PackError::LevelContradiction { .. }),
        "{err}"
    );
}

#[test]
fn ppc64le_bundles_carry_the_ppc64le_launcher_and_inspect_verify_extract() {
    assert_eq!(Arch::Ppc64le.elf_machine(), 21, "EM_PPC64");
    guest_checks::layout_inspect_verify_extract::<Ppc64le>("ppc-layout", c_probes());
}

#[test]
fn level_names_parse_as_go_spells_them_and_others_are_refused() {
    for name in LEVELS {
        assert_eq!(mgo_pack::level_name(level(name)), *name);
    }
    for bad in ["power7", "POWER9", "power11", "ppc970", "pwr9"] {
        assert!(mgo_pack::parse_level(bad).is_err(), "{bad}");
    }
}

#[test]
fn packing_refuses_mixed_architectures_and_foreign_levels() {
    let ppc = &c_probes()[0].path;
    let x86 = &go_probe()[0];
    let rv = &riscv64_probes()[0].path;
    for (other, its_level) in [(x86, "v1"), (rv, "rva20u64")] {
        let variants = [
            mgo_pack::Variant::read(ppc, Some(level("power8"))).unwrap(),
            mgo_pack::Variant::read(other, Some(level(its_level))).unwrap(),
        ];
        let err = mgo_pack::build_bundle(&variants).unwrap_err();
        assert!(
            matches!(err, mgo_pack::PackError::MixedArch { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("ppc64le"), "{err}");
    }
    for (path, wrong) in [(ppc, "v3"), (ppc, "rva22u64"), (x86, "power9")] {
        let err = mgo_pack::Variant::read(path, Some(level(wrong))).unwrap_err();
        assert!(
            matches!(err, mgo_pack::PackError::LevelNotForArch { .. }),
            "{wrong}: {err}"
        );
        if path == ppc {
            assert!(
                err.to_string().ends_with(
                    "name its level as Go does: power8, power9 or power10 (as in `power9=PATH`)"
                ),
                "{err}"
            );
        }
    }
}

/// Runs `path` under every model and compares the level it reports with the oracle's for
/// `builds`; returns the table's rows.
fn check_models(path: &Path, builds: &[Build], reported: fn(&Output) -> Option<String>) -> String {
    let mut table = String::new();
    for model in MODELS {
        let qemu = Qemu::new(model);
        let oracle = qemu.oracle(builds);
        let out = run(qemu.command(path).arg("x y").env("MGODEBUG", "log"));
        let chosen = reported(&out);
        table.push_str(&format!(
            "| {model} | {} | {} |\n",
            oracle.unwrap_or("none"),
            chosen.as_deref().unwrap_or("none")
        ));
        let err = stderr(&out);
        let Some(expected) = oracle else {
            assert_eq!(out.status.code(), Some(123), "{model}: {err}");
            assert!(
                err.contains("but this CPU reports no POWER8 (ISA 2.07) or later"),
                "{model}: {err}"
            );
            continue;
        };
        assert_eq!(out.status.code(), Some(0), "{model}: {err}");
        assert_eq!(chosen.as_deref(), Some(expected), "{model}: {err}");
        assert!(
            err.lines()
                .any(|l| l == format!("[mgo] launcher: starting variant GOPPC64={expected}")),
            "{model}: {err}"
        );
    }
    table
}

/// The table: under every model, the level the bundle runs is the oracle's (Go's own for Go's
/// builds, the C builds' for power10), and the program gets its arguments.
#[test]
fn every_model_runs_the_level_the_oracle_chooses() {
    if !can_exec("every_model_runs_the_level_the_oracle_chooses") {
        return;
    }
    let go = bundle("ppc-models-go", go_probes(), Launch::Memfd);
    let c = bundle("ppc-models-c", c_probes(), Launch::Memfd);
    let go_table = check_models(&go, go_probes(), go_level);
    let c_table = check_models(&c, c_probes(), c_level);
    // What the launcher says of the CPU is the C oracle's level: the highest ISA it runs.
    for model in MODELS {
        let qemu = Qemu::new(model);
        let Some(expected) = qemu.oracle(c_probes()) else {
            continue;
        };
        let out = run(qemu.command(&c).env("MGODEBUG", "log"));
        assert!(
            stderr(&out)
                .lines()
                .any(|l| l == format!("[mgo] launcher: CPU supports GOPPC64={expected}")),
            "{model}: {}",
            stderr(&out)
        );
    }
    println!("Go builds: model | oracle | chosen\n{go_table}");
    println!("C builds: model | oracle | chosen\n{c_table}");
}

#[test]
fn goppc64_forces_a_level_and_bad_values_are_refused() {
    guest_checks::the_override::<Ppc64le>(
        "ppc-force",
        c_probes(),
        "power10_v2.0",
        &[("GOAMD64", "v9"), ("GORISCV64", "rva20u64")],
        &["power7", "POWER9", "ppc970", "v1"],
        "mgo: GOPPC64 must be power8, power9 or power10 (or unset)",
    );
}

#[test]
fn a_cpu_below_every_packed_level_is_a_clear_error() {
    let path = bundle("ppc-none", &c_probes()[1..], Launch::Memfd);
    let out = run(&mut Qemu::new("power8_v2.0").command_without_binfmt(&path));
    assert_eq!(out.status.code(), Some(123), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim_end(),
        "mgo: this program needs a ppc64le CPU with GOPPC64=power9 or better, but this CPU \
         supports GOPPC64=power8"
    );
}

/// Every compression mode: each variant extracts byte for byte, `verify` passes, and the
/// chosen one runs.
#[test]
fn every_compression_mode_extracts_verifies_and_runs() {
    guest_checks::every_compression_mode::<Ppc64le>(
        "ppc-compressed",
        c_probes(),
        "power10_v2.0",
        ("power9_v2.2", "power9"),
    );
}

#[test]
fn exit_statuses_and_signals_pass_through() {
    guest_checks::exit_statuses_and_signals::<Ppc64le>("ppc-status", c_probes(), "power9_v2.2");
}

/// The direct path: the launcher maps the variant from the bundle (decodes it, when compressed)
/// and jumps to it, or to its dynamic loader, as the kernel enters an ELFv2 program: no exec, so
/// QEMU alone runs the whole launch.
#[test]
fn direct_launch_path_runs_static_and_dynamic_programs() {
    guest_checks::direct_launch_path::<Ppc64le>(
        "ppc-direct",
        &[("static", c_probes()), ("dynamic", c_probes_dynamic())],
        &[
            ("power10_v2.0", "power10"),
            ("power9_v2.2", "power9"),
            ("power8_v2.0", "power8"),
        ],
        "power9_v2.2",
    );
}

/// Go's builds on both paths: the direct one (Go's runtime entered as the kernel enters it)
/// and the memfd one, with arguments, exit status and signals passed through.
#[test]
fn go_programs_run_on_both_paths() {
    let direct = bundle("ppc-go-direct", go_probes(), Launch::Direct);
    for (model, expected) in [("power9_v2.2", "power9"), ("power8_v2.0", "power8")] {
        let out = run(Qemu::new(model)
            .command_without_binfmt(&direct)
            .arg("x y")
            .env("MGODEBUG", "log")
            .env("PROBE_EXIT", "42"));
        assert_eq!(out.status.code(), Some(42), "{model}: {}", stderr(&out));
        let report = parse_report(&stdout(&out));
        assert_eq!(report.get_str("level").as_deref(), Some(expected));
        assert_eq!(
            report.get_str_array("argv").unwrap(),
            [direct.to_str().unwrap(), "x y"]
        );
        assert!(stderr(&out)
            .lines()
            .any(|l| l == "[mgo] launcher: launch path direct"));
    }
    let out = run(Qemu::new("power9_v2.2")
        .command_without_binfmt(&direct)
        .env("PROBE_SIGNAL", "TERM"));
    assert_eq!(out.status.signal(), Some(15));
    if can_exec("Go programs on the memfd path") {
        let memfd = bundle("ppc-go-memfd", go_probes(), Launch::Memfd);
        let out = run(Qemu::new("power8_v2.0").command(&memfd).arg("z"));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let report = parse_report(&stdout(&out));
        assert_eq!(report.get_str("level").as_deref(), Some("power8"));
        assert_eq!(report.get_str_array("argv").unwrap()[1], "z");
    }
    assert_eq!(GO_LEVELS, &LEVELS[..2]);
}

/// The cache path: the first start writes the chosen variant under `$XDG_CACHE_HOME/mgo-pack`
/// and execs it, the next one execs the file it finds there.
#[test]
fn the_cache_path_makes_then_reuses_its_entry() {
    if !can_exec("the_cache_path_makes_then_reuses_its_entry") {
        return;
    }
    let path = bundle("ppc-cache", c_probes(), Launch::Cache);
    let cache = scratch_dir("ppc-cache-home");
    let qemu = Qemu::new("power9_v2.2");
    for made in [true, false] {
        // Without QEMU_LD_PREFIX (the probes are static): under it QEMU shows the launcher the
        // C library's directory as `/`, and the cache's walk down from `/` finds no `work`.
        let out = run(qemu
            .command(&path)
            .env_remove("QEMU_LD_PREFIX")
            .arg("x y")
            .env("XDG_CACHE_HOME", &cache)
            .env("MGODEBUG", "log"));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{err}");
        assert_eq!(c_level(&out).as_deref(), Some("power9"), "{err}");
        assert!(stdout(&out).contains("arg=x y\n"));
        let line = err
            .lines()
            .find(|l| l.starts_with("[mgo] launcher: launch path cache ("))
            .unwrap_or_else(|| panic!("{err}"));
        assert_eq!(line.contains("(made "), made, "{err}");
    }
}
