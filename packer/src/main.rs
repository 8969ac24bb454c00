//! `mgo-pack`: the command line over the `mgo_pack` library.
//!
//! Without a subcommand it packs, as mgo's users expect: `mgo-pack -o OUT IN...`. The
//! subcommands read bundles back (`inspect`, `extract`, `verify`), build a program once per
//! level and pack the builds (`build` for Go, `cargo` for Rust), and list or clear the
//! launcher's cache (`cache`).

mod build_cmd;
mod cli;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use mgo_pack::{escaped, parse_level, BundleFile, Input, PackError, PackOptions, Packer};

use cli::Verbosity;

const AFTER_HELP: &str = "\
Examples:
  mgo-pack -o app app.v1 app.v2 app.v3 app.v4   positions are v1..v4, as with mgo
  mgo-pack -o app dist/app_linux_amd64_v*/app   Go builds: levels read from their build info
  mgo-pack -o app v1=build/app v3=build/app-v3  levels named explicitly
  mgo-pack inspect app                          what a bundle holds (--json for scripts)
  mgo-pack extract app --variant v3 -o app.v3   one build back, byte for byte
  mgo-pack verify app                           decode every variant and check its hash
  mgo-pack build -o app -trimpath ./cmd/app     go build for GOAMD64=v1..v4, then pack
  mgo-pack cargo --bin app                      cargo build --release for x86-64-v1..v4, then
                                                pack into target/mgo-pack/app
  mgo-pack -o app --launch cache app.v*         started from a real file in ~/.cache/mgo-pack
  mgo-pack cache                                the programs cached there (`cache clear`)

Levels: `vN=PATH` packs PATH as vN. Inputs without `vN=` take the level their file records
(Go build info `GOAMD64=vN`; a GNU property note `x86 ISA needed: x86-64-vN`) when every one of
them records one, in any order; otherwise they are v1, v2, v3, v4 in the order given. A level
given or implied by position that contradicts the file's own is refused unless --force.
arm64 programs take GOARM64 levels, named as Go spells them: `v8.0=PATH`, `v8.2,lse=PATH`.
riscv64 programs take GORISCV64 profiles: `rva20u64=PATH`, `rva22u64=PATH`, `rva23u64=PATH`.
32-bit ARM programs take GOARM levels: `5=PATH`, `6=PATH`, `7=PATH` (Go records GOARM itself).
ppc64le programs take GOPPC64 levels: `power8=PATH`, `power9=PATH`, `power10=PATH`.

Exit status: 0 done; 1 an input, a level, the output or a file operation failed;
2 usage error (an invalid option or value, MGO_COMPRESS included); 3 not a bundle,
or a damaged bundle (inspect, extract, verify).";

/// Exit statuses, listed in AFTER_HELP and README.md.
const EXIT_FAILURE: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_BAD_BUNDLE: u8 = 3;

/// Pack builds of one program for several CPU levels (GOAMD64=v1..v4 on x86-64, GOARM64 on
/// arm64, or any ELF executable built per level) into a single executable that runs the best one
/// for the CPU it starts on.
#[derive(Parser, Debug)]
#[command(
    name = "mgo-pack",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    pack: PackArgs,
    /// Print nothing but errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Say more: each input's level and where it comes from, sizes, hashes.
    #[arg(short, long, global = true)]
    verbose: bool,
}

