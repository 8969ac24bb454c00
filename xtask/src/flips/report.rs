//! The campaign's summary (markdown on stdout) and each bundle's results file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use super::campaign::{Record, Results};
use super::classify::{Class, Status};
use super::layout::Part;
use super::options::Options;

/// Examples shown per class and bundle, from distinct bytes.
const EXAMPLES: usize = 5;

/// Prints the summary; returns the number of flips in bad classes.
pub fn print(results: &[Results], options: &Options, work: &Path) -> Result<usize> {
    let mut out = String::new();
    let parts: Vec<&str> = options
        .parts
        .iter()
        .map(|p| match p {
            Part::Launcher => "launcher image",
            Part::Headers => "region header and index",
        })
        .collect();
    writeln!(out, "## Single-bit flips\n")?;
    writeln!(out, "Command: `{}`\n", options.command_line())?;
    writeln!(
        out,
        "Bytes: {}; {}; timeout {} ms; {} jobs; `mgo-pack verify` {}. Unflipped run on this CPU: \
         `{}`.\n",
        parts.join(" + "),
        match (&options.list, options.sample) {
            (Some(list), _) => format!("only the {} flips listed by --flips", list.len()),
            (None, 1) => "every bit".to_string(),
            (None, k) => format!("every {k}th bit (sampled)"),
        },
        options.timeout.as_millis(),
        options.jobs,
        if options.verify {
            "on every flip not `same`"
        } else {
            "not run"
        },
        results.first().map_or("", |r| r.level.as_str()),
    )?;

    write!(out, "| bundle | launcher | bits flipped |")?;
    for class in Class::ALL {
        write!(out, " {} |", class.name())?;
    }
    writeln!(out, " verify-missed | time |")?;
    writeln!(
        out,
        "|---|---|---:|{}---:|---:|",
        "---:|".repeat(Class::ALL.len())
    )?;
    for r in results {
        write!(
            out,
            "| {} | {} | {} |",
            r.bundle.kind.name(),
            r.bundle.launcher,
            r.flipped
        )?;
        for class in Class::ALL {
            write!(out, " {} |", r.counts.get(&class).copied().unwrap_or(0))?;
        }
        let missed = match options.verify {
            true => r
                .records
                .iter()
                .filter(|rec| rec.verify_ok == Some(true))
                .count()
                .to_string(),
            false => "-".into(),
        };
        writeln!(out, " {missed} | {:.0} s |", r.elapsed.as_secs_f64())?;
    }
    writeln!(out)?;

    for r in results {
        let name = r.bundle.kind.name();
        for (what, class) in [
            ("hangs", Class::Hang),
            ("signals", Class::Signal),
            ("other statuses", Class::OtherStatus),
        ] {
            let mut by: BTreeMap<String, usize> = BTreeMap::new();
            for rec in r.records.iter().filter(|rec| rec.class == class) {
                *by.entry(rec.status.to_string()).or_default() += 1;
            }
            if !by.is_empty() {
                let list: Vec<String> = by.iter().map(|(s, n)| format!("{s}: {n}")).collect();
                writeln!(out, "- {name}, {what}: {}", list.join(", "))?;
            }
        }
        let mut silent: BTreeMap<String, usize> = BTreeMap::new();
        for rec in r.records.iter().filter(|rec| rec.class == Class::Silent) {
            let what = match &rec.status {
                Status::Exited(0) => format!("exit 0, differs: {}", rec.difference),
                other => format!("{other} without an `mgo:` line"),
            };
            *silent.entry(what).or_default() += 1;
        }
        if !silent.is_empty() {
            let list: Vec<String> = silent.iter().map(|(s, n)| format!("{s}: {n}")).collect();
            writeln!(out, "- {name}, silent: {}", list.join("; "))?;
        }
        if !r.stragglers.is_empty() {
            let first: Vec<String> = r
                .stragglers
                .iter()
                .take(EXAMPLES)
                .map(|f| format!("{}:{}", f.offset, f.bit))
                .collect();
            writeln!(
                out,
                "- {name}, runs that left other processes in their group when they ended (killed \
                 and reaped by the campaign): {} (first: {})",
                r.stragglers.len(),
                first.join(", ")
            )?;
        }
        if let (slowest, Some(flip)) = r.slowest {
            writeln!(
                out,
                "- {name}, slowest run that finished: {} ms ({}:{})",
                slowest.as_millis(),
                flip.offset,
                flip.bit
            )?;
        }
        if options.verify {
            let mut by: BTreeMap<&str, usize> = BTreeMap::new();
            for rec in r.records.iter().filter(|rec| rec.verify_ok == Some(true)) {
                *by.entry(rec.class.name()).or_default() += 1;
            }
            let list: Vec<String> = by.iter().map(|(c, n)| format!("{c}: {n}")).collect();
            writeln!(
                out,
                "- {name}, verify said ok while the run was not `same`: {}",
                if list.is_empty() {
                    "none".to_string()
                } else {
                    list.join(", ")
                }
            )?;
        }
    }

    let mut bad = 0;
    for r in results {
        let name = r.bundle.kind.name();
        for class in Class::ALL {
            if matches!(class, Class::Same | Class::Refused) {
                continue;
            }
            let count = r.counts.get(&class).copied().unwrap_or(0);
            if class.is_bad() {
                bad += count;
            }
            if count == 0 {
                continue;
            }
            writeln!(
                out,
                "\n### {name}: {} ({count}{})\n",
                class.name(),
                if class.is_bad() { ", bad" } else { "" }
            )?;
            writeln!(
                out,
                "| offset:bit | where | status | stderr (first line) | stdout | differs |"
            )?;
            writeln!(out, "|---|---|---|---|---|---|")?;
            let mut bytes = BTreeSet::new();
            for rec in r
                .records
                .iter()
                .filter(|rec| rec.class == class && bytes.insert(rec.flip.offset))
                .take(EXAMPLES)
            {
                writeln!(
                    out,
                    "| {}:{} | {} | {} | {} | {} | {} |",
                    rec.flip.offset,
                    rec.flip.bit,
                    r.bundle.layout.describe(rec.flip.offset),
                    rec.status,
                    cell(&rec.stderr_line),
                    cell(&rec.stdout_head),
                    cell(&rec.difference)
                )?;
            }
            if let Some(first) = r.records.iter().find(|rec| rec.class == class) {
                writeln!(
                    out,
                    "\nReproduce: `cargo xtask flips --bundle {name} --only {}:{}`",
                    first.flip.offset, first.flip.bit
                )?;
            }
        }
    }
    writeln!(out)?;
    for r in results {
        let path = tsv_path(work, r);
        writeln!(
            out,
            "Every flip of the {} bundle that was not `same`: `{}`",
            r.bundle.kind.name(),
            path.display()
        )?;
    }
    print!("{out}");
    Ok(bad)
}

fn tsv_path(work: &Path, r: &Results) -> std::path::PathBuf {
    work.join(format!("{}-results.tsv", r.bundle.kind.name()))
}

/// Writes `target/flips/<bundle>-results.tsv`: every flip that was not `same`. Called as soon as
/// a bundle's campaign ends, so that a long run stopped later keeps what it finished.
pub fn write_tsv(work: &Path, r: &Results) -> Result<()> {
    let path = tsv_path(work, r);
    let mut text =
        String::from("offset\tbit\tclass\tstatus\tverify\twhere\tstderr\tstdout\tdiffers\n");
    for rec in &r.records {
        let Record {
            flip,
            class,
            status,
            stderr_line,
            stdout_head,
            difference,
            verify_ok,
        } = rec;
        writeln!(
            text,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            flip.offset,
            flip.bit,
            class.name(),
            status_cell(status),
            match verify_ok {
                Some(true) => "ok",
                Some(false) => "refused",
                None => "-",
            },
            r.bundle.layout.describe(flip.offset),
            stderr_line.replace('\t', " "),
            stdout_head.replace('\t', " "),
            difference
        )?;
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

fn status_cell(status: &Status) -> String {
    status.to_string().replace('\t', " ")
}

/// Text for a markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('`', "'")
}
