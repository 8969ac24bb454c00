//! Building one program once per CPU level: the only place mgo-pack runs a compiler.
//!
//! A [`LevelBuild`] says what to build (a Go package, a cargo binary, or any compiler command)
//! and for which levels; [`LevelBuild::build`] runs one build per level, relaying each output
//! line with its level and stopping the rest at the first failure, and
//! [`LevelBuild::cached`] keeps the results under a directory with a stamp of what they were built
//! from, so that a second call with the same sources does nothing. `mgo-pack build` and
//! `mgo-pack cargo` are built on it, and so are the fixtures of the tests and of the benchmark.
//!
//! What a level means to each toolchain:
//!
//! | level | Go | cargo (rustc) | a compiler command (`{march}`) |
//! |---|---|---|---|
//! | x86-64 v1 | `GOAMD64=v1` | `-C target-cpu=x86-64` | `x86-64` |
//! | x86-64 vN | `GOAMD64=vN` | `-C target-cpu=x86-64-vN` | `x86-64-vN` |
//! | arm64 v8.2,lse | `GOARM64=v8.2,lse` | `-C target-feature=+lse,+crc,+rdm` | `armv8.2-a+nocrypto` |
//!
//! ```no_run
//! use mgo_pack::builder::LevelBuild;
//!
//! // gcc -O2 -march=x86-64-vN -mneeded -o OUT app.c, for v1..v4, four at once.
//! let build = LevelBuild::command("gcc", ["-O2", "-march={march}", "-mneeded", "-o", "{out}", "app.c"]);
//! let outputs = build.cached("target/levels".as_ref(), "app", "")?;
//! # Ok::<(), mgo_pack::builder::BuildError>(())
//! ```

mod cargo;
mod run;

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use mgo_format::level::Aarch64Level;

pub use cargo::CargoBuild;

/// The x86-64 levels, v1 to v4.
pub const X86_64_LEVELS: [u32; 4] = [1, 2, 3, 4];

/// What a build runs for each level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipe {
    /// `go build ARGS -o OUT`, with `GOARCH` and `GOAMD64` (or `GOARM64`) set for the level.
    Go { args: Vec<OsString> },
    /// `cargo build --release` of one binary, with the level's code-generation flag added to the
    /// rustflags and a target directory of the level's own (see [`CargoBuild`]).
    Cargo(CargoBuild),
    /// Any command; in its arguments `{march}` stands for gcc's `-march` value of the level,
    /// `{level}` for the level's name (`v3`, `v8.2,lse`) and `{out}` for the output path.
    Command {
        program: OsString,
        args: Vec<OsString>,
    },
}

/// One program, built once per level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelBuild {
    pub recipe: Recipe,
    /// Level codes, as [`crate::parse_level`] makes them: 1..=4 or arm64 codes.
    pub levels: Vec<u32>,
    /// The directory the builds run in (the caller's when `None`).
    pub dir: Option<PathBuf>,
    /// Variables set for every build, on top of the caller's environment.
    pub env: Vec<(OsString, OsString)>,
    /// Whether the levels build at once (Go, compilers) or one after another (cargo, which uses
    /// every core for one build).
    pub parallel: bool,
}

/// Why a build produced no programs.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot run {program}: {source}{}", install_hint(program))]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{what} failed for {level} (exit status {status}); the other builds were stopped")]
    Failed {
        /// `go build`, `cargo build`, or the program's name.
        what: String,
        /// The level as the toolchain was told it: `GOAMD64=v3`, `-C target-cpu=x86-64-v3`.
        level: String,
        status: String,
        /// Everything the failed build printed, stdout and stderr.
        output: String,
    },
    /// A cargo build that ended well without naming the executable it built.
    #[error("cargo build for {level} reported no executable named {bin}")]
    NoArtifact { level: String, bin: String },
    /// The crate or workspace does not say which binary to build, or how.
    #[error("{0}")]
    Cargo(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn install_hint(program: &str) -> &'static str {
    match program {
        "go" => " (install Go, e.g. Debian's golang-go)",
        "cargo" | "rustc" => " (install Rust, e.g. with rustup)",
        "gcc" | "cc" => " (install a C compiler, e.g. Debian's gcc)",
        _ => "",
    }
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
    let what = what.into();
    move |source| BuildError::Io { what, source }
}

