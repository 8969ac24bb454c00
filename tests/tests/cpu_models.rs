//! x86-64 level selection checked against Go itself on real CPU models.
//!
//! `qemu-x86_64 -cpu MODEL` (Debian `qemu-user`) gives the program it runs that model's CPUID. For
//! each model the oracle is Go's own start-up check: each `GOAMD64=vN` build of the probe is run
//! directly under the model, and either runs (exit 0, its report says `vN`) or is refused (Go's
//! "This program can only be run on AMD64 processors with vN microarchitecture support." and
//! exit 1). The highest build that runs is the variant the launcher must pick under that model.
//! Anything else (a build that passes Go's check and then dies) means the model is not a CPU
//! x86-64 programs can run on, and fails the test: such models do not belong in the list.
//!
//! What qemu-user 7.2 does with the launcher, measured with `strace -f`: the launcher runs under
//! the model, so its CPUID answers are the model's. `execveat` never reaches the kernel (qemu
//! answers ENOSYS itself), so the memfd path falls back to `execve("/proc/self/fd/N")`, which qemu
//! hands to the host kernel: with no binfmt_misc entry for x86-64 programs, the program then runs
//! natively on the host CPU, outside the model. The direct path maps the program into the
//! launcher's own process and jumps to it, so there it runs under the model and Go's own check
//! judges the launcher's choice once more. The assertions hold either way: the choice is read from
//! the launcher (`MGODEBUG=log`) and from the program's report, the report proves the program
//! ran, and a program exec'd onto a host weaker than the model is expected to be refused by Go.
//!
//! qemu's TCG cannot execute AVX-512, so it drops those features from every model (the warnings
//! it prints are ignored here): no model reaches v4 here, which the oracle shows by itself. v4 is
//! covered natively by `launch.rs` on a v4 host and by the unit tests with real CPUID values.
//!
//! The matrix is written to `target/e2e/cpu-models/matrix.md` (docs/CPU.md shows it).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use mgo_tests::fixtures::{go_probe, parse_report};
use mgo_tests::harness::{command, oracle_level, pack, pack_all, scratch_dir, stderr, stdout};

const QEMU: &str = "qemu-x86_64";

/// Models this test needs; a qemu without one of them fails the test rather than skipping it.
/// Real CPUs first, oldest to newest per vendor, then real models with one feature removed or a
/// few added: each v2 and v3 feature alone must decide the level, and the leaf-1 EDX bits that
/// Go never checks must not.
const MODELS: &[&str] = &[
    "qemu64",
    "kvm64",
    "core2duo",
    "Conroe",
    "Penryn",
    "Nehalem",
    "Westmere",
    "SandyBridge",
    "IvyBridge",
    "Haswell",
    "Haswell-noTSX",
    "Broadwell",
    "Skylake-Client",
    "Skylake-Server",
    "Cascadelake-Server",
    "Icelake-Server",
    "Cooperlake",
    "KnightsMill",
    "Denverton",
    "Snowridge",
    "Opteron_G1",
    "Opteron_G2",
    "Opteron_G3",
    "Opteron_G4",
    "Opteron_G5",
    "phenom",
    "EPYC",
    "EPYC-Rome",
    "EPYC-Milan",
    "Dhyana",
    "max",
    // v3 features, one at a time.
    "Haswell,-movbe",
    "Haswell,-fma",
    "Haswell,-f16c",
    "Haswell,-avx",
    "Haswell,-xsave",
    "Haswell,-abm",
    "Haswell,-bmi1",
    "Haswell,-bmi2",
    "Haswell,-avx2",
    "EPYC,-abm",
    "EPYC,-movbe",
    // v2 features, one at a time.
    "Nehalem,-pni",
    "Nehalem,-ssse3",
    "Nehalem,-cx16",
    "Nehalem,-sse4.1",
    "Nehalem,-sse4.2",
    "Nehalem,-popcnt",
    "Nehalem,-lahf-lm",
    "Haswell,-popcnt",
    "Haswell,-lahf-lm",
    // v4 features (qemu drops AVX-512 anyway; the model must still be v3).
    "Skylake-Server,-avx512bw",
    // Baseline bits Go does not check: their absence must not lower the level.
    "Haswell,-mmx",
    "Haswell,-fpu",
    "Haswell,-cx8",
    "qemu64,-mmx",
    // Levels built up from below.
    "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt",
    "SandyBridge,+fma,+movbe,+f16c,+abm,+bmi1,+bmi2,+avx2",
];

