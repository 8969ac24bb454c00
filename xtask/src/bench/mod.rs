//! `cargo xtask bench`: start-up latency, sizes and memory of bundles against running their
//! variants directly, written to `docs/BENCHMARKS.md`.
//!
//! A benchmark, not a test: nothing here asserts a time, and CI does not run it. It builds its
//! fixtures (cached under `target/bench/`), packs them with the release `mgo-pack` in every
//! encoding the packer supports, and times each bundle with hyperfine beside the variant the
//! launcher picks on this machine, run directly, and beside the floor of the memfd design (a
//! program that only copies the variant into a memfd and execs it, `bench/floor.c`).
//!
//! Timing is interleaved: each fixture is measured in several rounds, every round running every
//! command of the fixture once more through hyperfine, and the per-run times of all rounds are
//! pooled before taking medians. A slow phase of the machine (another build starting) then spreads
//! over all commands instead of landing on one of them.
//!
//! The modules, in the order a run uses them: [`fixtures`] builds and packs, [`timing`] times
//! start-up (and the direct path's own cost), [`memory`] reads peak and per-instance memory,
//! [`decode`] measures decode throughput, [`profile`] profiles the memfd path, [`cache`] sets
//! the cache launch path beside the others, [`multivers`] compares `mgo-pack cargo` with
//! cargo-multivers on ripgrep, and [`report`] writes it all down; [`util`] holds what they share.

mod cache;
mod decode;
mod fixtures;
mod memory;
mod multivers;
mod profile;
mod report;
mod timing;
mod util;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mgo_format::{Bundle, Encoding};

use crate::workspace_root;
use decode::*;
use fixtures::*;
use memory::*;
use profile::*;
use report::*;
use timing::*;
use util::*;

const USAGE: &str = "usage: cargo xtask bench [--quick] [--nice N] [--fixtures NAME,...] \
                     [--modes MODE,...] [--only multivers|cache] [--out FILE]\n  fixtures: hello probe cmd-go cmd-go-cgo c-static c-dynamic\n  \
                     modes: stored g9 z19 Z19 z3 (compressed ones when the packer supports them; \
                     default stored g9 z19 Z19, with --quick stored z3)\n  \
                     the comparison with cargo-multivers runs unless --fixtures is given; \
                     --only multivers runs it alone and replaces its section of the --out file; \
                     --only cache does the same for the cache path's section (hello and cmd-go \
                     unless --fixtures is given)";

/// Levels in the order every variant array uses.
const LEVELS: [&str; 4] = ["v1", "v2", "v3", "v4"];

/// How a bundle's variants are encoded: `MGO_COMPRESS` values, `stored` meaning unset. Each
/// compressed mode is measured only if the packer honours it (its bundle then holds entries that
/// are not stored), so the list can stay ahead of the packer.
const MODES: &[&str] = &["stored", "g9", "z19", "Z19", "z3"];

/// What a run measures without `--modes`: mgo's strongest settings. `--quick` packs only a
/// fast zstd level beside the stored bundles (level 19 takes minutes on `cmd/go`).
const DEFAULT_MODES: &[&str] = &["stored", "g9", "z19", "Z19"];
const QUICK_MODES: &[&str] = &["stored", "z3"];

/// The launch paths the run-time override (`MGODEBUG=memfd|direct`) selects.
const PATHS: &[&str] = &["memfd", "direct"];

/// Sampling effort.
#[derive(Clone, Copy)]
struct Effort {
    rounds: usize,
    runs: usize,
    warmup: usize,
    /// Runs per command when reading peak memory.
    memory_runs: usize,
    /// Probe instances kept alive at once when reading Shmem.
    instances: usize,
}

// Many short rounds rather than a few long ones: on a shared VM the machine's speed drifts over
// seconds, and a round of one command then another can land on either side of a drift; 10 rounds
// of 20 spread that over all commands alike.
const FULL: Effort = Effort {
    rounds: 10,
    runs: 20,
    warmup: 3,
    memory_runs: 5,
    instances: 4,
};

const QUICK: Effort = Effort {
    rounds: 2,
    runs: 10,
    warmup: 2,
    memory_runs: 3,
    instances: 2,
};

struct Opts {
    quick: bool,
    /// Niceness for the measuring tools (`nice -n N`), so that other work on the machine
    /// disturbs the timings less; reported with the results.
    nice: Option<i32>,
    fixtures: Option<Vec<String>>,
    modes: Option<Vec<String>>,
    /// `--only multivers`: measure that section alone and replace it in `out`.
    only_multivers: bool,
    /// `--only cache`: the same for the cache path's section.
    only_cache: bool,
    out: PathBuf,
}