impl LevelBuild {
    fn new(recipe: Recipe, parallel: bool) -> LevelBuild {
        LevelBuild {
            recipe,
            levels: X86_64_LEVELS.to_vec(),
            dir: None,
            env: Vec::new(),
            parallel,
        }
    }

    /// `go build ARGS -o OUT` per level (arguments are `go build`'s flags and packages).
    pub fn go<I, S>(args: I) -> LevelBuild
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        LevelBuild::new(
            Recipe::Go {
                args: args.into_iter().map(Into::into).collect(),
            },
            true,
        )
    }

    /// `cargo build --release` per level of the binary `cargo` names; the levels are x86-64's
    /// or, for an arm64 target, [`CargoBuild::default_levels`].
    pub fn cargo(cargo: CargoBuild) -> LevelBuild {
        let levels = cargo.default_levels();
        let mut build = LevelBuild::new(Recipe::Cargo(cargo), false);
        build.levels = levels;
        build
    }

    /// `PROGRAM ARGS` per level, with `{march}`, `{level}` and `{out}` replaced in the arguments.
    pub fn command<I, S>(program: impl Into<OsString>, args: I) -> LevelBuild
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        LevelBuild::new(
            Recipe::Command {
                program: program.into(),
                args: args.into_iter().map(Into::into).collect(),
            },
            true,
        )
    }

    pub fn levels(mut self, levels: impl IntoIterator<Item = u32>) -> LevelBuild {
        self.levels = levels.into_iter().collect();
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> LevelBuild {
        self.dir = Some(dir.into());
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> LevelBuild {
        let key = key.into();
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.into()));
        self
    }

    /// A Go build whose result depends only on the level and the sources: user settings,
    /// go.work files, proxies and toolchain switching are shut out, modules come from the
    /// module cache only, and the caches live under `cache` (`gocache`, `gopath`), so that
    /// removing it removes them too.
    pub fn hermetic_go(self, cache: &Path) -> LevelBuild {
        self.env("GOOS", "linux")
            // -modcacherw keeps the module cache deletable.
            .env("GOFLAGS", "-mod=mod -modcacherw")
            .env("GOPROXY", "off")
            .env("GO111MODULE", "on")
            .env("GOWORK", "off")
            .env("GOENV", "off")
            .env("GOTOOLCHAIN", "local")
            .env("GOCACHE", cache.join("gocache"))
            .env("GOPATH", cache.join("gopath"))
    }

    /// Builds every level into `outputs` (one path per level, in the order of
    /// [`LevelBuild::levels`]). Each output is written under a temporary name and renamed into
    /// place once every level has built, so a program another process runs is never rewritten
    /// and a failed build leaves the old outputs as they were. `on_line` gets every line the
    /// builds print, with the level's code.
    pub fn build(
        &self,
        outputs: &[PathBuf],
        on_line: &(dyn Fn(u32, &str) + Sync),
    ) -> Result<(), BuildError> {
        assert_eq!(outputs.len(), self.levels.len(), "one output per level");
        let temporaries: Vec<PathBuf> = outputs.iter().map(|o| temporary(o)).collect();
        for tmp in &temporaries {
            let _ = fs::remove_file(tmp);
        }
        let result = run::run(self, &temporaries, on_line);
        if let Err(e) = result {
            for tmp in &temporaries {
                let _ = fs::remove_file(tmp);
            }
            return Err(e);
        }
        for (tmp, out) in temporaries.iter().zip(outputs) {
            fs::rename(tmp, out).map_err(io_error(format!(
                "renaming {} to {}",
                tmp.display(),
                out.display()
            )))?;
        }
        Ok(())
    }

    /// Builds into `DIR/bin/NAME-LEVEL` (commas in arm64 level names become `_`), unless
    /// `DIR/NAME.stamp` says they were built by this same build, with this same toolchain, from
    /// sources `key` describes (a hash of them, from [`hash_files`]). Concurrent callers, threads
    /// or processes, wait for one another on `DIR/NAME.lock` instead of building twice.
    pub fn cached(&self, dir: &Path, name: &str, key: &str) -> Result<Vec<PathBuf>, BuildError> {
        let bin = dir.join("bin");
        fs::create_dir_all(&bin).map_err(io_error(format!("creating {}", bin.display())))?;
        let outputs: Vec<PathBuf> = self
            .levels
            .iter()
            .map(|&l| bin.join(format!("{name}-{}", crate::level_name(l).replace(',', "_"))))
            .collect();
        let lock_path = dir.join(format!("{name}.lock"));
        let lock = File::create(&lock_path)
            .map_err(io_error(format!("creating {}", lock_path.display())))?;
        // Released when `lock` is closed, on return.
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io_error(format!("locking {}", lock_path.display()))(
                std::io::Error::last_os_error(),
            ));
        }
        let key = format!("{}\n{}\n{key}", self.describe(), self.toolchain_id()?);
        let stamp = dir.join(format!("{name}.stamp"));
        if fs::read_to_string(&stamp).is_ok_and(|s| s == key) && outputs.iter().all(|p| p.is_file())
        {
            return Ok(outputs);
        }
        // Without this, a build that dies half-way could leave a mix of old and new programs
        // behind a stamp that still looks valid once the sources are put back as they were.
        let _ = fs::remove_file(&stamp);
        self.build(&outputs, &|_, _| {})?;
        let tmp = temporary(&stamp);
        fs::write(&tmp, &key)
            .and_then(|()| fs::rename(&tmp, &stamp))
            .map_err(io_error(format!("writing {}", stamp.display())))?;
        Ok(outputs)
    }

    /// The build as text: recipe, directory, environment and levels, for stamps.
    pub fn describe(&self) -> String {
        let words = |args: &[OsString]| {
            args.iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut text = match &self.recipe {
            Recipe::Go { args } => format!("go build {}", words(args)),
            Recipe::Cargo(c) => format!("cargo build --release {} --bin {}", words(&c.args), c.bin),
            Recipe::Command { program, args } => {
                format!("{} {}", program.to_string_lossy(), words(args))
            }
        };
        if let Some(dir) = &self.dir {
            text.push_str(&format!("\nin {}", dir.display()));
        }
        for (k, v) in &self.env {
            text.push_str(&format!(
                "\n{}={}",
                k.to_string_lossy(),
                v.to_string_lossy()
            ));
        }
        let names: Vec<&str> = self.levels.iter().map(|&l| crate::level_name(l)).collect();
        text.push_str(&format!("\nlevels {}", names.join(" ")));
        text
    }

    /// What identifies the toolchain: its version line (and Go's GOROOT).
    fn toolchain_id(&self) -> Result<String, BuildError> {
        match &self.recipe {
            Recipe::Go { .. } => Ok(format!(
                "{}\n{}",
                self.first_line("go", &["version"])?,
                self.first_line("go", &["env", "GOROOT"])?
            )),
            Recipe::Cargo(_) => Ok(format!(
                "{}\n{}",
                self.first_line("rustc", &["--version"])?,
                self.first_line("cargo", &["--version"])?
            )),
            Recipe::Command { program, .. } => self.first_line(program, &["--version"]),
        }
    }

    fn first_line(&self, program: impl AsRef<OsStr>, args: &[&str]) -> Result<String, BuildError> {
        let program = program.as_ref();
        let mut cmd = Command::new(program);
        cmd.args(args).envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        first_line(&mut cmd).map_err(|source| BuildError::Spawn {
            program: program.to_string_lossy().into_owned(),
            source,
        })
    }
}