/// Models on which the memfd path is checked too. The launcher decides the same way on both
/// paths, so these few, one per level qemu can reach and both vendors, show that its exec
/// fallback works under qemu; the direct path, on which the program stays under the model, runs on
/// every model.
const MEMFD_MODELS: &[&str] = &["qemu64", "Nehalem", "Haswell", "EPYC", "Haswell,-bmi2"];

/// Models of newer qemu versions, run when this qemu lists them.
const OPTIONAL_MODELS: &[&str] = &[
    "EPYC-Genoa",
    "SapphireRapids",
    "GraniteRapids",
    "SierraForest",
];

/// qemu-x86_64's path, or `None` after saying why the test is skipped. In CI the skip fails: CI
/// installs qemu-user through scripts/install-deps.sh, and a skipped check there would be a
/// silently missing one.
fn qemu() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(QEMU))
        .find(|path| path.is_file());
    if found.is_none() {
        println!("SKIPPED: qemu-x86_64 not installed (scripts/install-deps.sh installs it)");
        assert!(
            std::env::var_os("CI").is_none(),
            "qemu-x86_64 is missing in CI: scripts/install-deps.sh must install qemu-user"
        );
    }
    found
}

/// `qemu-x86_64 -cpu MODEL PROGRAM` with a clean environment plus `env`.
fn under(qemu: &Path, model: &str, program: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = command(qemu);
    cmd.arg("-cpu").arg(model).arg(program);
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.output().expect("spawning qemu-x86_64")
}

/// stderr without qemu's own complaints about features its TCG cannot emulate.
fn program_stderr(out: &Output) -> String {
    stderr(out)
        .lines()
        .filter(|line| !line.starts_with("qemu-x86_64: warning:"))
        .map(|line| format!("{line}\n"))
        .collect()
}

fn go_refusal(level: u32) -> String {
    format!("This program can only be run on AMD64 processors with v{level} microarchitecture support.\n")
}

fn report_level(out: &Output) -> Option<String> {
    parse_report(&stdout(out)).get_str("level")
}

/// Each probe build run directly under `model`: `true` when it ran, `false` when Go refused it.
fn go_verdicts(qemu: &Path, model: &str) -> Result<[bool; 4], String> {
    let mut verdicts = [false; 4];
    for (i, probe) in go_probe().iter().enumerate() {
        let level = i as u32 + 1;
        let out = under(qemu, model, probe, &[]);
        let err = program_stderr(&out);
        if out.status.success() && report_level(&out) == Some(format!("v{level}")) {
            verdicts[i] = true;
        } else if out.status.code() != Some(1) || err != go_refusal(level) {
            return Err(format!(
                "{model}: GOAMD64=v{level} neither ran nor was refused by Go's check \
                 ({}; stderr {err:?}): not a CPU model x86-64 programs can run on",
                out.status
            ));
        }
    }
    Ok(verdicts)
}

/// Where the program ran, told by its own report: in qemu's process (`comm` is qemu's), or on
/// the host after qemu handed the exec to the kernel.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ran {
    InQemu,
    OnHost,
    /// Exec'd onto a host weaker than the model: Go refused the chosen variant there.
    RefusedByHost,
}

impl Ran {
    fn name(self) -> &'static str {
        match self {
            Ran::InQemu => "in qemu",
            Ran::OnHost => "on the host",
            Ran::RefusedByHost => "refused by the weaker host",
        }
    }
}

