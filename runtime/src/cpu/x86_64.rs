//! x86-64 microarchitecture levels, the `GOAMD64=v1` ... `v4` of Go.
//!
//! The level is the highest one whose start-up check in a Go binary built for it would pass
//! (`rt0_go` in Go's `runtime/asm_amd64.s`): a more generous choice starts a program that prints
//! "This program can only be run on AMD64 processors with vN microarchitecture support." and exits,
//! a stricter one passes over a faster variant that would have run. Like Go, it checks nothing for
//! v1: a CPU that runs this code runs a v1 program, so the level is never below 1, and the
//! baseline leaf-1 EDX bits (FPU, CMOV, SSE2, ...) that glibc also checks never lower it (only an
//! emulator can clear them, and Go's v2 to v4 programs then still start).
//!
//! Go guards its reads with leaves 0 and 0x8000_0000 (the highest basic and extended leaves). The
//! launcher reads neither: each costs a trap to the hypervisor in a virtual machine, and the
//! architecture already guarantees what they would say. Leaves 1 and 0x8000_0001 exist on every
//! CPU that runs 64-bit code (the long-mode bit itself is in leaf 0x8000_0001). Leaf 7 is trusted
//! only when leaf 1 reports XSAVE, whose state components are enumerated by leaf 0xD, above 7;
//! without XSAVE, and so on a CPU that does not report leaf 7 either, it counts as empty. Go reads
//! it unguarded once its own leaf-0 maximum is not zero.
//!
//! [`level_from_cpuid`] and [`missing_for`] are pure and tested with the register values of real
//! CPU models. [`read_cpuid`] reads the registers, with as few CPUID instructions as the answer
//! allows: in a virtual machine every CPUID exits to the hypervisor, which costs microseconds (ten
//! here). It stops as soon as what it has read decides the level:
//!
//! | what the registers show | CPUID | XGETBV | level |
//! |---|---|---|---|
//! | leaf 1 lacks a v2 bit | 1 | 0 | 1 |
//! | leaf 0x8000_0001 lacks LAHF-SAHF, or leaf 1 / 0x8000_0001 lack a v3 bit | 2 | 0 | 1 or 2 |
//! | XCR0 lacks the YMM state, or leaf 1 lacks XSAVE | 2 | 1 | 2 |
//! | everything read | 3 | 1 | 2, 3 or 4 |

use core::arch::asm;
use core::arch::x86_64::__cpuid_count;

/// The CPUID words and XCR0 that decide the level.
///
/// A field that was not read, because its guard failed or because what had been read already
/// decided the level, is 0. [`level_from_cpuid`] and [`missing_for`] ignore a field whose guard
/// fails whatever it holds, so a caller may fill them from any source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct X86Cpuid {
    /// Leaf 1 ECX.
    pub leaf1_ecx: u32,
    /// Leaf 7 subleaf 0 EBX; trusted when leaf 1 reports XSAVE.
    pub leaf7_ebx: u32,
    /// Leaf 0x8000_0001 ECX.
    pub ext1_ecx: u32,
    /// XCR0, the register state the OS saves and restores; trusted when leaf 1 reports OSXSAVE.
    pub xcr0: u64,
}

const MAX_LEVEL: u32 = 4;
const EXT1_LEAF: u32 = 0x8000_0001;
/// Leaf 1 ECX bit 26: XSAVE, whose state components leaf 0xD enumerates; a CPU that reports it
/// reports every basic leaf up to 0xD, leaf 7 among them.
const XSAVE: u32 = 1 << 26;
/// Leaf 1 ECX bit 27: the OS has set CR4.OSXSAVE, without which XGETBV raises #UD.
const OSXSAVE: u32 = 1 << 27;

#[derive(Clone, Copy)]
enum Reg {
    Leaf1Ecx,
    Leaf7Ebx,
    Ext1Ecx,
    Xcr0,
}

struct Requirement {
    level: u32,
    reg: Reg,
    /// Every bit of the mask must be set.
    mask: u64,
    name: &'static str,
}

