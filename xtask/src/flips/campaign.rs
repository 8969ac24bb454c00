//! Running every flip of one bundle on `--jobs` workers, with a progress line on stderr.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::classify::{classify, difference, level_line, Baseline, Class, Status};
use super::fixtures::{Bundle, Prepared};
use super::options::{Flip, Options};
use super::run::{private_descriptors, Slot};

/// A flip whose run was not `same`.
#[derive(Clone, Debug)]
pub struct Record {
    pub flip: Flip,
    pub class: Class,
    pub status: Status,
    pub stderr_line: String,
    /// The start of stdout, escaped (the level line, NUL bytes, ...).
    pub stdout_head: String,
    /// For a `silent` run that exited 0: what differs from the baseline (`exe, comm`).
    pub difference: String,
    /// `mgo-pack verify` said the flipped copy is sound (with `--verify`).
    pub verify_ok: Option<bool>,
}

/// One bundle's campaign.
pub struct Results<'a> {
    pub bundle: &'a Bundle,
    pub flipped: usize,
    pub counts: BTreeMap<Class, usize>,
    /// Every flip that was not `same`, in file order.
    pub records: Vec<Record>,
    /// The unflipped bundle's `level=` line on this CPU.
    pub level: String,
    pub elapsed: Duration,
    /// The slowest run that finished before the timeout, and its flip: how much margin the
    /// timeout left.
    pub slowest: (Duration, Option<Flip>),
    /// Flips whose run left other processes in its group when it ended, whatever its class.
    pub stragglers: Vec<Flip>,
}

/// The flips of the bytes in `ranges`, in file order. With `sample` K, every K-th bit of the
/// enumeration, which starts each byte at a different bit so that a sample hits all eight bit
/// positions.
fn flips(ranges: &[Range<u64>], sample: u64) -> Vec<Flip> {
    let mut out = Vec::new();
    // Bits of the enumeration to skip before the next one taken.
    let mut skip: u64 = 0;
    for range in ranges {
        for offset in range.clone() {
            let first = (offset + offset / 8) % 8;
            for j in 0..8 {
                if skip == 0 {
                    out.push(Flip {
                        offset,
                        bit: ((first + j) % 8) as u8,
                    });
                    skip = sample;
                }
                skip -= 1;
            }
        }
    }
    out.sort();
    out
}

