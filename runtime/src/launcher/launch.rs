//! The launch, in order: find the bundle where the kernel mapped it, choose the variant, then
//! start it on the first path that works: the direct path first if the packer (or
//! `MGODEBUG=direct`) chose it, or the file in the user's cache if the packer (or
//! `MGODEBUG=cache`) chose that, then a memfd or a temporary file exec'd, and the direct path
//! again as the last resort when nothing could be written or exec'd.

use core::cell::Cell;

use mgo_format::{level, Arch, Bundle, Encoding, Entry, FormatError, ENTRY_CACHE, ENTRY_DIRECT};
use mgo_runtime::cpu::NATIVE;
use mgo_runtime::exit;
use mgo_runtime::message::Line;
use mgo_runtime::switches::LaunchPath;

use crate::cache::{self, How, Missed, Unusable};
use crate::choose::{self, Unchosen};
use crate::decode::{self, Spoiled};
use crate::enter::Placement;
use crate::exec::{self, Attempts, Stopped};
use crate::own_image::{LoadedHeaders, Unreadable};
use crate::refusal::Refusal;
use crate::report::{self, errno, level_name, SETTING};
use crate::start::StartInfo;
use crate::watchdog::Watchdog;
use crate::{direct, xfsz};

/// Why the program could not be started.
pub enum Failure {
    Unreadable(Unreadable),
    Unchosen(Unchosen),
    /// The chosen variant's bytes are not the packed ones (its level).
    Damaged(u32),
    /// `MGODEBUG=extract` failed.
    Extract(Spoiled),
    /// Every exec target failed, and the cache and the direct path too where they were tried
    /// (docs/RELIABILITY.md).
    Start {
        cache: Option<Unusable>,
        tried: Attempts,
        direct: Option<Refusal>,
    },
}

impl From<Unreadable> for Failure {
    fn from(e: Unreadable) -> Failure {
        Failure::Unreadable(e)
    }
}

impl From<Unchosen> for Failure {
    fn from(e: Unchosen) -> Failure {
        Failure::Unchosen(e)
    }
}

/// Runs the launch. Returns the exit status for the cases that end without exec (extract).
/// `watchdog` is armed until the launcher's own bytes have been checked.
pub fn run(start: &StartInfo, watchdog: Watchdog) -> Result<i32, Failure> {
    let page = start.page_size();
    let headers = LoadedHeaders::read(start)?;
    let bundle = headers.bundle(page as usize)?;
    // The launcher's own bytes are the packed ones from here on.
    watchdog.disarm();
    let choice = choose::variant(start, &bundle)?;
    let entry = &choice.entry;
    let switches = choice.switches;

    if switches.extract {
        xfsz::hold();
        return decode::extract(&bundle, entry)
            .map(|()| 0)
            .map_err(Failure::Extract);
    }
    let place = Placement {
        launcher_end: headers.end(),
        region: (
            bundle.arch.payload_vaddr() as usize,
            bundle.header.region_len as usize,
        ),
        launcher: headers.launcher_span(page as usize),
    };
    let first = switches
        .launch
        .unwrap_or(if entry.flags & ENTRY_DIRECT != 0 {
            LaunchPath::Direct
        } else if entry.flags & ENTRY_CACHE != 0 {
            LaunchPath::Cache
        } else {
            LaunchPath::Memfd
        });
    // What `MGODEBUG=log` says: the variant chosen, once, just before the first exec or jump.
    let chosen = Cell::new(false);
    let choice_once = || {
        if !chosen.replace(true) {
            choice.log();
        }
    };
    let announce = |path: Path| {
        choice_once();
        if switches.log {
            path.log();
        }
    };
    let refused = (first == LaunchPath::Direct)
        .then(|| direct::launch(start, &bundle, entry, &place, || announce(Path::Direct)));
    // Never in secure-execution mode: the caller's environment (HOME, XDG_CACHE_HOME) would
    // choose where the program comes from.
    let missed = (first == LaunchPath::Cache && !start.secure())
        .then(|| start_cached(start, &bundle, entry, announce));
    let missed = missed.transpose()?;

    let fill = |target: &_| decode::write_variant(target, &bundle, entry);
    let ready = || announce(Path::Memfd(refused, missed));
    xfsz::hold();
    let tried = match exec::launch(start, entry, fill, ready, switches.log) {
        Stopped::Damaged(level) => return Err(Failure::Damaged(level)),
        Stopped::Tried(tried) => tried,
    };
    let failed = |direct| Failure::Start {
        cache: missed,
        tried,
        direct,
    };
    if refused.is_some() || switches.launch == Some(LaunchPath::Memfd) {
        return Err(failed(refused));
    }
    // Nowhere to write the program, or no exec that takes it (a file size limit, no descriptors
    // left, arguments that fill ARG_MAX so that a second exec cannot): the program still starts,
    // where the direct path can start it.
    let last = direct::launch(start, &bundle, entry, &place, || {
        choice_once();
        if switches.log {
            tried.log_fallback("direct");
        }
    });
    Err(failed(Some(last)))
}