/// The pack form, `mgo-pack -o OUT IN...`.
#[derive(Args, Debug)]
struct PackArgs {
    /// Where to write the bundle (atomically, mode 0755; an existing file is replaced).
    #[arg(short, long, value_name = "OUT", required = true)]
    output: Option<PathBuf>,
    /// Pack inputs at the level given even where the file records another one.
    #[arg(short, long)]
    force: bool,
    /// Compress the variants: none, gzip[:1..9], zstd[:1..22] or zstd-dict[:1..22]. Wins over
    /// MGO_COMPRESS (mgo's syntax: g1..g9, z1..z22, Z1..Z22). See docs/COMPRESSION.md.
    #[arg(long, value_name = "MODE")]
    compress: Option<String>,
    /// How the launcher starts the program: `memfd` copies it into a memfd and execs that, as mgo
    /// does (default: /proc/PID/exe names the variant); `direct` maps it from the bundle with no
    /// copy (a variant it cannot map is copied); `cache` writes it once as a real file under
    /// $XDG_CACHE_HOME/mgo-pack (else ~/.cache/mgo-pack) and execs that file at every start (the
    /// memfd where the cache cannot be used; `mgo-pack cache` lists and clears it).
    /// MGODEBUG=memfd, direct or cache overrides it at run time. See docs/ARCHITECTURE.md.
    #[arg(long, value_name = "PATH", value_parser = LAUNCH_PATHS, default_value = "memfd")]
    launch: String,
    /// The variants: `vN=PATH`, or `PATH` (see Levels below).
    #[arg(value_name = "INPUT", required = true)]
    inputs: Vec<OsString>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show what a bundle holds: its launcher, format version, and each variant's level,
    /// encoding, stored and original size and content hash.
    Inspect {
        bundle: PathBuf,
        /// One JSON object on stdout, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Write one packed variant out, byte-identical to the file it was packed from.
    Extract {
        bundle: PathBuf,
        /// The level to extract: v1..v4 (x86-64), or as GOARM64 spells it (arm64: v8.2,lse).
        #[arg(long, value_name = "vN", value_parser = level_arg)]
        variant: u32,
        /// Where to write it (mode 0755); `-` for stdout.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Decode every variant of a bundle and check its length and content hash.
    Verify { bundle: PathBuf },
    /// mgo's build mode: `go build` once per GOAMD64 level (in parallel), then pack the four.
    /// Takes go build's flags and packages, plus -o OUT, --levels, --compress and --launch
    /// anywhere; MGO_COMPRESS applies as when packing.
    Build {
        /// `go build` flags and packages, with mgo-pack's -o, --compress and --launch.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "GO BUILD ARGS"
        )]
        args: Vec<OsString>,
    },
    /// Rust: `cargo build --release` once per level, then pack the builds.
    ///
    /// -C target-cpu=x86-64, x86-64-v2, x86-64-v3 and x86-64-v4 are added to the rustflags (the
    /// arm64 levels for an arm64 target), each level builds in a target directory of its own, and
    /// the bundle goes to -o OUT, by default target/mgo-pack/BIN. Takes cargo build's arguments
    /// (--bin, -p, --features, --target...), plus -o, --levels, --compress and --launch anywhere;
    /// MGO_COMPRESS applies as when packing. See docs/BUILDING.md.
    Cargo {
        /// `cargo build` arguments, with mgo-pack's -o, --levels, --compress and --launch.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CARGO BUILD ARGS"
        )]
        args: Vec<OsString>,
    },
    /// The launcher's cache of programs ($XDG_CACHE_HOME/mgo-pack, else ~/.cache/mgo-pack), which
    /// bundles packed with --launch cache (or run with MGODEBUG=cache) start from: `list` (the
    /// default) shows each entry, `clear` removes them all. Entries of a bundle replaced at the
    /// same path go when the new one first starts; entries unused for 30 days go when any entry
    /// is made. See docs/ARCHITECTURE.md.
    Cache {
        #[command(subcommand)]
        action: Option<CacheAction>,
    },
}

#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
enum CacheAction {
    /// Each cached program: its bundle's key and path, level, name, size and last use.
    List,
    /// Remove every cached program (programs running from the cache keep running).
    Clear,
}

/// What `--launch` takes, when packing and building.
const LAUNCH_PATHS: [&str; 3] = ["cache", "direct", "memfd"];

fn launch_path(name: &str) -> Option<mgo_pack::Launch> {
    match name {
        "cache" => Some(mgo_pack::Launch::Cache),
        "direct" => Some(mgo_pack::Launch::Direct),
        "memfd" => Some(mgo_pack::Launch::Memfd),
        _ => None,
    }
}

fn level_arg(text: &str) -> Result<u32, String> {
    parse_level(text)
        .map_err(|_| "use v1..v4 (x86-64), or v8.0..v9.5 with ,lse and ,crypto (arm64)".to_string())
}

fn main() -> ExitCode {
    let matches = match Cli::command()
        .long_version(long_version())
        .try_get_matches()
    {
        Ok(matches) => matches,
        Err(e) => return clap_answer(&e),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return clap_answer(&e),
    };
    let verbosity = match (cli.quiet, cli.verbose) {
        (true, _) => Verbosity::Quiet,
        (_, true) => Verbosity::Verbose,
        _ => Verbosity::Normal,
    };
    let result = match cli.command {
        None => pack(&cli.pack, verbosity),
        Some(Command::Inspect { bundle, json }) => inspect(&bundle, json),
        Some(Command::Extract {
            bundle,
            variant,
            output,
        }) => extract(&bundle, variant, &output, verbosity),
        Some(Command::Verify { bundle }) => verify(&bundle, verbosity),
        Some(Command::Build { args }) => return build(&args, build_cmd::go, verbosity),
        Some(Command::Cargo { args }) => return build(&args, build_cmd::cargo, verbosity),
        Some(Command::Cache { action }) => cache(action.unwrap_or(CacheAction::List), verbosity),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            cli::error(&e);
            ExitCode::from(exit_status(&e))
        }
    }
}

