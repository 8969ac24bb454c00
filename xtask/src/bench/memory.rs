//! Memory: peak resident set per run, and what running instances cost the system.

use super::*;

pub(super) struct MemoryRow {
    pub(super) label: String,
    /// Median over runs of the peak resident set (kB), which the kernel keeps across the exec.
    pub(super) max_rss_kb: u64,
}

pub(super) fn peak_memory(
    root: &Path,
    fixture: &Fixture,
    effort: Effort,
) -> Result<Vec<MemoryRow>> {
    let args = fixture.spec.args;
    let mut rows = Vec::new();
    let mut measure = |label: String, program: &Path, mgodebug: Option<&str>| -> Result<()> {
        rows.push(MemoryRow {
            label,
            max_rss_kb: max_rss(root, program, args, mgodebug, effort.memory_runs)?,
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

/// Median over `runs` runs of the peak resident set (kB) of `program ARGS`, read by
/// `bench/maxrss.c`, with `MGODEBUG` set when given.
pub(super) fn max_rss(
    root: &Path,
    program: &Path,
    args: &[&str],
    mgodebug: Option<&str>,
    runs: usize,
) -> Result<u64> {
    let mut samples = Vec::new();
    for _ in 0..runs {
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
    Ok(median(&samples) as u64)
}

pub(super) struct InstanceRow {
    pub(super) label: String,
    /// Growth of the system's Shmem per running instance (kB).
    pub(super) shmem_kb: i64,
    pub(super) rss_anon_kb: u64,
    pub(super) rss_file_kb: u64,
    pub(super) rss_shmem_kb: u64,
    pub(super) pss_kb: u64,
}

/// Keeps several sleeping probe instances alive and reads what each costs the system.
pub(super) fn instance_memory(
    root: &Path,
    probe: &Fixture,
    effort: Effort,
) -> Result<Vec<InstanceRow>> {
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

pub(super) fn meminfo_kb(key: &str) -> Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    field_kb(&text, &format!("{key}:")).with_context(|| format!("no {key} in /proc/meminfo"))
}

pub(super) fn field_kb(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}