pub fn run_all<'a>(
    prepared: &Prepared,
    bundle: &'a Bundle,
    options: &Options,
    work: &Path,
) -> Result<Results<'a>> {
    let name = bundle.kind.name();
    let ranges: Vec<Range<u64>> = options
        .parts
        .iter()
        .flat_map(|&part| bundle.layout.ranges(part))
        .collect();
    let flips = match &options.list {
        Some(list) => {
            if let Some(past) = list.iter().find(|f| f.offset >= bundle.bytes.len() as u64) {
                bail!(
                    "{name}: {}:{} is past the end of the bundle ({} bytes)",
                    past.offset,
                    past.bit,
                    bundle.bytes.len()
                );
            }
            list.clone()
        }
        None => flips(&ranges, options.sample),
    };
    eprintln!(
        "flips {name}: {} flips on {} jobs, timeout {} ms",
        flips.len(),
        options.jobs,
        options.timeout.as_millis()
    );
    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let counts: Vec<AtomicUsize> = Class::ALL.iter().map(|_| AtomicUsize::new(0)).collect();
    let records = Mutex::new(Vec::new());
    let levels = Mutex::new(Vec::new());
    let slowest = Mutex::new((Duration::ZERO, None));
    let stragglers = Mutex::new(Vec::new());
    let dir = work.join(format!("run-{name}"));

    let worker = |w: usize| -> Result<()> {
        private_descriptors()?;
        let mut slot = Slot::new(&dir.join(format!("w{w}")), &bundle.bytes)?;
        let baseline = baseline(&slot, options.timeout)?;
        levels.lock().unwrap().push(baseline.level());
        let mut mine = Vec::new();
        let mut my_slowest = (Duration::ZERO, None);
        let mut my_stragglers = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let Some(&flip) = flips.get(next.fetch_add(1, Ordering::Relaxed)) else {
                break;
            };
            slot.set(Some(flip))?;
            let started = Instant::now();
            let out = slot.run(options.timeout)?;
            let took = started.elapsed();
            let class = classify(&baseline, &out);
            if class != Class::Hang && took > my_slowest.0 {
                my_slowest = (took, Some(flip));
            }
            if out.stragglers > 0 {
                my_stragglers.push(flip);
            }
            counts[class as usize].fetch_add(1, Ordering::Relaxed);
            if class != Class::Same {
                let verify_ok = match options.verify {
                    true => Some(slot.verify(&prepared.mgo_pack, options.timeout * 5)?),
                    false => None,
                };
                mine.push(Record {
                    flip,
                    class,
                    difference: match (class, &out.status) {
                        (Class::Silent, Status::Exited(0)) => difference(&baseline, &out),
                        _ => String::new(),
                    },
                    stderr_line: first_line(&out.stderr),
                    stdout_head: head(&out.stdout),
                    status: out.status,
                    verify_ok,
                });
            }
            done.fetch_add(1, Ordering::Relaxed);
        }
        slot.set(None)?;
        if std::fs::read(&slot.bundle)? != bundle.bytes {
            bail!(
                "{} changed under the campaign (a flipped launcher wrote to it?)",
                slot.bundle.display()
            );
        }
        records.lock().unwrap().append(&mut mine);
        stragglers.lock().unwrap().append(&mut my_stragglers);
        let mut slowest = slowest.lock().unwrap();
        if my_slowest.0 > slowest.0 {
            *slowest = my_slowest;
        }
        Ok(())
    };

    let outcome: Result<()> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..options.jobs)
            .map(|w| {
                let worker = &worker;
                let stop = &stop;
                s.spawn(move || {
                    let result = worker(w);
                    if result.is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    result
                })
            })
            .collect();
        let mut progress = Progress::new(name, flips.len());
        while handles.iter().any(|h| !h.is_finished()) {
            std::thread::sleep(Duration::from_millis(200));
            progress.show(done.load(Ordering::Relaxed), &counts, false);
        }
        progress.show(done.load(Ordering::Relaxed), &counts, true);
        for handle in handles {
            handle.join().map_err(|_| anyhow!("a worker panicked"))??;
        }
        Ok(())
    });
    outcome?;
    let _ = std::fs::remove_dir_all(&dir);

    let levels = levels.into_inner().unwrap();
    let level = levels.first().cloned().unwrap_or_default();
    if levels.iter().any(|l| *l != level) {
        bail!("the unflipped bundle printed different levels on different runs: {levels:?}");
    }
    let mut records = records.into_inner().unwrap();
    records.sort_by_key(|r| r.flip);
    Ok(Results {
        bundle,
        flipped: flips.len(),
        counts: Class::ALL
            .iter()
            .map(|&c| (c, counts[c as usize].load(Ordering::Relaxed)))
            .collect(),
        records,
        level,
        elapsed: start.elapsed(),
        slowest: slowest.into_inner().unwrap(),
        stragglers: {
            let mut flips = stragglers.into_inner().unwrap();
            flips.sort();
            flips
        },
    })
}

/// `--only OFFSET:BIT`: one flip, everything about its run printed, the flipped file kept.
pub fn run_one_verbosely(
    prepared: &Prepared,
    bundle: &Bundle,
    flip: Flip,
    options: &Options,
    work: &Path,
) -> Result<()> {
    let name = bundle.kind.name();
    if flip.offset >= bundle.bytes.len() as u64 {
        bail!(
            "{name}: offset {} is past the end of the bundle ({} bytes)",
            flip.offset,
            bundle.bytes.len()
        );
    }
    private_descriptors()?;
    let mut slot = Slot::new(&work.join(format!("only-{name}")), &bundle.bytes)?;
    let baseline = baseline(&slot, options.timeout)?;
    slot.set(Some(flip))?;
    let started = Instant::now();
    let out = slot.run(options.timeout)?;
    let took = started.elapsed();
    let class = classify(&baseline, &out);
    let verify_ok = slot.verify(&prepared.mgo_pack, options.timeout * 5)?;
    let kept = work.join(format!("{name}-{}-{}.bundle", flip.offset, flip.bit));
    std::fs::copy(&slot.bundle, &kept).with_context(|| format!("copying to {}", kept.display()))?;
    let byte = bundle.bytes[flip.offset as usize];
    println!("bundle:   {} ({})", bundle.path.display(), bundle.launcher);
    println!(
        "flip:     offset {} ({:#x}) bit {}: {byte:#04x} -> {:#04x}",
        flip.offset,
        flip.offset,
        flip.bit,
        byte ^ (1 << flip.bit)
    );
    println!("where:    {}", bundle.layout.describe(flip.offset));
    println!("baseline: {}", baseline.level());
    println!("status:   {} after {} ms", out.status, took.as_millis());
    if let Status::TimedOut { cpu_ms, .. } = out.status {
        println!("cpu:      {cpu_ms} ms used when it was killed");
    }
    if out.stragglers > 0 {
        println!(
            "left:     {} other processes in its group when it ended (killed)",
            out.stragglers
        );
    }
    println!("class:    {}", class.name());
    if class == Class::Silent && out.status == Status::Exited(0) {
        println!("differs:  {}", difference(&baseline, &out));
    }
    println!("verify:   {}", if verify_ok { "ok" } else { "refused" });
    println!("stdout:   {} bytes", out.stdout.len());
    print_capped(&out.stdout);
    println!("stderr:   {} bytes", out.stderr.len());
    print_capped(&out.stderr);
    println!(
        "kept:     {} (run it by hand, under strace or gdb)",
        kept.display()
    );
    let _ = std::fs::remove_dir_all(work.join(format!("only-{name}")));
    Ok(())
}