const fn req(level: u32, reg: Reg, mask: u64, name: &'static str) -> Requirement {
    Requirement {
        level,
        reg,
        mask,
        name,
    }
}

/// Every requirement, by level and, within a level, in the order [`read_with`] reads the
/// registers. That order makes the first missing feature the same whether the registers were read
/// in full or [`read_with`] stopped early, and makes [`missing_for`] name what really stopped it.
const REQUIREMENTS: &[Requirement] = {
    use Reg::*;
    &[
        req(2, Leaf1Ecx, 1 << 0, "SSE3"),
        req(2, Leaf1Ecx, 1 << 9, "SSSE3"),
        req(2, Leaf1Ecx, 1 << 13, "CX16"),
        req(2, Leaf1Ecx, 1 << 19, "SSE4.1"),
        req(2, Leaf1Ecx, 1 << 20, "SSE4.2"),
        req(2, Leaf1Ecx, 1 << 23, "POPCNT"),
        req(2, Ext1Ecx, 1 << 0, "LAHF-SAHF"),
        req(3, Leaf1Ecx, 1 << 12, "FMA"),
        req(3, Leaf1Ecx, 1 << 22, "MOVBE"),
        req(3, Leaf1Ecx, OSXSAVE as u64, "OSXSAVE"),
        req(3, Leaf1Ecx, 1 << 28, "AVX"),
        req(3, Leaf1Ecx, 1 << 29, "F16C"),
        req(3, Ext1Ecx, 1 << 5, "LZCNT"),
        // XCR0 bits 1 and 2: the OS saves SSE and AVX (YMM) state.
        req(3, Xcr0, 0x06, "XCR0 YMM state"),
        req(3, Leaf7Ebx, 1 << 3, "BMI1"),
        req(3, Leaf7Ebx, 1 << 5, "AVX2"),
        req(3, Leaf7Ebx, 1 << 8, "BMI2"),
        req(4, Leaf7Ebx, 1 << 16, "AVX512F"),
        req(4, Leaf7Ebx, 1 << 17, "AVX512DQ"),
        req(4, Leaf7Ebx, 1 << 28, "AVX512CD"),
        req(4, Leaf7Ebx, 1 << 30, "AVX512BW"),
        req(4, Leaf7Ebx, 1 << 31, "AVX512VL"),
        // Bits 5 to 7 add the opmask, ZMM_Hi256 and Hi16_ZMM state. A kernel or hypervisor can
        // leave them off while CPUID reports AVX-512: such a machine is v3.
        req(4, Xcr0, 0xE6, "XCR0 ZMM state"),
    ]
};

// `first_missing` stops at the first requirement above the level asked about.
const _: () = {
    let mut i = 1;
    while i < REQUIREMENTS.len() {
        assert!(REQUIREMENTS[i - 1].level <= REQUIREMENTS[i].level);
        i += 1;
    }
};

/// The union of the masks for `reg` up to `level`, so that [`read_with`]'s shortcuts follow the
/// table instead of repeating it.
const fn mask_up_to(reg: Reg, level: u32) -> u64 {
    let mut mask = 0;
    let mut i = 0;
    while i < REQUIREMENTS.len() {
        let r = &REQUIREMENTS[i];
        if r.level <= level && r.reg as u8 == reg as u8 {
            mask |= r.mask;
        }
        i += 1;
    }
    mask
}

const LEAF1_ECX_UP_TO_V2: u32 = mask_up_to(Reg::Leaf1Ecx, 2) as u32;
const LEAF1_ECX_UP_TO_V3: u32 = mask_up_to(Reg::Leaf1Ecx, 3) as u32;
const EXT1_ECX_UP_TO_V3: u32 = mask_up_to(Reg::Ext1Ecx, 3) as u32;
const XCR0_UP_TO_V3: u64 = mask_up_to(Reg::Xcr0, 3);

