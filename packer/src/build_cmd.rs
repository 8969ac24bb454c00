//! `mgo-pack build` (mgo's build mode: `go build` per GOAMD64 level) and `mgo-pack cargo`
//! (`cargo build --release` per level): the arguments, then the library's builder
//! ([`mgo_pack::builder`]) and the packer.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::Command;

use mgo_pack::builder::{BuildError, CargoBuild, LevelBuild};
use mgo_pack::{Input, PackError, PackOptions, Packed, Packer};

/// What `build` or `cargo` was asked: mgo-pack's own options, pulled out of the argument list
/// wherever they stand, and everything else for the build tool. Arguments are bytes, as Linux has
/// them: paths need not be UTF-8.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BuildArgs {
    pub output: Option<PathBuf>,
    pub compress: Option<String>,
    pub launch: Option<String>,
    /// `--levels v1,v3` (arm64: `v8.0,v8.2,lse`): the levels to build, all by default.
    pub levels: Option<Vec<u32>>,
    pub tool_args: Vec<OsString>,
}

impl BuildArgs {
    /// Like `go build`, `-o` may stand anywhere; mgo-pack's `--compress`, `--launch` and
    /// `--levels` too.
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
            } else if let Some(v) = take("--levels")? {
                parsed.levels = Some(parse_levels(&text("--levels", v)?)?);
            } else {
                parsed.tool_args.push(arg.clone());
            }
        }
        Ok(parsed)
    }
}

/// `v1,v3`, or arm64's `v8.0,v8.2,lse,crypto`: a `,lse` or `,crypto` belongs to the level before.
fn parse_levels(text: &str) -> Result<Vec<u32>, String> {
    let mut names: Vec<String> = Vec::new();
    for word in text.split(',') {
        match (word, names.last_mut()) {
            ("lse" | "crypto", Some(last)) => {
                last.push(',');
                last.push_str(word);
            }
            _ => names.push(word.to_string()),
        }
    }
    let mut levels = Vec::new();
    for name in names {
        let level = mgo_pack::parse_level(&name).map_err(|_| {
            format!("--levels: `{name}` is not a level (v1..v4, or as GOARM64 spells it: v8.2,lse)")
        })?;
        if !levels.contains(&level) {
            levels.push(level);
        }
    }
    Ok(levels)
}

/// Why `build` or `cargo` did not produce a bundle.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Build(#[from] BuildError),
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

/// A build command: [`go`] or [`cargo`], given the arguments, the pack options and whether to
/// be quiet; the bundle's path and what was packed.
pub type Run = fn(&BuildArgs, PackOptions, bool) -> Result<(PathBuf, Packed), CommandError>;

/// `mgo-pack build`: the Go builds, in a temporary directory, then the bundle.
pub fn go(
    args: &BuildArgs,
    options: PackOptions,
    quiet: bool,
) -> Result<(PathBuf, Packed), CommandError> {
    if let Ok(arch) = std::env::var("GOARCH") {
        if !arch.is_empty() && arch != "amd64" {
            return Err(CommandError::NotAmd64(arch));
        }
    }
    let mut build = LevelBuild::go(args.tool_args.iter().cloned());
    if let Some(levels) = &args.levels {
        if let Some(&other) = levels.iter().find(|&&l| l > 4) {
            return Err(CommandError::Usage(format!(
                "mgo-pack build makes GOAMD64 variants; {} is another architecture's level (pack \
                 its builds with `mgo-pack -o OUT LEVEL=PATH ...`)",
                mgo_pack::level_name(other)
            )));
        }
        build = build.levels(levels.iter().copied());
    }
    let output = match &args.output {
        Some(path) => path.clone(),
        None => default_go_output(&args.tool_args)?,
    };
    let dir = tempfile::Builder::new()
        .prefix("mgo-pack-build-")
        .tempdir()
        .map_err(CommandError::Temp)?;
    let outputs: Vec<PathBuf> = build
        .levels
        .iter()
        .map(|&l| dir.path().join(mgo_pack::level_name(l)))
        .collect();
    pack(&build, &outputs, &output, options, quiet)
}

