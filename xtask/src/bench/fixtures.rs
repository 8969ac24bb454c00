//! The fixtures: what each one is and how its four variants are built (through the packer's
//! builder, cached under `target/bench/`), the release packer and the small C helpers, and
//! the bundles packed from them in every mode.

use mgo_pack::builder::{hash_files, BuildError, LevelBuild};

use super::*;

/// How one fixture's variants are built.
#[derive(Clone, Copy)]
pub(super) enum Build {
    /// `go build .` in a directory of the workspace.
    GoDir { dir: &'static str, cgo: bool },
    /// `go build` of a package of the Go distribution itself.
    GoStd { package: &'static str, cgo: bool },
    /// gcc on one C file of the workspace.
    C {
        src: &'static str,
        static_link: bool,
    },
}

pub(super) struct FixtureSpec {
    pub(super) name: &'static str,
    pub(super) what: &'static str,
    pub(super) build: Build,
    /// Arguments every timed run passes.
    pub(super) args: &'static [&'static str],
}

pub(super) const FIXTURES: &[FixtureSpec] = &[
    FixtureSpec {
        name: "hello",
        what: "Go hello-world (`bench/hello`), CGO_ENABLED=0",
        build: Build::GoDir {
            dir: "bench/hello",
            cgo: false,
        },
        args: &[],
    },
    FixtureSpec {
        name: "probe",
        what: "the tests' Go probe (`tests/fixtures/goprobe`), CGO_ENABLED=0",
        build: Build::GoDir {
            dir: "tests/fixtures/goprobe",
            cgo: false,
        },
        args: &[],
    },
    FixtureSpec {
        name: "cmd-go",
        what: "`cmd/go` of Debian's Go, CGO_ENABLED=0, run as `go version`",
        build: Build::GoStd {
            package: "cmd/go",
            cgo: false,
        },
        args: &["version"],
    },
    FixtureSpec {
        name: "cmd-go-cgo",
        what: "`cmd/go` of Debian's Go, CGO_ENABLED=1 (dynamically linked), run as `go version`",
        build: Build::GoStd {
            package: "cmd/go",
            cgo: true,
        },
        args: &["version"],
    },
    FixtureSpec {
        name: "c-static",
        what: "C hello-world (`bench/chello.c`), gcc -O2 -static",
        build: Build::C {
            src: "bench/chello.c",
            static_link: true,
        },
        args: &[],
    },
    FixtureSpec {
        name: "c-dynamic",
        what: "C hello-world (`bench/chello.c`), gcc -O2, dynamically linked against glibc",
        build: Build::C {
            src: "bench/chello.c",
            static_link: false,
        },
        args: &[],
    },
];

/// A built fixture, packed.
pub(super) struct Fixture {
    pub(super) spec: &'static FixtureSpec,
    /// The four variants, relative to the workspace root (that is how commands name them).
    pub(super) variants: [PathBuf; 4],
    /// What the build ran, for the report.
    pub(super) build_command: String,
    pub(super) dynamic: bool,
    /// Level code the launcher picks on this machine (1..=4).
    pub(super) chosen: u32,
    /// Packed bundles by mode.
    pub(super) bundles: Vec<Packed>,
}

pub(super) struct Packed {
    pub(super) mode: &'static str,
    pub(super) path: PathBuf,
    pub(super) size: u64,
    /// Encoding of the chosen variant's entry, and its stored and original sizes.
    pub(super) encoding: Encoding,
    pub(super) stored_len: u64,
    pub(super) original_len: u64,
}

impl Fixture {
    pub(super) fn chosen_variant(&self) -> &Path {
        &self.variants[self.chosen as usize - 1]
    }

