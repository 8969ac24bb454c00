//! The cache launch path beside the other ways to start the same build (issue 14): for each
//! fixture and mode, one hyperfine invocation times the build run directly, the two floors (one
//! extra exec, `bench/execfloor.c`; the copy into a memfd, `bench/floor.c`), the memfd path, and
//! the cache path warm (its entry made by an earlier start) and on a first start (the cache
//! emptied by hyperfine's `--prepare` before each run), so that all share the machine's
//! conditions.
//!
//! The cache path's bundles are packed with `--launch cache` beside the default ones (a bundle
//! cannot be told per command which path to take: hyperfine gives all commands one environment),
//! and their cache lives in `target/bench/cache-home`, the measured programs' `XDG_CACHE_HOME`.

use super::*;

/// The section's heading: `--only cache` replaces the section it starts.
pub(super) const HEADING: &str = "## The cache path against its floors";
/// Where `--only cache` puts the section when the report has none yet: before the first of these.
pub(super) const BEFORE: &[&str] = &["## The direct path's own cost\n", "## Exact commands\n"];
/// The fixtures issue 14 states the targets on.
pub(super) const MEASURED: &[&str] = &["hello", "cmd-go"];
/// Issue 14's targets: a warm start within 10% of one extra exec, and a first start at most the
/// memfd path's cost plus 10%.
const WARM_OVER_EXEC_FLOOR: f64 = 1.10;
const FIRST_OVER_MEMFD: f64 = 1.10;
/// The cache's base directory, relative to the root (the programs get it absolute: the launcher
/// ignores a relative `XDG_CACHE_HOME`, as the XDG specification says).
const CACHE_HOME: &str = "target/bench/cache-home";

/// This section's sampling: as many runs as the others', in rounds four times as many and a
/// quarter as long. Its targets are ratios of a few percent, timed on a machine whose speed
/// drifts over seconds; shorter rounds put a warm start and its floor closer together in time,
/// so that a drift falls on both alike.
fn interleaved(effort: Effort) -> Effort {
    Effort {
        rounds: effort.rounds * 4,
        runs: (effort.runs / 4).max(1),
        warmup: effort.warmup.min(1),
        ..effort
    }
}

/// One way of starting the build, a row of the section.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    Direct,
    CopyFloor,
    ExecFloor,
    Memfd,
    Warm,
    First,
}

impl Start {
    const ALL: [Start; 6] = [
        Start::Direct,
        Start::ExecFloor,
        Start::CopyFloor,
        Start::Memfd,
        Start::Warm,
        Start::First,
    ];

    /// Its hyperfine `-n` name.
    fn name(self) -> &'static str {
        match self {
            Start::Direct => "direct",
            Start::CopyFloor => "copy-floor",
            Start::ExecFloor => "exec-floor",
            Start::Memfd => "memfd",
            Start::Warm => "cache-warm",
            Start::First => "cache-first",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Start::Direct => "build run directly",
            Start::ExecFloor => "exec floor: one extra exec (`bench/execfloor.c`)",
            Start::CopyFloor => "copy floor: copy into a memfd + exec (`bench/floor.c`)",
            Start::Memfd => "bundle, memfd path (the default)",
            Start::Warm => "bundle, `--launch cache`, warm (entry made before)",
            Start::First => "bundle, `--launch cache`, first start (cache emptied before each run)",
        }
    }
}

/// One start's pooled runs.
pub(super) struct Row {
    pub(super) start: Start,
    pub(super) times: Vec<f64>,
    /// hyperfine's mean user + system time, one per round.
    pub(super) cpu: Vec<f64>,
    /// What the launcher reported under `MGODEBUG=log` (bundles only).
    pub(super) taken: String,
}

impl Row {
    fn median(&self) -> f64 {
        median(&self.times)
    }

    fn cpu(&self) -> f64 {
        self.cpu.iter().sum::<f64>() / self.cpu.len() as f64
    }
}