/// Runs the all-levels bundle under `model` with `MGODEBUG=log,<path>`; checks that the launcher
/// picked `expected`, said why, and that the program ran.
fn check_bundle(
    qemu: &Path,
    model: &str,
    bundle: &Path,
    path: &str,
    expected: u32,
    host_level: u32,
) -> Result<Ran, String> {
    let debug = format!("log,{path}");
    let out = under(qemu, model, bundle, &[("MGODEBUG", &debug)]);
    let err = program_stderr(&out);
    let ctx = || format!("{model}, MGODEBUG={debug}: {}; stderr:\n{err}", out.status);
    let lines: Vec<&str> = err.lines().collect();
    let start = format!("[mgo] launcher: starting variant GOAMD64=v{expected}");
    let why = format!("[mgo] launcher: CPU supports x86-64-v{expected}");
    let Some(at) = lines.iter().position(|l| *l == start) else {
        return Err(format!("no `{start}` line: {}", ctx()));
    };
    if at == 0 || lines[at - 1] != why {
        return Err(format!(
            "`{why}` does not come right before `{start}`: {}",
            ctx()
        ));
    }
    let report = parse_report(&stdout(&out));
    if report.get("level").is_none() {
        // No report: acceptable only when the program was exec'd onto a host that cannot run it.
        let refused = host_level < expected
            && out.status.code() == Some(1)
            && err.ends_with(&go_refusal(expected));
        return if refused {
            Ok(Ran::RefusedByHost)
        } else {
            Err(format!("the program did not run: {}", ctx()))
        };
    }
    if !out.status.success() || report.get_str("level") != Some(format!("v{expected}")) {
        return Err(format!(
            "the program reported level {:?}: {}",
            report.get_str("level"),
            ctx()
        ));
    }
    let exe = report.get_str("exe").unwrap_or_default();
    if path == "memfd" && !exe.starts_with("/memfd:") {
        return Err(format!(
            "not started from its memfd (exe {exe:?}): {}",
            ctx()
        ));
    }
    Ok(match report.get_str("comm").as_deref() {
        Some(QEMU) => Ran::InQemu,
        _ => Ran::OnHost,
    })
}

struct Row {
    model: String,
    verdicts: [bool; 4],
    direct: Ran,
    memfd: Option<Ran>,
}