    pub(super) fn bundle(&self, mode: &str) -> Option<&Packed> {
        self.bundles.iter().find(|b| b.mode == mode)
    }
}

/// The small helpers in `bench/`: the memfd floor, the peak-memory reader and the exec floor (no
/// libc, so that nothing of theirs is measured), and the alternating spawn loop (libc's
/// `posix_spawn`).
pub(super) const HELPERS: &[&str] = &["floor", "maxrss", "spawnloop", "execfloor"];

pub(super) fn helper_build(name: &str) -> Vec<String> {
    let freestanding: &[&str] = if name == "spawnloop" {
        &[]
    } else {
        &["-static", "-nostdlib", "-fno-stack-protector"]
    };
    let mut command = vec!["gcc".to_string(), "-O2".to_string()];
    command.extend(freestanding.iter().map(|f| f.to_string()));
    command.extend([
        "-o".to_string(),
        format!("target/bench/bin/{name}"),
        format!("bench/{name}.c"),
    ]);
    command
}

pub(super) fn build_helpers(root: &Path, work: &Path) -> Result<()> {
    let gcc = first_line("gcc", &["--version"])?;
    for name in HELPERS {
        let command = helper_build(name);
        let key = format!(
            "{}\n{gcc}\n{:016x}",
            command.join(" "),
            hash_files(&[root.join(format!("bench/{name}.c"))])?
        );
        let out = work.join(format!("bin/{name}"));
        cached(
            &work.join(format!("bin/{name}.stamp")),
            &key,
            &[out],
            || {
                run_ok(
                    Command::new(&command[0])
                        .current_dir(root)
                        .args(&command[1..]),
                    &format!("building bench/{name}.c"),
                )
            },
        )?;
    }
    Ok(())
}

/// Builds the four variants of a fixture (cached), returning their paths relative to the root and
/// the build command for level N as the report shows it.
pub(super) fn build_fixture(
    root: &Path,
    work: &Path,
    spec: &FixtureSpec,
) -> Result<([PathBuf; 4], String)> {
    let rel: [PathBuf; 4] =
        LEVELS.map(|level| PathBuf::from(format!("target/bench/bin/{}-{level}", spec.name)));
    // What the report shows, and what the builder builds (cached under target/bench, stamped
    // with the build, the toolchain and the sources).
    let (shown, build, sources) = match spec.build {
        Build::GoDir { dir, cgo } => {
            let src = root.join(dir);
            let mut files: Vec<PathBuf> = std::fs::read_dir(&src)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "go" || x == "mod"))
                .collect();
            files.sort();
            let shown = format!(
                "(cd {dir} && GOAMD64=vN CGO_ENABLED={} go build -trimpath -o OUT .)",
                cgo as u8
            );
            (
                shown,
                go_build(work, cgo, ["-trimpath", "."]).current_dir(src),
                files,
            )
        }
        Build::GoStd { package, cgo } => {
            // No -trimpath: `go version` finds its GOROOT through the path recorded at build time.
            let shown = format!(
                "GOAMD64=vN CGO_ENABLED={} go build -o OUT {package}",
                cgo as u8
            );
            (
                shown,
                go_build(work, cgo, [package]).current_dir(work),
                Vec::new(),
            )
        }
        Build::C { src, static_link } => {
            let shown = format!(
                "gcc -O2 -march=x86-64[-vN]{} -o OUT {src}",
                if static_link { " -static" } else { "" }
            );
            let mut args = vec!["-O2", "-march={march}"];
            if static_link {
                args.push("-static");
            }
            args.extend(["-o", "{out}", src]);
            let build = LevelBuild::command("gcc", args).current_dir(root);
            (shown, build, vec![root.join(src)])
        }
    };
    eprintln!("bench:   building {} (unless up to date)", spec.name);
    let key = format!("{shown}\n{:016x}", hash_files(&sources)?);
    build
        .cached(work, spec.name, &key)
        .map_err(|e| match e {
            BuildError::Failed { ref output, .. } => anyhow::anyhow!("{e}\n{output}"),
            e => e.into(),
        })
        .with_context(|| format!("building {}", spec.name))?;
    for path in &rel {
        reinstall(&root.join(path)).with_context(|| format!("rewriting {}", path.display()))?;
    }
    Ok((rel, shown))
}

