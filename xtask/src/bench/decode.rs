//! Decode throughput: the launcher's decoders against libzstd on the same frames.

use super::*;

pub(super) struct DecodeRow {
    pub(super) fixture: &'static str,
    pub(super) mode: &'static str,
    pub(super) encoding: Encoding,
    pub(super) original_len: u64,
    /// Launcher decode rate (MB/s): extract of this mode minus extract of the stored bundle.
    pub(super) launcher_mbps: f64,
    /// libzstd (the `zstd` command) on the same frame, its fixed start-up cost removed.
    pub(super) libzstd_mbps: Option<f64>,
}

pub(super) struct DecodeResult {
    pub(super) rows: Vec<DecodeRow>,
    pub(super) note: Option<String>,
    pub(super) commands: Vec<String>,
}

pub(super) fn decode_throughput(
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
