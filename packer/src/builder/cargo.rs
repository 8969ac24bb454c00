//! cargo: which binary a `cargo build` command line builds, and how each level builds it.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::BuildError;

/// One binary of a crate or workspace, built with `cargo build` once per level.
///
/// Each level builds in a target directory of its own, `TARGET/mgo-pack/LEVEL` (`x86-64-v3`,
/// `v8.2_lse`), so that switching levels rebuilds nothing, and the level's flag
/// ([`super::rustc_flag`]) is added to the rustflags the user set: to `CARGO_ENCODED_RUSTFLAGS` or
/// `RUSTFLAGS` when either is set, else to `build.rustflags` of cargo's configuration (through
/// `--config`, which cargo joins with the configuration files' own list).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CargoBuild {
    /// The user's `cargo build` arguments, without `--release`, `--bin`, `--target-dir` and
    /// `--message-format`, which mgo-pack sets.
    pub args: Vec<OsString>,
    /// The binary built.
    pub bin: String,
    /// cargo's target directory (`target`, or as `--target-dir`, `CARGO_TARGET_DIR` or the
    /// configuration say).
    pub target_dir: PathBuf,
    /// Whether the target is arm64 (`--target aarch64-...`, or an arm64 host).
    pub arm64: bool,
    /// Whether `--profile` was given (else `--release` is added).
    pub profile: bool,
}

/// The arm64 levels `mgo-pack cargo` builds unless told otherwise.
pub const ARM64_LEVELS: [&str; 4] = ["v8.0", "v8.0,crypto", "v8.2,lse,crypto", "v8.4,lse,crypto"];

/// The cargo arguments mgo-pack reads (it passes most of them on).
#[derive(Default)]
struct Parsed {
    args: Vec<OsString>,
    bin: Option<String>,
    packages: Vec<String>,
    workspace: bool,
    manifest_path: Option<OsString>,
    target: Option<String>,
    target_dir: Option<PathBuf>,
    profile: bool,
}

fn parse(args: &[OsString]) -> Result<Parsed, BuildError> {
    let mut parsed = Parsed::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let bytes = arg.as_bytes();
        // `--name VALUE`, `--name=VALUE`, and for short options `-pVALUE`.
        let mut value = |long: &str, short: Option<&str>| -> Result<Option<OsString>, BuildError> {
            let names = [Some(long), short];
            if names.iter().flatten().any(|n| bytes == n.as_bytes()) {
                return it
                    .next()
                    .cloned()
                    .map(Some)
                    .ok_or_else(|| BuildError::Cargo(format!("{long} needs a value")));
            }
            if let Some(v) = bytes.strip_prefix(format!("{long}=").as_bytes()) {
                return Ok(Some(OsStr::from_bytes(v).into()));
            }
            if let Some(short) = short {
                if let Some(v) = bytes.strip_prefix(short.as_bytes()) {
                    return Ok(Some(
                        OsStr::from_bytes(v.strip_prefix(b"=").unwrap_or(v)).into(),
                    ));
                }
            }
            Ok(None)
        };
        let text = |v: OsString| {
            v.into_string()
                .map_err(|v| BuildError::Cargo(format!("{v:?} is not valid UTF-8")))
        };
        if bytes == b"--release" || bytes == b"-r" || bytes == b"--bins" {
            continue;
        }
        if let Some(v) = value("--bin", None)? {
            if parsed.bin.is_some() {
                return Err(BuildError::Cargo(
                    "one binary at a time: give --bin once".into(),
                ));
            }
            parsed.bin = Some(text(v)?);
        } else if let Some(v) = value("--target-dir", None)? {
            parsed.target_dir = Some(v.into());
        } else if value("--message-format", None)?.is_some() {
            // mgo-pack reads cargo's JSON messages; diagnostics are still rendered for people.
        } else if let Some(v) = value("--package", Some("-p"))? {
            parsed.packages.push(text(v.clone())?);
            parsed.args.extend(["--package".into(), v]);
        } else if let Some(v) = value("--manifest-path", None)? {
            parsed.manifest_path = Some(v.clone());
            parsed.args.extend(["--manifest-path".into(), v]);
        } else if let Some(v) = value("--target", None)? {
            parsed.target = Some(text(v.clone())?);
            parsed.args.extend(["--target".into(), v]);
        } else if let Some(v) = value("--profile", None)? {
            parsed.profile = true;
            parsed.args.extend(["--profile".into(), v]);
        } else {
            if bytes == b"--workspace" || bytes == b"--all" {
                parsed.workspace = true;
            }
            parsed.args.push(arg.clone());
        }
    }
    Ok(parsed)
}