// `read_with` executes XGETBV once leaf 1 ECX has every v3 bit; this makes that legal.
const _: () = assert!(LEAF1_ECX_UP_TO_V3 & OSXSAVE != 0);

impl X86Cpuid {
    /// The register as far as its guard lets it be trusted; an untrusted register counts as 0.
    fn reg(&self, reg: Reg) -> u64 {
        match reg {
            Reg::Leaf1Ecx => self.leaf1_ecx.into(),
            Reg::Leaf7Ebx if self.leaf1_ecx & XSAVE != 0 => self.leaf7_ebx.into(),
            Reg::Ext1Ecx => self.ext1_ecx.into(),
            Reg::Xcr0 if self.leaf1_ecx & OSXSAVE != 0 => self.xcr0,
            _ => 0,
        }
    }
}

fn first_missing(c: &X86Cpuid, level: u32) -> Option<&'static Requirement> {
    REQUIREMENTS
        .iter()
        .take_while(|r| r.level <= level)
        .find(|r| c.reg(r.reg) & r.mask != r.mask)
}

/// The highest level, 1 to 4, whose requirements `c` meets. v1 has none, as in Go.
pub fn level_from_cpuid(c: &X86Cpuid) -> u32 {
    first_missing(c, MAX_LEVEL).map_or(MAX_LEVEL, |r| r.level - 1)
}

/// The name of the first feature, among those `level` and the levels below it need, that `c`
/// lacks, such as `"AVX2"` or `"XCR0 ZMM state"`; `None` when `c` reaches `level`. A level above
/// 4 does not exist, and is reported as such rather than as met.
pub fn missing_for(c: &X86Cpuid, level: u32) -> Option<&'static str> {
    if level > MAX_LEVEL {
        return Some("no such x86-64 level");
    }
    first_missing(c, level).map(|r| r.name)
}

fn has_all(word: u32, mask: u32) -> bool {
    word & mask == mask
}

/// Reads the registers through `cpuid(leaf, subleaf) -> [eax, ebx, ecx, edx]` and `xgetbv0()`
/// (XCR0), stopping as soon as what has been read decides the level (see the module's table).
/// Calls `xgetbv0` only after leaf 1 has reported OSXSAVE, and reads leaf 7 only after it has
/// reported XSAVE.
fn read_with(
    mut cpuid: impl FnMut(u32, u32) -> [u32; 4],
    mut xgetbv0: impl FnMut() -> u64,
) -> X86Cpuid {
    let ecx = cpuid(1, 0)[2];
    let mut c = X86Cpuid {
        leaf1_ecx: ecx,
        ..X86Cpuid::default()
    };
    if !has_all(ecx, LEAF1_ECX_UP_TO_V2) {
        return c;
    }
    c.ext1_ecx = cpuid(EXT1_LEAF, 0)[2];
    if !has_all(c.ext1_ecx, EXT1_ECX_UP_TO_V3) || !has_all(ecx, LEAF1_ECX_UP_TO_V3) {
        return c;
    }
    // XCR0 before leaf 7: XGETBV does not exit to the hypervisor (VT-x and AMD-V intercept only
    // XSETBV), and an XCR0 without YMM state makes leaf 7 unnecessary.
    c.xcr0 = xgetbv0();
    if c.xcr0 & XCR0_UP_TO_V3 != XCR0_UP_TO_V3 || ecx & XSAVE == 0 {
        return c;
    }
    c.leaf7_ebx = cpuid(7, 0)[1];
    c
}

/// Reads this CPU's registers, executing 1 to 3 CPUID instructions and at most one XGETBV.
pub fn read_cpuid() -> X86Cpuid {
    read_with(cpuid, || {
        // SAFETY: `read_with` calls this only after leaf 1 has reported OSXSAVE.
        unsafe { xgetbv0() }
    })
}

/// The level of this CPU, 1 to 4.
pub fn detect_level() -> u32 {
    level_from_cpuid(&read_cpuid())
}

fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    // SAFETY: every x86-64 CPU has CPUID, which only reads; an unsupported leaf yields meaningless
    // values, not a fault. Rust 1.85 (the MSRV) declares the intrinsic unsafe, later ones safe.
    #[allow(unused_unsafe)]
    let r = unsafe { __cpuid_count(leaf, subleaf) };
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// XCR0. Inline assembly rather than `_xgetbv`, which needs the `xsave` target feature: the
/// launcher stays compiled for baseline x86-64 and decides at run time.
///
/// # Safety
///
/// CPUID leaf 1 must have reported OSXSAVE; otherwise XGETBV raises #UD.
unsafe fn xgetbv0() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller guarantees OSXSAVE, under which XCR0 (ECX = 0) always exists. XGETBV
    // touches no memory, no stack and no flags.
    unsafe {
        asm!(
            "xgetbv",
            in("ecx") 0u32,
            out("eax") lo,
            out("edx") hi,
            options(nomem, nostack, preserves_flags),
        );
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Bits the edge-case rows clear; their names are checked against the table below.
    const MOVBE: u32 = 1 << 22;
    const CX16: u32 = 1 << 13;
    const LAHF: u32 = 1 << 0;
    const LZCNT: u32 = 1 << 5;

    // Rows named after QEMU models take leaf 1 ECX, leaf 7 EBX and leaf 0x8000_0001 ECX from
    // that model's definition in
    // QEMU's target/i386/cpu.c (builtin_x86_defs). QEMU leaves OSXSAVE out of its models (the
    // guest OS sets it), so rows whose model has XSAVE add it, and XCR0 is what Linux enables
    // there: x87|SSE (0x03), +AVX (0x07), +PKRU (0x207), +opmask|ZMM_Hi256|Hi16_ZMM (0x2E7).

    // QEMU "Conroe" (Core 2 Merom/Conroe); the model also omits CX16. No XSAVE.
    const CONROE: X86Cpuid = X86Cpuid {
        leaf1_ecx: 0x0000_0201,
        leaf7_ebx: 0,
        ext1_ecx: 0x0000_0001,
        xcr0: 0,
    };
    // QEMU "Penryn" (Core 2 Penryn): SSE4.1 but no SSE4.2 or POPCNT. No XSAVE.
    const PENRYN: X86Cpuid = X86Cpuid {
        leaf1_ecx: 0x0008_2201,
        ..CONROE
    };
    // QEMU "Nehalem" (Core i7 9xx). No XSAVE.
    const NEHALEM: X86Cpuid = X86Cpuid {
        leaf1_ecx: 0x0098_2201,
        leaf7_ebx: 0,
        ext1_ecx: 0x0000_0001,
        xcr0: 0,
    };
    // QEMU "SandyBridge" (Xeon E312xx): AVX, no FMA, F16C, AVX2 or BMI.
    const SANDY_BRIDGE: X86Cpuid = X86Cpuid {
        leaf1_ecx: 0x1FB8_2203,
        leaf7_ebx: 0,
        ext1_ecx: 0x0000_0001,
        xcr0: 0x07,
    };
    // QEMU "Haswell" (Core Processor (Haswell)).
    const HASWELL: X86Cpuid = X86Cpuid {
        leaf1_ecx: 0x7FFA_3203,
        leaf7_ebx: 0x0000_0FB9,
        ext1_ecx: 0x0000_0021,
        xcr0: 0x07,
    };
    // Pentium G3258 (Haswell without AVX, FMA, F16C, BMI1, BMI2, AVX2): the capability list
    // lshw printed on one under Linux 4.4 (Ubuntu Forums thread "HDMI no longer working in
    // 16.04", 2016), turned into register bits, plus OSXSAVE (Linux enables XSAVE but never
    // lists the flag).
    const PENTIUM_G3258: X86Cpuid = X86Cpuid {
        leaf1_ecx: 0x4DDA_EBBF,
        leaf7_ebx: 0x0000_0603,
        ext1_ecx: 0x0000_0021,
        xcr0: 0x03,
    };
    // QEMU "Skylake-Client" (Core Processor (Skylake)).
    const SKYLAKE_CLIENT: X86Cpuid = X86Cpuid {
        leaf7_ebx: 0x001C_0FB9,
        ext1_ecx: 0x0000_0121,
        ..HASWELL
    };
    // QEMU "Skylake-Server" (Xeon Processor (Skylake)), the Skylake-SP/X core Cascade Lake keeps.
    const SKYLAKE_SERVER: X86Cpuid = X86Cpuid {
        leaf7_ebx: 0xD19F_0FB9,
        xcr0: 0x2E7,
        ..SKYLAKE_CLIENT
    };
    // QEMU "KnightsMill" (Xeon Phi): AVX512F and CD, but not DQ, BW or VL.
    const KNIGHTS_MILL: X86Cpuid = X86Cpuid {
        leaf1_ecx: 0x7FF8_3203,
        leaf7_ebx: 0x1C0D_03A9,
        ext1_ecx: 0x0000_0121,
        xcr0: 0xE7,
    };
    // Core i7-12700K (Alder Lake, whose AVX-512 is fused off): the flags lscpu showed in a KVM
    // guest (github.com/CTGS-Innovations/docling, cli/info/lscpu.md), turned into register
    // bits, plus OSXSAVE; "pku ospke" there gives XCR0 its PKRU bit.
    const ALDER_LAKE: X86Cpuid = X86Cpuid {
        leaf1_ecx: 0xFFF8_3223,
        leaf7_ebx: 0x219C_07AB,
        ext1_ecx: 0x0000_0121,
        xcr0: 0x207,
    };
    // QEMU "Opteron_G3" (Opteron 23xx, K10 Barcelona): SSE4a and POPCNT, but no SSSE3. No XSAVE.
    const K10_BARCELONA: X86Cpuid = X86Cpuid {
        leaf1_ecx: 0x0080_2009,
        leaf7_ebx: 0,
        ext1_ecx: 0x0000_00E5,
        xcr0: 0,
    };
    // QEMU "EPYC" (Zen 1).
    const ZEN1: X86Cpuid = X86Cpuid {
        leaf1_ecx: 0x7ED8_320B,
        leaf7_ebx: 0x209C_01A9,
        ext1_ecx: 0x0040_03F5,
        xcr0: 0x07,
    };
    // QEMU "EPYC-Rome" (Zen 2).
    const ZEN2: X86Cpuid = X86Cpuid {
        leaf7_ebx: 0x219C_01A9,
        ext1_ecx: 0x00C0_03F5,
        ..ZEN1
    };
    // QEMU "EPYC-Milan" (Zen 3), which adds PKU.
    const ZEN3: X86Cpuid = X86Cpuid {
        leaf1_ecx: 0x7EDA_320B,
        leaf7_ebx: 0x219C_07A9,
        xcr0: 0x207,
        ..ZEN2
    };
    // QEMU "EPYC-Genoa" (Zen 4).
    const ZEN4: X86Cpuid = X86Cpuid {
        leaf7_ebx: 0xF1BF_07A9,
        xcr0: 0x2E7,
        ..ZEN3
    };
    // QEMU "Denverton" (Atom C3000, Goldmont): SSE4.2 and MOVBE, no AVX.
    const GOLDMONT: X86Cpuid = X86Cpuid {
        leaf1_ecx: 0x4FF8_220B,
        leaf7_ebx: 0x2094_4281,
        ext1_ecx: 0x0000_0101,
        xcr0: 0x03,
    };

    struct Row {
        name: &'static str,
        cpu: X86Cpuid,
        level: u32,
        /// What `missing_for(cpu, level + 1)` names; `None` for v4 rows.
        next_missing: Option<&'static str>,
        /// CPUID instructions and XGETBVs `read_with` executes.
        cpuids: u32,
        xgetbvs: u32,
    }

    const fn row(
        name: &'static str,
        cpu: X86Cpuid,
        level: u32,
        next_missing: Option<&'static str>,
        cpuids: u32,
        xgetbvs: u32,
    ) -> Row {
        Row {
            name,
            cpu,
            level,
            next_missing,
            cpuids,
            xgetbvs,
        }
    }

    const ROWS: &[Row] = &[
        row("Core 2 Conroe", CONROE, 1, Some("CX16"), 1, 0),
        row("Core 2 Penryn", PENRYN, 1, Some("SSE4.2"), 1, 0),
        row("Nehalem", NEHALEM, 2, Some("FMA"), 2, 0),
        row("Sandy Bridge", SANDY_BRIDGE, 2, Some("FMA"), 2, 0),
        row("Haswell", HASWELL, 3, Some("AVX512F"), 3, 1),
        row("Pentium G3258", PENTIUM_G3258, 2, Some("FMA"), 2, 0),
        row("Skylake client", SKYLAKE_CLIENT, 3, Some("AVX512F"), 3, 1),
        row("Skylake-X server", SKYLAKE_SERVER, 4, None, 3, 1),
        row("Knights Mill", KNIGHTS_MILL, 3, Some("AVX512DQ"), 3, 1),
        row("Alder Lake", ALDER_LAKE, 3, Some("AVX512F"), 3, 1),
        row("K10 Barcelona", K10_BARCELONA, 1, Some("SSSE3"), 1, 0),
        row("Zen 1", ZEN1, 3, Some("AVX512F"), 3, 1),
        row("Zen 2", ZEN2, 3, Some("AVX512F"), 3, 1),
        row("Zen 3", ZEN3, 3, Some("AVX512F"), 3, 1),
        row("Zen 4", ZEN4, 4, None, 3, 1),
        row("Goldmont", GOLDMONT, 2, Some("FMA"), 2, 0),
        // A hypervisor exposing AVX-512 in CPUID without enabling ZMM state.
        row(
            "Skylake-X VM, XCR0 0x07",
            X86Cpuid {
                xcr0: 0x07,
                ..SKYLAKE_SERVER
            },
            3,
            Some("XCR0 ZMM state"),
            3,
            1,
        ),
        // A CPU that does not report XSAVE need not report leaf 7 either: whatever it holds there
        // must not count (a CPU that reports OSXSAVE without XSAVE breaks the architecture too).
        row(
            "Haswell without XSAVE, garbage leaf 7",
            X86Cpuid {
                leaf1_ecx: HASWELL.leaf1_ecx & !XSAVE,
                leaf7_ebx: u32::MAX,
                ..HASWELL
            },
            2,
            Some("BMI1"),
            2,
            1,
        ),
        // An OS that never enabled XSAVE: AVX is reported but unusable, and XCR0 unreadable.
        row(
            "Haswell, OSXSAVE clear",
            X86Cpuid {
                leaf1_ecx: HASWELL.leaf1_ecx & !OSXSAVE,
                xcr0: u64::MAX,
                ..HASWELL
            },
            2,
            Some("OSXSAVE"),
            2,
            0,
        ),
        row(
            "Haswell, XCR0 without YMM state",
            X86Cpuid {
                xcr0: 0x03,
                ..HASWELL
            },
            2,
            Some("XCR0 YMM state"),
            2,
            1,
        ),
        row(
            "Nehalem without LAHF-SAHF",
            X86Cpuid {
                ext1_ecx: NEHALEM.ext1_ecx & !LAHF,
                ..NEHALEM
            },
            1,
            Some("LAHF-SAHF"),
            2,
            0,
        ),
        row(
            "Haswell without LZCNT",
            X86Cpuid {
                ext1_ecx: HASWELL.ext1_ecx & !LZCNT,
                ..HASWELL
            },
            2,
            Some("LZCNT"),
            2,
            0,
        ),
        row(
            "Haswell without MOVBE",
            X86Cpuid {
                leaf1_ecx: HASWELL.leaf1_ecx & !MOVBE,
                ..HASWELL
            },
            2,
            Some("MOVBE"),
            2,
            0,
        ),
        row(
            "Nehalem without CX16",
            X86Cpuid {
                leaf1_ecx: NEHALEM.leaf1_ecx & !CX16,
                ..NEHALEM
            },
            1,
            Some("CX16"),
            1,
            0,
        ),
        // Go's v1 checks nothing, so v1 programs start even here.
        row(
            "leaf 1 reports nothing",
            X86Cpuid {
                leaf1_ecx: 0,
                ..SKYLAKE_SERVER
            },
            1,
            Some("SSE3"),
            1,
            0,
        ),
    ];

    /// Runs `read_with` against a CPU that answers from `regs`, failing on any read a guard
    /// should have prevented. Returns what was read and the CPUID and XGETBV counts.
    fn read_fake(regs: &X86Cpuid) -> (X86Cpuid, u32, u32) {
        let (mut cpuids, mut xgetbvs) = (0, 0);
        let read = read_with(
            |leaf, subleaf| {
                cpuids += 1;
                assert_eq!(subleaf, 0);
                match leaf {
                    // EDX (FPU, CMOV, SSE2, ...) empty: Go's checks never look at it, and
                    // emulators such as `qemu-x86_64 -cpu Haswell,-mmx` can clear it while Go's
                    // v3 programs still start.
                    1 => [0, 0, regs.leaf1_ecx, 0],
                    7 => {
                        assert!(
                            regs.leaf1_ecx & XSAVE != 0,
                            "leaf 7 read without XSAVE, which vouches for it"
                        );
                        [0, regs.leaf7_ebx, 0, 0]
                    }
                    EXT1_LEAF => [0, 0, regs.ext1_ecx, 0],
                    // Leaves 0 and 0x8000_0000 say nothing the architecture does not.
                    _ => panic!("unexpected leaf {leaf:#x}"),
                }
            },
            || {
                xgetbvs += 1;
                assert!(
                    regs.leaf1_ecx & OSXSAVE != 0,
                    "XGETBV without OSXSAVE raises #UD"
                );
                regs.xcr0
            },
        );
        (read, cpuids, xgetbvs)
    }

    #[test]
    fn level_of_each_cpu() {
        for r in ROWS {
            assert_eq!(level_from_cpuid(&r.cpu), r.level, "{}", r.name);
        }
    }

    #[test]
    fn missing_for_names_what_stops_the_next_level() {
        for r in ROWS {
            assert_eq!(missing_for(&r.cpu, r.level), None, "{}", r.name);
            for below in 0..r.level {
                assert_eq!(missing_for(&r.cpu, below), None, "{} at v{below}", r.name);
            }
            if r.level < MAX_LEVEL {
                assert_eq!(
                    missing_for(&r.cpu, r.level + 1),
                    r.next_missing,
                    "{}",
                    r.name
                );
                // Higher levels need everything the next one does, so the same feature stops them.
                assert_eq!(missing_for(&r.cpu, MAX_LEVEL), r.next_missing, "{}", r.name);
            } else {
                assert!(r.next_missing.is_none(), "{}", r.name);
            }
        }
    }

    #[test]
    fn missing_for_rejects_levels_that_do_not_exist() {
        assert!(missing_for(&ZEN4, 5).is_some());
        assert_eq!(missing_for(&X86Cpuid::default(), 0), None);
    }

    #[test]
    fn every_cpu_runs_v1() {
        // Go's v1 programs check nothing; a CPU that reports nothing at all still runs them.
        assert_eq!(level_from_cpuid(&X86Cpuid::default()), 1);
        assert_eq!(missing_for(&X86Cpuid::default(), 1), None);
        assert_eq!(missing_for(&X86Cpuid::default(), 2), Some("SSE3"));
    }

    #[test]
    fn reader_executes_the_documented_instructions() {
        for r in ROWS {
            let (_, cpuids, xgetbvs) = read_fake(&r.cpu);
            assert_eq!((cpuids, xgetbvs), (r.cpuids, r.xgetbvs), "{}", r.name);
        }
    }

    #[test]
    fn stopping_early_changes_no_answer() {
        for r in ROWS {
            let (read, _, _) = read_fake(&r.cpu);
            assert_eq!(level_from_cpuid(&read), r.level, "{}", r.name);
            for level in 0..=MAX_LEVEL + 1 {
                assert_eq!(
                    missing_for(&read, level),
                    missing_for(&r.cpu, level),
                    "{} at v{level}",
                    r.name
                );
            }
        }
    }

    #[test]
    fn edge_case_bits_match_the_table() {
        let base = SKYLAKE_SERVER;
        let cases: [(X86Cpuid, &str); 4] = [
            (
                X86Cpuid {
                    leaf1_ecx: base.leaf1_ecx & !MOVBE,
                    ..base
                },
                "MOVBE",
            ),
            (
                X86Cpuid {
                    leaf1_ecx: base.leaf1_ecx & !CX16,
                    ..base
                },
                "CX16",
            ),
            (
                X86Cpuid {
                    ext1_ecx: base.ext1_ecx & !LAHF,
                    ..base
                },
                "LAHF-SAHF",
            ),
            (
                X86Cpuid {
                    ext1_ecx: base.ext1_ecx & !LZCNT,
                    ..base
                },
                "LZCNT",
            ),
        ];
        for (cpu, name) in cases {
            assert_eq!(missing_for(&cpu, MAX_LEVEL), Some(name));
        }
    }

    #[test]
    fn every_single_missing_bit_lowers_the_level_below_its_own() {
        for r in REQUIREMENTS {
            // The lowest bit this requirement adds to those of the levels below.
            let own = r.mask & !mask_up_to(r.reg, r.level - 1);
            let bit = own & own.wrapping_neg();
            let mut cpu = ZEN4;
            match r.reg {
                Reg::Leaf1Ecx => cpu.leaf1_ecx &= !(bit as u32),
                Reg::Leaf7Ebx => cpu.leaf7_ebx &= !(bit as u32),
                Reg::Ext1Ecx => cpu.ext1_ecx &= !(bit as u32),
                Reg::Xcr0 => cpu.xcr0 &= !bit,
            }
            assert_eq!(level_from_cpuid(&cpu), r.level - 1, "{}", r.name);
            assert_eq!(missing_for(&cpu, r.level), Some(r.name));
        }
    }

    #[test]
    fn host_level_matches_std_detection() {
        let level = detect_level();
        assert!(level >= 1, "an x86-64 host is at least v1");
        // std_detect has no LAHF-SAHF, but every CPU with these also has it.
        let v2 = is_x86_feature_detected!("sse3")
            && is_x86_feature_detected!("ssse3")
            && is_x86_feature_detected!("cmpxchg16b")
            && is_x86_feature_detected!("sse4.1")
            && is_x86_feature_detected!("sse4.2")
            && is_x86_feature_detected!("popcnt");
        let v3 = v2
            && is_x86_feature_detected!("avx")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("bmi1")
            && is_x86_feature_detected!("bmi2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
            && is_x86_feature_detected!("lzcnt")
            && is_x86_feature_detected!("movbe");
        let v4 = v3
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512cd")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl");
        let expected = if v4 {
            4
        } else if v3 {
            3
        } else if v2 {
            2
        } else {
            1
        };
        assert_eq!(level, expected);
    }

    #[test]
    fn host_reader_stays_within_three_cpuids() {
        let mut count = 0;
        let read = read_with(
            |leaf, subleaf| {
                count += 1;
                cpuid(leaf, subleaf)
            },
            // SAFETY: `read_with` calls this only after leaf 1 has reported OSXSAVE.
            || unsafe { xgetbv0() },
        );
        assert_eq!(read, read_cpuid());
        assert!(count <= 3);
        if level_from_cpuid(&read) >= 3 {
            assert_eq!(count, 3);
        }
    }
}