fn baseline(slot: &Slot, timeout: Duration) -> Result<Baseline> {
    let out = slot.run(timeout)?;
    Baseline::new(&out).map_err(|e| anyhow!("{}: {e}", slot.bundle.display()))
}

fn print_capped(bytes: &[u8]) {
    const SHOWN: usize = 4096;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(SHOWN)]);
    for line in text.lines() {
        println!("  | {}", line.escape_debug());
    }
    if bytes.len() > SHOWN {
        println!("  | ... ({} more bytes)", bytes.len() - SHOWN);
    }
}

fn first_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().next().unwrap_or("");
    truncate(&line.escape_debug().to_string(), 160)
}

/// The level line if there is one, else the start of the output.
fn head(stdout: &[u8]) -> String {
    let shown = match level_line(stdout) {
        Some(line) => line,
        None => &stdout[..stdout.len().min(48)],
    };
    let mut text = String::from_utf8_lossy(shown).escape_debug().to_string();
    if level_line(stdout).is_none() && stdout.len() > 48 {
        text.push_str(&format!("... ({} bytes)", stdout.len()));
    }
    text
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}

/// The progress line: rewritten in place on a terminal, one line every 30 s otherwise.
struct Progress {
    name: &'static str,
    total: usize,
    start: Instant,
    last: Instant,
    terminal: bool,
}

impl Progress {
    fn new(name: &'static str, total: usize) -> Progress {
        Progress {
            name,
            total,
            start: Instant::now(),
            last: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn show(&mut self, done: usize, counts: &[AtomicUsize], last: bool) {
        let every = Duration::from_secs(if self.terminal { 1 } else { 30 });
        if !last && self.last.elapsed() < every {
            return;
        }
        self.last = Instant::now();
        let secs = self.start.elapsed().as_secs_f64().max(0.001);
        let rate = done as f64 / secs;
        let left = if rate > 0.0 {
            (self.total - done.min(self.total)) as f64 / rate
        } else {
            0.0
        };
        let classes: Vec<String> = Class::ALL
            .iter()
            .map(|&c| {
                format!(
                    "{} {}",
                    c.name(),
                    counts[c as usize].load(Ordering::Relaxed)
                )
            })
            .collect();
        let line = format!(
            "flips {}: {done}/{} ({:.1}%), {rate:.0}/s, {:.0}s elapsed, ~{:.0}s left | {}",
            self.name,
            self.total,
            100.0 * done as f64 / self.total.max(1) as f64,
            secs,
            left,
            classes.join(", ")
        );
        if self.terminal {
            eprint!("\r\x1b[K{line}");
            if last {
                eprintln!();
            }
        } else {
            eprintln!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bit_once_unsampled() {
        let all = flips(&[0..3, 10..11], 1);
        assert_eq!(all.len(), 32);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(all[8], Flip { offset: 1, bit: 0 });
        assert_eq!(all[24], Flip { offset: 10, bit: 0 });
    }

    #[test]
    fn a_sample_hits_every_bit_position() {
        for k in [8, 16, 64, 97] {
            let page = 0..4096;
            let sample = flips(&[page], k);
            assert_eq!(sample.len() as u64, (4096u64 * 8).div_ceil(k), "k = {k}");
            for bit in 0..8 {
                assert!(sample.iter().any(|f| f.bit == bit), "k = {k}: no bit {bit}");
            }
        }
    }
}