impl CargoBuild {
    /// Reads `cargo build` arguments run in `dir` (the current directory when `None`): which
    /// package and binary they build, for which target, into which target directory. A package
    /// with several binaries and no `--bin` is an error naming them.
    pub fn resolve(args: &[OsString], dir: Option<&Path>) -> Result<CargoBuild, BuildError> {
        let parsed = parse(args)?;
        let cargo = |args: &[&OsStr]| -> Result<Vec<u8>, BuildError> {
            let mut cmd = Command::new("cargo");
            cmd.args(args);
            if let Some(path) = &parsed.manifest_path {
                cmd.arg("--manifest-path").arg(path);
            }
            if let Some(dir) = dir {
                cmd.current_dir(dir);
            }
            let out = cmd.output().map_err(|source| BuildError::Spawn {
                program: "cargo".into(),
                source,
            })?;
            if !out.status.success() {
                return Err(BuildError::Cargo(format!(
                    "cargo {}: {}",
                    args[0].to_string_lossy(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            Ok(out.stdout)
        };
        let metadata = cargo(&[
            "metadata".as_ref(),
            "--no-deps".as_ref(),
            "--format-version".as_ref(),
            "1".as_ref(),
        ])?;
        let metadata: serde_json::Value = serde_json::from_slice(&metadata)
            .map_err(|e| BuildError::Cargo(format!("cargo metadata: {e}")))?;
        let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
        let ids = |key: &str| -> Vec<String> {
            metadata[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let members = ids("workspace_members");
        let member = |p: &&serde_json::Value| {
            p["id"]
                .as_str()
                .is_some_and(|id| members.iter().any(|m| m == id))
        };
        let selected: Vec<&serde_json::Value> = if !parsed.packages.is_empty() {
            let mut selected = Vec::new();
            for name in &parsed.packages {
                match packages.iter().find(|p| p["name"] == name.as_str()) {
                    Some(p) => selected.push(p),
                    None => {
                        return Err(BuildError::Cargo(format!(
                            "no package `{name}` in the workspace"
                        )))
                    }
                }
            }
            selected
        } else if parsed.workspace {
            packages.iter().filter(member).collect()
        } else {
            let located = cargo(&[
                "locate-project".as_ref(),
                "--message-format".as_ref(),
                "plain".as_ref(),
            ])?;
            let manifest = String::from_utf8_lossy(&located).trim().to_string();
            match packages
                .iter()
                .find(|p| p["manifest_path"] == manifest.as_str())
            {
                Some(p) => vec![p],
                None => {
                    // A virtual manifest: its default members, or all of them.
                    let defaults = ids("workspace_default_members");
                    let chosen = if defaults.is_empty() {
                        members.clone()
                    } else {
                        defaults
                    };
                    packages
                        .iter()
                        .filter(|p| {
                            p["id"]
                                .as_str()
                                .is_some_and(|id| chosen.iter().any(|c| c == id))
                        })
                        .collect()
                }
            }
        };
        let bin = match parsed.bin.clone() {
            Some(bin) => bin,
            None => only_binary(&selected)?,
        };
        let target = match &parsed.target {
            Some(t) => t.clone(),
            None => host_triple()?,
        };
        let arm64 = if target.starts_with("aarch64") {
            true
        } else if target.starts_with("x86_64") {
            false
        } else {
            return Err(BuildError::Cargo(format!(
                "mgo-pack cargo builds for x86-64 and arm64 targets, not {target}"
            )));
        };
        let target_dir = match &parsed.target_dir {
            Some(d) => match dir {
                Some(dir) => dir.join(d),
                None => d.clone(),
            },
            None => PathBuf::from(metadata["target_directory"].as_str().ok_or_else(|| {
                BuildError::Cargo("cargo metadata named no target directory".into())
            })?),
        };
        Ok(CargoBuild {
            args: parsed.args,
            bin,
            target_dir,
            arm64,
            profile: parsed.profile,
        })
    }

    /// x86-64's v1..v4, or [`ARM64_LEVELS`] for an arm64 target.
    pub fn default_levels(&self) -> Vec<u32> {
        if self.arm64 {
            ARM64_LEVELS
                .iter()
                .map(|l| crate::parse_level(l).expect("a valid arm64 level"))
                .collect()
        } else {
            super::X86_64_LEVELS.to_vec()
        }
    }

    /// `TARGET/mgo-pack`: the levels' target directories and, by default, the bundle.
    pub fn out_dir(&self) -> PathBuf {
        self.target_dir.join("mgo-pack")
    }

    /// The level's own target directory.
    pub fn level_dir(&self, level: u32) -> PathBuf {
        let name = match mgo_format::level::Aarch64Level::from_code(level) {
            Some(_) => crate::level_name(level).replace(',', "_"),
            None => super::gcc_march(level),
        };
        self.out_dir().join(name)
    }

    /// `cargo build` for one level, with `flag` added to the rustflags.
    pub(super) fn command(&self, level: u32, flag: &str, env: &[(OsString, OsString)]) -> Command {
        let mut cmd = Command::new("cargo");
        cmd.arg("build");
        if !self.profile {
            cmd.arg("--release");
        }
        cmd.arg("--message-format=json-render-diagnostics")
            .arg("--target-dir")
            .arg(self.level_dir(level))
            .args(&self.args)
            .arg("--bin")
            .arg(&self.bin);
        let var = |name: &str| {
            env.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| std::env::var_os(name))
        };
        if let Some(flags) = var("CARGO_ENCODED_RUSTFLAGS") {
            cmd.env("CARGO_ENCODED_RUSTFLAGS", joined(flags, "\x1f", flag));
        } else if let Some(flags) = var("RUSTFLAGS") {
            cmd.env("RUSTFLAGS", joined(flags, " ", flag));
        } else {
            cmd.arg("--config")
                .arg(format!("build.rustflags=[\"{flag}\"]"));
        }
        cmd
    }
}

fn joined(flags: OsString, separator: &str, flag: &str) -> OsString {
    let mut flags = flags;
    if !flags.is_empty() {
        flags.push(separator);
    }
    flags.push(flag);
    flags
}

/// The one binary of the selected packages, or an error naming them all.
fn only_binary(packages: &[&serde_json::Value]) -> Result<String, BuildError> {
    let mut bins: Vec<(String, String)> = Vec::new();
    for p in packages {
        let package = p["name"].as_str().unwrap_or("?").to_string();
        for t in p["targets"].as_array().into_iter().flatten() {
            if t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
            {
                bins.push((
                    t["name"].as_str().unwrap_or("?").to_string(),
                    package.clone(),
                ));
            }
        }
    }
    let names: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    match &bins[..] {
        [(bin, _)] => Ok(bin.clone()),
        [] => Err(BuildError::Cargo(format!(
            "no binary to build in {}",
            if names.is_empty() {
                "the workspace".to_string()
            } else {
                format!("package {}", names.join(", "))
            }
        ))),
        _ => {
            let listed: Vec<String> = bins
                .iter()
                .map(|(bin, package)| {
                    if names.len() > 1 {
                        format!("{bin} (package {package})")
                    } else {
                        bin.clone()
                    }
                })
                .collect();
            Err(BuildError::Cargo(format!(
                "{} {} binaries: {}; choose one with --bin NAME",
                if names.len() == 1 {
                    format!("package {}", names[0])
                } else {
                    "the packages selected".to_string()
                },
                if names.len() == 1 {
                    "has several"
                } else {
                    "have several"
                },
                listed.join(", ")
            )))
        }
    }
}

fn host_triple() -> Result<String, BuildError> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .map_err(|source| BuildError::Spawn {
            program: "rustc".into(),
            source,
        })?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|h| h.trim().to_string())
        .ok_or_else(|| BuildError::Cargo("rustc -vV named no host".into()))
}

/// The executable of binary `bin` in one of cargo's JSON messages, if the line is that message.
pub(super) fn artifact(line: &str, bin: &str) -> Option<PathBuf> {
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    if message["reason"] != "compiler-artifact" || message["target"]["name"] != bin {
        return None;
    }
    let is_bin = message["target"]["kind"]
        .as_array()
        .is_some_and(|k| k.iter().any(|k| k == "bin"));
    if !is_bin {
        return None;
    }
    message["executable"].as_str().map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn reads_the_arguments_it_needs_and_passes_the_rest() {
        let p = parse(&args(&[
            "-r",
            "-pcore",
            "--bin=rg",
            "--features",
            "pcre2",
            "--target-dir",
            "/t",
            "--message-format",
            "short",
            "--target=aarch64-unknown-linux-musl",
        ]))
        .unwrap();
        assert_eq!(p.bin.as_deref(), Some("rg"));
        assert_eq!(p.packages, ["core"]);
        assert_eq!(p.target_dir, Some(PathBuf::from("/t")));
        assert_eq!(p.target.as_deref(), Some("aarch64-unknown-linux-musl"));
        assert_eq!(
            p.args,
            args(&[
                "--package",
                "core",
                "--features",
                "pcre2",
                "--target",
                "aarch64-unknown-linux-musl"
            ])
        );
        assert!(parse(&args(&["--bin", "a", "--bin", "b"])).is_err());
        assert!(parse(&args(&["--target-dir"])).is_err());
    }

    #[test]
    fn finds_the_binary_in_cargo_messages() {
        let line = r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"rg"},"executable":"/t/release/rg"}"#;
        assert_eq!(artifact(line, "rg"), Some(PathBuf::from("/t/release/rg")));
        assert_eq!(artifact(line, "other"), None);
        let lib = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"rg"},"executable":null}"#;
        assert_eq!(artifact(lib, "rg"), None);
        assert_eq!(artifact("not json", "rg"), None);
    }

