//! Start-up time: every command of a fixture through hyperfine in interleaved rounds, and the
//! direct path's own cost run by run (`bench/spawnloop.c`).

use super::*;

/// One timed command.
pub(super) struct Timed {
    pub(super) label: String,
    /// What the row is: `direct`, `floor`, or a bundle's mode.
    pub(super) kind: Kind,
    /// Launch path actually taken (bundles only).
    pub(super) path: Option<String>,
    pub(super) times: Vec<f64>,
    /// Mean user + system CPU time per run, averaged over rounds: less sensitive than wall time to
    /// other load on the machine.
    pub(super) cpu: f64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Direct,
    Floor,
    Bundle(&'static str),
    /// `MGODEBUG=extract` of the stored bundle, output to /dev/null.
    Extract,
}

pub(super) struct FixtureTiming {
    pub(super) rows: Vec<Timed>,
    /// A hyperfine command line of the last round, as run (paths relative to the root).
    pub(super) example_commands: Vec<String>,
}

impl FixtureTiming {
    pub(super) fn row(&self, kind: Kind) -> Option<&Timed> {
        self.rows.iter().find(|r| r.kind == kind)
    }

    pub(super) fn direct(&self) -> f64 {
        self.row(Kind::Direct)
            .map(|r| median(&r.times))
            .unwrap_or(f64::NAN)
    }
}

pub(super) fn time_fixture(
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
            let mut cmd = hyperfine(root, &json, effort.warmup, effort.runs);
            cmd.env("MGODEBUG", group.env);
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
            let what = format!("round {round}, {}", fixture.spec.name);
            for result in hyperfine_results(cmd, &json, &what)? {
                let (label, _) = result.name.rsplit_once('/').context("hyperfine JSON")?;
                let kind = group
                    .commands
                    .iter()
                    .find(|(l, _, _)| l == label)
                    .map(|c| c.1)
                    .context("hyperfine JSON")?;
                // Direct runs ignore MGODEBUG: all groups' samples are one population.
                let entry =
                    pooled
                        .entry(label.to_string())
                        .or_insert((kind, Vec::new(), Vec::new()));
                entry.1.extend(result.times);
                entry.2.push(result.cpu);
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

/// `hyperfine -N --style none --warmup W --runs R --export-json JSON` in the root, under
/// [`tool`] and [`bench_env`]; the caller adds the commands.
pub(super) fn hyperfine(root: &Path, json: &Path, warmup: usize, runs: usize) -> Command {
    let mut cmd = bench_env(tool("hyperfine"));
    cmd.current_dir(root)
        .args(["-N", "--style", "none"])
        .args(["--warmup", &warmup.to_string()])
        .args(["--runs", &runs.to_string()])
        .arg("--export-json")
        .arg(json);
    cmd
}

/// One command's result from hyperfine's JSON.
pub(super) struct HyperfineResult {
    /// Its `-n` name.
    pub(super) name: String,
    /// Every run's wall time (s).
    pub(super) times: Vec<f64>,
    /// Mean user + system CPU time per run (s).
    pub(super) cpu: f64,
}

/// Runs a [`hyperfine`] command and reads its results; `what` names it in an error.
pub(super) fn hyperfine_results(
    mut cmd: Command,
    json: &Path,
    what: &str,
) -> Result<Vec<HyperfineResult>> {
    let out = cmd
        .stdout(Stdio::null())
        .output()
        .context("running hyperfine")?;
    if !out.status.success() {
        bail!(
            "hyperfine failed ({what}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let data: serde_json::Value = serde_json::from_slice(&std::fs::read(json)?)?;
    let mut results = Vec::new();
    for result in data["results"].as_array().context("hyperfine JSON")? {
        let times = result["times"].as_array().context("hyperfine JSON")?;
        results.push(HyperfineResult {
            name: result["command"]
                .as_str()
                .context("hyperfine JSON")?
                .to_string(),
            times: times.iter().filter_map(|t| t.as_f64()).collect(),
            cpu: result["user"].as_f64().unwrap_or(f64::NAN)
                + result["system"].as_f64().unwrap_or(f64::NAN),
        });
    }
    Ok(results)
}

/// `--nice`: set once, read wherever a measuring tool is started.
pub(super) static NICE: std::sync::OnceLock<Option<i32>> = std::sync::OnceLock::new();

/// A measuring tool (hyperfine, perf, the maxrss helper), under `nice` when asked.
pub(super) fn tool(program: impl AsRef<std::ffi::OsStr>) -> Command {
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
pub(super) fn bench_env(mut cmd: Command) -> Command {
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env(
            "HOME",
            std::env::var_os("HOME").unwrap_or_else(|| "/root".into()),
        )
        .env("LANG", "C.UTF-8");
    cmd
}

// The direct path's own cost, run by run

/// Percentiles (10th, 25th, 50th) of one program's wall time, in microseconds.
pub(super) type Percentiles = [f64; 3];

pub(super) struct Overhead {
    /// The variant run directly, then the stored bundle on the direct path.
    pub(super) variant: Percentiles,
    pub(super) bundle: Percentiles,
    /// The same pair with `GOAMD64` set to the chosen level: the launcher then skips CPU
    /// detection, which separates the CPUID instructions' cost from the rest.
    pub(super) variant_forced: Percentiles,
    pub(super) bundle_forced: Percentiles,
    pub(super) runs: usize,
}

/// Runs the chosen variant and the stored bundle (`MGODEBUG=direct`) alternately through
/// `bench/spawnloop.c`, plain and with the level forced.
pub(super) fn direct_overhead(root: &Path, fixture: &Fixture, effort: Effort) -> Result<Overhead> {
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
