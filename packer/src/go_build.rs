//! `mgo-pack build`: mgo's build mode, for users migrating from mgo. It runs `go build` once per
//! GOAMD64 level, in parallel, then packs the four outputs through the library. This is the only
//! place mgo-pack runs Go; the packer itself only ever reads finished executables.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mgo_pack::{Input, PackError, PackOptions, Packed, Packer};

const LEVELS: [u32; 4] = [1, 2, 3, 4];

/// What `build` was asked: its own options, pulled out of the argument list wherever they stand,
/// and everything else for `go build`. Arguments are bytes, as Linux has them: paths need not be
/// UTF-8.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BuildArgs {
    pub output: Option<PathBuf>,
    pub compress: Option<String>,
    pub launch: Option<String>,
    pub go_args: Vec<OsString>,
}

impl BuildArgs {
    /// Like `go build`, `-o` may stand anywhere; mgo-pack's `--compress` and `--launch` too.
    pub fn parse(args: &[OsString]) -> Result<BuildArgs, String> {
        let mut parsed = BuildArgs::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut take = |name: &str| -> Result<Option<OsString>, String> {
                let bytes = arg.as_bytes();
                if bytes == name.as_bytes() || bytes == format!("-{name}").as_bytes() {
                    return args
                        .next()
                        .cloned()
                        .map(Some)
                        .ok_or(format!("{name} needs a value"));
                }
                for prefix in [format!("{name}="), format!("-{name}=")] {
                    if let Some(value) = bytes.strip_prefix(prefix.as_bytes()) {
                        return Ok(Some(OsStr::from_bytes(value).into()));
                    }
                }
                Ok(None)
            };
            let text = |name: &str, value: OsString| {
                value
                    .into_string()
                    .map_err(|v| format!("{name} {:?} is not a valid value", v))
            };
            if let Some(v) = take("-o")? {
                parsed.output = Some(v.into());
            } else if let Some(v) = take("--compress")? {
                parsed.compress = Some(text("--compress", v)?);
            } else if let Some(v) = take("--launch")? {
                parsed.launch = Some(text("--launch", v)?);
            } else {
                parsed.go_args.push(arg.clone());
            }
        }
        Ok(parsed)
    }
}

/// Why a build did not produce a bundle.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot run go: {0} (install Go, e.g. Debian's golang-go)")]
    NoGo(std::io::Error),
    #[error("go build failed for GOAMD64=v{level} (exit status {status}); the other builds were stopped")]
    GoFailed { level: u32, status: String },
    #[error("cannot tell the output name: {0}; give -o OUT")]
    OutputName(String),
    #[error("mgo-pack build makes GOAMD64 variants; GOARCH={0} is not amd64 (pack arm64 builds with `mgo-pack -o OUT v8.0=PATH ...`)")]
    NotAmd64(String),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Pack(#[from] PackError),
    #[error("temporary directory: {0}")]
    Temp(std::io::Error),
}

/// Builds the four variants and packs them into the output.
pub fn run(
    args: &BuildArgs,
    options: PackOptions,
    quiet: bool,
) -> Result<(PathBuf, Packed), BuildError> {
    if let Ok(arch) = std::env::var("GOARCH") {
        if !arch.is_empty() && arch != "amd64" {
            return Err(BuildError::NotAmd64(arch));
        }
    }
    let output = match &args.output {
        Some(path) => path.clone(),
        None => default_output(&args.go_args)?,
    };
    let dir = tempfile::Builder::new()
        .prefix("mgo-pack-build-")
        .tempdir()
        .map_err(BuildError::Temp)?;
    let outputs: Vec<PathBuf> = LEVELS
        .iter()
        .map(|l| dir.path().join(format!("v{l}")))
        .collect();
    build_all(&args.go_args, &outputs, quiet)?;
    let inputs: Vec<Input> = LEVELS
        .iter()
        .zip(&outputs)
        .map(|(&l, p)| Input::with_level(p, l))
        .collect();
    let packed = Packer::new(options).pack_to(&inputs, &output)?;
    Ok((output, packed))
}