/// `mgo-pack cargo`: the cargo builds, each in its level's target directory, then the bundle
/// (by default `TARGET/mgo-pack/BIN`).
pub fn cargo(
    args: &BuildArgs,
    options: PackOptions,
    quiet: bool,
) -> Result<(PathBuf, Packed), CommandError> {
    let cargo = CargoBuild::resolve(&args.tool_args, None)?;
    let mut build = LevelBuild::cargo(cargo.clone());
    if let Some(levels) = &args.levels {
        let arm64 = |l: u32| l > 4;
        if let Some(&wrong) = levels.iter().find(|&&l| arm64(l) != cargo.arm64) {
            return Err(CommandError::Usage(format!(
                "--levels: {} is not a level of the {} target",
                mgo_pack::level_name(wrong),
                if cargo.arm64 { "arm64" } else { "x86-64" }
            )));
        }
        build = build.levels(levels.iter().copied());
    }
    let output = match &args.output {
        Some(path) => path.clone(),
        None => cargo.out_dir().join(&cargo.bin),
    };
    let outputs: Vec<PathBuf> = build
        .levels
        .iter()
        .map(|&l| cargo.level_dir(l).join(&cargo.bin))
        .collect();
    for out in &outputs {
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).map_err(CommandError::Temp)?;
        }
    }
    if args.output.is_none() {
        std::fs::create_dir_all(cargo.out_dir()).map_err(CommandError::Temp)?;
    }
    pack(&build, &outputs, &output, options, quiet)
}

/// Runs the builds, their lines on stderr behind their level (only errors when quiet), then packs
/// the outputs at their levels.
fn pack(
    build: &LevelBuild,
    outputs: &[PathBuf],
    bundle: &std::path::Path,
    options: PackOptions,
    quiet: bool,
) -> Result<(PathBuf, Packed), CommandError> {
    let relay = |level: u32, line: &str| {
        if quiet && !line.contains("error") {
            return;
        }
        let _ = writeln!(
            std::io::stderr().lock(),
            "[{}] {line}",
            mgo_pack::level_name(level)
        );
    };
    build.build(outputs, &relay)?;
    let inputs: Vec<Input> = build
        .levels
        .iter()
        .zip(outputs)
        .map(|(&l, p)| Input::with_level(p, l))
        .collect();
    let packed = Packer::new(options).pack_to(&inputs, bundle)?;
    Ok((bundle.to_path_buf(), packed))
}

/// `go build`'s own default: the last element of the main package's import path, without a
/// major-version suffix (`example.com/tool/v2` builds `tool`).
fn default_go_output(go_args: &[OsString]) -> Result<PathBuf, CommandError> {
    let packages: Vec<&OsString> = go_args
        .iter()
        .filter(|a| !a.as_bytes().starts_with(b"-"))
        .collect();
    let mut cmd = Command::new("go");
    cmd.args(["list", "-f", "{{.ImportPath}}"])
        .args(packages.iter().take(1));
    let out = cmd.output().map_err(|source| BuildError::Spawn {
        program: "go".into(),
        source,
    })?;
    if !out.status.success() {
        return Err(CommandError::OutputName(
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
        _ => Err(CommandError::OutputName(format!(
            "`go list` named no single package ({path})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> BuildArgs {
        BuildArgs::parse(&args.iter().map(OsString::from).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn own_options_anywhere_the_rest_for_the_tool() {
        let args = parse(&[
            "-trimpath",
            "-o",
            "app",
            "-ldflags=-s -w",
            "--compress=zstd:3",
            "--levels",
            "v1,v3",
            "./cmd/app",
        ]);
        assert_eq!(args.output, Some(PathBuf::from("app")));
        assert_eq!(args.compress.as_deref(), Some("zstd:3"));
        assert_eq!(args.levels, Some(vec![1, 3]));
        assert_eq!(args.tool_args, ["-trimpath", "-ldflags=-s -w", "./cmd/app"]);
        assert_eq!(parse(&["-o=x"]).output, Some(PathBuf::from("x")));
        assert!(BuildArgs::parse(&["-o".into()]).is_err());
        assert!(BuildArgs::parse(&["--levels=v5".into()]).is_err());
    }

    #[test]
    fn arm64_levels_keep_their_suffixes() {
        let levels = parse_levels("v8.0,v8.2,lse,crypto,v9.0,lse").unwrap();
        let names: Vec<&str> = levels.iter().map(|&l| mgo_pack::level_name(l)).collect();
        assert_eq!(names, ["v8.0", "v8.2,lse,crypto", "v9.0,lse"]);
        assert!(parse_levels("lse").is_err());
    }
}
