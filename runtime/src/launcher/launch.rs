//! The launch itself: find the bundle in memory, choose the variant, start it on the direct path
//! or through a memfd (or a file), with the direct path as the last resort.

use mgo_format::level::{self, LevelName};
use mgo_format::{Arch, Encoding, Entry, FormatError, ENTRY_DIRECT};
use mgo_runtime::cpu::NATIVE;
use mgo_runtime::message::{errno_name, Line};
use mgo_runtime::select::{self, Limit};
use mgo_runtime::switches::{LaunchPath, Switches};
use mgo_runtime::{cpu, exit};
use rustix::fd::BorrowedFd;
use rustix::io::Errno;

use crate::own_image::{LoadedHeaders, Unreadable};
use crate::start::StartInfo;
use crate::{decode, direct, exec, process_view, xfsz};

/// Why the program could not be started.
pub enum Failure {
    BadOverride,
    /// The auxiliary vector does not locate the launcher's program headers.
    NoProgramHeaders,
    Bundle(FormatError),
    Corrupt(u32),
    UnsupportedEncoding(Encoding),
    NoVariant {
        lowest: u32,
        cpu: u32,
    },
    Extract(Errno),
    /// Writing into an exec target failed at `Step`; the launch moves on to the next target.
    Copy(Step, Errno),
    /// Every exec target failed (docs/RELIABILITY.md lists them).
    Start(exec::Attempts),
}

/// Which part of writing a program into its target failed (a launcher without decoders only
/// writes).
#[derive(Clone, Copy)]
#[cfg_attr(not(any(feature = "zstd", feature = "deflate")), allow(dead_code))]
pub enum Step {
    Write,
    Ftruncate,
    Mmap,
    /// Allocating the pages to decode into.
    Memory,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Write => "write",
            Step::Ftruncate => "ftruncate",
            Step::Mmap => "mmap",
            Step::Memory => "allocating memory",
        }
    }
}

impl From<Unreadable> for Failure {
    fn from(e: Unreadable) -> Failure {
        match e {
            Unreadable::NoProgramHeaders => Failure::NoProgramHeaders,
            Unreadable::Damaged(e) => Failure::Bundle(e),
        }
    }
}

impl Failure {
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::BadOverride => exit::BAD_OVERRIDE,
            Failure::NoProgramHeaders => exit::OWN_FILE,
            Failure::Bundle(_) | Failure::Corrupt(_) | Failure::UnsupportedEncoding(_) => {
                exit::BAD_BUNDLE
            }
            Failure::NoVariant { .. } => exit::NO_VARIANT,
            Failure::Extract(_) => exit::EXTRACT_FAILED,
            Failure::Copy(..) | Failure::Start(_) => exit::CANNOT_EXECUTE,
        }
    }

    pub fn describe(&self, line: &mut Line) {
        line.str("mgo: ");
        match *self {
            Failure::BadOverride => {
                line.str(match NATIVE {
                    Arch::X86_64 => "GOAMD64 must be v1, v2, v3 or v4 (or unset)",
                    Arch::Aarch64 => {
                        "GOARM64 must be v8.0 to v8.9 or v9.0 to v9.5, optionally followed by \
                         ,lse and ,crypto (or unset)"
                    }
                });
            }
            Failure::NoProgramHeaders => {
                line.str(
                    "cannot find the launcher's own program headers (the kernel passed no AT_PHDR)",
                );
            }
            Failure::Bundle(e) => {
                line.str("this bundle is damaged: ").str(e.message());
            }
            Failure::Corrupt(level) => {
                line.str("this bundle is damaged: variant ")
                    .str(SETTING)
                    .push(level_name(level).as_bytes())
                    .str(" does not match its checksum; refusing to run it");
            }
            Failure::UnsupportedEncoding(encoding) => {
                line.str("this launcher cannot decode ")
                    .str(encoding.name())
                    .str(" variants; the bundle is damaged or was made by a different packer");
            }
            Failure::NoVariant { lowest, cpu } => match NATIVE {
                Arch::X86_64 => {
                    line.str("this program needs an x86-64-")
                        .str(level::x86_64_name(lowest))
                        .str(" CPU or better, but this CPU is x86-64-")
                        .str(level::x86_64_name(cpu));
                }
                Arch::Aarch64 => {
                    line.str("this program needs an arm64 CPU with GOARM64=")
                        .push(level_name(lowest).as_bytes())
                        .str(" or better, but this CPU supports GOARM64=")
                        .push(level_name(cpu).as_bytes());
                }
            },
            Failure::Extract(e) => {
                line.str("cannot write the variant to stdout: ");
                errno(line, e);
            }
            Failure::Copy(step, e) => {
                line.str("cannot copy the program into its memfd: ")
                    .str(step.name())
                    .str(": ");
                errno(line, e);
            }
            Failure::Start(ref tried) => {
                line.str("cannot start the program; tried ");
                tried.describe(line);
            }
        }
    }
}

/// A level's name as the launcher's own architecture spells it.
fn level_name(level: u32) -> LevelName {
    level::name(NATIVE, level)
}