/// One fixture in one mode.
pub(super) struct ModeTiming {
    pub(super) fixture: &'static str,
    pub(super) mode: &'static str,
    /// The build run here, and the arguments of every run, as the report shows them.
    pub(super) command: String,
    pub(super) rows: Vec<Row>,
}

impl ModeTiming {
    fn row(&self, start: Start) -> Option<&Row> {
        self.rows.iter().find(|r| r.start == start)
    }

    /// `a / b` of two rows' medians.
    fn ratio(&self, a: Start, b: Start) -> f64 {
        match (self.row(a), self.row(b)) {
            (Some(a), Some(b)) => a.median() / b.median(),
            _ => f64::NAN,
        }
    }
}

pub(super) struct Section {
    pub(super) timings: Vec<ModeTiming>,
    /// How the section's bundles were packed and timed.
    pub(super) commands: Vec<String>,
    /// Load averages before and after, when measured apart from the rest of the report.
    pub(super) load: Option<(String, String)>,
}

/// Packs the cache path's bundles of `fixtures` (beside the default ones they hold) and times
/// every start side by side.
pub(super) fn measure(
    root: &Path,
    work: &Path,
    packer: &Path,
    fixtures: &[&Fixture],
    effort: Effort,
) -> Result<Section> {
    let effort = interleaved(effort);
    let home = work.join("cache-home");
    std::fs::create_dir_all(&home)?;
    let entries = home.join("mgo-pack");
    let empty = || match std::fs::remove_dir_all(&entries) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(anyhow::Error::new(e).context(format!("emptying {}", entries.display())))
        }
        _ => Ok(()),
    };

    struct Plan<'a> {
        fixture: &'a Fixture,
        memfd: PathBuf,
        cache: PathBuf,
        mode: &'static str,
    }
    let mut plans = Vec::new();
    let mut commands = vec![helper_build("execfloor").join(" ")];
    for &fixture in fixtures {
        for memfd in &fixture.bundles {
            let cache = pack_for(root, work, packer, fixture, memfd.mode, Some("cache"))?
                .context("the packer refused --launch cache")?;
            for (packed, launch) in [(memfd, ""), (&cache, " --launch cache")] {
                let env = match packed.mode {
                    "stored" => String::new(),
                    mode => format!("MGO_COMPRESS={mode} "),
                };
                let inputs: Vec<String> = LEVELS
                    .iter()
                    .zip(&fixture.variants)
                    .map(|(l, p)| format!("{l}={}", p.display()))
                    .collect();
                commands.push(format!(
                    "{env}target/release/mgo-pack -o {}{launch} {}",
                    packed.path.display(),
                    inputs.join(" ")
                ));
            }
            plans.push(Plan {
                fixture,
                memfd: memfd.path.clone(),
                cache: cache.path,
                mode: memfd.mode,
            });
        }
    }

    // What each bundle does here, from its log: a first start must make the entry and a warm one
    // find it, or the rows would time the fallback to the memfd instead.
    let mut taken = Vec::new();
    for plan in &plans {
        let args = plan.fixture.spec.args;
        let memfd = logged_path(root, &plan.memfd, args, &home)?;
        empty()?;
        let first = logged_path(root, &plan.cache, args, &home)?;
        let warm = logged_path(root, &plan.cache, args, &home)?;
        if !first.starts_with("cache (made ") || !warm.starts_with("cache (") {
            bail!(
                "{} did not take the cache path (first start: {first}; then: {warm})",
                plan.cache.display()
            );
        }
        taken.push([memfd, warm, first]);
    }

    let json = work.join("hyperfine-cache.json");
    let mut pooled: Vec<Vec<Row>> = plans
        .iter()
        .zip(&taken)
        .map(|(_, [memfd, warm, first])| {
            Start::ALL
                .iter()
                .map(|&start| Row {
                    start,
                    times: Vec::new(),
                    cpu: Vec::new(),
                    taken: match start {
                        Start::Memfd => memfd.clone(),
                        Start::Warm => shorten(warm),
                        Start::First => shorten(first),
                        _ => String::new(),
                    },
                })
                .collect()
        })
        .collect();
    let mut shown = Vec::new();
    let empty_command = format!("rm -rf {CACHE_HOME}/mgo-pack");
    for round in 0..effort.rounds {
        shown.clear();
        for (plan, rows) in plans.iter().zip(&mut pooled) {
            eprintln!(
                "bench: cache path, {} {}, round {round}",
                plan.fixture.spec.name, plan.mode
            );
            let variant = plan.fixture.chosen_variant().display().to_string();
            let program = |start: Start| -> Vec<String> {
                match start {
                    Start::Direct => vec![variant.clone()],
                    Start::ExecFloor => vec!["target/bench/bin/execfloor".into(), variant.clone()],
                    Start::CopyFloor => vec!["target/bench/bin/floor".into(), variant.clone()],
                    Start::Memfd => vec![plan.memfd.display().to_string()],
                    Start::Warm | Start::First => vec![plan.cache.display().to_string()],
                }
            };
            let mut cmd = hyperfine(root, &json, effort.warmup, effort.runs);
            cmd.env("XDG_CACHE_HOME", &home);
            let mut line = format!(
                "XDG_CACHE_HOME=$PWD/{CACHE_HOME} hyperfine -N --warmup {} --runs {} \
                 --export-json OUT.json",
                effort.warmup, effort.runs
            );
            // hyperfine takes one `--prepare` for all commands or one per command: the first
            // start's empties the cache, the others do nothing.
            for start in Start::ALL {
                let prepare = match start {
                    Start::First => empty_command.as_str(),
                    _ => "true",
                };
                cmd.args(["--prepare", prepare]);
                write!(line, " --prepare '{prepare}'").unwrap();
            }
            for start in Start::ALL {
                let mut words = program(start);
                words.extend(plan.fixture.spec.args.iter().map(|a| a.to_string()));
                let words = words.join(" ");
                cmd.args(["-n", start.name(), &words]);
                write!(line, " -n {} '{words}'", start.name()).unwrap();
            }
            shown.push(line);
            // A warm start needs the entry: made here, whatever the last run left.
            logged_path(root, &plan.cache, plan.fixture.spec.args, &home)?;
            let what = format!(
                "round {round}, cache path, {} {}",
                plan.fixture.spec.name, plan.mode
            );
            for result in hyperfine_results(cmd, &json, &what)? {
                let row = rows
                    .iter_mut()
                    .find(|r| r.start.name() == result.name)
                    .context("hyperfine JSON")?;
                row.times.extend(result.times);
                row.cpu.push(result.cpu);
            }
        }
    }
    empty()?;
    commands.push(
        "# timing, per fixture, mode and round (environment: PATH, HOME, LANG=C.UTF-8, \
         XDG_CACHE_HOME):"
            .to_string(),
    );
    commands.extend(shown);

    let timings = plans
        .iter()
        .zip(pooled)
        .map(|(plan, rows)| ModeTiming {
            fixture: plan.fixture.spec.name,
            mode: plan.mode,
            command: std::iter::once(plan.fixture.chosen_variant().display().to_string())
                .chain(plan.fixture.spec.args.iter().map(|a| a.to_string()))
                .collect::<Vec<_>>()
                .join(" "),
            rows,
        })
        .collect();
    Ok(Section {
        timings,
        commands,
        load: None,
    })
}

