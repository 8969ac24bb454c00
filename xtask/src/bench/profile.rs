//! Where a memfd launch spends its time, from `perf record`.

use super::*;

/// Where a memfd launch spends its time, from `perf record` (software clock, kernel included).
pub(super) struct Profile {
    pub(super) command: Option<String>,
    /// Share of all samples taken in the launcher (before its exec) and in the program.
    pub(super) launcher_share: f64,
    pub(super) program_share: f64,
    /// The launcher's hottest symbols: share of the launcher's samples, symbol.
    pub(super) symbols: Vec<(f64, String)>,
    pub(super) note: Option<String>,
}

pub(super) fn profile_memfd(
    root: &Path,
    work: &Path,
    fixtures: &[Fixture],
    effort: Effort,
) -> Profile {
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