/// `GOAMD64=` or `GOARM64=`, as one piece: messages name variants the way Go's setting does.
const SETTING: &str = match NATIVE {
    Arch::X86_64 => "GOAMD64=",
    Arch::Aarch64 => "GOARM64=",
};

pub fn errno(line: &mut Line, e: Errno) {
    let raw = e.raw_os_error();
    match errno_name(raw) {
        Some(name) => line.str(name),
        None => line.str("errno ").dec(raw as u64),
    };
}

/// Runs the launch. Returns the exit status for the cases that end without exec (extract).
pub fn run(start: &StartInfo) -> Result<i32, Failure> {
    let headers = LoadedHeaders::read(start)?;
    let bundle = headers.bundle(start.page_size() as usize)?;
    // In secure-execution mode (setuid, setgid, file capabilities) the caller's environment does
    // not choose, reveal or place what runs, as the dynamic loader ignores LD_* there.
    let switches = if start.secure() {
        Switches::default()
    } else {
        Switches::from_env(start.env()).map_err(|_| Failure::BadOverride)?
    };

    let limit = match switches.forced_level {
        Some(level) => Limit::forced(level),
        None => cpu::detect(|key| start.aux(key)),
    };
    let chosen = select::best_fit(bundle.entries().map(|e| e.level), &limit).ok_or_else(|| {
        Failure::NoVariant {
            lowest: bundle.entries().map(|e| e.level).min().unwrap_or(0),
            cpu: limit.level(),
        }
    })?;
    let entry = bundle.entry(chosen).map_err(Failure::Bundle)?;
    if !decode::supports(entry.encoding) {
        return Err(Failure::UnsupportedEncoding(entry.encoding));
    }

    xfsz::hold();
    if switches.extract {
        if entry.encoding != Encoding::Stored {
            return decode::extract(&bundle, &entry).map(|()| 0);
        }
        return extract(bundle.stored(&entry), &entry).map(|()| 0);
    }
    let log_choice = || {
        if switches.log {
            log_choice(&entry, &limit, switches.forced_level);
        }
    };
    let heap_randomised = process_view::heap_randomised(headers.end(), start.page_size());
    let direct_first = match switches.launch {
        Some(LaunchPath::Memfd) => false,
        Some(LaunchPath::Direct) => true,
        None => entry.flags & ENTRY_DIRECT != 0,
    };
    let refused = direct_first.then(|| {
        direct::launch_variant(start, &bundle, &entry, heap_randomised, || {
            log_choice();
            if switches.log {
                direct::log_path(true, None);
            }
        })
    });

    let fill = |target: &_| decode::write_variant(target, &bundle, &entry);
    let ready = || {
        log_choice();
        if switches.log {
            direct::log_path(false, refused);
        }
    };
    let mut tried = match exec::launch(start, &entry, fill, ready, switches.log) {
        Failure::Start(tried) => tried,
        other => return Err(other),
    };
    tried.direct = refused;
    if refused.is_some() || switches.launch == Some(LaunchPath::Memfd) {
        return Err(Failure::Start(tried));
    }
    // Nowhere to write the program, or no exec that takes it (a file size limit, no descriptors
    // left, arguments that fill ARG_MAX so that a second exec cannot): the program still starts,
    // where the direct path can start it.
    let last = direct::launch_variant(start, &bundle, &entry, heap_randomised, || {
        log_choice();
        if switches.log {
            tried.log_fallback("direct");
        }
    });
    tried.direct = Some(last);
    Err(Failure::Start(tried))
}

fn log_choice(entry: &Entry, limit: &impl Limit, forced: Option<u32>) {
    let mut why = Line::new();
    why.str("[mgo] launcher: ");
    if let Some(level) = forced {
        why.str(SETTING)
            .push(level_name(level).as_bytes())
            .str(" set in the environment");
    } else {
        match NATIVE {
            Arch::X86_64 => why.str("CPU supports x86-64-"),
            Arch::Aarch64 => why.str("CPU supports GOARM64="),
        };
        why.push(level_name(limit.level()).as_bytes());
    }
    write_stderr(why.finish());
    let mut line = Line::new();
    line.str("[mgo] launcher: starting variant ")
        .str(SETTING)
        .push(level_name(entry.level).as_bytes());
    write_stderr(line.finish());
}

fn extract(data: &[u8], entry: &Entry) -> Result<(), Failure> {
    if mgo_format::content_hash(data) != entry.content_hash {
        return Err(Failure::Corrupt(entry.level));
    }
    // SAFETY: descriptor 1 is the launcher's stdout, open for the whole call or invalid (EBADF).
    let stdout = unsafe { BorrowedFd::borrow_raw(1) };
    write_all(stdout, data).map_err(Failure::Extract)
}

pub fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> Result<(), Errno> {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(0) => return Err(Errno::IO),
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub fn write_stderr(bytes: &[u8]) {
    // SAFETY: descriptor 2 is stderr or invalid; a failed write is ignored on purpose, since there
    // is nowhere else to report it.
    let stderr = unsafe { BorrowedFd::borrow_raw(2) };
    let _ = write_all(stderr, bytes);
}
