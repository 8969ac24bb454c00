//! Against cargo-multivers: one real Rust program, ripgrep from crates.io, built for the four
//! x86-64 levels by cargo-multivers and by `mgo-pack cargo`, and each bundle's start-up, size and
//! peak memory measured side by side in one run against the build it runs, run directly.
//!
//! Set-up, cached under `target/bench/`: cargo-multivers is installed from crates.io with
//! `cargo install` (`tools/`), and ripgrep's published source is brought by cargo's own download
//! (`cargo fetch` of a crate that depends on it) and copied to `ripgrep/`.

use mgo_pack::builder::hash_files;

use super::*;

/// The versions compared: pinned, so that a later run measures the same thing.
pub(super) const MULTIVERS_VERSION: &str = "0.13.0";
pub(super) const RIPGREP_VERSION: &str = "15.2.0";
/// The CPUs cargo-multivers builds for: the four levels (its own default on x86-64 too).
const CPUS: &str = "x86-64,x86-64-v2,x86-64-v3,x86-64-v4";
/// The section's heading: `--only multivers` replaces the section it starts.
pub(super) const HEADING: &str = "## Against cargo-multivers";

/// One program compared.
pub(super) struct Row {
    pub(super) label: String,
    pub(super) path: PathBuf,
    pub(super) size: u64,
    pub(super) times: Vec<f64>,
    pub(super) max_rss_kb: u64,
}

pub(super) struct Comparison {
    /// The build run directly first, then the bundles.
    pub(super) rows: Vec<Row>,
    /// The level the bundles run here.
    pub(super) chosen: u32,
    pub(super) commands: Vec<String>,
}