/// The first line a command prints on stdout, trimmed: how a tool's version identifies it.
pub fn first_line(cmd: &mut Command) -> std::io::Result<String> {
    let out = cmd.output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string())
}

/// `out.tmp`, appended rather than set: arm64 level names have dots of their own.
fn temporary(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// gcc's (and clang's) `-march` value for a level: `x86-64`, `x86-64-v3`; on arm64 the
/// architecture version with `+lse` where it is not implied and `+crypto` or `+nocrypto`.
pub fn gcc_march(level: u32) -> String {
    if let Some(a) = Aarch64Level::from_code(level) {
        let version = match (a.major, a.minor) {
            (major, 0) => format!("armv{major}-a"),
            (major, minor) => format!("armv{major}.{minor}-a"),
        };
        let lse = if a.lse && a.major == 8 && a.minor == 0 {
            "+lse"
        } else {
            ""
        };
        let crypto = if a.crypto { "+crypto" } else { "+nocrypto" };
        return format!("{version}{lse}{crypto}");
    }
    if let Some(march) = riscv64_march(level) {
        return march.to_string();
    }
    if let Some(march) = arm_march(level) {
        return march.to_string();
    }
    if mgo_format::level::is_valid(mgo_format::Arch::Ppc64le, level) {
        // gcc's `-mcpu=power9`, for a `{march}` in a ppc64le recipe (gcc on POWER has no
        // `-march`: the recipe's `-mcpu={march}` names the level).
        return crate::level_name(level).to_string();
    }
    match level {
        1 => "x86-64".to_string(),
        n => format!("x86-64-v{n}"),
    }
}

/// gcc's `-march` for a riscv64 profile: the extensions Go assumes of it (docs/ARCHITECTURES.md,
/// "riscv64") that gcc 12, Debian 12's, knows: not Zfa and Zicond, so an rva23u64 build uses
/// fewer extensions than the profile allows, never more.
fn riscv64_march(level: u32) -> Option<&'static str> {
    match level {
        20 => Some("rv64gc"),
        22 => Some("rv64gc_zba_zbb_zbs"),
        23 => Some("rv64gcv_zba_zbb_zbs"),
        _ => None,
    }
}