/// Starts the program from its file in the user's cache, found or made; returns why it could not.
/// Out of line: the entry's path takes a page of stack, a page fault, that the other paths need
/// not pay.
#[inline(never)]
fn start_cached(
    start: &StartInfo,
    bundle: &Bundle<'_>,
    entry: &Entry,
    announce: impl Fn(Path<'_>),
) -> Result<Unusable, Failure> {
    let mut at = cache::EntryPath::new();
    let ready = match cache::entry(start, bundle, entry, &mut at) {
        Ok(ready) => ready,
        Err(Missed::Damaged(level)) => return Err(Failure::Damaged(level)),
        Err(Missed::Unusable(why)) => return Ok(why),
    };
    announce(Path::Cache(&ready));
    let e = exec::exec_file(start, ready.path());
    ready.refused(e);
    Ok(Unusable::Exec(e))
}

/// The launch path about to start the program, as `MGODEBUG=log` names it.
enum Path<'a> {
    Direct,
    /// The cache's entry, found or made.
    Cache(&'a cache::Ready<'a>),
    /// The memfd, and why the path chosen before it was not taken.
    Memfd(Option<Refusal>, Option<Unusable>),
}

impl Path<'_> {
    /// `[mgo] launcher: launch path direct`, `... cache (made /path)` (or `verified`: hashed
    /// because it was written in an earlier boot), `... memfd (cannot use the cache: ...)`.
    fn log(&self) {
        if let Path::Cache(ready) = self {
            if ready.how == How::Remade {
                report::log(|line| {
                    line.str(
                        "the cached program was written in an earlier boot and does not match \
                         its checksum; removed and made again",
                    );
                });
            }
        }
        report::log(|line| {
            line.str("launch path ");
            match self {
                Path::Direct => {
                    line.str("direct");
                }
                Path::Cache(ready) => {
                    line.str(match ready.how {
                        How::Found => "cache (",
                        How::Verified => "cache (verified ",
                        How::Made | How::Remade => "cache (made ",
                    })
                    .push(ready.path().to_bytes())
                    .str(")");
                }
                Path::Memfd(refused, missed) => {
                    line.str("memfd");
                    if let Some(why) = refused {
                        line.str(" (cannot map the variant directly: ");
                        why.describe(line);
                        line.str(")");
                    } else if let Some(why) = missed {
                        line.str(" (cannot use the cache: ");
                        why.describe(line);
                        line.str(")");
                    }
                }
            }
        });
    }
}