/// Rewrites a build with write(2), under its own name, as installing it would (cp, install, a
/// package manager). Linkers write their output through a mapping, which leaves it in the page
/// cache in single pages; a file written with write(2) is cached in large folios, and a program
/// started from it spends less time in page faults (13% less for `go version` here). The builds
/// are timed, run directly and through the floors, in the state of an installed program, the
/// state the cache's entries are written in.
fn reinstall(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path)?;
    let permissions = std::fs::metadata(path)?.permissions();
    let temp = path.with_extension("reinstall");
    std::fs::write(&temp, &bytes)?;
    std::fs::set_permissions(&temp, permissions)?;
    std::fs::rename(&temp, path)?;
    Ok(())
}

/// A hermetic `go build ARGS`: no user settings, no network, caches inside target/bench.
fn go_build<const N: usize>(work: &Path, cgo: bool, args: [&str; N]) -> LevelBuild {
    LevelBuild::go(args)
        .hermetic_go(work)
        .env("CGO_ENABLED", if cgo { "1" } else { "0" })
}

/// Runs `build` unless `stamp` holds `key` and every output exists; the stamp is removed first
/// and written last, so an interrupted build is redone.
pub(super) fn cached(
    stamp: &Path,
    key: &str,
    outputs: &[PathBuf],
    build: impl FnOnce() -> Result<()>,
) -> Result<()> {
    if std::fs::read_to_string(stamp).is_ok_and(|s| s == key) && outputs.iter().all(|p| p.is_file())
    {
        return Ok(());
    }
    let _ = std::fs::remove_file(stamp);
    build()?;
    std::fs::write(stamp, key)?;
    Ok(())
}

pub(super) fn pack(
    root: &Path,
    work: &Path,
    packer: &Path,
    fixture: &Fixture,
    mode: &'static str,
) -> Result<Option<Packed>> {
    pack_for(root, work, packer, fixture, mode, None)
}