/// gcc's `-march` for a `GOARM` level: the architecture version and floating-point unit the
/// level requires (docs/ARCHITECTURES.md, "32-bit ARM"): ARMv5TE without VFP, ARMv6 with VFPv2,
/// ARMv7-A with VFPv3-D16 (the kernel reports VFPv3 for the 16-register variant too, so Go's
/// GOARM=7 may meet it). With Debian's soft-float `arm-linux-gnueabi-gcc`, add
/// `-mfloat-abi=softfp` to let it use the unit.
fn arm_march(level: u32) -> Option<&'static str> {
    match level {
        5 => Some("armv5te"),
        6 => Some("armv6+fp"),
        7 => Some("armv7-a+vfpv3-d16"),
        _ => None,
    }
}

/// rustc's code-generation flag for a level: `-Ctarget-cpu=x86-64-v3`; on arm64 the features
/// the level makes mandatory, among those rustc supports on stable (its `v8.Na` version features
/// are unstable): from v8.1 `+lse,+crc,+rdm`, from v8.3 `+rcpc`, from v8.4 `+dotprod` (v9.N
/// includes v8.(N+5)), `+lse` for `,lse`, and `+aes,+sha2` for `,crypto`.
pub fn rustc_flag(level: u32) -> String {
    if let Some(a) = Aarch64Level::from_code(level) {
        // Minor steps along the v8 line, as Go counts them: v9.0 includes v8.5.
        let v8 = if a.major == 9 { a.minor + 5 } else { a.minor };
        let mut features: Vec<&str> = Vec::new();
        if a.lse {
            features.push("+lse");
        }
        if v8 >= 1 {
            features.extend(["+crc", "+rdm"]);
        }
        if v8 >= 3 {
            features.push("+rcpc");
        }
        if v8 >= 4 {
            features.push("+dotprod");
        }
        if a.crypto {
            features.extend(["+aes", "+sha2"]);
        }
        if features.is_empty() {
            // v8.0: what the target already assumes.
            features.push("+neon");
        }
        return format!("-Ctarget-feature={}", features.join(","));
    }
    // riscv64: the extensions Go assumes of each profile, all known to rustc.
    match level {
        20 => return "-Ctarget-cpu=generic-rv64".to_string(),
        22 => return "-Ctarget-feature=+zba,+zbb,+zbs".to_string(),
        23 => return "-Ctarget-feature=+zba,+zbb,+zbs,+v,+zfa,+zicond".to_string(),
        // 32-bit ARM: the architecture version and floating-point unit, as gcc's -march.
        5 => return "-Ctarget-feature=+v5te".to_string(),
        6 => return "-Ctarget-feature=+v6,+vfp2".to_string(),
        7 => return "-Ctarget-feature=+v7,+vfp3d16".to_string(),
        _ => {}
    }
    // ppc64le: rustc's POWER CPUs, `-Ctarget-cpu=pwr9`.
    if mgo_format::level::is_valid(mgo_format::Arch::Ppc64le, level) {
        return format!("-Ctarget-cpu=pwr{}", level - 0x100);
    }
    format!("-Ctarget-cpu={}", gcc_march(level))
}

/// Replaces `{march}`, `{level}` and `{out}` in one argument.
fn expand(arg: &OsStr, level: u32, out: &Path) -> OsString {
    let mut bytes = arg.as_bytes().to_vec();
    for (pattern, value) in [
        (&b"{march}"[..], gcc_march(level).into_bytes()),
        (b"{level}", crate::level_name(level).as_bytes().to_vec()),
        (b"{out}", out.as_os_str().as_bytes().to_vec()),
    ] {
        let mut result = Vec::with_capacity(bytes.len());
        let mut rest = &bytes[..];
        while let Some(at) = rest.windows(pattern.len()).position(|w| w == pattern) {
            result.extend_from_slice(&rest[..at]);
            result.extend_from_slice(&value);
            rest = &rest[at + pattern.len()..];
        }
        result.extend_from_slice(rest);
        bytes = result;
    }
    OsStr::from_bytes(&bytes).to_owned()
}

