//! The launch, in order: find the bundle where the kernel mapped it, choose the variant, then
//! start it on the first path that works: the direct path first if the packer (or
//! `MGODEBUG=direct`) chose it, a memfd or a temporary file exec'd, and the direct path again as
//! the last resort when nothing could be written or exec'd.

use mgo_format::{level, Arch, Encoding, FormatError, ENTRY_DIRECT};
use mgo_runtime::cpu::NATIVE;
use mgo_runtime::exit;
use mgo_runtime::message::Line;
use mgo_runtime::switches::LaunchPath;

use crate::choose::{self, Unchosen};
use crate::decode::{self, Spoiled};
use crate::enter::Placement;
use crate::exec::{self, Attempts, Stopped};
use crate::own_image::{LoadedHeaders, Unreadable};
use crate::refusal::Refusal;
use crate::report::{errno, level_name, SETTING};
use crate::start::StartInfo;
use crate::{direct, process_view, xfsz};

/// Why the program could not be started.
pub enum Failure {
    Unreadable(Unreadable),
    Unchosen(Unchosen),
    /// The chosen variant's bytes are not the packed ones (its level).
    Damaged(u32),
    /// `MGODEBUG=extract` failed.
    Extract(Spoiled),
    /// Every exec target failed, and the direct path too where it was tried (docs/RELIABILITY.md).
    Start(Attempts, Option<Refusal>),
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
pub fn run(start: &StartInfo) -> Result<i32, Failure> {
    let page = start.page_size();
    let headers = LoadedHeaders::read(start)?;
    let bundle = headers.bundle(page as usize)?;
    let choice = choose::variant(start, &bundle)?;
    let entry = &choice.entry;
    let switches = choice.switches;

    xfsz::hold();
    if switches.extract {
        return decode::extract(&bundle, entry)
            .map(|()| 0)
            .map_err(Failure::Extract);
    }
    let place = Placement {
        heap_randomised: process_view::heap_randomised(headers.end(), page),
        region: (
            bundle.arch.payload_vaddr() as usize,
            bundle.header.region_len as usize,
        ),
        launcher: headers.launcher_span(page as usize),
    };
    let direct_first = match switches.launch {
        Some(LaunchPath::Memfd) => false,
        Some(LaunchPath::Direct) => true,
        None => entry.flags & ENTRY_DIRECT != 0,
    };
    let refused = direct_first.then(|| {
        direct::launch(start, &bundle, entry, &place, || {
            choice.log();
            if switches.log {
                direct::log_path(true, None);
            }
        })
    });

    let fill = |target: &_| decode::write_variant(target, &bundle, entry);
    let ready = || {
        choice.log();
        if switches.log {
            direct::log_path(false, refused);
        }
    };
    let tried = match exec::launch(start, entry, fill, ready, switches.log) {
        Stopped::Damaged(level) => return Err(Failure::Damaged(level)),
        Stopped::Tried(tried) => tried,
    };
    if refused.is_some() || switches.launch == Some(LaunchPath::Memfd) {
        return Err(Failure::Start(tried, refused));
    }
    // Nowhere to write the program, or no exec that takes it (a file size limit, no descriptors
    // left, arguments that fill ARG_MAX so that a second exec cannot): the program still starts,
    // where the direct path can start it.
    let last = direct::launch(start, &bundle, entry, &place, || {
        choice.log();
        if switches.log {
            tried.log_fallback("direct");
        }
    });
    Err(Failure::Start(tried, Some(last)))
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
            Failure::Start(..) => exit::CANNOT_EXECUTE,
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
                });
            }
            Failure::Unchosen(Unchosen::NoVariant { lowest, cpu }) => no_variant(line, lowest, cpu),
            Failure::Extract(Spoiled::Copy(step, e)) => {
                line.str("cannot write the variant to stdout: ")
                    .str(step.name())
                    .str(": ");
                errno(line, e);
            }
            Failure::Start(ref tried, refused) => {
                line.str("cannot start the program; tried ");
                tried.describe(line);
                if let Some(refusal) = refused {
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
    match NATIVE {
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
    }
}