    #[test]
    fn the_level_flag_joins_the_users_rustflags() {
        let build = CargoBuild {
            args: Vec::new(),
            bin: "app".into(),
            target_dir: "/t".into(),
            arm64: false,
            profile: false,
        };
        let env = |pairs: &[(&str, &str)]| -> Vec<(OsString, OsString)> {
            pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
        };
        let flags = |cmd: &Command, name: &str| {
            cmd.get_envs()
                .find(|(k, _)| *k == name)
                .and_then(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
        };
        let cmd = build.command(
            3,
            "-Ctarget-cpu=x86-64-v3",
            &env(&[("RUSTFLAGS", "--cfg x")]),
        );
        assert_eq!(
            flags(&cmd, "RUSTFLAGS").as_deref(),
            Some("--cfg x -Ctarget-cpu=x86-64-v3")
        );
        let cmd = build.command(
            3,
            "-Ctarget-cpu=x86-64-v3",
            &env(&[("CARGO_ENCODED_RUSTFLAGS", "--cfg\x1fx")]),
        );
        assert_eq!(
            flags(&cmd, "CARGO_ENCODED_RUSTFLAGS").as_deref(),
            Some("--cfg\x1fx\x1f-Ctarget-cpu=x86-64-v3")
        );
        let dir: Vec<_> = cmd.get_args().collect();
        assert!(
            dir.contains(&OsStr::new("/t/mgo-pack/x86-64-v3")),
            "{dir:?}"
        );
    }
}
