//! The report: the machine, then every section, written as `docs/BENCHMARKS.md`.

use super::*;

// The machine

pub(super) struct Machine {
    pub(super) rows: Vec<(&'static str, String)>,
}

impl Machine {
    pub(super) fn describe(root: &Path, load_before: String) -> Machine {
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

pub(super) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

pub(super) fn runtime_images(root: &Path) -> Result<Vec<(String, u64)>> {
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

/// `doc` with the section that starts with `heading` replaced by `section`, up to the next `## `
/// heading; without one, `section` goes before the first heading of `before` that `doc` has, or
/// at its end.
pub(super) fn replace_section(doc: &str, heading: &str, section: &str, before: &[&str]) -> String {
    let end = |from: usize| {
        doc[from + heading.len()..]
            .find("\n## ")
            .map_or(doc.len(), |i| from + heading.len() + i + 1)
    };
    match doc.find(&format!("{heading}\n")) {
        Some(start) => format!("{}{section}{}", &doc[..start], &doc[end(start)..]),
        None => match before.iter().find_map(|b| doc.find(b)) {
            Some(at) => format!("{}{section}{}", &doc[..at], &doc[at..]),
            None => format!("{doc}\n{section}"),
        },
    }
}

// The report

pub(super) struct Report<'a> {
    pub(super) opts: &'a Opts,
    pub(super) effort: Effort,
    pub(super) machine: Machine,
    pub(super) packer_command: String,
    pub(super) helper_commands: Vec<String>,
    pub(super) fixtures: &'a [Fixture],
    pub(super) timings: &'a [FixtureTiming],
    pub(super) overhead: &'a [Overhead],
    pub(super) memory: &'a [Vec<MemoryRow>],
    pub(super) shmem: Option<&'a Vec<InstanceRow>>,
    pub(super) decode: &'a DecodeResult,
    pub(super) profile: &'a Profile,
    /// The cache path beside the others (when its fixtures were measured).
    pub(super) cache: Option<&'a cache::Section>,
    /// Against cargo-multivers (not in a partial run).
    pub(super) multivers: Option<&'a multivers::Comparison>,
    pub(super) unsupported_modes: &'a [&'static str],
    pub(super) runtime_images: &'a [(String, u64)],
    pub(super) elapsed: Duration,
}

impl Report<'_> {
    pub(super) fn render(&self, root: &Path) -> String {
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
        if let Some(section) = self.cache {
            cache::render(section, self.effort, None, &mut s);
        }
        self.render_overhead(&mut s);
        self.render_sizes(&mut s);
        self.render_memory(&mut s);
        self.render_profile(&mut s);
        self.render_decode(&mut s);
        if let Some(comparison) = self.multivers {
            multivers::render(comparison, self.effort, None, &mut s);
        }
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