impl Opts {
    fn parse(args: &[String], root: &Path) -> Result<Opts> {
        let mut opts = Opts {
            quick: false,
            nice: None,
            fixtures: None,
            modes: None,
            only_multivers: false,
            only_cache: false,
            out: root.join("docs/BENCHMARKS.md"),
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .with_context(|| format!("{name} needs a value\n{USAGE}"))
            };
            match arg.as_str() {
                "--quick" => opts.quick = true,
                "--nice" => {
                    let n = value("--nice")?;
                    opts.nice = Some(n.parse().with_context(|| format!("--nice {n}"))?);
                }
                "--fixtures" => {
                    opts.fixtures =
                        Some(value("--fixtures")?.split(',').map(String::from).collect())
                }
                "--modes" => {
                    opts.modes = Some(value("--modes")?.split(',').map(String::from).collect())
                }
                "--out" => opts.out = PathBuf::from(value("--out")?),
                "--only" => match value("--only")?.as_str() {
                    "multivers" => opts.only_multivers = true,
                    "cache" => opts.only_cache = true,
                    other => bail!("--only takes multivers or cache, not `{other}`\n{USAGE}"),
                },
                _ => bail!("unknown argument `{arg}`\n{USAGE}"),
            }
        }
        if let Some(names) = &opts.fixtures {
            for name in names {
                if !FIXTURES.iter().any(|f| f.name == name) {
                    bail!("unknown fixture `{name}`\n{USAGE}");
                }
            }
        }
        if let Some(modes) = &opts.modes {
            for mode in modes {
                if !MODES.contains(&mode.as_str()) {
                    bail!("unknown mode `{mode}`\n{USAGE}");
                }
            }
        }
        Ok(opts)
    }
}

