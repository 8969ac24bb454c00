//! End-to-end on 32-bit ARM: a real Go program built by Go 1.19 for `GOARM=5`, `6` and `7`,
//! packed with the ARMv5 launcher and run under `qemu-arm -cpu MODEL`. The expectation under
//! each model is the oracle: the highest build that really starts there when run directly, Go's
//! own verdict (see mgo_tests::fixtures_arm).
//!
//! Tests that need to exec a 32-bit ARM program from the launcher print `SKIPPED: reason` and
//! check nothing more when this host cannot (no QEMU, no private binfmt_misc).

use std::path::Path;

use mgo_format::Arch;
use mgo_pack::{BundleOptions, Launch};
use mgo_tests::fixtures::go_probe;
use mgo_tests::fixtures_arm::{c_probes, probes, Arm, Qemu, LEVELS};
use mgo_tests::guest_checks::{self, bundle, level, reported_level, run};
use mgo_tests::harness::{scratch_dir, stderr, stdout, write_executable};

/// Every model tested: QEMU's ARMv4 (which Go does not run on), ARMv5, ARMv6 and ARMv7 (and
/// `max`, ARMv8 in AArch32) CPUs, and models with features taken away where QEMU allows it:
/// the VFP unit alone (`vfp=false`), and the upper 16 double registers, which QEMU removes only
/// together with NEON (`vfp-d32=false,neon=false`: VFPv3-D16, as on Tegra 2 and Cortex-R).
const MODELS: &[&str] = &[
    "sa1100",
    "arm926",
    "arm946",
    "arm1026",
    "pxa270",
    "arm1136-r2",
    "arm1136",
    "arm1176",
    "arm11mpcore",
    "cortex-r5",
    "cortex-r5f",
    "cortex-a7",
    "cortex-a8",
    "cortex-a9",
    "cortex-a15",
    "max",
    "arm1026,vfp=false",
    "arm1136,vfp=false",
    "arm1176,vfp=false",
    "cortex-a7,vfp=false",
    "cortex-a15,vfp=false",
    "cortex-a9,vfp-d32=false,neon=false",
    "cortex-a15,vfp-d32=false,neon=false",
];

fn can_exec(test: &str) -> bool {
    guest_checks::can_exec::<Arm>(test)
}

