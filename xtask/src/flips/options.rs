//! The command line of `cargo xtask flips`.

use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::fixtures::Kind;
use super::layout::Part;

pub const USAGE: &str = "usage: cargo xtask flips [--bundle stored|gzip|all] [--range launcher|headers|all] \
                         [--sample K] [--timeout-ms N] [--jobs N] [--verify] [--only OFFSET:BIT | --flips FILE]\n  \
                         --sample K      flip every K-th bit only (the bit within the byte rotates)\n  \
                         --timeout-ms N  a run still going after N ms (default 2000) that used N/2 ms of CPU, or\n                  \
                         sleeps without progress, is a hang; a starved one gets up to 10 N\n  \
                         --jobs N        runs at once (default: the available cores)\n  \
                         --verify        also run `mgo-pack verify` on every flipped copy whose run was not `same`\n  \
                         --only OFF:BIT  run one flip (offset decimal or 0x hex, bit 0..7) verbosely and keep the file\n  \
                         --flips FILE    run the flips listed in FILE instead (OFFSET:BIT lines, or a results .tsv;\n                  \
                         with --bundle, as offsets differ between bundles)";

/// One bit of one byte of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Flip {
    pub offset: u64,
    pub bit: u8,
}

impl Flip {
    /// `OFFSET:BIT`, the offset in decimal or `0x` hex.
    pub fn parse(text: &str) -> Result<Flip> {
        let (offset, bit) = text
            .split_once(':')
            .with_context(|| format!("{text:?}: expected OFFSET:BIT"))?;
        let offset = match offset.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => offset.parse(),
        }
        .with_context(|| format!("{text:?}: bad offset"))?;
        let bit: u8 = bit.parse().with_context(|| format!("{text:?}: bad bit"))?;
        if bit > 7 {
            bail!("{text:?}: the bit is 0..7");
        }
        Ok(Flip { offset, bit })
    }
}

#[derive(Debug)]
pub struct Options {
    pub bundles: Vec<Kind>,
    pub parts: Vec<Part>,
    pub sample: u64,
    pub timeout: Duration,
    pub jobs: usize,
    pub verify: bool,
    pub only: Option<Flip>,
    /// `--flips FILE`: these flips instead of every bit of `parts`.
    pub list: Option<Vec<Flip>>,
    /// The arguments as given, for the report.
    args: Vec<String>,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Options> {
        let mut options = Options {
            bundles: vec![Kind::Stored, Kind::Gzip],
            parts: vec![Part::Launcher, Part::Headers],
            sample: 1,
            timeout: Duration::from_secs(2),
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            verify: false,
            only: None,
            list: None,
            args: args.to_vec(),
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) if name.starts_with("--") => (name, Some(value.to_string())),
                _ => (arg.as_str(), None),
            };
            let mut value = || -> Result<String> {
                match &inline {
                    Some(v) => Ok(v.clone()),
                    None => args
                        .next()
                        .cloned()
                        .with_context(|| format!("{name} needs a value\n{USAGE}")),
                }
            };
            match name {
                "--bundle" => {
                    options.bundles = match value()?.as_str() {
                        "stored" => vec![Kind::Stored],
                        "gzip" => vec![Kind::Gzip],
                        "all" => vec![Kind::Stored, Kind::Gzip],
                        other => bail!("--bundle {other}: expected stored, gzip or all"),
                    }
                }
                "--range" => {
                    options.parts = match value()?.as_str() {
                        "launcher" => vec![Part::Launcher],
                        "headers" => vec![Part::Headers],
                        "all" => vec![Part::Launcher, Part::Headers],
                        other => bail!("--range {other}: expected launcher, headers or all"),
                    }
                }
                "--sample" => options.sample = positive(name, &value()?)?,
                "--timeout-ms" => {
                    options.timeout = Duration::from_millis(positive(name, &value()?)?)
                }
                "--jobs" => options.jobs = positive(name, &value()?)? as usize,
                "--verify" => options.verify = true,
                "--only" => options.only = Some(Flip::parse(&value()?)?),
                "--flips" => {
                    let path = value()?;
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {path}"))?;
                    options.list = Some(parse_list(&text)?);
                }
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other:?}\n{USAGE}"),
            }
        }
        Ok(options)
    }

    /// `cargo xtask flips ARGS`, as run.
    pub fn command_line(&self) -> String {
        let mut line = String::from("cargo xtask flips");
        for arg in &self.args {
            line.push(' ');
            line.push_str(arg);
        }
        line
    }
}

/// `OFFSET:BIT` lines, or the lines of a results file (`OFFSET<tab>BIT<tab>...` under a header
/// line); lines that do not start with a digit are skipped.
fn parse_list(text: &str) -> Result<Vec<Flip>> {
    let mut flips = Vec::new();
    for line in text.lines() {
        if !line.starts_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        let mut fields = line.split(['\t', ':']);
        let (Some(offset), Some(bit)) = (fields.next(), fields.next()) else {
            bail!("{line:?}: expected OFFSET:BIT");
        };
        flips.push(Flip::parse(&format!("{}:{}", offset.trim(), bit.trim()))?);
    }
    flips.sort();
    flips.dedup();
    Ok(flips)
}

fn positive(name: &str, text: &str) -> Result<u64> {
    match text.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => bail!("{name} {text}: expected a positive integer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flips_in_decimal_and_hex() {
        assert_eq!(
            Flip::parse("1249:0").unwrap(),
            Flip {
                offset: 1249,
                bit: 0
            }
        );
        assert_eq!(
            Flip::parse("0x4e1:7").unwrap(),
            Flip {
                offset: 0x4e1,
                bit: 7
            }
        );
        assert!(Flip::parse("1249:8").is_err());
        assert!(Flip::parse("1249").is_err());
    }

    #[test]
    fn reads_flip_lists_and_results_files() {
        let tsv = "offset\tbit\tclass\n1249\t0\thang\t...\n97\t5\tsilent\n";
        let list = parse_list(tsv).unwrap();
        assert_eq!(
            list,
            [
                Flip { offset: 97, bit: 5 },
                Flip {
                    offset: 1249,
                    bit: 0
                }
            ]
        );
        assert_eq!(
            parse_list("0x10:3\n").unwrap(),
            [Flip { offset: 16, bit: 3 }]
        );
    }
}