/// `go build`'s own default: the last element of the main package's import path, without a
/// major-version suffix (`example.com/tool/v2` builds `tool`).
fn default_output(go_args: &[OsString]) -> Result<PathBuf, BuildError> {
    let packages: Vec<&OsString> = go_args
        .iter()
        .filter(|a| !a.as_bytes().starts_with(b"-"))
        .collect();
    let mut cmd = Command::new("go");
    cmd.args(["list", "-f", "{{.ImportPath}}"])
        .args(packages.iter().take(1));
    let out = cmd.output().map_err(BuildError::NoGo)?;
    if !out.status.success() {
        return Err(BuildError::OutputName(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut parts: Vec<&str> = path.rsplit('/').collect();
    let is_major =
        |s: &str| s.len() > 1 && s.starts_with('v') && s[1..].bytes().all(|b| b.is_ascii_digit());
    if parts.len() > 1 && is_major(parts[0]) {
        parts.remove(0);
    }
    match parts.first() {
        Some(name) if !name.is_empty() && !name.contains(' ') => Ok(PathBuf::from(name)),
        _ => Err(BuildError::OutputName(format!(
            "`go list` named no single package ({path})"
        ))),
    }
}

/// Runs the four builds at once, each output line prefixed with its level; the first failure
/// kills the others, since their results would be thrown away.
fn build_all(go_args: &[OsString], outputs: &[PathBuf], quiet: bool) -> Result<(), BuildError> {
    let print = Arc::new(Mutex::new(()));
    let mut children: Vec<(u32, Child)> = Vec::new();
    let mut relays = Vec::new();
    for (&level, out) in LEVELS.iter().zip(outputs) {
        let mut child = go_build(level, out, go_args).map_err(BuildError::NoGo)?;
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let print = Arc::clone(&print);
            relays.push(std::thread::spawn(move || {
                relay(stream, level, &print, quiet)
            }));
        }
        children.push((level, child));
    }
    let mut failure = None;
    let mut running = children.len();
    while running > 0 && failure.is_none() {
        running = 0;
        for (level, child) in &mut children {
            match child.try_wait() {
                Ok(Some(status)) if !status.success() => {
                    let status = status
                        .code()
                        .map_or_else(|| status.to_string(), |c| c.to_string());
                    failure = Some(BuildError::GoFailed {
                        level: *level,
                        status,
                    });
                }
                Ok(Some(_)) => {}
                _ => running += 1,
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for (_, child) in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    for relay in relays {
        let _ = relay.join();
    }
    failure.map_or(Ok(()), Err)
}

fn go_build(level: u32, output: &Path, go_args: &[OsString]) -> std::io::Result<Child> {
    Command::new("go")
        .arg("build")
        .arg("-o")
        .arg(output)
        .args(go_args)
        .env("GOAMD64", format!("v{level}"))
        .env("GOARCH", "amd64")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
}

fn relay(stream: Box<dyn Read + Send>, level: u32, print: &Mutex<()>, quiet: bool) {
    for line in BufReader::new(stream).lines().map_while(Result::ok) {
        if quiet && !line.contains("error") {
            continue;
        }
        let _guard = print.lock();
        let _ = writeln!(std::io::stderr(), "[v{level}] {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> BuildArgs {
        BuildArgs::parse(&args.iter().map(OsString::from).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn own_options_anywhere_the_rest_for_go() {
        let args = parse(&[
            "-trimpath",
            "-o",
            "app",
            "-ldflags=-s -w",
            "--compress=zstd:3",
            "./cmd/app",
        ]);
        assert_eq!(args.output, Some(PathBuf::from("app")));
        assert_eq!(args.compress.as_deref(), Some("zstd:3"));
        assert_eq!(args.go_args, ["-trimpath", "-ldflags=-s -w", "./cmd/app"]);
        assert_eq!(parse(&["-o=x"]).output, Some(PathBuf::from("x")));
        assert!(BuildArgs::parse(&["-o".into()]).is_err());
    }
}