#[test]
fn the_arm_launcher_runs_on_an_armv5_without_vfp() {
    let bare = scratch_dir("arm-bare").join("bare");
    write_executable(&bare, mgo_pack::runtime_image::for_arch(Arch::Arm).unwrap()).unwrap();
    let bytes = std::fs::read(&bare).unwrap();
    assert_eq!(bytes[4], 1, "ELFCLASS32");
    assert_eq!(u16::from_le_bytes([bytes[18], bytes[19]]), 40, "EM_ARM");
    // ARM926EJ-S without its optional VFP: the lowest level packed, and the launcher's own.
    for model in ["arm926,vfp=false", "arm926"] {
        let out = run(&mut Qemu::new(model).command_without_binfmt(&bare));
        assert_eq!(out.status.code(), Some(122), "{model}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("mgo: this bundle is damaged"), "{err}");
    }
}

/// Go records each build's level (`build GOARM=N`); the bundle starts with the ELF32 launcher,
/// and `inspect`, `verify` and `extract` see every build as packed; a damaged launcher byte is
/// caught by `verify` (the launcher hash covers the ELF32 headers and segments).
#[test]
fn go_build_info_gives_the_levels_and_bundles_inspect_verify_extract() {
    for build in probes() {
        let declared = mgo_pack::declared_level(&std::fs::read(&build.path).unwrap());
        assert_eq!(declared.level, Some(level(build.level)), "{declared}");
        assert!(declared.to_string().contains("GOARM"), "{declared}");
    }
    guest_checks::layout_inspect_verify_extract::<Arm>("arm-layout", probes());
    // The levels come from the files: given in any order, unnamed.
    let variants: Vec<mgo_pack::Variant> = probes()
        .iter()
        .rev()
        .map(|b| mgo_pack::Variant::read(&b.path, None).unwrap())
        .collect();
    let mut bytes = mgo_pack::build_bundle(&variants).unwrap();
    assert_eq!(bytes[4], 1, "ELFCLASS32");
    bytes[0x200] ^= 1;
    let damaged = scratch_dir("arm-layout-damaged").join("armprobe");
    write_executable(&damaged, &bytes).unwrap();
    assert!(!mgo_pack::verify(&damaged).unwrap().is_ok());
}

#[test]
fn levels_parse_as_go_spells_them_and_foreign_ones_are_refused() {
    for name in LEVELS {
        assert_eq!(mgo_pack::level_name(level(name)), name);
    }
    for bad in ["4", "8", "v7", "7,softfloat", "armv7"] {
        assert!(mgo_pack::parse_level(bad).is_err(), "{bad}");
    }
    let arm = &probes()[0].path;
    let x86 = &go_probe()[0];
    let variants = [
        mgo_pack::Variant::read(arm, None).unwrap(),
        mgo_pack::Variant::read(x86, Some(level("v1"))).unwrap(),
    ];
    let err = mgo_pack::build_bundle(&variants).unwrap_err();
    assert!(
        matches!(err, mgo_pack::PackError::MixedArch { .. }),
        "{err}"
    );
    for (path, wrong) in [(arm, "v3"), (arm, "rva22u64"), (x86, "7")] {
        let err = mgo_pack::Variant::read(path, Some(level(wrong))).unwrap_err();
        assert!(
            matches!(err, mgo_pack::PackError::LevelNotForArch { .. }),
            "{wrong}: {err}"
        );
    }
}

/// As on the command line: plain paths take the levels their build information records, in
/// any order; a named level that contradicts it is refused; a 32-bit ARM program given without
/// any (a C build) cannot take a position's x86-64 level.
#[test]
fn command_line_inputs_take_the_recorded_goarm_levels() {
    let paths: Vec<&Path> = probes().iter().rev().map(|b| b.path.as_path()).collect();
    let inputs = mgo_pack::Input::parse_args(&paths).unwrap();
    let packed = mgo_pack::Packer::new(mgo_pack::PackOptions::default())
        .pack(&inputs)
        .unwrap();
    let mut levels: Vec<u32> = packed.variants.iter().map(|v| v.level).collect();
    levels.sort();
    assert_eq!(levels, [5, 6, 7]);
    assert!(packed
        .variants
        .iter()
        .all(|v| v.origin == mgo_pack::LevelOrigin::Recorded));
    let named = format!("6={}", probes()[0].path.display());
    let inputs = mgo_pack::Input::parse_args(&[named]).unwrap();
    let err = mgo_pack::Packer::new(mgo_pack::PackOptions::default())
        .pack(&inputs)
        .unwrap_err();
    assert!(err.to_string().contains("GOARM=5"), "{err}");
    // The same program without its build information: the blob's magic zeroed, so that it
    // records no level, and its one position (1) is an x86-64 level.
    let mut bytes = std::fs::read(&probes()[0].path).unwrap();
    let at = bytes
        .windows(14)
        .position(|w| w == b"\xff Go buildinf:")
        .unwrap();
    bytes[at] = 0;
    let silent = scratch_dir("arm-silent").join("silent");
    write_executable(&silent, &bytes).unwrap();
    let inputs = mgo_pack::Input::parse_args(&[&silent]).unwrap();
    let err = mgo_pack::Packer::new(mgo_pack::PackOptions::default())
        .pack(&inputs)
        .unwrap_err();
    assert!(
        matches!(err, mgo_pack::PackError::LevelNotForArch { .. }),
        "{err}"
    );
}

/// The table: under every model, the level the bundle runs is the oracle's, the program runs,
/// and `MGODEBUG=log` names the CPU's level and the variant.
#[test]
fn every_model_runs_the_level_the_oracle_chooses() {
    if !can_exec("every_model_runs_the_level_the_oracle_chooses") {
        return;
    }
    let path = bundle("arm-models", probes(), Launch::Memfd);
    let mut table = String::new();
    let mut failures = Vec::new();
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
        let Some(expected) = oracle else {
            // An ARMv4: not even GOARM=5 starts, and neither does the ARMv5 launcher.
            if out.status.success() || chosen.is_some() {
                failures.push(format!(
                    "{model}: no build starts, yet {chosen:?} ran: {err}"
                ));
            }
            continue;
        };
        let right = out.status.code() == Some(0)
            && chosen.as_deref() == Some(expected)
            && stdout(&out).contains("arg=x y\n")
            && err
                .lines()
                .any(|l| l == format!("[mgo] launcher: CPU supports GOARM={expected}"))
            && err
                .lines()
                .any(|l| l == format!("[mgo] launcher: starting variant GOARM={expected}"));
        if !right {
            failures.push(format!(
                "{model}: oracle {expected}, chosen {chosen:?}: {err}"
            ));
        }
    }
    println!("model | oracle | chosen\n{table}");
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn goarm_forces_a_level_and_bad_values_are_refused() {
    guest_checks::the_override::<Arm>(
        "arm-force",
        probes(),
        "cortex-a15",
        &[("GOAMD64", "v9"), ("GOARM64", "v8.0")],
        &["8", "v7", "7,softfloat", "4"],
        "mgo: GOARM must be 5, 6 or 7 (or unset)",
    );
}

#[test]
fn a_cpu_below_every_packed_level_is_a_clear_error() {
    let path = bundle("arm-none", &probes()[1..], Launch::Memfd);
    let out = run(&mut Qemu::new("arm926").command_without_binfmt(&path));
    assert_eq!(out.status.code(), Some(123), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim_end(),
        "mgo: this program needs a 32-bit ARM CPU with GOARM=6 or better, but this CPU supports \
         GOARM=5"
    );
}

/// Every compression mode; the extracting launcher (its decoders included) runs on an ARMv5
/// without VFP.
#[test]
fn every_compression_mode_extracts_verifies_and_runs() {
    guest_checks::every_compression_mode::<Arm>(
        "arm-compressed",
        probes(),
        "arm926,vfp=false",
        ("arm1176", "6"),
    );
}

#[test]
fn exit_statuses_and_signals_pass_through() {
    guest_checks::exit_statuses_and_signals::<Arm>("arm-status", probes(), "cortex-a7");
}

/// The direct path places ELF64 programs only: the packer refuses it for 32-bit ARM by name,
/// and `MGODEBUG=direct` falls back to the memfd, saying why.
#[test]
fn the_direct_path_is_refused_and_falls_back() {
    let variants: Vec<mgo_pack::Variant> = probes()
        .iter()
        .map(|b| mgo_pack::Variant::read(&b.path, None).unwrap())
        .collect();
    let options = BundleOptions::default().with_launch(Launch::Direct);
    let err = mgo_pack::build_bundle_with(&variants, &options).unwrap_err();
    assert!(
        matches!(err, mgo_pack::PackError::DirectUnsupported { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("32-bit ARM"), "{err}");
    if !can_exec("MGODEBUG=direct falls back to the memfd") {
        return;
    }
    let path = bundle("arm-direct-fallback", probes(), Launch::Memfd);
    let out = run(Qemu::new("cortex-a9")
        .command(&path)
        .env("MGODEBUG", "direct,log"));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(reported_level(&out).as_deref(), Some("7"));
    assert!(
        err.lines()
            .any(|l| l.starts_with("[mgo] launcher: launch path memfd (cannot map the variant")),
        "{err}"
    );
}

/// The cache path: the first start writes the variant into the cache, the second runs it from
/// there. (What `/proc/self/exe` names cannot be checked here: QEMU answers for it.)
#[test]
fn the_cache_path_writes_once_and_runs_from_the_cache() {
    if !can_exec("the_cache_path_writes_once_and_runs_from_the_cache") {
        return;
    }
    let dir = scratch_dir("arm-cache");
    let path = bundle("arm-cache-bundle", probes(), Launch::Cache);
    let qemu = Qemu::new("arm1176");
    let mut logs = Vec::new();
    for _ in 0..2 {
        // No QEMU_LD_PREFIX (the probe is static): QEMU would open "/" inside it, and the
        // launcher walks to its cache from "/".
        let out = run(qemu
            .command(&path)
            .env_remove("QEMU_LD_PREFIX")
            .env("XDG_CACHE_HOME", &dir)
            .env("MGODEBUG", "log"));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(reported_level(&out).as_deref(), Some("6"));
        logs.push(stderr(&out));
    }
    let made = format!("launch path cache (made {}", dir.join("mgo-pack").display());
    let found = format!("launch path cache ({}", dir.join("mgo-pack").display());
    assert!(logs[0].contains(&made), "{}", logs[0]);
    assert!(logs[1].contains(&found), "{}", logs[1]);
}

/// Debian cross-gcc C programs, linked dynamically against the armel C library: they record no
/// level, so they are packed under named ones, and the launcher starts them from the memfd (the
/// dynamic loader coming from QEMU's sysroot), the level the model supports.
#[test]
fn dynamically_linked_c_programs_run_at_named_levels() {
    for build in c_probes() {
        let declared = mgo_pack::declared_level(&std::fs::read(&build.path).unwrap());
        assert_eq!(declared.level, None, "{declared}");
    }
    if !can_exec("dynamically_linked_c_programs_run_at_named_levels") {
        return;
    }
    let path = bundle("arm-c-dynamic", c_probes(), Launch::Memfd);
    for (model, expected) in [("cortex-a7", "7"), ("arm1176", "6"), ("arm926", "5")] {
        let out = run(Qemu::new(model)
            .command(&path)
            .arg("x y")
            .env("PROBE_EXIT", "3"));
        assert_eq!(out.status.code(), Some(3), "{model}: {}", stderr(&out));
        assert_eq!(reported_level(&out).as_deref(), Some(expected), "{model}");
        assert!(stdout(&out).contains(r#"argv=["#), "{model}");
    }
}
