//! Choosing the variant: the launcher's switches (none in secure-execution mode), the CPU's level
//! or the one forced by `GOAMD64`/`GOARM64`, and the best packed variant for it.

use mgo_format::{Arch, Bundle, Encoding, Entry, FormatError};
use mgo_runtime::cpu::{self, NATIVE};
use mgo_runtime::select::{self, Limit};
use mgo_runtime::switches::Switches;

use crate::decode;
use crate::report::{self, level_name, SETTING};
use crate::start::StartInfo;

/// The variant to start, and what the caller asked of the launcher.
pub struct Choice {
    pub entry: Entry,
    pub switches: Switches,
    /// The CPU's level (or the forced one), for the log.
    pub limit: u32,
    /// Why the CPU's level may be below what it can run (riscv64 without `riscv_hwprobe`).
    pub caveat: Option<&'static str>,
}

/// Why no variant can be chosen.
#[derive(Clone, Copy)]
pub enum Unchosen {
    /// `GOAMD64` (`GOARM64`) is not a level.
    BadOverride,
    /// Nothing packed runs on this CPU.
    NoVariant {
        lowest: u32,
        cpu: u32,
    },
    Bundle(FormatError),
    /// The chosen variant's encoding has no decoder in this launcher image.
    Unsupported(Encoding),
}

pub fn variant(start: &StartInfo, bundle: &Bundle<'_>) -> Result<Choice, Unchosen> {
    // In secure-execution mode (setuid, setgid, file capabilities) the caller's environment does
    // not choose, reveal or place what runs, as the dynamic loader ignores LD_* there.
    let switches = if start.secure() {
        Switches::default()
    } else {
        Switches::from_env(start.env()).map_err(|_| Unchosen::BadOverride)?
    };
    let limit = match switches.forced_level {
        Some(level) => Limit::forced(level),
        None => cpu::detect(|key| start.aux(key)),
    };
    let levels = || bundle.entries().map(|e| e.level);
    let chosen = select::best_fit(levels(), &limit).ok_or(Unchosen::NoVariant {
        lowest: levels().min().unwrap_or(0),
        cpu: limit.level(),
    })?;
    let entry = bundle.entry(chosen).map_err(Unchosen::Bundle)?;
    if !decode::supports(entry.encoding) {
        return Err(Unchosen::Unsupported(entry.encoding));
    }
    Ok(Choice {
        entry,
        switches,
        limit: limit.level(),
        caveat: limit.caveat(),
    })
}

impl Choice {
    /// With `MGODEBUG=log`: why this level, and mgo's own line naming the variant.
    pub fn log(&self) {
        if !self.switches.log {
            return;
        }
        report::log(|why| {
            if let Some(level) = self.switches.forced_level {
                why.str(SETTING)
                    .push(level_name(level).as_bytes())
                    .str(" set in the environment");
            } else {
                match NATIVE {
                    Arch::X86_64 => why.str("CPU supports x86-64-"),
                    Arch::Aarch64 => why.str("CPU supports GOARM64="),
                    Arch::Riscv64 => why.str("CPU supports GORISCV64="),
                    Arch::Arm => why.str("CPU supports GOARM="),
                    Arch::Ppc64le => why.str("CPU supports GOPPC64="),
                };
                why.push(level_name(self.limit).as_bytes());
                if let Some(caveat) = self.caveat {
                    why.str(caveat);
                }
            }
        });
        report::log(|line| {
            line.str("starting variant ")
                .str(SETTING)
                .push(level_name(self.entry.level).as_bytes());
        });
    }
}