/// The fixtures this section measures when a run names none.
pub(super) fn default_fixtures() -> Vec<String> {
    MEASURED.iter().map(|f| f.to_string()).collect()
}

/// Runs `bundle` once with `MGODEBUG=log` and the bench's cache, and returns what follows
/// `launch path ` in its log.
fn logged_path(root: &Path, bundle: &Path, args: &[&str], home: &Path) -> Result<String> {
    let out = bench_env(Command::new(root.join(bundle)))
        .current_dir(root)
        .args(args)
        .env("MGODEBUG", "log")
        .env("XDG_CACHE_HOME", home)
        .stdout(Stdio::null())
        .output()
        .with_context(|| format!("running {}", bundle.display()))?;
    let err = String::from_utf8_lossy(&out.stderr);
    err.lines()
        .find_map(|l| l.strip_prefix("[mgo] launcher: launch path "))
        .map(str::to_string)
        .with_context(|| format!("{} did not log its launch path: {err}", bundle.display()))
}

/// `cache (made /.../mgo-pack/KEY/HASH GOAMD64=v4/name)` as `cache (made …/HASH GOAMD64=v4/name)`:
/// the part that says what ran.
fn shorten(taken: &str) -> String {
    let made = taken.starts_with("cache (made ");
    let mut parts = taken.rsplitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(name), Some(variant), Some(_)) => {
            format!(
                "cache ({}…/{variant}/{name}",
                if made { "made " } else { "" }
            )
        }
        _ => taken.to_string(),
    }
}

