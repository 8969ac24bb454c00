//! Statistics, units and small process helpers the other modules share.

use super::*;

pub(super) fn median(times: &[f64]) -> f64 {
    percentile(times, 0.5)
}

pub(super) fn percentile(times: &[f64], q: f64) -> f64 {
    if times.is_empty() {
        return f64::NAN;
    }
    let mut sorted = times.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let at = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo as f64)
}

pub(super) fn spread(times: &[f64]) -> String {
    format!(
        "{:.2}–{:.2}",
        percentile(times, 0.25) * 1e3,
        percentile(times, 0.75) * 1e3
    )
}

pub(super) fn ms(seconds: f64) -> String {
    format!("{:.2} ms", seconds * 1e3)
}

pub(super) fn ms_signed(seconds: f64) -> String {
    format!("{:+.2} ms", seconds * 1e3)
}

pub(super) fn bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1 << 20) as f64)
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

pub(super) fn kib(kb: u64) -> String {
    if kb >= 10 * 1024 {
        format!("{:.1} MiB", kb as f64 / 1024.0)
    } else {
        format!("{kb} KiB")
    }
}

pub(super) fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

pub(super) fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(tool))
            .find(|p| p.is_file())
    })
}

pub(super) fn go_version() -> Result<String> {
    first_line("go", &["version"])
}

pub(super) fn first_line(tool: &str, args: &[&str]) -> Result<String> {
    mgo_pack::builder::first_line(Command::new(tool).args(args))
        .with_context(|| format!("running {tool}"))
}

pub(super) fn run_ok(cmd: &mut Command, what: &str) -> Result<()> {
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
