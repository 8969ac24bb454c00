//! Running the per-level builds: all at once or one after another, every output line relayed
//! with its level and kept for the error, the first failure ending the others.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use super::{expand, rustc_flag, BuildError, LevelBuild, Recipe};

/// One level's build, prepared.
struct Job {
    level: u32,
    /// How the level is named in messages: `GOAMD64=v3`, `-Ctarget-cpu=x86-64-v3`, `v3`.
    shown: String,
    command: Command,
}

/// What one running build left: its output, and the executable cargo reported.
#[derive(Default)]
struct Seen {
    output: String,
    artifact: Option<PathBuf>,
}

pub(super) fn run(
    build: &LevelBuild,
    outputs: &[PathBuf],
    on_line: &(dyn Fn(u32, &str) + Sync),
) -> Result<(), BuildError> {
    let jobs: Vec<Job> = build
        .levels
        .iter()
        .zip(outputs)
        .map(|(&level, out)| job(build, level, out))
        .collect();
    // What failed, for messages, and the program run.
    let (what, program) = match &build.recipe {
        Recipe::Go { .. } => ("go build".to_string(), "go".to_string()),
        Recipe::Cargo(_) => ("cargo build".to_string(), "cargo".to_string()),
        Recipe::Command { program, .. } => {
            let name = program.to_string_lossy().into_owned();
            (name.clone(), name)
        }
    };
    let seen: Vec<Mutex<Seen>> = jobs.iter().map(|_| Mutex::default()).collect();
    let at_once = if build.parallel { jobs.len() } else { 1 };
    let cargo_bin = match &build.recipe {
        Recipe::Cargo(c) => Some(c.bin.as_str()),
        _ => None,
    };

    // The first failure: which job, and its status or why it could not run.
    let mut failure: Option<(usize, Result<String, BuildError>)> = None;
    let mut shown: Vec<String> = Vec::new();
    std::thread::scope(|scope| {
        let mut running: Vec<(usize, Child)> = Vec::new();
        let mut pending = jobs.into_iter().enumerate();
        loop {
            while failure.is_none() && running.len() < at_once {
                let Some((index, mut job)) = pending.next() else {
                    break;
                };
                shown.push(job.shown.clone());
                let mut child = match job.command.spawn() {
                    Ok(child) => child,
                    Err(source) => {
                        let program = program.clone();
                        failure = Some((index, Err(BuildError::Spawn { program, source })));
                        break;
                    }
                };
                let (level, seen) = (job.level, &seen[index]);
                if let Some(out) = child.stdout.take() {
                    scope.spawn(move || relay(out, level, seen, on_line, cargo_bin));
                }
                if let Some(err) = child.stderr.take() {
                    scope.spawn(move || relay(err, level, seen, on_line, None));
                }
                running.push((index, child));
            }
            if running.is_empty() || failure.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
            running.retain_mut(|(index, child)| match child.try_wait() {
                Ok(Some(status)) => {
                    if !status.success() && failure.is_none() {
                        let status = status
                            .code()
                            .map_or_else(|| status.to_string(), |c| c.to_string());
                        failure = Some((*index, Ok(status)));
                    }
                    false
                }
                Ok(None) => true,
                Err(source) => {
                    let what = format!("waiting for {what}");
                    failure.get_or_insert((*index, Err(BuildError::Io { what, source })));
                    true
                }
            });
        }
        // Their results would be thrown away.
        for (_, child) in &mut running {
            let _ = child.kill();
            let _ = child.wait();
        }
    });
    // The relays have finished (the scope joined them): the failed build's output is complete.
    match failure {
        Some((_, Err(e))) => return Err(e),
        Some((index, Ok(status))) => {
            let output = seen[index]
                .lock()
                .map(|s| s.output.clone())
                .unwrap_or_default();
            return Err(BuildError::Failed {
                what,
                level: shown[index].clone(),
                status,
                output,
            });
        }
        None => {}
    }

    if let Recipe::Cargo(cargo) = &build.recipe {
        for ((seen, out), &level) in seen.iter().zip(outputs).zip(&build.levels) {
            let artifact = seen.lock().ok().and_then(|s| s.artifact.clone());
            let Some(artifact) = artifact else {
                return Err(BuildError::NoArtifact {
                    level: rustc_flag(level),
                    bin: cargo.bin.clone(),
                });
            };
            std::fs::copy(&artifact, out).map_err(super::io_error(format!(
                "copying {} to {}",
                artifact.display(),
                out.display()
            )))?;
        }
    }
    Ok(())
}

fn job(build: &LevelBuild, level: u32, out: &Path) -> Job {
    let name = crate::level_name(level);
    let arm64 = mgo_format::level::Aarch64Level::from_code(level).is_some();
    let (mut command, shown) = match &build.recipe {
        Recipe::Go { args } => {
            let mut cmd = Command::new("go");
            cmd.arg("build").arg("-o").arg(out).args(args);
            let arch_of = |arch| mgo_format::level::is_valid(arch, level);
            let (variable, goarch) = if arm64 {
                ("GOARM64", "arm64")
            } else if arch_of(mgo_format::Arch::Riscv64) {
                ("GORISCV64", "riscv64")
            } else if arch_of(mgo_format::Arch::Ppc64le) {
                ("GOPPC64", "ppc64le")
            } else if arch_of(mgo_format::Arch::Arm) {
                ("GOARM", "arm")
            } else {
                ("GOAMD64", "amd64")
            };
            cmd.env(variable, name).env("GOARCH", goarch);
            (cmd, format!("{variable}={name}"))
        }
        Recipe::Cargo(cargo) => {
            let flag = rustc_flag(level);
            (cargo.command(level, &flag, &build.env), flag)
        }
        Recipe::Command { program, args } => {
            let mut cmd = Command::new(program);
            cmd.args(args.iter().map(|a| expand(a, level, out)));
            (cmd, name.to_string())
        }
    };
    command
        .envs(build.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = &build.dir {
        command.current_dir(dir);
    }
    Job {
        level,
        shown,
        command,
    }
}

/// Passes each line on and keeps it; with `cargo_bin`, the stream is cargo's JSON messages, of
/// which only the executable built for that binary is wanted.
fn relay(
    stream: impl Read,
    level: u32,
    seen: &Mutex<Seen>,
    on_line: &(dyn Fn(u32, &str) + Sync),
    cargo_bin: Option<&str>,
) {
    for line in BufReader::new(stream).split(b'\n').map_while(Result::ok) {
        let line = String::from_utf8_lossy(&line);
        if let Some(bin) = cargo_bin {
            if line.starts_with('{') {
                if let Some(path) = super::cargo::artifact(&line, bin) {
                    if let Ok(mut seen) = seen.lock() {
                        seen.artifact = Some(path);
                    }
                }
                continue;
            }
        }
        if let Ok(mut seen) = seen.lock() {
            seen.output.push_str(&line);
            seen.output.push('\n');
        }
        on_line(level, &line);
    }
}
