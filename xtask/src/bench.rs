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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mgo_format::{Bundle, Encoding};

use crate::workspace_root;

const USAGE: &str = "usage: cargo xtask bench [--quick] [--nice N] [--fixtures NAME,...] \
                     [--modes MODE,...] [--out FILE]\n  fixtures: hello probe cmd-go cmd-go-cgo c-static c-dynamic\n  \
                     modes: stored g9 z19 Z19 z3 (compressed ones when the packer supports them; \
                     default stored g9 z19 Z19, with --quick stored z3)";

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
    out: PathBuf,
}

impl Opts {
    fn parse(args: &[String], root: &Path) -> Result<Opts> {
        let mut opts = Opts {
            quick: false,
            nice: None,
            fixtures: None,
            modes: None,
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

/// How one fixture's variants are built.
#[derive(Clone, Copy)]
enum Build {
    /// `go build .` in a directory of the workspace.
    GoDir { dir: &'static str, cgo: bool },
    /// `go build` of a package of the Go distribution itself.
    GoStd { package: &'static str, cgo: bool },
    /// gcc on one C file of the workspace.
    C {
        src: &'static str,
        static_link: bool,
    },
}

struct FixtureSpec {
    name: &'static str,
    what: &'static str,
    build: Build,
    /// Arguments every timed run passes.
    args: &'static [&'static str],
}

const FIXTURES: &[FixtureSpec] = &[
    FixtureSpec {
        name: "hello",
        what: "Go hello-world (`bench/hello`), CGO_ENABLED=0",
        build: Build::GoDir {
            dir: "bench/hello",
            cgo: false,
        },
        args: &[],
    },
    FixtureSpec {
        name: "probe",
        what: "the tests' Go probe (`tests/fixtures/goprobe`), CGO_ENABLED=0",
        build: Build::GoDir {
            dir: "tests/fixtures/goprobe",
            cgo: false,
        },
        args: &[],
    },
    FixtureSpec {
        name: "cmd-go",
        what: "`cmd/go` of Debian's Go, CGO_ENABLED=0, run as `go version`",
        build: Build::GoStd {
            package: "cmd/go",
            cgo: false,
        },
        args: &["version"],
    },
    FixtureSpec {
        name: "cmd-go-cgo",
        what: "`cmd/go` of Debian's Go, CGO_ENABLED=1 (dynamically linked), run as `go version`",
        build: Build::GoStd {
            package: "cmd/go",
            cgo: true,
        },
        args: &["version"],
    },
    FixtureSpec {
        name: "c-static",
        what: "C hello-world (`bench/chello.c`), gcc -O2 -static",
        build: Build::C {
            src: "bench/chello.c",
            static_link: true,
        },
        args: &[],
    },
    FixtureSpec {
        name: "c-dynamic",
        what: "C hello-world (`bench/chello.c`), gcc -O2, dynamically linked against glibc",
        build: Build::C {
            src: "bench/chello.c",
            static_link: false,
        },
        args: &[],
    },
];

/// A built fixture, packed.
struct Fixture {
    spec: &'static FixtureSpec,
    /// The four variants, relative to the workspace root (that is how commands name them).
    variants: [PathBuf; 4],
    /// What the build ran, for the report.
    build_command: String,
    dynamic: bool,
    /// Level code the launcher picks on this machine (1..=4).
    chosen: u32,
    /// Packed bundles by mode.
    bundles: Vec<Packed>,
}

struct Packed {
    mode: &'static str,
    path: PathBuf,
    size: u64,
    /// Encoding of the chosen variant's entry, and its stored and original sizes.
    encoding: Encoding,
    stored_len: u64,
    original_len: u64,
}

impl Fixture {
    fn chosen_variant(&self) -> &Path {
        &self.variants[self.chosen as usize - 1]
    }

    fn bundle(&self, mode: &str) -> Option<&Packed> {
        self.bundles.iter().find(|b| b.mode == mode)
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
    let packer = build_packer(&root)?;
    build_helpers(&root, &work)?;
    let floor = PathBuf::from("target/bench/bin/floor");

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
        if opts
            .fixtures
            .as_ref()
            .is_some_and(|w| !w.iter().any(|x| x == spec.name))
        {
            continue;
        }
        eprintln!("bench: fixture {}", spec.name);
        let (variants, build_command) = build_fixture(&root, &work, spec)?;
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
            match pack(&root, &work, &packer, &fixture, mode)? {
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
        fixture.chosen = chosen_level(&root, &stored.path, spec.args)?;
        // The entry facts recorded at pack time are for the level just learned.
        for packed in &mut fixture.bundles {
            fill_entry(&root, packed, fixture.chosen)?;
        }
        fixtures.push(fixture);
    }
    if fixtures.is_empty() {
        bail!("no fixture selected\n{USAGE}");
    }

    let mut timings = Vec::new();
    for fixture in &fixtures {
        eprintln!("bench: timing {}", fixture.spec.name);
        timings.push(time_fixture(&root, &work, &floor, fixture, effort)?);
    }

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
        unsupported_modes: &unsupported_modes,
        runtime_images: &runtime_images,
        elapsed: started.elapsed(),
    };
    let text = report.render(&root);
    let tmp = opts.out.with_extension("md.tmp");
    std::fs::write(&tmp, &text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &opts.out).with_context(|| format!("writing {}", opts.out.display()))?;
    eprintln!(
        "bench: wrote {} in {:.0} s",
        opts.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Building

fn build_packer(root: &Path) -> Result<PathBuf> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args([
            "build",
            "--quiet",
            "--release",
            "--locked",
            "-p",
            "mgo-pack",
        ])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("building mgo-pack failed");
    }
    Ok(PathBuf::from("target/release/mgo-pack"))
}

/// The small helpers in `bench/`: the memfd floor and the peak-memory reader (no libc, so that
/// nothing of theirs is measured), and the alternating spawn loop (libc's `posix_spawn`).
const HELPERS: &[&str] = &["floor", "maxrss", "spawnloop"];

fn helper_build(name: &str) -> Vec<String> {
    let freestanding: &[&str] = if name == "spawnloop" {
        &[]
    } else {
        &["-static", "-nostdlib", "-fno-stack-protector"]
    };
    let mut command = vec!["gcc".to_string(), "-O2".to_string()];
    command.extend(freestanding.iter().map(|f| f.to_string()));
    command.extend([
        "-o".to_string(),
        format!("target/bench/bin/{name}"),
        format!("bench/{name}.c"),
    ]);
    command
}

fn build_helpers(root: &Path, work: &Path) -> Result<()> {
    let gcc = first_line("gcc", &["--version"])?;
    for name in HELPERS {
        let command = helper_build(name);
        let key = format!(
            "{}\n{gcc}\n{:016x}",
            command.join(" "),
            hash_files(&[root.join(format!("bench/{name}.c"))])?
        );
        let out = work.join(format!("bin/{name}"));
        cached(
            &work.join(format!("bin/{name}.stamp")),
            &key,
            &[out],
            || {
                run_ok(
                    Command::new(&command[0])
                        .current_dir(root)
                        .args(&command[1..]),
                    &format!("building bench/{name}.c"),
                )
            },
        )?;
    }
    Ok(())
}

/// Builds the four variants of a fixture (cached), returning their paths relative to the root and
/// the build command for level N as the report shows it.
fn build_fixture(root: &Path, work: &Path, spec: &FixtureSpec) -> Result<([PathBuf; 4], String)> {
    let rel: [PathBuf; 4] =
        LEVELS.map(|level| PathBuf::from(format!("target/bench/bin/{}-{level}", spec.name)));
    let outputs: Vec<PathBuf> = rel.iter().map(|p| root.join(p)).collect();
    let (key, shown) = match spec.build {
        Build::GoDir { dir, cgo } => {
            let src = root.join(dir);
            let mut files: Vec<PathBuf> = std::fs::read_dir(&src)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "go" || x == "mod"))
                .collect();
            files.sort();
            let shown = format!(
                "(cd {dir} && GOAMD64=vN CGO_ENABLED={} go build -trimpath -o OUT .)",
                cgo as u8
            );
            (
                format!("{shown}\n{}\n{:016x}", go_version()?, hash_files(&files)?),
                shown,
            )
        }
        Build::GoStd { package, cgo } => {
            // No -trimpath: `go version` finds its GOROOT through the path recorded at build time.
            let shown = format!(
                "GOAMD64=vN CGO_ENABLED={} go build -o OUT {package}",
                cgo as u8
            );
            (format!("{shown}\n{}", go_version()?), shown)
        }
        Build::C { src, static_link } => {
            let shown = format!(
                "gcc -O2 -march=x86-64[-vN]{} -o OUT {src}",
                if static_link { " -static" } else { "" }
            );
            (
                format!(
                    "{shown}\n{}\n{:016x}",
                    first_line("gcc", &["--version"])?,
                    hash_files(&[root.join(src)])?
                ),
                shown,
            )
        }
    };
    let stamp = work.join(format!("bin/{}.stamp", spec.name));
    cached(&stamp, &key, &outputs, || {
        for (level, out) in LEVELS.iter().zip(&outputs) {
            eprintln!("bench:   building {} {level}", spec.name);
            let mut cmd = match spec.build {
                Build::GoDir { dir, cgo } => {
                    let mut cmd = go_command(work, level, cgo);
                    cmd.current_dir(root.join(dir))
                        .args(["build", "-trimpath", "-o"])
                        .arg(out)
                        .arg(".");
                    cmd
                }
                Build::GoStd { package, cgo } => {
                    let mut cmd = go_command(work, level, cgo);
                    cmd.current_dir(work)
                        .args(["build", "-o"])
                        .arg(out)
                        .arg(package);
                    cmd
                }
                Build::C { src, static_link } => {
                    let mut cmd = Command::new("gcc");
                    let march = match *level {
                        "v1" => "-march=x86-64".to_string(),
                        _ => format!("-march=x86-64-{level}"),
                    };
                    cmd.current_dir(root).args(["-O2", &march]);
                    if static_link {
                        cmd.arg("-static");
                    }
                    cmd.arg("-o").arg(out).arg(src);
                    cmd
                }
            };
            run_ok(&mut cmd, &format!("building {} {level}", spec.name))?;
        }
        Ok(())
    })?;
    Ok((rel, shown))
}

/// A hermetic `go` invocation: no user settings, no network, caches inside target/bench.
fn go_command(work: &Path, level: &str, cgo: bool) -> Command {
    let mut cmd = Command::new("go");
    cmd.env("GOAMD64", level)
        .env("GOOS", "linux")
        .env("GOARCH", "amd64")
        .env("CGO_ENABLED", if cgo { "1" } else { "0" })
        .env("GOFLAGS", "-mod=mod -modcacherw")
        .env("GOPROXY", "off")
        .env("GO111MODULE", "on")
        .env("GOWORK", "off")
        .env("GOENV", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GOCACHE", work.join("gocache"))
        .env("GOPATH", work.join("gopath"));
    cmd
}

/// Runs `build` unless `stamp` holds `key` and every output exists; the stamp is removed first
/// and written last, so an interrupted build is redone.
fn cached(
    stamp: &Path,
    key: &str,
    outputs: &[PathBuf],
    build: impl FnOnce() -> Result<()>,
) -> Result<()> {
    if std::fs::read_to_string(stamp).is_ok_and(|s| s == key) && outputs.iter().all(|p| p.is_file())
    {
        return Ok(());
    }
    let _ = std::fs::remove_file(stamp);
    build()?;
    std::fs::write(stamp, key)?;
    Ok(())
}

fn pack(
    root: &Path,
    work: &Path,
    packer: &Path,
    fixture: &Fixture,
    mode: &'static str,
) -> Result<Option<Packed>> {
    let dir = work.join("bundles");
    std::fs::create_dir_all(&dir)?;
    let rel = PathBuf::from(format!("target/bench/bundles/{}.{mode}", fixture.spec.name));
    // Compressing cmd/go four times at level 19 takes minutes: a bundle is packed again only when
    // the packer or an input changed.
    let mut inputs = vec![root.join(packer)];
    inputs.extend(fixture.variants.iter().map(|v| root.join(v)));
    let key = format!("{mode}\n{:016x}", hash_files(&inputs)?);
    let stamp = root.join(format!("{}.stamp", rel.display()));
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == key) {
        if let Ok(bytes) = std::fs::read(root.join(&rel)) {
            if Bundle::parse_file(&bytes).is_ok() {
                eprintln!("bench:   {} is up to date", rel.display());
                return Ok(Some(packed(mode, rel, bytes.len())));
            }
        }
    }
    let _ = std::fs::remove_file(&stamp);
    let mut cmd = Command::new(root.join(packer));
    cmd.current_dir(root).arg("-o").arg(&rel);
    for (level, variant) in LEVELS.iter().zip(&fixture.variants) {
        cmd.arg(format!("{level}={}", variant.display()));
    }
    cmd.env_remove("MGO_COMPRESS");
    if mode != "stored" {
        cmd.env("MGO_COMPRESS", mode);
    }
    let started = Instant::now();
    let out = cmd.output().context("running mgo-pack")?;
    if !out.status.success() {
        // A packer without compression may refuse the variable rather than ignore it.
        if mode != "stored" {
            return Ok(None);
        }
        bail!(
            "mgo-pack failed on {}: {}",
            fixture.spec.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let pack_time = started.elapsed();
    let bytes = std::fs::read(root.join(&rel))?;
    let bundle = Bundle::parse_file(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: {}", rel.display(), e.message()))?;
    if mode != "stored" && bundle.entries().all(|e| e.encoding == Encoding::Stored) {
        let _ = std::fs::remove_file(root.join(&rel));
        return Ok(None);
    }
    eprintln!(
        "bench:   packed {} ({} bytes, {:.1} s)",
        rel.display(),
        bytes.len(),
        pack_time.as_secs_f64()
    );
    std::fs::write(&stamp, key)?;
    Ok(Some(packed(mode, rel, bytes.len())))
}

/// A packed bundle whose chosen entry is filled in later, once the chosen level is known.
fn packed(mode: &'static str, path: PathBuf, size: usize) -> Packed {
    Packed {
        mode,
        path,
        size: size as u64,
        encoding: Encoding::Stored,
        stored_len: 0,
        original_len: 0,
    }
}

fn fill_entry(root: &Path, packed: &mut Packed, level: u32) -> Result<()> {
    let bytes = std::fs::read(root.join(&packed.path))?;
    let bundle = Bundle::parse_file(&bytes).map_err(|e| anyhow::anyhow!(e.message()))?;
    let entry = bundle
        .entries()
        .filter(|e| e.level <= level)
        .max_by_key(|e| e.level)
        .context("no entry for the chosen level")?;
    packed.encoding = entry.encoding;
    packed.stored_len = entry.stored_len;
    packed.original_len = entry.original_len;
    Ok(())
}

/// The level the launcher picks here, as `MGODEBUG=log` reports it.
fn chosen_level(root: &Path, bundle: &Path, args: &[&str]) -> Result<u32> {
    let out = bench_env(Command::new(root.join(bundle)))
        .current_dir(root)
        .args(args)
        .env("MGODEBUG", "log")
        .stdout(Stdio::null())
        .output()
        .with_context(|| format!("running {}", bundle.display()))?;
    let err = String::from_utf8_lossy(&out.stderr);
    let level = err
        .lines()
        .find_map(|l| l.strip_prefix("[mgo] launcher: starting variant GOAMD64=v"))
        .and_then(|v| v.trim().parse::<u32>().ok())
        .with_context(|| format!("{} did not log its choice: {err}", bundle.display()))?;
    Ok(level)
}

/// Which launch path a bundle takes under an `MGODEBUG` path word, from its log; launchers that
/// predate the choice log nothing about it and always copy into a memfd.
fn path_taken(root: &Path, bundle: &Path, args: &[&str], path: &str) -> Result<String> {
    let out = bench_env(Command::new(root.join(bundle)))
        .current_dir(root)
        .args(args)
        .env("MGODEBUG", format!("log,{path}"))
        .stdout(Stdio::null())
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    Ok(err
        .lines()
        .find_map(|l| l.strip_prefix("[mgo] launcher: launch path "))
        .map(|p| p.split_whitespace().next().unwrap_or("memfd").to_string())
        .unwrap_or_else(|| "memfd".into()))
}

fn has_interp(path: &Path) -> Result<bool> {
    let bytes = std::fs::read(path)?;
    let elf = mgo_format::elf::Elf::parse(&bytes).map_err(|e| anyhow::anyhow!(e.message()))?;
    const PT_INTERP: u32 = 3;
    let dynamic = elf.phdrs().any(|ph| ph.p_type == PT_INTERP);
    Ok(dynamic)
}

// ---------------------------------------------------------------------------------------------
// Timing

/// One timed command.
struct Timed {
    label: String,
    /// What the row is: `direct`, `floor`, or a bundle's mode.
    kind: Kind,
    /// Launch path actually taken (bundles only).
    path: Option<String>,
    times: Vec<f64>,
    /// Mean user + system CPU time per run, averaged over rounds: less sensitive than wall time to
    /// other load on the machine.
    cpu: f64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Direct,
    Floor,
    Bundle(&'static str),
    /// `MGODEBUG=extract` of the stored bundle, output to /dev/null.
    Extract,
}

struct FixtureTiming {
    rows: Vec<Timed>,
    /// A hyperfine command line of the last round, as run (paths relative to the root).
    example_commands: Vec<String>,
}

impl FixtureTiming {
    fn row(&self, kind: Kind) -> Option<&Timed> {
        self.rows.iter().find(|r| r.kind == kind)
    }

    fn direct(&self) -> f64 {
        self.row(Kind::Direct)
            .map(|r| median(&r.times))
            .unwrap_or(f64::NAN)
    }
}

fn time_fixture(
    root: &Path,
    work: &Path,
    floor: &Path,
    fixture: &Fixture,
    effort: Effort,
) -> Result<FixtureTiming> {
    let args = fixture.spec.args;
    let variant = fixture.chosen_variant();
    let line = |program: &Path, extra: &[&str]| {
        let mut words = vec![program.display().to_string()];
        words.extend(extra.iter().map(|s| s.to_string()));
        words.extend(args.iter().map(|s| s.to_string()));
        words.join(" ")
    };

    // Groups share one environment (hyperfine cannot set it per command): one per launch path.
    struct Group {
        env: &'static str,
        commands: Vec<(String, Kind, String)>,
    }
    let mut groups = Vec::new();
    let mut taken = BTreeMap::new();
    for &path in PATHS {
        let mut commands = vec![("direct".to_string(), Kind::Direct, line(variant, &[]))];
        if path == "memfd" {
            commands.push((
                "floor".to_string(),
                Kind::Floor,
                line(floor, &[&variant.display().to_string()]),
            ));
        }
        for packed in &fixture.bundles {
            let how = path_taken(root, &packed.path, args, path)?;
            taken.insert((packed.mode, path), how);
            commands.push((
                format!("{} {path}", packed.mode),
                Kind::Bundle(packed.mode),
                line(&packed.path, &[]),
            ));
        }
        groups.push(Group {
            env: path,
            commands,
        });
    }
    // The launcher's own work without the copy: choosing, mapping and hashing the variant, then
    // writing it to /dev/null (where a write costs nothing).
    if let Some(stored) = fixture.bundle("stored") {
        groups.push(Group {
            env: "extract",
            commands: vec![(
                "stored extract".to_string(),
                Kind::Extract,
                line(&stored.path, &[]),
            )],
        });
    }

    let mut pooled: BTreeMap<String, (Kind, Vec<f64>, Vec<f64>)> = BTreeMap::new();
    let mut example_commands = Vec::new();
    let json = work.join("hyperfine.json");
    for round in 0..effort.rounds {
        example_commands.clear();
        for group in &groups {
            let mut cmd = bench_env(tool("hyperfine"));
            cmd.current_dir(root)
                .env("MGODEBUG", group.env)
                .args(["-N", "--style", "none"])
                .args(["--warmup", &effort.warmup.to_string()])
                .args(["--runs", &effort.runs.to_string()])
                .arg("--export-json")
                .arg(&json);
            let mut shown = format!(
                "MGODEBUG={} hyperfine -N --warmup {} --runs {} --export-json OUT.json",
                group.env, effort.warmup, effort.runs
            );
            for (label, _, command) in &group.commands {
                let name = format!("{label}/{}", group.env);
                cmd.args(["-n", &name, command]);
                write!(shown, " -n '{name}' '{command}'").unwrap();
            }
            example_commands.push(shown);
            let out = cmd
                .stdout(Stdio::null())
                .output()
                .context("running hyperfine")?;
            if !out.status.success() {
                bail!(
                    "hyperfine failed (round {round}, {}): {}",
                    fixture.spec.name,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let data: serde_json::Value = serde_json::from_slice(&std::fs::read(&json)?)?;
            for result in data["results"].as_array().context("hyperfine JSON")? {
                let name = result["command"].as_str().context("hyperfine JSON")?;
                let (label, _) = name.rsplit_once('/').context("hyperfine JSON")?;
                let kind = group
                    .commands
                    .iter()
                    .find(|(l, _, _)| l == label)
                    .map(|c| c.1)
                    .context("hyperfine JSON")?;
                // Direct runs ignore MGODEBUG: all groups' samples are one population.
                let times = result["times"].as_array().context("hyperfine JSON")?;
                let cpu = result["user"].as_f64().unwrap_or(f64::NAN)
                    + result["system"].as_f64().unwrap_or(f64::NAN);
                let entry =
                    pooled
                        .entry(label.to_string())
                        .or_insert((kind, Vec::new(), Vec::new()));
                entry.1.extend(times.iter().filter_map(|t| t.as_f64()));
                entry.2.push(cpu);
            }
        }
    }
    let mut rows: Vec<Timed> = pooled
        .into_iter()
        .map(|(label, (kind, times, cpu))| {
            let path = match kind {
                Kind::Bundle(mode) => label
                    .rsplit_once(' ')
                    .and_then(|(_, p)| taken.get(&(mode, p)).cloned()),
                _ => None,
            };
            Timed {
                label,
                kind,
                path,
                times,
                cpu: cpu.iter().sum::<f64>() / cpu.len() as f64,
            }
        })
        .collect();
    rows.sort_by_key(|r| match r.kind {
        Kind::Direct => (0, 0, String::new()),
        Kind::Floor => (1, 0, String::new()),
        Kind::Extract => (3, 0, String::new()),
        Kind::Bundle(mode) => (
            2,
            MODES.iter().position(|m| *m == mode).unwrap_or(99),
            r.label.clone(),
        ),
    });
    Ok(FixtureTiming {
        rows,
        example_commands,
    })
}

/// `--nice`: set once, read wherever a measuring tool is started.
static NICE: std::sync::OnceLock<Option<i32>> = std::sync::OnceLock::new();

/// A measuring tool (hyperfine, perf, the maxrss helper), under `nice` when asked.
fn tool(program: impl AsRef<std::ffi::OsStr>) -> Command {
    match NICE.get().copied().flatten() {
        Some(n) => {
            let mut cmd = Command::new("nice");
            cmd.arg("-n").arg(n.to_string()).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// The environment every measured program gets: small and the same for all commands.
fn bench_env(mut cmd: Command) -> Command {
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env(
            "HOME",
            std::env::var_os("HOME").unwrap_or_else(|| "/root".into()),
        )
        .env("LANG", "C.UTF-8");
    cmd
}

// ---------------------------------------------------------------------------------------------
// The direct path's own cost, run by run

/// Percentiles (10th, 25th, 50th) of one program's wall time, in microseconds.
type Percentiles = [f64; 3];

struct Overhead {
    /// The variant run directly, then the stored bundle on the direct path.
    variant: Percentiles,
    bundle: Percentiles,
    /// The same pair with `GOAMD64` set to the chosen level: the launcher then skips CPU
    /// detection, which separates the CPUID instructions' cost from the rest.
    variant_forced: Percentiles,
    bundle_forced: Percentiles,
    runs: usize,
}

/// Runs the chosen variant and the stored bundle (`MGODEBUG=direct`) alternately through
/// `bench/spawnloop.c`, plain and with the level forced.
fn direct_overhead(root: &Path, fixture: &Fixture, effort: Effort) -> Result<Overhead> {
    let stored = fixture.bundle("stored").context("no stored bundle")?;
    let runs = effort.rounds * effort.runs * 5;
    let measure = |forced: bool| -> Result<[Percentiles; 2]> {
        let mut cmd = bench_env(tool(root.join("target/bench/bin/spawnloop")));
        cmd.current_dir(root)
            .arg(runs.to_string())
            .arg(fixture.chosen_variant())
            .arg(&stored.path)
            .args(fixture.spec.args)
            .env("MGODEBUG", "direct")
            .stdin(Stdio::null());
        if forced {
            cmd.env("GOAMD64", format!("v{}", fixture.chosen));
        }
        let out = cmd.output().context("running bench/spawnloop")?;
        if !out.status.success() {
            bail!(
                "bench/spawnloop failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut rows = text.lines().map(|line| {
            let v: Vec<f64> = line
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            match v[..] {
                [p10, p25, p50] => Ok([p10, p25, p50]),
                _ => bail!("bench/spawnloop printed {line:?}"),
            }
        });
        let mut next = || rows.next().context("bench/spawnloop printed too little")?;
        Ok([next()?, next()?])
    };
    let [variant, bundle] = measure(false)?;
    let [variant_forced, bundle_forced] = measure(true)?;
    Ok(Overhead {
        variant,
        bundle,
        variant_forced,
        bundle_forced,
        runs,
    })
}

// ---------------------------------------------------------------------------------------------
// Memory

struct MemoryRow {
    label: String,
    /// Median over runs of the peak resident set (kB), which the kernel keeps across the exec.
    max_rss_kb: u64,
}

fn peak_memory(root: &Path, fixture: &Fixture, effort: Effort) -> Result<Vec<MemoryRow>> {
    let args = fixture.spec.args;
    let mut rows = Vec::new();
    let mut measure = |label: String, program: &Path, mgodebug: Option<&str>| -> Result<()> {
        let mut samples = Vec::new();
        for _ in 0..effort.memory_runs {
            let mut cmd = bench_env(tool(root.join("target/bench/bin/maxrss")));
            cmd.current_dir(root)
                .arg(program)
                .args(args)
                .stdin(Stdio::null());
            if let Some(value) = mgodebug {
                cmd.env("MGODEBUG", value);
            }
            let out = cmd.output().context("running bench/maxrss")?;
            if !out.status.success() {
                bail!("{} failed under maxrss ({})", program.display(), out.status);
            }
            let kb: u64 = String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .context("maxrss output")?;
            samples.push(kb as f64);
        }
        rows.push(MemoryRow {
            label,
            max_rss_kb: median(&samples) as u64,
        });
        Ok(())
    };
    measure("direct".into(), fixture.chosen_variant(), None)?;
    for packed in &fixture.bundles {
        for &path in PATHS {
            measure(format!("{} {path}", packed.mode), &packed.path, Some(path))?;
        }
    }
    Ok(rows)
}

struct InstanceRow {
    label: String,
    /// Growth of the system's Shmem per running instance (kB).
    shmem_kb: i64,
    rss_anon_kb: u64,
    rss_file_kb: u64,
    rss_shmem_kb: u64,
    pss_kb: u64,
}

/// Keeps several sleeping probe instances alive and reads what each costs the system.
fn instance_memory(root: &Path, probe: &Fixture, effort: Effort) -> Result<Vec<InstanceRow>> {
    let mut rows = Vec::new();
    let mut configs: Vec<(String, PathBuf, Option<&str>)> =
        vec![("direct".into(), probe.chosen_variant().to_path_buf(), None)];
    for packed in &probe.bundles {
        for &path in PATHS {
            configs.push((
                format!("{} {path}", packed.mode),
                packed.path.clone(),
                Some(path),
            ));
        }
    }
    for (label, program, mgodebug) in configs {
        let before = meminfo_kb("Shmem")?;
        let mut children = Vec::new();
        for _ in 0..effort.instances {
            let mut cmd = bench_env(Command::new(root.join(&program)));
            cmd.current_dir(root)
                .env("PROBE_SLEEP_MS", "20000")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            if let Some(value) = mgodebug {
                cmd.env("MGODEBUG", value);
            }
            let mut child = cmd.spawn()?;
            // The probe prints its whole report, then sleeps: its last line means it is settled.
            let mut reader = BufReader::new(child.stdout.take().context("probe stdout")?);
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 {
                    bail!("the probe ended before sleeping ({label})");
                }
                if line.starts_with("fd_targets=") {
                    break;
                }
            }
            children.push((child, reader));
        }
        std::thread::sleep(Duration::from_millis(100));
        let during = meminfo_kb("Shmem")?;
        let pid = children[0].0.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
        for (mut child, _) in children {
            let _ = child.kill();
            let _ = child.wait();
        }
        rows.push(InstanceRow {
            label,
            shmem_kb: (during as i64 - before as i64) / effort.instances as i64,
            rss_anon_kb: field_kb(&status, "RssAnon:").unwrap_or(0),
            rss_file_kb: field_kb(&status, "RssFile:").unwrap_or(0),
            rss_shmem_kb: field_kb(&status, "RssShmem:").unwrap_or(0),
            pss_kb: field_kb(&rollup, "Pss:").unwrap_or(0),
        });
    }
    Ok(rows)
}

fn meminfo_kb(key: &str) -> Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    field_kb(&text, &format!("{key}:")).with_context(|| format!("no {key} in /proc/meminfo"))
}

fn field_kb(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

// ---------------------------------------------------------------------------------------------
// Decoding

struct DecodeRow {
    fixture: &'static str,
    mode: &'static str,
    encoding: Encoding,
    original_len: u64,
    /// Launcher decode rate (MB/s): extract of this mode minus extract of the stored bundle.
    launcher_mbps: f64,
    /// libzstd (the `zstd` command) on the same frame, its fixed start-up cost removed.
    libzstd_mbps: Option<f64>,
}

struct DecodeResult {
    rows: Vec<DecodeRow>,
    note: Option<String>,
    commands: Vec<String>,
}

fn decode_throughput(
    root: &Path,
    work: &Path,
    fixtures: &[Fixture],
    effort: Effort,
) -> Result<DecodeResult> {
    let mut result = DecodeResult {
        rows: Vec::new(),
        note: None,
        commands: Vec::new(),
    };
    // A large program shows decoding best (start-up costs drown it on small ones): cmd/go, the
    // targets' program, or else the largest fixture.
    let compressed = |f: &&Fixture| f.bundles.iter().any(|b| b.encoding != Encoding::Stored);
    let Some(fixture) = fixtures
        .iter()
        .filter(compressed)
        .find(|f| f.spec.name == "cmd-go")
        .or_else(|| {
            fixtures
                .iter()
                .filter(compressed)
                .max_by_key(|f| f.bundle("stored").map_or(0, |b| b.original_len))
        })
    else {
        result.note = Some(
            "not measured: no compressed bundle was packed (the packer does not support \
             MGO_COMPRESS yet, or no compressed mode was selected)"
                .into(),
        );
        return Ok(result);
    };
    let Some(stored) = fixture.bundle("stored") else {
        result.note = Some("not measured: needs the stored bundle as the baseline".into());
        return Ok(result);
    };
    let level = format!("v{}", fixture.chosen);
    let zstd = which("zstd").is_some();
    let json = work.join("hyperfine-decode.json");
    let mut commands: Vec<(String, String)> =
        vec![("stored".into(), stored.path.display().to_string())];
    for packed in fixture
        .bundles
        .iter()
        .filter(|b| b.encoding != Encoding::Stored)
    {
        commands.push((packed.mode.into(), packed.path.display().to_string()));
    }
    // libzstd through the zstd command: the frames of the chosen entry, written out; a frame made
    // against another variant as a raw-content dictionary decodes with `--patch-from` that
    // variant, which is the same thing in the command's terms.
    let mut frames = Vec::new();
    if zstd {
        for packed in fixture
            .bundles
            .iter()
            .filter(|b| b.encoding == Encoding::Zstd || b.encoding == Encoding::ZstdDictionary)
        {
            let bytes = std::fs::read(root.join(&packed.path))?;
            let bundle = Bundle::parse_file(&bytes).map_err(|e| anyhow::anyhow!(e.message()))?;
            let entry = bundle
                .entries()
                .find(|e| e.level == fixture.chosen)
                .context("entry")?;
            let frame = work.join(format!("frame.{}", packed.mode));
            std::fs::write(&frame, bundle.stored(&entry))?;
            let mut args = String::new();
            if entry.encoding == Encoding::ZstdDictionary {
                let base = bundle
                    .entry(entry.dictionary as usize)
                    .map_err(|e| anyhow::anyhow!(e.message()))?;
                let dict = &fixture.variants[base.level as usize - 1];
                write!(args, "--patch-from={} ", dict.display()).unwrap();
            }
            frames.push((packed.mode, args, frame));
        }
        let raw = work.join("frame.empty.raw");
        let empty = work.join("frame.empty");
        std::fs::write(&raw, b"")?;
        let status = Command::new("zstd")
            .args(["-q", "-f"])
            .arg(&raw)
            .arg("-o")
            .arg(&empty)
            .status()?;
        if status.success() {
            commands.push((
                "zstd-empty".into(),
                format!("zstd -d -q -c {}", rel(root, &empty)),
            ));
            for (mode, args, frame) in &frames {
                commands.push((
                    format!("zstd-{mode}"),
                    format!("zstd -d -q -c {args}{}", rel(root, frame)),
                ));
            }
        }
    }
    let mut pooled: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for _ in 0..effort.rounds {
        let mut cmd = bench_env(tool("hyperfine"));
        cmd.current_dir(root)
            .env("MGODEBUG", "extract")
            .env("GOAMD64", &level)
            .args(["-N", "--style", "none"])
            .args(["--warmup", &effort.warmup.min(3).to_string()])
            .args(["--runs", &(effort.runs / 2).max(5).to_string()])
            .arg("--export-json")
            .arg(&json);
        let mut shown = format!(
            "MGODEBUG=extract GOAMD64={level} hyperfine -N --runs {} --export-json OUT.json",
            (effort.runs / 2).max(5)
        );
        for (name, command) in &commands {
            cmd.args(["-n", name, command]);
            write!(shown, " -n {name} '{command}'").unwrap();
        }
        result.commands = vec![shown];
        let out = cmd.stdout(Stdio::null()).output()?;
        if !out.status.success() {
            bail!("hyperfine failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let data: serde_json::Value = serde_json::from_slice(&std::fs::read(&json)?)?;
        for r in data["results"].as_array().context("hyperfine JSON")? {
            let name = r["command"].as_str().unwrap_or("").to_string();
            let times = r["times"].as_array().context("hyperfine JSON")?;
            pooled
                .entry(name)
                .or_default()
                .extend(times.iter().filter_map(|t| t.as_f64()));
        }
    }
    let base = median(&pooled["stored"]);
    let zstd_base = pooled.get("zstd-empty").map(|t| median(t));
    for packed in fixture
        .bundles
        .iter()
        .filter(|b| b.encoding != Encoding::Stored)
    {
        let t = median(&pooled[packed.mode]) - base;
        let libzstd = pooled
            .get(&format!("zstd-{}", packed.mode))
            .zip(zstd_base)
            .map(|(times, empty)| packed.original_len as f64 / (median(times) - empty) / 1e6);
        result.rows.push(DecodeRow {
            fixture: fixture.spec.name,
            mode: packed.mode,
            encoding: packed.encoding,
            original_len: packed.original_len,
            launcher_mbps: packed.original_len as f64 / t / 1e6,
            libzstd_mbps: libzstd,
        });
    }
    if !zstd {
        result.note = Some("the `zstd` command is not installed: no libzstd reference".into());
    }
    Ok(result)
}

// ---------------------------------------------------------------------------------------------
// Profile

/// Where a memfd launch spends its time, from `perf record` (software clock, kernel included).
struct Profile {
    command: Option<String>,
    /// Share of all samples taken in the launcher (before its exec) and in the program.
    launcher_share: f64,
    program_share: f64,
    /// The launcher's hottest symbols: share of the launcher's samples, symbol.
    symbols: Vec<(f64, String)>,
    note: Option<String>,
}

fn profile_memfd(root: &Path, work: &Path, fixtures: &[Fixture], effort: Effort) -> Profile {
    let mut profile = Profile {
        command: None,
        launcher_share: 0.0,
        program_share: 0.0,
        symbols: Vec::new(),
        note: None,
    };
    if which("perf").is_none() {
        profile.note = Some("not measured: `perf` is not installed".into());
        return profile;
    }
    // The largest static program shows the copy best.
    let Some((fixture, bundle)) = fixtures
        .iter()
        .filter(|f| !f.dynamic)
        .filter_map(|f| f.bundle("stored").map(|b| (f, b)))
        .max_by_key(|(_, b)| b.original_len)
    else {
        profile.note = Some("not measured: no stored bundle of a static program".into());
        return profile;
    };
    let data = work.join("perf.data");
    let launches = (effort.rounds * effort.runs).max(20);
    let mut line = bundle.path.display().to_string();
    for arg in fixture.spec.args {
        write!(line, " {arg}").unwrap();
    }
    let script = format!("for i in $(seq {launches}); do {line} >/dev/null; done");
    let shown = format!(
        "MGODEBUG=memfd perf record -e cpu-clock -F 10000 -o perf.data -- sh -c '{script}'\n\
         perf report -i perf.data --stdio --no-children --sort comm,sym"
    );
    let recorded = bench_env(tool("perf"))
        .current_dir(root)
        .env("MGODEBUG", "memfd")
        .args(["record", "-q", "-e", "cpu-clock", "-F", "10000", "-o"])
        .arg(&data)
        .args(["--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !recorded.is_ok_and(|s| s.success()) {
        profile.note = Some("not measured: `perf record` failed (perf_event_paranoid?)".into());
        return profile;
    }
    let report = Command::new("perf")
        .args([
            "report",
            "--stdio",
            "--no-children",
            "--sort",
            "comm,sym",
            "-i",
        ])
        .arg(&data)
        .output();
    let Ok(report) = report else {
        profile.note = Some("not measured: `perf report` failed".into());
        return profile;
    };
    // The launcher runs under the bundle's file name; after the exec the program's name is the
    // memfd's (Linux 6.14 and later) or the descriptor number.
    let launcher_comm: String = bundle
        .path
        .file_name()
        .map(|n| n.to_string_lossy().chars().take(15).collect())
        .unwrap_or_default();
    let mut launcher = Vec::new();
    let (mut launcher_total, mut program_total) = (0.0, 0.0);
    for text in String::from_utf8_lossy(&report.stdout).lines() {
        let mut words = text.split_whitespace();
        let (Some(share), Some(comm)) = (words.next(), words.next()) else {
            continue;
        };
        let Some(share) = share.strip_suffix('%').and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        let symbol = words.collect::<Vec<_>>().join(" ");
        if comm == launcher_comm {
            launcher_total += share;
            launcher.push((share, symbol));
        } else if comm != "sh" && comm != "seq" {
            program_total += share;
        }
    }
    // The launcher image is stripped: its own code shows as bare addresses, summed into one line.
    let own: f64 = launcher
        .iter()
        .filter(|(_, symbol)| symbol.starts_with("[.]"))
        .map(|(share, _)| share)
        .sum();
    launcher.retain(|(_, symbol)| !symbol.starts_with("[.]"));
    launcher.push((
        own,
        "[.] the launcher's own code (CPU detection, parsing, hashing)".into(),
    ));
    launcher.sort_by(|a, b| b.0.total_cmp(&a.0));
    profile.symbols = launcher
        .into_iter()
        .take(12)
        .map(|(share, symbol)| (share / launcher_total * 100.0, symbol))
        .collect();
    profile.launcher_share = launcher_total;
    profile.program_share = program_total;
    profile.command = Some(format!(
        "{} ({}, {launches} launches)\n{shown}",
        fixture.spec.name,
        bundle.path.display()
    ));
    let _ = std::fs::remove_file(&data);
    profile
}

// ---------------------------------------------------------------------------------------------
// The machine

struct Machine {
    rows: Vec<(&'static str, String)>,
}

impl Machine {
    fn describe(root: &Path, load_before: String) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_else(|| "?".into());
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let virt = if cpuinfo.contains(" hypervisor") {
            "virtual machine (CPUID hypervisor bit set)"
        } else {
            "no hypervisor bit"
        };
        let os = std::fs::read_to_string("/etc/os-release")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| "?".into());
        let kernel = first_line("uname", &["-sr"]).unwrap_or_default();
        let mem = meminfo_kb("MemTotal").map_or("?".into(), |kb| format!("{} MiB", kb / 1024));
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "?".into())
        };
        let image = root.join("runtime/image/TOOLCHAIN");
        Machine {
            rows: vec![
                ("CPU", format!("{model}, {cores} logical CPUs, {virt}")),
                ("Kernel", kernel),
                ("OS", os),
                ("Memory", mem),
                (
                    "Transparent huge pages (anon / shmem)",
                    format!(
                        "{} / {}",
                        read("/sys/kernel/mm/transparent_hugepage/enabled"),
                        read("/sys/kernel/mm/transparent_hugepage/shmem_enabled")
                    ),
                ),
                ("vm.memfd_noexec", read("/proc/sys/vm/memfd_noexec")),
                ("Go", go_version().unwrap_or_default()),
                ("gcc", first_line("gcc", &["--version"]).unwrap_or_default()),
                (
                    "hyperfine",
                    first_line("hyperfine", &["--version"]).unwrap_or_default(),
                ),
                (
                    "Launcher image built with",
                    read(image.to_str().unwrap_or(""))
                        .lines()
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                ("Load average before (1, 5, 15 min)", load_before),
                ("Load average after", load_average()),
            ],
        }
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn runtime_images(root: &Path) -> Result<Vec<(String, u64)>> {
    let mut images = Vec::new();
    for entry in std::fs::read_dir(root.join("runtime/image"))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".elf") {
            images.push((name, entry.metadata()?.len()));
        }
    }
    images.sort();
    Ok(images)
}

// ---------------------------------------------------------------------------------------------
// The report

struct Report<'a> {
    opts: &'a Opts,
    effort: Effort,
    machine: Machine,
    packer_command: String,
    helper_commands: Vec<String>,
    fixtures: &'a [Fixture],
    timings: &'a [FixtureTiming],
    overhead: &'a [Overhead],
    memory: &'a [Vec<MemoryRow>],
    shmem: Option<&'a Vec<InstanceRow>>,
    decode: &'a DecodeResult,
    profile: &'a Profile,
    unsupported_modes: &'a [&'static str],
    runtime_images: &'a [(String, u64)],
    elapsed: Duration,
}

impl Report<'_> {
    fn render(&self, root: &Path) -> String {
        let mut s = String::new();
        let e = self.effort;
        let samples = e.rounds * e.runs;
        writeln!(s, "# Benchmarks\n").unwrap();
        writeln!(
            s,
            "Written by `cargo xtask bench{}{}` (in {:.0} s); do not edit by hand, run it again. \
             Times are medians of {samples} runs per command ({} interleaved rounds of {}, after \
             {} warm-up runs each), pooled across rounds; the spread column is the middle half \
             of the runs (25th to 75th percentile). Ratios divide a median by the median of the \
             same program run directly.\n",
            if self.opts.quick { " --quick" } else { "" },
            self.opts
                .nice
                .map_or(String::new(), |n| format!(" --nice {n}")),
            self.elapsed.as_secs_f64(),
            e.rounds,
            e.runs,
            e.warmup
        )
        .unwrap();
        if let Some(n) = self.opts.nice {
            writeln!(
                s,
                "hyperfine, perf and the memory helper ran under `nice -n {n}`, ahead of other \
                 work on the machine; the programs they start inherit it.\n"
            )
            .unwrap();
        }
        if self.opts.quick {
            writeln!(
                s,
                "**Quick run**: few samples; the figures are indicative only.\n"
            )
            .unwrap();
        }

        writeln!(s, "## Machine\n\n| | |\n|---|---|").unwrap();
        for (k, v) in &self.machine.rows {
            writeln!(s, "| {k} | {v} |").unwrap();
        }
        writeln!(s).unwrap();

        self.render_targets(&mut s);
        self.render_fixtures(&mut s);
        self.render_startup(&mut s);
        self.render_floor(&mut s);
        self.render_overhead(&mut s);
        self.render_sizes(&mut s);
        self.render_memory(&mut s);
        self.render_profile(&mut s);
        self.render_decode(&mut s);
        self.render_commands(&mut s, root);
        s
    }

    /// The targets the issues set, against this run's figures.
    fn render_targets(&self, s: &mut String) {
        struct Got {
            wall: f64,
            cpu: f64,
            added_wall: f64,
            added_cpu: f64,
            path: String,
        }
        // `mode` "floor" is the floor program rather than a bundle.
        let measure = |fixture: &str, mode: &'static str, path: &str| -> Option<Got> {
            let (_, t) = self
                .fixtures
                .iter()
                .zip(self.timings)
                .find(|(f, _)| f.spec.name == fixture)?;
            let direct = t.row(Kind::Direct)?;
            let row = t.rows.iter().find(|r| match mode {
                "floor" => r.kind == Kind::Floor,
                _ => r.kind == Kind::Bundle(mode) && r.label.ends_with(&format!(" {path}")),
            })?;
            let (m, d) = (median(&row.times), median(&direct.times));
            Some(Got {
                wall: m / d,
                cpu: row.cpu / direct.cpu,
                added_wall: m - d,
                added_cpu: row.cpu - direct.cpu,
                path: row.path.clone().unwrap_or_default(),
            })
        };
        let size = |fixture: &str, mode: &str| -> Option<f64> {
            let f = self.fixtures.iter().find(|f| f.spec.name == fixture)?;
            let one = std::fs::metadata(workspace_root().join(&f.variants[0]))
                .ok()?
                .len();
            Some(f.bundle(mode)?.size as f64 / one as f64)
        };
        let mut wanted: Vec<(String, &str, &'static str, &str, f64)> = vec![
            ("memfd path, hello".into(), "hello", "stored", "memfd", 1.8),
            (
                "(the copy alone: floor, hello)".into(),
                "hello",
                "floor",
                "",
                1.8,
            ),
            (
                "(the copy alone: floor, cmd/go)".into(),
                "cmd-go",
                "floor",
                "",
                2.4,
            ),
            (
                "memfd path, cmd/go".into(),
                "cmd-go",
                "stored",
                "memfd",
                2.4,
            ),
        ];
        for f in self.fixtures {
            wanted.push((
                format!("direct path, {}", f.spec.name),
                f.spec.name,
                "stored",
                "direct",
                1.05,
            ));
        }
        for (mode, limit) in [("z19", 8.0), ("Z19", 8.0), ("g9", 12.0)] {
            for path in ["direct", "memfd"] {
                wanted.push((
                    format!("{mode}, cmd/go, {path} path"),
                    "cmd-go",
                    mode,
                    path,
                    limit,
                ));
            }
        }

        writeln!(s, "## Targets\n").unwrap();
        writeln!(
            s,
            "Start-up: the bundle's median against the variant run directly (wall clock, as the \
             targets are stated), with the same ratio in CPU time (user + system, which other \
             load on the machine disturbs less) and the time the bundle adds. Each compressed mode \
             is measured on both paths: the direct path decodes the frames straight into the \
             program's segments, the memfd path (the default) decodes the whole variant into a \
             memfd and execs it; \"path taken\" is what the launcher reported. The memfd \
             path's own floor, the copy alone, is in its section below.\n"
        )
        .unwrap();
        writeln!(
            s,
            "| start-up | at most | wall | met | CPU | added (wall / CPU) | path taken |"
        )
        .unwrap();
        writeln!(s, "|---|---:|---:|---|---:|---:|---|").unwrap();
        for (what, fixture, mode, path, limit) in wanted {
            match measure(fixture, mode, path) {
                Some(g) => writeln!(
                    s,
                    "| {what} | {limit:.2}x | {:.2}x | {} | {:.2}x | {} / {} | {} |",
                    g.wall,
                    if g.wall <= limit { "yes" } else { "**no**" },
                    g.cpu,
                    ms_signed(g.added_wall),
                    ms_signed(g.added_cpu),
                    g.path
                )
                .unwrap(),
                None => writeln!(s, "| {what} | {limit:.2}x | not measured | | | | |").unwrap(),
            }
        }
        writeln!(s, "\n| size, four variants | at most | measured | met |").unwrap();
        writeln!(s, "|---|---:|---:|---|").unwrap();
        for (what, fixture, mode, limit) in [
            ("Z19, cmd/go, against one build", "cmd-go", "Z19", 1.45),
            ("Z19, probe, against one build", "probe", "Z19", 2.0),
        ] {
            match size(fixture, mode) {
                Some(g) => writeln!(
                    s,
                    "| {what} | {limit:.2}x | {g:.2}x | {} |",
                    if g <= limit { "yes" } else { "**no**" }
                )
                .unwrap(),
                None => writeln!(s, "| {what} | {limit:.2}x | not measured | |").unwrap(),
            }
        }
        writeln!(s).unwrap();
    }

    fn render_fixtures(&self, s: &mut String) {
        writeln!(s, "## Fixtures\n").unwrap();
        writeln!(
            s,
            "Each fixture is built for GOAMD64 (or `-march`) v1 to v4 and the four builds are \
             packed into one bundle per encoding mode. The launcher picks the variant for this \
             CPU; \"direct\" is that same variant run directly.\n"
        )
        .unwrap();
        writeln!(
            s,
            "| fixture | what | linkage | variant run here | its size |"
        )
        .unwrap();
        writeln!(s, "|---|---|---|---|---:|").unwrap();
        for f in self.fixtures {
            let size =
                std::fs::metadata(workspace_root().join(f.chosen_variant())).map_or(0, |m| m.len());
            writeln!(
                s,
                "| {} | {} | {} | v{} | {} |",
                f.spec.name,
                f.spec.what,
                if f.dynamic {
                    "dynamic (PT_INTERP)"
                } else {
                    "static"
                },
                f.chosen,
                bytes(size)
            )
            .unwrap();
        }
        if !self.unsupported_modes.is_empty() {
            writeln!(
                s,
                "\nModes not measured because this packer does not honour them (MGO_COMPRESS \
                 ignored or refused): {}.",
                self.unsupported_modes.join(", ")
            )
            .unwrap();
        }
        writeln!(s).unwrap();
    }

    fn render_startup(&self, s: &mut String) {
        writeln!(s, "## Start-up time\n").unwrap();
        writeln!(
            s,
            "Each bundle is run with the run-time override `MGODEBUG=memfd` and then \
             `MGODEBUG=direct`; \"path taken\" is what the launcher reported under \
             `MGODEBUG=log` (a payload the direct path cannot take goes through the memfd; \
             compressed ones are decoded into their segments). The CPU columns are hyperfine's mean \
             user + system time per run, which other load on the machine disturbs less than the \
             wall-clock median.\n"
        )
        .unwrap();
        for (f, t) in self.fixtures.iter().zip(self.timings) {
            let direct = t.direct();
            writeln!(
                s,
                "### {} (`{}`)\n",
                f.spec.name,
                std::iter::once(f.chosen_variant().display().to_string())
                    .chain(f.spec.args.iter().map(|a| a.to_string()))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
            .unwrap();
            writeln!(
                s,
                "| command | path taken | median | spread | ratio to direct | CPU (user+sys) | CPU ratio |"
            )
            .unwrap();
            writeln!(s, "|---|---|---:|---:|---:|---:|---:|").unwrap();
            let direct_cpu = t.row(Kind::Direct).map_or(f64::NAN, |r| r.cpu);
            for row in &t.rows {
                let m = median(&row.times);
                let label = match row.kind {
                    Kind::Direct => "variant run directly".to_string(),
                    Kind::Floor => "floor: copy into a memfd + exec (`bench/floor.c`)".to_string(),
                    Kind::Bundle(_) => format!("bundle, {}", row.label.replace(' ', ", MGODEBUG=")),
                    Kind::Extract => {
                        "bundle, stored, MGODEBUG=extract to /dev/null (no copy, no exec)"
                            .to_string()
                    }
                };
                writeln!(
                    s,
                    "| {label} | {} | {} | {} | {:.2}x | {} | {:.2}x |",
                    row.path.as_deref().unwrap_or(""),
                    ms(m),
                    spread(&row.times),
                    m / direct,
                    ms(row.cpu),
                    row.cpu / direct_cpu
                )
                .unwrap();
            }
            writeln!(s).unwrap();
        }
    }

    fn render_floor(&self, s: &mut String) {
        writeln!(s, "## The memfd path against its floor\n").unwrap();
        writeln!(
            s,
            "The floor is `bench/floor.c`: open the variant, `memfd_create`, `write` it from a \
             mapping, `execveat`; no libc, no bundle, no CPU detection, no hash. It is the least \
             any launcher that copies into a memfd can cost. \"Above the floor\" is what the \
             launcher adds to it (stored bundles, `MGODEBUG=memfd`). \"Without the copy\" is the \
             launcher doing everything but the copy and the exec (`MGODEBUG=extract` to \
             /dev/null: find and map the bundle, detect the CPU, hash the variant), which bounds \
             the launcher's own share. Each cell is the median and its ratio to the direct run; \
             the CPU columns use hyperfine's mean user + system time instead.\n"
        )
        .unwrap();
        writeln!(
            s,
            "| fixture | variant | direct | floor | launcher, memfd | above the floor | without the copy | CPU: floor | CPU: launcher |"
        )
        .unwrap();
        writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|").unwrap();
        for (f, t) in self.fixtures.iter().zip(self.timings) {
            let direct = t.row(Kind::Direct);
            let floor = t.row(Kind::Floor);
            let launcher = t
                .rows
                .iter()
                .find(|r| r.kind == Kind::Bundle("stored") && r.label.ends_with("memfd"));
            let (Some(direct), Some(floor), Some(launcher)) = (direct, floor, launcher) else {
                continue;
            };
            let (d, fl, l) = (
                median(&direct.times),
                median(&floor.times),
                median(&launcher.times),
            );
            let cell = |x: f64| format!("{} ({:.2}x)", ms(x), x / d);
            let cpu = |x: f64| format!("{} ({:.2}x)", ms(x), x / direct.cpu);
            let extract = t
                .row(Kind::Extract)
                .map_or(String::new(), |r| ms(median(&r.times)));
            writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} ({:+.0}%) | {extract} | {} | {} |",
                f.spec.name,
                bytes(f.bundle("stored").map_or(0, |b| b.original_len)),
                ms(d),
                cell(fl),
                cell(l),
                ms_signed(l - fl),
                (l / fl - 1.0) * 100.0,
                cpu(floor.cpu),
                cpu(launcher.cpu),
            )
            .unwrap();
        }
        writeln!(s).unwrap();
    }

    fn render_overhead(&self, s: &mut String) {
        let Some(runs) = self.overhead.first().map(|o| o.runs) else {
            return;
        };
        writeln!(
            s,
            "## The direct path's own cost
"
        )
        .unwrap();
        writeln!(
            s,
            "What the launcher adds on the direct path is tens of microseconds, less than the \
             medians above move between runs on a shared machine. `bench/spawnloop.c` measures \
             it finely: it runs the variant and the stored bundle (`MGODEBUG=direct`) \
             alternately, {runs} times each, and reports percentiles of each one's time from \
             spawn to exit; the 10th percentile is the runs nothing else disturbed. The second \
             pair of columns repeats it with `GOAMD64` set to the level the launcher picks, \
             which makes it skip CPU detection: the difference between the two is what the \
             CPUID instructions cost (each one traps to the hypervisor in a virtual machine).\n"
        )
        .unwrap();
        writeln!(
            s,
            "| fixture | variant, p10 / median | bundle, p10 / median | added at p10 | added, level forced (no CPUID) |"
        )
        .unwrap();
        writeln!(s, "|---|---:|---:|---:|---:|").unwrap();
        for (f, o) in self.fixtures.iter().zip(self.overhead) {
            let added = |bundle: &Percentiles, variant: &Percentiles| {
                let us = bundle[0] - variant[0];
                format!("{us:+.0} µs ({:+.1} %)", 100.0 * us / variant[0])
            };
            writeln!(
                s,
                "| {} | {:.0} / {:.0} µs | {:.0} / {:.0} µs | {} | {} |",
                f.spec.name,
                o.variant[0],
                o.variant[2],
                o.bundle[0],
                o.bundle[2],
                added(&o.bundle, &o.variant),
                added(&o.bundle_forced, &o.variant_forced)
            )
            .unwrap();
        }
        writeln!(s).unwrap();
    }

    fn render_sizes(&self, s: &mut String) {
        writeln!(s, "## Sizes\n").unwrap();
        let images: Vec<String> = self
            .runtime_images
            .iter()
            .map(|(name, len)| format!("`runtime/image/{name}` {}", bytes(*len)))
            .collect();
        writeln!(s, "Runtime image: {}.\n", images.join(", ")).unwrap();
        writeln!(
            s,
            "| fixture | mode | bundle | ratio to the v1 build | ratio to the four builds |"
        )
        .unwrap();
        writeln!(s, "|---|---|---:|---:|---:|").unwrap();
        for f in self.fixtures {
            let root = workspace_root();
            let sizes: Vec<u64> = f
                .variants
                .iter()
                .map(|p| std::fs::metadata(root.join(p)).map_or(0, |m| m.len()))
                .collect();
            let sum: u64 = sizes.iter().sum();
            for b in &f.bundles {
                writeln!(
                    s,
                    "| {} | {} | {} | {:.2}x | {:.2}x |",
                    f.spec.name,
                    b.mode,
                    bytes(b.size),
                    b.size as f64 / sizes[0] as f64,
                    b.size as f64 / sum as f64
                )
                .unwrap();
            }
        }
        writeln!(s).unwrap();
    }

    fn render_memory(&self, s: &mut String) {
        writeln!(s, "## Memory\n").unwrap();
        writeln!(
            s,
            "Peak resident set (`ru_maxrss` from `wait4`, read by `bench/maxrss.c`, median of {} \
             runs). The kernel keeps the peak across exec, so a bundle's figure covers the \
             launcher's own work too.\n",
            self.effort.memory_runs
        )
        .unwrap();
        let mut columns: Vec<String> = Vec::new();
        for rows in self.memory {
            for r in rows {
                if !columns.contains(&r.label) {
                    columns.push(r.label.clone());
                }
            }
        }
        write!(s, "| fixture |").unwrap();
        for c in &columns {
            write!(s, " {} |", c.replace(' ', ", ")).unwrap();
        }
        writeln!(s).unwrap();
        write!(s, "|---|").unwrap();
        for _ in &columns {
            write!(s, "---:|").unwrap();
        }
        writeln!(s).unwrap();
        for (f, rows) in self.fixtures.iter().zip(self.memory) {
            write!(s, "| {} |", f.spec.name).unwrap();
            for c in &columns {
                match rows.iter().find(|r| &r.label == c) {
                    Some(r) => write!(s, " {} |", kib(r.max_rss_kb)).unwrap(),
                    None => write!(s, " |").unwrap(),
                }
            }
            writeln!(s).unwrap();
        }
        writeln!(s).unwrap();
        if let Some(rows) = self.shmem {
            writeln!(
                s,
                "### Per running instance (the probe, sleeping)\n\n{} instances of the probe run \
                 at once with `PROBE_SLEEP_MS`; \"Shmem\" is the growth of `Shmem` in \
                 `/proc/meminfo` per instance (memory no other instance shares, held until the \
                 program exits); the other columns are one instance's `/proc/PID/status` and \
                 `smaps_rollup`.\n",
                self.effort.instances
            )
            .unwrap();
            writeln!(s, "| run | Shmem | RssAnon | RssFile | RssShmem | Pss |").unwrap();
            writeln!(s, "|---|---:|---:|---:|---:|---:|").unwrap();
            for r in rows {
                writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} |",
                    r.label.replace(' ', ", MGODEBUG="),
                    kib(r.shmem_kb.max(0) as u64),
                    kib(r.rss_anon_kb),
                    kib(r.rss_file_kb),
                    kib(r.rss_shmem_kb),
                    kib(r.pss_kb)
                )
                .unwrap();
            }
            writeln!(s).unwrap();
        }
    }

    fn render_profile(&self, s: &mut String) {
        writeln!(s, "## Where the memfd path's time goes\n").unwrap();
        let p = self.profile;
        if let Some(note) = &p.note {
            writeln!(s, "{note}.\n").unwrap();
        }
        let Some(command) = &p.command else {
            return;
        };
        writeln!(
            s,
            "`perf record` (software clock, kernel included) over launches of the stored bundle \
             of the largest static fixture with `MGODEBUG=memfd`. Of all samples, {:.0}% are in \
             the launcher (before its exec, including the kernel's work for its system calls \
             and page faults) and {:.0}% in the program. The launcher's hottest symbols, as \
             shares of the launcher's samples (`[k]` kernel, `[.]` user space, that is the \
             launcher's own code: CPU detection, parsing, hashing):\n",
            p.launcher_share, p.program_share
        )
        .unwrap();
        writeln!(s, "| share | symbol |\n|---:|---|").unwrap();
        for (share, symbol) in &p.symbols {
            writeln!(s, "| {share:.1}% | {symbol} |").unwrap();
        }
        writeln!(s, "\n```sh\n# {command}\n```\n").unwrap();
    }

    fn render_decode(&self, s: &mut String) {
        writeln!(s, "## Decode throughput\n").unwrap();
        if let Some(note) = &self.decode.note {
            writeln!(s, "{note}.\n").unwrap();
        }
        if self.decode.rows.is_empty() {
            return;
        }
        writeln!(
            s,
            "The launcher's rate is the variant's size over the difference between \
             `MGODEBUG=extract` (to /dev/null) of the compressed bundle and of the stored one; \
             libzstd's is the `zstd -d` command (one thread) on the very same frames (with \
             `--patch-from` the dictionary variant for a dictionary mode), less the time it \
             takes on an empty frame. The launcher may decode independent frames on several \
             threads.\n"
        )
        .unwrap();
        writeln!(
            s,
            "| fixture | mode | encoding | size | launcher | libzstd | launcher / libzstd |"
        )
        .unwrap();
        writeln!(s, "|---|---|---|---:|---:|---:|---:|").unwrap();
        for r in &self.decode.rows {
            let (lz, ratio) = match r.libzstd_mbps {
                Some(z) => (
                    format!("{z:.0} MB/s"),
                    format!("{:.2}", r.launcher_mbps / z),
                ),
                None => (String::new(), String::new()),
            };
            writeln!(
                s,
                "| {} | {} | {} | {} | {:.0} MB/s | {lz} | {ratio} |",
                r.fixture,
                r.mode,
                r.encoding.name(),
                bytes(r.original_len),
                r.launcher_mbps
            )
            .unwrap();
        }
        writeln!(s).unwrap();
    }

    fn render_commands(&self, s: &mut String, root: &Path) {
        let _ = root;
        writeln!(s, "## Exact commands\n").unwrap();
        writeln!(s, "Run from the workspace root.\n\n```sh").unwrap();
        writeln!(s, "{}", self.packer_command).unwrap();
        for c in &self.helper_commands {
            writeln!(s, "{c}").unwrap();
        }
        let go_env = "GOOS=linux GOARCH=amd64 GOFLAGS='-mod=mod -modcacherw' GOPROXY=off \
                      GOWORK=off GOENV=off GOTOOLCHAIN=local GOCACHE=target/bench/gocache";
        writeln!(s, "# Go builds also set: {go_env}").unwrap();
        for f in self.fixtures {
            writeln!(s, "# {}: for N in 1 2 3 4", f.spec.name).unwrap();
            writeln!(
                s,
                "{}",
                f.build_command
                    .replace("OUT", &format!("target/bench/bin/{}-vN", f.spec.name))
            )
            .unwrap();
        }
        for f in self.fixtures {
            for b in &f.bundles {
                let inputs: Vec<String> = LEVELS
                    .iter()
                    .zip(&f.variants)
                    .map(|(l, p)| format!("{l}={}", p.display()))
                    .collect();
                let env = if b.mode == "stored" {
                    String::new()
                } else {
                    format!("MGO_COMPRESS={} ", b.mode)
                };
                writeln!(
                    s,
                    "{env}target/release/mgo-pack -o {} {}",
                    b.path.display(),
                    inputs.join(" ")
                )
                .unwrap();
            }
        }
        writeln!(
            s,
            "# timing, per fixture and round (environment: PATH, HOME, LANG=C.UTF-8 and MGODEBUG):"
        )
        .unwrap();
        for t in self.timings {
            for c in &t.example_commands {
                writeln!(s, "{c}").unwrap();
            }
        }
        for c in &self.decode.commands {
            writeln!(s, "{c}").unwrap();
        }
        writeln!(s, "```").unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn median(times: &[f64]) -> f64 {
    percentile(times, 0.5)
}

fn percentile(times: &[f64], q: f64) -> f64 {
    if times.is_empty() {
        return f64::NAN;
    }
    let mut sorted = times.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let at = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo as f64)
}

fn spread(times: &[f64]) -> String {
    format!(
        "{:.2}–{:.2}",
        percentile(times, 0.25) * 1e3,
        percentile(times, 0.75) * 1e3
    )
}

fn ms(seconds: f64) -> String {
    format!("{:.2} ms", seconds * 1e3)
}

fn ms_signed(seconds: f64) -> String {
    format!("{:+.2} ms", seconds * 1e3)
}

fn bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1 << 20) as f64)
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

fn kib(kb: u64) -> String {
    if kb >= 10 * 1024 {
        format!("{:.1} MiB", kb as f64 / 1024.0)
    } else {
        format!("{kb} KiB")
    }
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(tool))
            .find(|p| p.is_file())
    })
}

fn go_version() -> Result<String> {
    first_line("go", &["version"])
}

fn first_line(tool: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .with_context(|| format!("running {tool}"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string())
}

fn run_ok(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("{what}: running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {cmd:?}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// FNV-1a over names and contents: a stable key for the build stamps.
fn hash_files(paths: &[PathBuf]) -> Result<u64> {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for path in paths {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let name = path.file_name().map_or(&b""[..], |n| n.as_encoded_bytes());
        for &b in name.iter().chain([0u8].iter()).chain(&data) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    Ok(hash)
}