/// Installs, fetches, builds, packs and measures.
pub(super) fn compare(
    root: &Path,
    work: &Path,
    packer: &Path,
    effort: Effort,
) -> Result<Comparison> {
    let tools = work.join("tools");
    let multivers = tools.join("bin/cargo-multivers");
    let install = format!(
        "cargo install cargo-multivers --locked --version ={MULTIVERS_VERSION} --root target/bench/tools"
    );
    if first_line(
        multivers.to_str().unwrap_or(""),
        &["multivers", "--version"],
    )
    .map_or(true, |v| !v.ends_with(MULTIVERS_VERSION))
    {
        eprintln!("bench: installing cargo-multivers {MULTIVERS_VERSION}");
        run_ok(
            Command::new(cargo())
                .args(["install", "cargo-multivers", "--locked", "--version"])
                .arg(format!("={MULTIVERS_VERSION}"))
                .arg("--root")
                .arg(&tools),
            "installing cargo-multivers",
        )?;
    }
    let src = ripgrep_source(work)?;

    // cargo-multivers: its runner, with every build inside, in rg-multivers/.
    let out_dir = work.join("rg-multivers");
    let runner = out_dir.join("rg");
    // Absolute directories: cargo-multivers builds its runner in a directory of its own, where a
    // relative one names something else.
    let multivers_build = format!(
        "(cd target/bench/ripgrep && cargo multivers --cpus {CPUS} \
         --target-dir \"$PWD/../rg-multivers-target\" --out-dir \"$PWD/../rg-multivers\")"
    );
    let key = format!(
        "{multivers_build}\n{}",
        first_line("rustc", &["--version"])?
    );
    let stamp = work.join("rg-multivers.stamp");
    cached(&stamp, &key, std::slice::from_ref(&runner), || {
        eprintln!("bench: building ripgrep with cargo-multivers (four release builds)");
        let mut path = std::ffi::OsString::from(tools.join("bin"));
        path.push(":");
        path.push(std::env::var_os("PATH").unwrap_or_default());
        run_ok(
            Command::new(cargo())
                .current_dir(&src)
                .env("PATH", path)
                .args(["multivers", "--cpus", CPUS, "--target-dir"])
                .arg(work.join("rg-multivers-target"))
                .arg("--out-dir")
                .arg(&out_dir),
            "cargo multivers",
        )
    })?;

    // mgo-pack cargo: the same four builds, packed three ways. The first pack runs cargo, which
    // rebuilds what changed; the others run again only when the packer or a build changed, since
    // compressing four ripgrep builds at level 19 takes minutes.
    eprintln!("bench: building ripgrep with mgo-pack cargo (four release builds)");
    let bundles = [
        ("stored, memfd (the default)", "rg.memfd", &[][..]),
        (
            "stored, `--launch direct`",
            "rg.direct",
            &["--launch", "direct"][..],
        ),
        (
            "`--compress zstd-dict:19`, memfd",
            "rg.Z19",
            &["--compress", "zstd-dict:19"][..],
        ),
    ];
    let mut commands = vec![
        install,
        format!(
            "cargo fetch  # of a crate depending on ripgrep ={RIPGREP_VERSION}, copied to \
             target/bench/ripgrep"
        ),
        multivers_build,
    ];
    let bundle_dir = work.join("bundles");
    std::fs::create_dir_all(&bundle_dir)?;
    let builds: Vec<PathBuf> = (1..=4)
        .map(|l| {
            let cpu = mgo_pack::builder::gcc_march(l);
            work.join(format!("rg-target/mgo-pack/{cpu}/rg"))
        })
        .collect();
    for (i, (_, name, options)) in bundles.iter().enumerate() {
        let bundle = bundle_dir.join(name);
        let stamp = bundle_dir.join(format!("{name}.stamp"));
        let current = || -> Result<String> {
            let mut inputs = vec![root.join(packer)];
            inputs.extend(builds.iter().cloned());
            Ok(format!("{options:?}\n{:016x}", hash_files(&inputs)?))
        };
        let up_to_date =
            i > 0 && bundle.is_file() && std::fs::read_to_string(&stamp).ok() == current().ok();
        if !up_to_date {
            let _ = std::fs::remove_file(&stamp);
            let mut cmd = Command::new(root.join(packer));
            cmd.current_dir(&src)
                .arg("cargo")
                .arg("--quiet")
                .arg("--target-dir")
                .arg(work.join("rg-target"))
                .arg("-o")
                .arg(&bundle)
                .args(*options)
                .env_remove("MGO_COMPRESS");
            run_ok(&mut cmd, "mgo-pack cargo")?;
            std::fs::write(&stamp, current()?)?;
        }
        commands.push(format!(
            "(cd target/bench/ripgrep && ../../release/mgo-pack cargo --target-dir ../rg-target \
             -o ../bundles/{name}{})",
            options.iter().map(|o| format!(" {o}")).collect::<String>()
        ));
    }
    let stored = PathBuf::from("target/bench/bundles/rg.memfd");
    let chosen = chosen_level(root, &stored, &["--version"])?;
    let direct = PathBuf::from(format!(
        "target/bench/rg-target/mgo-pack/{}/rg",
        mgo_pack::builder::gcc_march(chosen)
    ));

    let mut programs: Vec<(String, PathBuf)> =
        vec![(format!("the v{chosen} build, run directly"), direct.clone())];
    for (label, name, _) in &bundles {
        programs.push((
            format!("mgo-pack cargo, {label}"),
            PathBuf::from(format!("target/bench/bundles/{name}")),
        ));
    }
    programs.push((
        format!("cargo-multivers {MULTIVERS_VERSION}"),
        PathBuf::from("target/bench/rg-multivers/rg"),
    ));

    // Interleaved rounds, pooled, as for the fixtures.
    let json = work.join("hyperfine-multivers.json");
    let mut pooled: Vec<Vec<f64>> = vec![Vec::new(); programs.len()];
    let mut shown = String::new();
    for round in 0..effort.rounds {
        let mut cmd = hyperfine(root, &json, effort.warmup, effort.runs);
        shown = format!(
            "hyperfine -N --warmup {} --runs {} --export-json OUT.json",
            effort.warmup, effort.runs
        );
        for (i, (_, program)) in programs.iter().enumerate() {
            let line = format!("{} --version", program.display());
            cmd.args(["-n", &i.to_string(), &line]);
            write!(shown, " '{line}'").unwrap();
        }
        for result in hyperfine_results(cmd, &json, &format!("round {round}, ripgrep"))? {
            let index: usize = result.name.parse().context("hyperfine JSON")?;
            pooled[index].extend(result.times);
        }
    }
    commands.push(format!(
        "# timing, {} rounds (environment: PATH, HOME, LANG=C.UTF-8):\n{shown}",
        effort.rounds
    ));

    let mut rows = Vec::new();
    for ((label, path), times) in programs.into_iter().zip(pooled) {
        let size = std::fs::metadata(root.join(&path))
            .with_context(|| format!("{}", path.display()))?
            .len();
        let max_rss_kb = max_rss(root, &path, &["--version"], None, effort.memory_runs)?;
        rows.push(Row {
            label,
            path,
            size,
            times,
            max_rss_kb,
        });
    }
    Ok(Comparison {
        rows,
        chosen,
        commands,
    })
}