/// FNV-1a over the files' names and contents: stable across Rust releases (unlike
/// `DefaultHasher`), as a stamp that outlives the program that wrote it needs.
pub fn hash_files(paths: &[PathBuf]) -> std::io::Result<u64> {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for path in paths {
        let data = fs::read(path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let name = path.file_name().map_or(&b""[..], |n| n.as_bytes());
        for &b in name.iter().chain([0u8].iter()).chain(&data) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(name: &str) -> u32 {
        crate::parse_level(name).unwrap()
    }

    #[test]
    fn arm_march_and_rustc_flags() {
        assert_eq!(gcc_march(code("5")), "armv5te");
        assert_eq!(gcc_march(code("6")), "armv6+fp");
        assert_eq!(gcc_march(code("7")), "armv7-a+vfpv3-d16");
        assert_eq!(rustc_flag(code("6")), "-Ctarget-feature=+v6,+vfp2");
    }

    #[test]
    fn riscv64_march_and_rustc_flags() {
        assert_eq!(gcc_march(code("rva20u64")), "rv64gc");
        assert_eq!(gcc_march(code("rva22u64")), "rv64gc_zba_zbb_zbs");
        assert_eq!(gcc_march(code("rva23u64")), "rv64gcv_zba_zbb_zbs");
        assert_eq!(rustc_flag(code("rva20u64")), "-Ctarget-cpu=generic-rv64");
        assert_eq!(
            rustc_flag(code("rva22u64")),
            "-Ctarget-feature=+zba,+zbb,+zbs"
        );
    }

    #[test]
    fn ppc64le_mcpu_and_rustc_flags() {
        assert_eq!(gcc_march(code("power8")), "power8");
        assert_eq!(gcc_march(code("power10")), "power10");
        assert_eq!(rustc_flag(code("power9")), "-Ctarget-cpu=pwr9");
        assert_eq!(rustc_flag(code("power10")), "-Ctarget-cpu=pwr10");
    }

    #[test]
    fn march_and_rustc_flags_per_level() {
        assert_eq!(gcc_march(1), "x86-64");
        assert_eq!(gcc_march(3), "x86-64-v3");
        assert_eq!(rustc_flag(1), "-Ctarget-cpu=x86-64");
        assert_eq!(rustc_flag(4), "-Ctarget-cpu=x86-64-v4");
        for (level, march) in [
            ("v8.0", "armv8-a+nocrypto"),
            ("v8.0,crypto", "armv8-a+crypto"),
            ("v8.0,lse", "armv8-a+lse+nocrypto"),
            ("v8.1,lse", "armv8.1-a+nocrypto"),
            ("v8.2,lse,crypto", "armv8.2-a+crypto"),
            ("v9.0,lse", "armv9-a+nocrypto"),
        ] {
            assert_eq!(gcc_march(code(level)), march, "{level}");
        }
        assert_eq!(rustc_flag(code("v8.0")), "-Ctarget-feature=+neon");
        assert_eq!(rustc_flag(code("v8.0,lse")), "-Ctarget-feature=+lse");
        assert_eq!(
            rustc_flag(code("v8.2,lse,crypto")),
            "-Ctarget-feature=+lse,+crc,+rdm,+aes,+sha2"
        );
        assert_eq!(
            rustc_flag(code("v9.0,lse")),
            "-Ctarget-feature=+lse,+crc,+rdm,+rcpc,+dotprod"
        );
    }

    #[test]
    fn placeholders_are_replaced_everywhere_in_an_argument() {
        let out = Path::new("/o/app-v8.2,lse");
        assert_eq!(
            expand(
                OsStr::new("-DL=\"{level}\" -march={march} {out}{out}"),
                code("v8.2,lse"),
                out
            ),
            "-DL=\"v8.2,lse\" -march=armv8.2-a+nocrypto /o/app-v8.2,lse/o/app-v8.2,lse"
        );
        assert_eq!(expand(OsStr::new("{marc}"), 2, out), "{marc}");
    }
}