/// [`pack`], with `--launch PATH` when `launch` is given: the bundle is then
/// `NAME.MODE.PATH`, beside the default one.
pub(super) fn pack_for(
    root: &Path,
    work: &Path,
    packer: &Path,
    fixture: &Fixture,
    mode: &'static str,
    launch: Option<&str>,
) -> Result<Option<Packed>> {
    let dir = work.join("bundles");
    std::fs::create_dir_all(&dir)?;
    let suffix = launch.map_or(String::new(), |path| format!(".{path}"));
    let rel = PathBuf::from(format!(
        "target/bench/bundles/{}.{mode}{suffix}",
        fixture.spec.name
    ));
    // Compressing cmd/go four times at level 19 takes minutes: a bundle is packed again only when
    // the packer or an input changed.
    let mut inputs = vec![root.join(packer)];
    inputs.extend(fixture.variants.iter().map(|v| root.join(v)));
    let key = format!("{mode}{suffix}\n{:016x}", hash_files(&inputs)?);
    let stamp = root.join(format!("{}.stamp", rel.display()));
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == key) {
        if let Ok(bytes) = std::fs::read(root.join(&rel)) {
            if Bundle::parse_file(&bytes).is_ok() {
                eprintln!("bench:   {} is up to date", rel.display());
                return Ok(Some(packed(mode, rel, bytes.len())));
            }
        }
    }
    let _ = std::fs::remove_file(&stamp);
    let mut cmd = Command::new(root.join(packer));
    cmd.current_dir(root).arg("-o").arg(&rel);
    if let Some(path) = launch {
        cmd.args(["--launch", path]);
    }
    for (level, variant) in LEVELS.iter().zip(&fixture.variants) {
        cmd.arg(format!("{level}={}", variant.display()));
    }
    cmd.env_remove("MGO_COMPRESS");
    if mode != "stored" {
        cmd.env("MGO_COMPRESS", mode);
    }
    let started = Instant::now();
    let out = cmd.output().context("running mgo-pack")?;
    if !out.status.success() {
        // A packer without compression may refuse the variable rather than ignore it.
        if mode != "stored" {
            return Ok(None);
        }
        bail!(
            "mgo-pack failed on {}: {}",
            fixture.spec.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let pack_time = started.elapsed();
    let bytes = std::fs::read(root.join(&rel))?;
    let bundle = Bundle::parse_file(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: {}", rel.display(), e.message()))?;
    if mode != "stored" && bundle.entries().all(|e| e.encoding == Encoding::Stored) {
        let _ = std::fs::remove_file(root.join(&rel));
        return Ok(None);
    }
    eprintln!(
        "bench:   packed {} ({} bytes, {:.1} s)",
        rel.display(),
        bytes.len(),
        pack_time.as_secs_f64()
    );
    std::fs::write(&stamp, key)?;
    Ok(Some(packed(mode, rel, bytes.len())))
}

/// A packed bundle whose chosen entry is filled in later, once the chosen level is known.
pub(super) fn packed(mode: &'static str, path: PathBuf, size: usize) -> Packed {
    Packed {
        mode,
        path,
        size: size as u64,
        encoding: Encoding::Stored,
        stored_len: 0,
        original_len: 0,
    }
}

pub(super) fn fill_entry(root: &Path, packed: &mut Packed, level: u32) -> Result<()> {
    let bytes = std::fs::read(root.join(&packed.path))?;
    let bundle = Bundle::parse_file(&bytes).map_err(|e| anyhow::anyhow!(e.message()))?;
    let entry = bundle
        .entries()
        .filter(|e| e.level <= level)
        .max_by_key(|e| e.level)
        .context("no entry for the chosen level")?;
    packed.encoding = entry.encoding;
    packed.stored_len = entry.stored_len;
    packed.original_len = entry.original_len;
    Ok(())
}

/// The level the launcher picks here, as `MGODEBUG=log` reports it.
pub(super) fn chosen_level(root: &Path, bundle: &Path, args: &[&str]) -> Result<u32> {
    let out = bench_env(Command::new(root.join(bundle)))
        .current_dir(root)
        .args(args)
        .env("MGODEBUG", "log")
        .stdout(Stdio::null())
        .output()
        .with_context(|| format!("running {}", bundle.display()))?;
    let err = String::from_utf8_lossy(&out.stderr);
    let level = err
        .lines()
        .find_map(|l| l.strip_prefix("[mgo] launcher: starting variant GOAMD64=v"))
        .and_then(|v| v.trim().parse::<u32>().ok())
        .with_context(|| format!("{} did not log its choice: {err}", bundle.display()))?;
    Ok(level)
}

/// Which launch path a bundle takes under an `MGODEBUG` path word, from its log; launchers that
/// predate the choice log nothing about it and always copy into a memfd.
pub(super) fn path_taken(root: &Path, bundle: &Path, args: &[&str], path: &str) -> Result<String> {
    let out = bench_env(Command::new(root.join(bundle)))
        .current_dir(root)
        .args(args)
        .env("MGODEBUG", format!("log,{path}"))
        .stdout(Stdio::null())
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    Ok(err
        .lines()
        .find_map(|l| l.strip_prefix("[mgo] launcher: launch path "))
        .map(|p| p.split_whitespace().next().unwrap_or("memfd").to_string())
        .unwrap_or_else(|| "memfd".into()))
}

pub(super) fn has_interp(path: &Path) -> Result<bool> {
    let bytes = std::fs::read(path)?;
    let elf = mgo_format::elf::Elf::parse(&bytes).map_err(|e| anyhow::anyhow!(e.message()))?;
    const PT_INTERP: u32 = 3;
    let dynamic = elf.phdrs().any(|ph| ph.p_type == PT_INTERP);
    Ok(dynamic)
}