impl Failure {
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Unreadable(Unreadable::NoProgramHeaders) => exit::OWN_FILE,
            Failure::Unreadable(Unreadable::Damaged(_))
            | Failure::Unchosen(Unchosen::Bundle(_) | Unchosen::Unsupported(_))
            | Failure::Damaged(_)
            | Failure::Extract(Spoiled::Damaged(_)) => exit::BAD_BUNDLE,
            Failure::Unchosen(Unchosen::BadOverride) => exit::BAD_OVERRIDE,
            Failure::Unchosen(Unchosen::NoVariant { .. }) => exit::NO_VARIANT,
            Failure::Extract(Spoiled::Copy(..)) => exit::EXTRACT_FAILED,
            Failure::Start { .. } => exit::CANNOT_EXECUTE,
        }
    }

    /// The one `mgo: ...` line.
    pub fn describe(&self, line: &mut Line) {
        line.str("mgo: ");
        match *self {
            Failure::Unreadable(Unreadable::NoProgramHeaders) => {
                line.str(
                    "cannot find the launcher's own program headers (the kernel passed no AT_PHDR)",
                );
            }
            Failure::Unreadable(Unreadable::Damaged(e))
            | Failure::Unchosen(Unchosen::Bundle(e)) => {
                damaged(line, e);
            }
            Failure::Damaged(level) | Failure::Extract(Spoiled::Damaged(level)) => {
                line.str("this bundle is damaged: variant ")
                    .str(SETTING)
                    .push(level_name(level).as_bytes())
                    .str(" does not match its checksum; refusing to run it");
            }
            Failure::Unchosen(Unchosen::Unsupported(encoding)) => {
                unsupported(line, encoding);
            }
            Failure::Unchosen(Unchosen::BadOverride) => {
                line.str(match NATIVE {
                    Arch::X86_64 => "GOAMD64 must be v1, v2, v3 or v4 (or unset)",
                    Arch::Aarch64 => {
                        "GOARM64 must be v8.0 to v8.9 or v9.0 to v9.5, optionally followed by \
                         ,lse and ,crypto (or unset)"
                    }
                    Arch::Riscv64 => "GORISCV64 must be rva20u64, rva22u64 or rva23u64 (or unset)",
                    Arch::Arm => "GOARM must be 5, 6 or 7 (or unset)",
                    Arch::Ppc64le => "GOPPC64 must be power8, power9 or power10 (or unset)",
                });
            }
            Failure::Unchosen(Unchosen::NoVariant { lowest, cpu }) => no_variant(line, lowest, cpu),
            Failure::Extract(Spoiled::Copy(step, e)) => {
                line.str("cannot write the variant to stdout: ")
                    .str(step.name())
                    .str(": ");
                errno(line, e);
            }
            Failure::Start {
                cache,
                ref tried,
                direct,
            } => {
                line.str("cannot start the program; tried ");
                if let Some(why) = cache {
                    line.str("cache: ");
                    why.describe(line);
                    line.str("; ");
                }
                tried.describe(line);
                if let Some(refusal) = direct {
                    line.str("; direct: ");
                    refusal.describe(line);
                }
            }
        }
    }
}

fn damaged(line: &mut Line, e: FormatError) {
    line.str("this bundle is damaged: ").str(e.message());
}

fn unsupported(line: &mut Line, encoding: Encoding) {
    line.str("this launcher cannot decode ")
        .str(encoding.name())
        .str(" variants; the bundle is damaged or was made by a different packer");
}

fn no_variant(line: &mut Line, lowest: u32, cpu: u32) {
    // The CPU as the message names it, and what to say of one below every level (code 0) where
    // the architecture has such a CPU.
    let (cpu_kind, below_all) = match NATIVE {
        Arch::X86_64 => {
            line.str("this program needs an x86-64-")
                .str(level::x86_64_name(lowest))
                .str(" CPU or better, but this CPU is x86-64-")
                .str(level::x86_64_name(cpu));
            return;
        }
        Arch::Aarch64 => ("an arm64", None),
        Arch::Riscv64 => ("a riscv64", Some("this CPU has none of the RVA profiles")),
        Arch::Arm => ("a 32-bit ARM", Some("this CPU is older than ARMv5")),
        Arch::Ppc64le => (
            "a ppc64le",
            Some("this CPU reports no POWER8 (ISA 2.07) or later"),
        ),
    };
    line.str("this program needs ")
        .str(cpu_kind)
        .str(" CPU with ")
        .str(SETTING)
        .push(level_name(lowest).as_bytes())
        .str(" or better, but ");
    match below_all {
        Some(text) if cpu == 0 => line.str(text),
        _ => line
            .str("this CPU supports ")
            .str(SETTING)
            .push(level_name(cpu).as_bytes()),
    };
}