/// ripgrep's published source under `target/bench/ripgrep`, brought by cargo's own download.
fn ripgrep_source(work: &Path) -> Result<PathBuf> {
    let src = work.join("ripgrep");
    let stamp = work.join("ripgrep.version");
    if std::fs::read_to_string(&stamp).is_ok_and(|v| v == RIPGREP_VERSION)
        && src.join("Cargo.toml").is_file()
    {
        return Ok(src);
    }
    eprintln!("bench: fetching ripgrep {RIPGREP_VERSION} from crates.io");
    let fetch = work.join("ripgrep-fetch");
    std::fs::create_dir_all(fetch.join("src"))?;
    std::fs::write(
        fetch.join("Cargo.toml"),
        format!(
            "[package]\nname = \"ripgrep-fetch\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
             publish = false\n\n[dependencies]\nripgrep = \"={RIPGREP_VERSION}\"\n\n[workspace]\n"
        ),
    )?;
    std::fs::write(fetch.join("src/main.rs"), "fn main() {}\n")?;
    run_ok(
        Command::new(cargo()).current_dir(&fetch).arg("fetch"),
        "cargo fetch (ripgrep)",
    )?;
    // Where cargo unpacked it: the registry's source directory.
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("no CARGO_HOME or HOME")?;
    let registry = home.join("registry/src");
    let unpacked = std::fs::read_dir(&registry)
        .with_context(|| format!("reading {}", registry.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(format!("ripgrep-{RIPGREP_VERSION}")))
        .find(|p| p.join("Cargo.toml").is_file())
        .with_context(|| format!("cargo fetch left no ripgrep-{RIPGREP_VERSION}"))?;
    let _ = std::fs::remove_dir_all(&src);
    run_ok(
        Command::new("cp").arg("-r").arg(&unpacked).arg(&src),
        "copying ripgrep's source",
    )?;
    // Its own workspace: it sits inside this one's directory.
    let manifest = src.join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest)?;
    text.push_str("\n[workspace]\n");
    std::fs::write(&manifest, text)?;
    std::fs::write(&stamp, RIPGREP_VERSION)?;
    Ok(src)
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// The section, from its heading to the blank line after its commands; `alone` is the command
/// that measured it apart from the rest of the report, if one did.
pub(super) fn render(c: &Comparison, effort: Effort, alone: Option<&str>, s: &mut String) {
    writeln!(s, "{HEADING}\n").unwrap();
    if let Some(command) = alone {
        writeln!(
            s,
            "Measured apart from the rest of this report, by `{command}`, on the same machine.\n"
        )
        .unwrap();
    }
    writeln!(
        s,
        "ripgrep {RIPGREP_VERSION}, a real Rust program from crates.io, built for x86-64, \
         x86-64-v2, x86-64-v3 and x86-64-v4 by cargo-multivers {MULTIVERS_VERSION} (`--cpus` the \
         four levels) and by `mgo-pack cargo` (`-C target-cpu` the four levels), both with \
         ripgrep's own release profile (which keeps line tables, `debug = 1`), and run as `rg --version`, where start-up is all there is. Start-up is the \
         median of {} runs ({} interleaved rounds of {}, after {} warm-up runs each), and its \
         ratio divides it by the median of the build this CPU runs (v{}) run directly; size is \
         the file's; peak memory is `ru_maxrss` (`bench/maxrss.c`, median of {} runs), which \
         the kernel keeps across exec, so a launcher's own use counts too. cargo-multivers's \
         runner decompresses the chosen build and copies it into a memfd at every start.\n",
        effort.rounds * effort.runs,
        effort.rounds,
        effort.runs,
        effort.warmup,
        c.chosen,
        effort.memory_runs
    )
    .unwrap();
    writeln!(
        s,
        "| build | size | start-up | ratio to direct | peak memory |\n|---|---:|---:|---:|---:|"
    )
    .unwrap();
    let direct = c.rows.first().map_or(f64::NAN, |r| median(&r.times));
    for r in &c.rows {
        let m = median(&r.times);
        writeln!(
            s,
            "| {} (`{}`) | {} | {} | {:.2}x | {} |",
            r.label,
            r.path.display(),
            bytes(r.size),
            ms(m),
            m / direct,
            kib(r.max_rss_kb)
        )
        .unwrap();
    }
    writeln!(s, "\n```sh").unwrap();
    for command in &c.commands {
        writeln!(s, "{command}").unwrap();
    }
    writeln!(s, "```\n").unwrap();
}

/// `doc` with its multivers section replaced by `section` (or `section` added before the exact
/// commands, where the full report has it).
pub(super) fn replace_section(doc: &str, section: &str) -> String {
    report::replace_section(doc, HEADING, section, &["## Exact commands\n"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_is_replaced_in_place() {
        let doc = "# B\n\n## Decode\n\nx\n\n## Against cargo-multivers\n\nold\n\n## Exact commands\n\ny\n";
        assert_eq!(
            replace_section(doc, "## Against cargo-multivers\n\nnew\n\n"),
            "# B\n\n## Decode\n\nx\n\n## Against cargo-multivers\n\nnew\n\n## Exact commands\n\ny\n"
        );
        let without = "# B\n\n## Decode\n\nx\n\n## Exact commands\n\ny\n";
        assert_eq!(
            replace_section(without, "## Against cargo-multivers\n\nnew\n\n"),
            "# B\n\n## Decode\n\nx\n\n## Against cargo-multivers\n\nnew\n\n## Exact commands\n\ny\n"
        );
    }
}