pub fn main(args: &[String]) -> Result<()> {
    let root = workspace_root();
    let opts = Opts::parse(args, &root)?;
    let _ = NICE.set(opts.nice);
    let effort = if opts.quick { QUICK } else { FULL };
    let started = Instant::now();
    for tool in ["hyperfine", "go", "gcc"] {
        which(tool)
            .with_context(|| format!("`{tool}` is not installed; run scripts/install-deps.sh"))?;
    }
    let work = root.join("target/bench");
    std::fs::create_dir_all(work.join("bin"))?;
    let load_before = load_average();

    eprintln!("bench: building the packer (release)");
    let packer = crate::packer::build_release(&root)?;
    build_helpers(&root, &work)?;
    let floor = PathBuf::from("target/bench/bin/floor");
    if opts.only_multivers {
        return only_multivers(&opts, &root, &work, &packer, effort, started);
    }
    if opts.only_cache {
        return only_cache(&opts, &root, &work, &packer, effort, started);
    }
    let (fixtures, unsupported_modes) = prepare_fixtures(&opts, &root, &work, &packer, None)?;

    let mut timings = Vec::new();
    for fixture in &fixtures {
        eprintln!("bench: timing {}", fixture.spec.name);
        timings.push(time_fixture(&root, &work, &floor, fixture, effort)?);
    }

    let with_cache: Vec<&Fixture> = fixtures
        .iter()
        .filter(|f| cache::MEASURED.contains(&f.spec.name))
        .collect();
    let cache = if with_cache.is_empty() {
        None
    } else {
        eprintln!("bench: the cache path");
        Some(cache::measure(&root, &work, &packer, &with_cache, effort)?)
    };

    eprintln!("bench: the direct path's own cost");
    let mut overhead = Vec::new();
    for fixture in &fixtures {
        overhead.push(direct_overhead(&root, fixture, effort)?);
    }

    eprintln!("bench: peak memory");
    let mut memory = Vec::new();
    for fixture in &fixtures {
        memory.push(peak_memory(&root, fixture, effort)?);
    }

    let shmem = match fixtures.iter().find(|f| f.spec.name == "probe") {
        Some(probe) => {
            eprintln!("bench: memory of running instances");
            Some(instance_memory(&root, probe, effort)?)
        }
        None => None,
    };

    eprintln!("bench: decode throughput");
    let decode = decode_throughput(&root, &work, &fixtures, effort)?;

    eprintln!("bench: profile of the memfd path");
    let profile = profile_memfd(&root, &work, &fixtures, effort);

    // A partial run (`--fixtures`) leaves the long ripgrep builds out.
    let multivers = match opts.fixtures {
        Some(_) => None,
        None => {
            eprintln!("bench: against cargo-multivers");
            Some(multivers::compare(&root, &work, &packer, effort)?)
        }
    };

    let runtime_images = runtime_images(&root)?;
    let report = Report {
        opts: &opts,
        effort,
        machine: Machine::describe(&root, load_before),
        packer_command: "cargo build --release --locked -p mgo-pack".into(),
        helper_commands: HELPERS.iter().map(|h| helper_build(h).join(" ")).collect(),
        fixtures: &fixtures,
        timings: &timings,
        overhead: &overhead,
        memory: &memory,
        shmem: shmem.as_ref(),
        decode: &decode,
        profile: &profile,
        cache: cache.as_ref(),
        multivers: multivers.as_ref(),
        unsupported_modes: &unsupported_modes,
        runtime_images: &runtime_images,
        elapsed: started.elapsed(),
    };
    write_report(&opts.out, &report.render(&root))?;
    eprintln!(
        "bench: wrote {} in {:.0} s",
        opts.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Builds and packs the fixtures asked for (`--fixtures`, else `default_fixtures`, else all) in
/// the modes asked for, and learns the level each runs here. Returns them with the modes this
/// packer does not honour.
fn prepare_fixtures(
    opts: &Opts,
    root: &Path,
    work: &Path,
    packer: &Path,
    default_fixtures: Option<&[String]>,
) -> Result<(Vec<Fixture>, Vec<&'static str>)> {
    let defaults = if opts.quick {
        QUICK_MODES
    } else {
        DEFAULT_MODES
    };
    let wanted_modes: Vec<&'static str> = MODES
        .iter()
        .copied()
        .filter(|m| match &opts.modes {
            Some(wanted) => wanted.iter().any(|x| x == m),
            None => defaults.contains(m),
        })
        .collect();
    let mut unsupported_modes = Vec::new();
    let mut fixtures = Vec::new();
    for spec in FIXTURES {
        let wanted = opts.fixtures.as_deref().or(default_fixtures);
        if wanted.is_some_and(|w| !w.iter().any(|x| x == spec.name)) {
            continue;
        }
        eprintln!("bench: fixture {}", spec.name);
        let (variants, build_command) = build_fixture(root, work, spec)?;
        let dynamic = has_interp(&root.join(&variants[0]))?;
        let mut fixture = Fixture {
            spec,
            variants,
            build_command,
            dynamic,
            chosen: 0,
            bundles: Vec::new(),
        };
        for &mode in &wanted_modes {
            match pack(root, work, packer, &fixture, mode)? {
                Some(packed) => fixture.bundles.push(packed),
                None => {
                    if !unsupported_modes.contains(&mode) {
                        unsupported_modes.push(mode);
                    }
                }
            }
        }
        let stored = fixture
            .bundle("stored")
            .or(fixture.bundles.first())
            .context("no bundle was packed")?;
        fixture.chosen = chosen_level(root, &stored.path, spec.args)?;
        // The entry facts recorded at pack time are for the level just learned.
        for packed in &mut fixture.bundles {
            fill_entry(root, packed, fixture.chosen)?;
        }
        fixtures.push(fixture);
    }
    if fixtures.is_empty() {
        bail!("no fixture selected\n{USAGE}");
    }
    Ok((fixtures, unsupported_modes))
}

/// `--only multivers`: the comparison alone, its section replaced in the existing report.
fn only_multivers(
    opts: &Opts,
    root: &Path,
    work: &Path,
    packer: &Path,
    effort: Effort,
    started: Instant,
) -> Result<()> {
    let comparison = multivers::compare(root, work, packer, effort)?;
    let mut section = String::new();
    let command = format!(
        "cargo xtask bench --only multivers{}{}",
        if opts.quick { " --quick" } else { "" },
        opts.nice.map_or(String::new(), |n| format!(" --nice {n}"))
    );
    multivers::render(&comparison, effort, Some(&command), &mut section);
    let doc = std::fs::read_to_string(&opts.out).unwrap_or_default();
    write_report(&opts.out, &multivers::replace_section(&doc, &section))?;
    eprintln!(
        "bench: replaced the cargo-multivers section of {} in {:.0} s",
        opts.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `--only cache`: the cache path's section alone (hello and cmd-go unless `--fixtures` says
/// otherwise), replaced in the existing report.
fn only_cache(
    opts: &Opts,
    root: &Path,
    work: &Path,
    packer: &Path,
    effort: Effort,
    started: Instant,
) -> Result<()> {
    let load_before = load_average();
    let names = cache::default_fixtures();
    let (fixtures, _) = prepare_fixtures(opts, root, work, packer, Some(&names))?;
    let fixtures: Vec<&Fixture> = fixtures.iter().collect();
    let mut section = cache::measure(root, work, packer, &fixtures, effort)?;
    section.load = Some((load_before, load_average()));
    let mut text = String::new();
    let command = format!(
        "cargo xtask bench --only cache{}{}{}{}",
        if opts.quick { " --quick" } else { "" },
        opts.nice.map_or(String::new(), |n| format!(" --nice {n}")),
        opts.fixtures
            .as_ref()
            .map_or(String::new(), |f| format!(" --fixtures {}", f.join(","))),
        opts.modes
            .as_ref()
            .map_or(String::new(), |m| format!(" --modes {}", m.join(","))),
    );
    cache::render(&section, effort, Some(&command), &mut text);
    let doc = std::fs::read_to_string(&opts.out).unwrap_or_default();
    write_report(
        &opts.out,
        &replace_section(&doc, cache::HEADING, &text, cache::BEFORE),
    )?;
    eprintln!(
        "bench: replaced the cache path's section of {} in {:.0} s",
        opts.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Writes the report whole or not at all: a temporary file renamed over `out`.
fn write_report(out: &Path, text: &str) -> Result<()> {
    let tmp = out.with_extension("md.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))
}