/// What clap has to say instead of parsed arguments: help or version on stdout (status 0), a
/// usage error on stderr (status 2). Unlike clap's own `exit`, help or version that cannot be
/// written (a full disk, a closed descriptor) is an error, status 1.
fn clap_answer(e: &clap::Error) -> ExitCode {
    if e.use_stderr() {
        let _ = e.print();
        return ExitCode::from(EXIT_USAGE);
    }
    match stdout_written(e.print().and_then(|()| std::io::stdout().flush())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            cli::error(&e);
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn exit_status(e: &PackError) -> u8 {
    match e {
        PackError::NotBundle { .. }
        | PackError::DamagedBundle { .. }
        | PackError::VariantDamaged { .. } => EXIT_BAD_BUNDLE,
        // What was typed, not what was found in a file: an invalid `--compress` or MGO_COMPRESS,
        // `vN=` with a level that does not exist, too many inputs without a level.
        PackError::CompressionSpec(_) | PackError::BadLevel(_) | PackError::TooManyInputs => {
            EXIT_USAGE
        }
        _ => EXIT_FAILURE,
    }
}

/// `--version`: the crate version, the bundle format it writes and the launcher it embeds.
fn long_version() -> &'static str {
    let mut text = format!(
        "{}\nbundle format version {}",
        env!("CARGO_PKG_VERSION"),
        mgo_pack::FORMAT_VERSION
    );
    if let Some(runtime) = mgo_pack::RuntimeInfo::builtin(mgo_pack::Arch::X86_64) {
        text.push_str(&format!(
            "\nruntime x86_64: launcher of {} bytes, id {:016x}",
            runtime.len, runtime.id
        ));
    }
    Box::leak(text.into_boxed_str())
}

/// `-o -` when packing or building: stdout is for `extract -o -`, and what comes out of a pack is
/// an executable file, not a stream.
const BUNDLE_TO_STDOUT: &str = "-o -: a bundle must be written to a file, it is an executable \
                                (to name a file `-`, write -o ./-)";

fn is_stdout(output: &Path) -> bool {
    output == Path::new("-")
}

fn pack(args: &PackArgs, verbosity: Verbosity) -> Result<ExitCode, PackError> {
    let output = args.output.as_deref().ok_or(PackError::NoInputs)?;
    if is_stdout(output) {
        eprintln!("mgo-pack: error: {BUNDLE_TO_STDOUT}");
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let inputs = Input::parse_args(&args.inputs)?;
    let options = PackOptions {
        force: args.force,
        compression: mgo_pack::Compression::resolve_with_env(args.compress.as_deref())?,
        launch: launch_path(&args.launch).unwrap_or_default(),
    };
    let mut progress = cli::Progress::new(verbosity);
    let on_terminal = progress.on_terminal();
    let result = Packer::new(options)
        .on_event(|event| progress.event(event))
        .pack_to(&inputs, output);
    progress.clear();
    let packed = result?;
    if verbosity != Verbosity::Quiet {
        for warning in &packed.warnings {
            cli::warn(warning);
        }
    }
    cli::report_pack(output, &packed, verbosity, on_terminal);
    Ok(ExitCode::SUCCESS)
}

/// `build` and `cargo`: parse, build every level with `run`, pack, report.
fn build(args: &[OsString], run: build_cmd::Run, verbosity: Verbosity) -> ExitCode {
    use build_cmd::CommandError;
    let result = build_cmd::BuildArgs::parse(args)
        .and_then(|args| match &args.output {
            Some(output) if is_stdout(output) => Err(BUNDLE_TO_STDOUT.to_string()),
            _ => Ok(args),
        })
        .map_err(CommandError::Usage)
        .and_then(|args| {
            let options = PackOptions {
                force: false,
                compression: mgo_pack::Compression::resolve_with_env(args.compress.as_deref())
                    .map_err(PackError::from)?,
                launch: match args.launch.as_deref().map(launch_path) {
                    None => mgo_pack::Launch::default(),
                    Some(Some(launch)) => launch,
                    Some(None) => {
                        return Err(CommandError::Usage(format!(
                            "--launch takes {}, not `{}`",
                            LAUNCH_PATHS.join(", "),
                            args.launch.as_deref().unwrap_or_default()
                        )))
                    }
                },
            };
            run(&args, options, verbosity == Verbosity::Quiet)
        });
    match result {
        Ok((output, packed)) => {
            cli::report_pack(&output, &packed, verbosity, std::io::stderr().is_terminal());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mgo-pack: error: {e}");
            ExitCode::from(match &e {
                CommandError::Usage(_) => EXIT_USAGE,
                CommandError::Pack(e) => exit_status(e),
                _ => EXIT_FAILURE,
            })
        }
    }
}

fn inspect(path: &Path, json: bool) -> Result<ExitCode, PackError> {
    let info = BundleFile::open(path)?.info();
    let text = if json {
        cli::inspect_json(&info)
    } else {
        cli::inspect_text(&info)
    };
    print_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn extract(
    path: &Path,
    level: u32,
    output: &Path,
    verbosity: Verbosity,
) -> Result<ExitCode, PackError> {
    let to_stdout = is_stdout(output);
    if !to_stdout
        && output
            .canonicalize()
            .is_ok_and(|o| path.canonicalize().is_ok_and(|p| p == o))
    {
        return Err(PackError::OutputIsInput {
            path: output.into(),
        });
    }
    let failed = |target: &Path, source| PackError::WriteVariant {
        path: target.into(),
        level: mgo_pack::level_name(level).to_string(),
        source,
    };
    // A stream: stdout, or an existing device or FIFO (`-o /dev/stdout`, `-o >(sha256sum)`),
    // written as it is. Anything else is a file, replaced atomically.
    let stream: Option<(&Path, Box<dyn Write>)> = if to_stdout {
        refuse_terminal(Path::new("-"), &std::io::stdout())?;
        Some((Path::new("stdout"), Box::new(std::io::stdout().lock())))
    } else if is_stream(output) {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(output)
            .map_err(|e| failed(output, e))?;
        refuse_terminal(output, &file)?;
        Some((output, Box::new(file)))
    } else {
        None
    };
    let bundle = BundleFile::open(path)?;
    let bytes = bundle.extract(level)?;
    match stream {
        Some((target, mut out)) => out
            .write_all(&bytes)
            .and_then(|()| out.flush())
            .map_err(|e| failed(target, e))?,
        None => mgo_pack::write_executable(output, &bytes).map_err(|e| match e {
            PackError::WriteOutput { source, .. } | PackError::OutputDir { source, .. } => {
                failed(output, source)
            }
            other => other,
        })?,
    }
    let wanted = match verbosity {
        Verbosity::Quiet => false,
        Verbosity::Verbose => true,
        Verbosity::Normal => std::io::stderr().is_terminal(),
    };
    if wanted && !to_stdout {
        eprintln!(
            "mgo-pack: wrote {} ({}): the {} variant of {}",
            escaped(output),
            cli::size(bytes.len() as u64),
            mgo_pack::level_name(level),
            escaped(path)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether `path` is an existing character device or FIFO, which `extract` writes into as it
/// would into stdout. (A block device is refused as an output, as when packing.)
fn is_stream(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_char_device() || m.file_type().is_fifo())
}

fn refuse_terminal(path: &Path, out: &impl IsTerminal) -> Result<(), PackError> {
    if !out.is_terminal() {
        return Ok(());
    }
    Err(PackError::Io {
        path: path.into(),
        source: std::io::Error::other(
            "refusing to write a program to a terminal; redirect stdout or use -o FILE",
        ),
    })
}

fn verify(path: &Path, verbosity: Verbosity) -> Result<ExitCode, PackError> {
    let verification = BundleFile::open(path)?.verify();
    let ok = verification.is_ok();
    if verbosity != Verbosity::Quiet {
        print_stdout(&cli::verify_text(&verification))?;
    }
    if ok {
        Ok(ExitCode::SUCCESS)
    } else {
        if verbosity == Verbosity::Quiet {
            if let Some(e) = verification.first_error() {
                cli::error(e);
            }
        }
        Ok(ExitCode::from(EXIT_BAD_BUNDLE))
    }
}

fn cache(action: CacheAction, verbosity: Verbosity) -> Result<ExitCode, PackError> {
    let Some(dir) = mgo_pack::cache::cache_dir() else {
        if action == CacheAction::List {
            print_stdout("no cache: neither XDG_CACHE_HOME nor HOME is an absolute path\n")?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    let failed = |source| PackError::Io {
        path: dir.clone(),
        source,
    };
    match action {
        CacheAction::List => {
            let entries = mgo_pack::cache::list(&dir).map_err(failed)?;
            print_stdout(&cli::cache_text(&dir, &entries))?;
        }
        CacheAction::Clear => {
            let cleared = mgo_pack::cache::clear(&dir).map_err(failed)?;
            if verbosity != Verbosity::Quiet {
                print_stdout(&format!(
                    "{}: removed {} ({})\n",
                    escaped(&dir),
                    cli::cached_programs(cleared.entries),
                    cli::size(cleared.bytes)
                ))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_stdout(text: &str) -> Result<(), PackError> {
    let mut out = std::io::stdout().lock();
    stdout_written(out.write_all(text.as_bytes()).and_then(|()| out.flush()))
}

/// The outcome of writing text (help, version, `inspect`, `verify`) to stdout. A reader that
/// stopped reading (`mgo-pack inspect app | head`: EPIPE) is not an error; anything else is.
fn stdout_written(result: std::io::Result<()>) -> Result<(), PackError> {
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(PackError::Io {
            path: "stdout".into(),
            source: e,
        }),
        _ => Ok(()),
    }
}
