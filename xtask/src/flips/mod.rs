//! `cargo xtask flips`: a single-bit-flip campaign over the launcher image and the payload
//! region's header and index of real bundles.
//!
//! The static C probe (`tests/fixtures/cprobe.c`) is built for x86-64 v1..v4 and packed with the
//! release `mgo-pack`, stored and gzip. For each bundle, every bit of the chosen bytes is flipped
//! in turn in a private copy, the copy is run (stdin null, output captured, its process group
//! killed if it hangs: at the timeout, spinning or blocked, see `run::wait_exit`), and the run
//! is classified against the unflipped bundle's own run on this CPU. The summary is a markdown table per bundle plus examples of every bad class, each
//! reproducible with `--only OFFSET:BIT`. Exit status 0 when no flip hung, ran the wrong variant
//! or ran silently, 1 otherwise.
//!
//! The pieces, in the order a campaign uses them:
//!
//! - [`options`]: the command line.
//! - [`fixtures`]: building the probe per level and packing the bundles.
//! - [`layout`]: which bytes of a bundle are flipped (program headers parsed here, not through
//!   the format crate's own reader) and what each offset is, for the report.
//! - [`run`]: one run of a flipped copy: patching it in place, the timeout, the capture.
//! - [`classify`]: the outcome classes and the rule that assigns one to a run.
//! - [`campaign`]: workers in parallel over the flips, the progress line.
//! - [`report`]: the summary table, the examples, the per-bundle results file.

mod campaign;
mod classify;
mod fixtures;
mod layout;
mod options;
mod report;
mod run;

use anyhow::{bail, Result};

use crate::workspace_root;

pub fn main(args: &[String]) -> Result<()> {
    let options = options::Options::parse(args)?;
    run::become_subreaper()?;
    let root = workspace_root();
    let work = root.join("target/flips");
    let prepared = fixtures::prepare(&root, &work, &options.bundles)?;

    if let Some(flip) = options.only {
        for bundle in &prepared.bundles {
            campaign::run_one_verbosely(&prepared, bundle, flip, &options, &work)?;
        }
        return Ok(());
    }

    let mut results = Vec::new();
    for bundle in &prepared.bundles {
        let result = campaign::run_all(&prepared, bundle, &options, &work)?;
        report::write_tsv(&work, &result)?;
        results.push(result);
    }
    let bad = report::print(&results, &options, &work)?;
    if bad > 0 {
        bail!("{bad} flips hung, ran the wrong variant or ran silently");
    }
    Ok(())
}