/// `qemu-x86_64 -cpu help`'s model names: QEMU 7.2 prints `x86 NAME ...` lines, later QEMU an
/// `Available CPUs:` heading and indented `NAME ...` lines.
fn listed_models(qemu: &Path) -> Vec<String> {
    let out = command(qemu).args(["-cpu", "help"]).output().unwrap();
    stdout(&out)
        .lines()
        .filter_map(|line| line.strip_prefix("x86 ").or_else(|| line.strip_prefix(' ')))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn launcher_picks_what_go_itself_accepts_on_each_model() {
    let Some(qemu) = qemu() else { return };
    let listed = listed_models(&qemu);
    let base = |model: &str| model.split(',').next().unwrap().to_string();
    let missing: Vec<&str> = MODELS
        .iter()
        .copied()
        .filter(|m| !listed.contains(&base(m)))
        .collect();
    assert!(missing.is_empty(), "this qemu lacks the models {missing:?}");
    assert!(MEMFD_MODELS.iter().all(|m| MODELS.contains(m)));
    let mut models: Vec<&str> = MODELS.to_vec();
    for optional in OPTIONAL_MODELS {
        if listed.iter().any(|m| m == optional) {
            models.push(optional);
        } else {
            println!("note: {optional} is not in this qemu; not run");
        }
    }

    // The host's own level: a program exec'd out of qemu runs there.
    let host_level = oracle_level(go_probe());
    let dir = scratch_dir("cpu-models");
    let bundle = pack_all(&dir.join("probe"), go_probe());

    // Two models at a time: one qemu process each, on a two-core machine.
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Result<Row, String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&model) = models.get(i) else { break };
                let row = go_verdicts(&qemu, model).and_then(|verdicts| {
                    let oracle = verdicts.iter().take_while(|&&ran| ran).count() as u32;
                    if verdicts[oracle as usize..].iter().any(|&ran| ran) || oracle == 0 {
                        return Err(format!(
                            "{model}: Go's verdicts {verdicts:?} are not a level"
                        ));
                    }
                    let direct = check_bundle(&qemu, model, &bundle, "direct", oracle, host_level)?;
                    let memfd = if MEMFD_MODELS.contains(&model) {
                        let ran = check_bundle(&qemu, model, &bundle, "memfd", oracle, host_level);
                        Some(ran?)
                    } else {
                        None
                    };
                    Ok(Row {
                        model: model.to_string(),
                        verdicts,
                        direct,
                        memfd,
                    })
                });
                results.lock().unwrap().push((i, row));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);

    let mut table = String::from(
        "| `-cpu` | Go v1 | Go v2 | Go v3 | Go v4 | launcher picks | program ran: direct path | \
         memfd path |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut failures = Vec::new();
    for (_, result) in &results {
        match result {
            Ok(row) => {
                let verdict = |ran: bool| if ran { "runs" } else { "refused" };
                let oracle = row.verdicts.iter().filter(|&&ran| ran).count();
                writeln!(
                    table,
                    "| `{}` | {} | {} | {} | {} | v{oracle} | {} | {} |",
                    row.model,
                    verdict(row.verdicts[0]),
                    verdict(row.verdicts[1]),
                    verdict(row.verdicts[2]),
                    verdict(row.verdicts[3]),
                    row.direct.name(),
                    row.memfd.map_or("not checked", Ran::name),
                )
                .unwrap();
            }
            Err(e) => failures.push(e.clone()),
        }
    }
    std::fs::write(dir.join("matrix.md"), &table).unwrap();
    println!("{table}");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn cpu_below_every_variant_gets_one_clear_line() {
    let Some(qemu) = qemu() else { return };
    let probe = go_probe();
    let dir = scratch_dir("cpu-models-too-low");
    let v3_up = pack(&dir.join("v3-up"), &[(3, &probe[2]), (4, &probe[3])]);
    let v2_up = pack(
        &dir.join("v2-up"),
        &[(2, &probe[1]), (3, &probe[2]), (4, &probe[3])],
    );
    for (bundle, model, needs, has) in [
        (&v3_up, "Nehalem", 3, 2),
        (&v3_up, "Haswell,-bmi2", 3, 2),
        (&v3_up, "Conroe", 3, 1),
        (&v2_up, "Nehalem,-popcnt", 2, 1),
    ] {
        let out = under(&qemu, model, bundle, &[]);
        let err = program_stderr(&out);
        assert_eq!(out.status.code(), Some(123), "{model}: {err}");
        assert!(out.stdout.is_empty(), "{model}: something ran");
        assert_eq!(
            err,
            format!(
                "mgo: this program needs an x86-64-v{needs} CPU or better, but this CPU is \
                 x86-64-v{has}\n"
            ),
            "{model}"
        );
    }
}

#[test]
fn goamd64_overrides_the_model() {
    let Some(qemu) = qemu() else { return };
    let bundle = pack_all(&scratch_dir("cpu-models-forced").join("probe"), go_probe());
    let out = under(
        &qemu,
        "Haswell",
        &bundle,
        &[("GOAMD64", "v2"), ("MGODEBUG", "log")],
    );
    let err = program_stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(report_level(&out).as_deref(), Some("v2"));
    assert!(
        err.contains(
            "[mgo] launcher: GOAMD64=v2 set in the environment\n\
             [mgo] launcher: starting variant GOAMD64=v2\n"
        ),
        "{err}"
    );
}