/// The section, from its heading to the blank line after its commands; `alone` is the command
/// that measured it apart from the rest of the report, if one did.
pub(super) fn render(section: &Section, effort: Effort, alone: Option<&str>, s: &mut String) {
    let effort = interleaved(effort);
    writeln!(s, "{HEADING}\n").unwrap();
    if let Some(command) = alone {
        writeln!(
            s,
            "Measured apart from the rest of this report, by `{command}`, on the same machine."
        )
        .unwrap();
        if let Some((before, after)) = &section.load {
            writeln!(
                s,
                "Load average (1, 5, 15 min) before: {before}; after: {after}."
            )
            .unwrap();
        }
        writeln!(s).unwrap();
    }
    writeln!(
        s,
        "The cache launch path (`--launch cache`, `MGODEBUG=cache`) writes the chosen variant, \
         decoded and hash-checked, to a file in the user's cache on the first start and execs \
         that file at every later one. A warm start's floor is one extra exec: \
         `bench/execfloor.c` execs the build by its path and does nothing else, which is all a \
         warm start must add to a direct run (the launcher adds CPU detection, the check of its \
         own image and of the cache's directories and entry). A first start does the memfd \
         path's work with a file instead of a memfd, and records on the variant's directory the \
         boot it was written in (an extended attribute) instead of waiting for the file's blocks \
         to reach the disk: a start in a later boot hashes the entry once before it runs it, so a \
         crash never runs missing blocks (docs/ARCHITECTURE.md, \"The cache\"); the next start \
         syncs the entry and records it synced, and the warm starts after it read that record \
         and no boot id (the start that checks the entry before each round, or the warm-up run \
         after it, is that one). Only where the \
         file system keeps no extended attributes does the first start still wait for the disk \
         (`fdatasync`). \
         The CPU ratio leaves out any wait for the disk. The builds are rewritten with \
         write(2) before they are timed, as installing them would: a file a linker wrote \
         through a mapping is cached in single pages and starts slower than one written with \
         write(2), which the cache's entries are. Every row of a fixture and mode is one \
         hyperfine invocation, {} runs per command ({} interleaved rounds of {}, after {} \
         warm-up run{} each); the cache's base is `{CACHE_HOME}` (`XDG_CACHE_HOME`), on the same \
         file system as the bundles, and the first start's `--prepare` removes its `mgo-pack` \
         directory before each run. Ratios divide medians; the CPU ratios divide hyperfine's \
         mean user + system times.\n",
        effort.rounds * effort.runs,
        effort.rounds,
        effort.runs,
        effort.warmup,
        if effort.warmup == 1 { "" } else { "s" }
    )
    .unwrap();
    let met = |ratio: f64, limit: f64| if ratio <= limit { "yes" } else { "**no**" };
    // The two targets, each with its floor: the medians (and their ratios to the direct run),
    // the target's ratio, and the same ratio in CPU time, which other load disturbs less and
    // which leaves out time spent waiting (for the disk, on a first start).
    let targets = [
        (
            "warm start",
            "exec floor",
            Start::Warm,
            Start::ExecFloor,
            WARM_OVER_EXEC_FLOOR,
        ),
        (
            "first start",
            "memfd path",
            Start::First,
            Start::Memfd,
            FIRST_OVER_MEMFD,
        ),
    ];
    for (what, floor, start, against, limit) in targets {
        writeln!(
            s,
            "| fixture | mode | direct | {floor} | cache, {what} | {what} / {floor} | at most | met | CPU: {what} / {floor} |"
        )
        .unwrap();
        writeln!(s, "|---|---|---:|---:|---:|---:|---:|---|---:|").unwrap();
        for t in &section.timings {
            let direct = t.row(Start::Direct).map_or(f64::NAN, Row::median);
            let cell = |start: Start| match t.row(start) {
                Some(r) => format!("{} ({:.2}x)", ms(r.median()), r.median() / direct),
                None => "not measured".into(),
            };
            let ratio = t.ratio(start, against);
            let cpu = match (t.row(start), t.row(against)) {
                (Some(a), Some(b)) => a.cpu() / b.cpu(),
                _ => f64::NAN,
            };
            writeln!(
                s,
                "| {} | {} | {} | {} | {} | {ratio:.2}x | {limit:.2}x | {} | {cpu:.2}x |",
                t.fixture,
                t.mode,
                ms(direct),
                cell(against),
                cell(start),
                met(ratio, limit),
            )
            .unwrap();
        }
        writeln!(s).unwrap();
    }

    let mut fixtures: Vec<&str> = Vec::new();
    for t in &section.timings {
        if !fixtures.contains(&t.fixture) {
            fixtures.push(t.fixture);
        }
    }
    for fixture in fixtures {
        let mut ts = section
            .timings
            .iter()
            .filter(|t| t.fixture == fixture)
            .peekable();
        let Some(first) = ts.peek() else { continue };
        writeln!(s, "### {fixture}, cache path (`{}`)\n", first.command).unwrap();
        writeln!(
            s,
            "| mode | command | path taken | median | spread | ratio to direct | CPU (user+sys) | CPU ratio |"
        )
        .unwrap();
        writeln!(s, "|---|---|---|---:|---:|---:|---:|---:|").unwrap();
        for t in ts {
            let direct = t.row(Start::Direct);
            let (d, d_cpu) = direct.map_or((f64::NAN, f64::NAN), |r| (r.median(), r.cpu()));
            for r in &t.rows {
                writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {:.2}x | {} | {:.2}x |",
                    t.mode,
                    r.start.label(),
                    r.taken,
                    ms(r.median()),
                    spread(&r.times),
                    r.median() / d,
                    ms(r.cpu()),
                    r.cpu() / d_cpu
                )
                .unwrap();
            }
        }
        writeln!(s).unwrap();
    }
    writeln!(s, "```sh").unwrap();
    for command in &section.commands {
        writeln!(s, "{command}").unwrap();
    }
    writeln!(s, "```\n").unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_goes_before_the_direct_paths_cost_then_stays_in_place() {
        let doc = "# B\n\n## The memfd path against its floor\n\nx\n\n## The direct path's own cost\n\ny\n\n## Exact commands\n\nz\n";
        let once = replace_section(doc, HEADING, &format!("{HEADING}\n\nold\n\n"), BEFORE);
        assert_eq!(
            once,
            format!(
                "# B\n\n## The memfd path against its floor\n\nx\n\n{HEADING}\n\nold\n\n## The direct path's own cost\n\ny\n\n## Exact commands\n\nz\n"
            )
        );
        let twice = replace_section(&once, HEADING, &format!("{HEADING}\n\nnew\n\n"), BEFORE);
        assert_eq!(twice, once.replace("old", "new"));
    }

    #[test]
    fn the_path_taken_keeps_the_variant_and_the_name() {
        assert_eq!(
            shorten(
                "cache (made /h/.cache/mgo-pack/0123456789abcdef/fedcba9876543210 GOAMD64=v4/app)"
            ),
            "cache (made …/fedcba9876543210 GOAMD64=v4/app)"
        );
        assert_eq!(
            shorten("cache (/h/.cache/mgo-pack/0123456789abcdef/fedcba9876543210 GOAMD64=v4/app)"),
            "cache (…/fedcba9876543210 GOAMD64=v4/app)"
        );
        assert_eq!(shorten("memfd"), "memfd");
    }
}
