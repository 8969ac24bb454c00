//! End-to-end on the direct launch path: the launcher maps the variant's segments from the bundle
//! file (and a dynamically linked variant's interpreter from its own file) and jumps to the entry
//! point. First every launch behaviour check that `tests/launch.rs` runs on the memfd path
//! (`mgo_tests::checks`), then what only the direct path has: the program's memory really is the
//! bundle file's, the auxiliary vector describes the program, other runtimes (static PIE, musl,
//! glibc's and musl's dynamic loaders) start too, what cannot be mapped falls back to the memfd,
//! and the pack-time and run-time switches choose the path.

use std::path::{Path, PathBuf};
use std::process::Command;

use mgo_format::{Bundle, ENTRY_DIRECT};
use mgo_tests::checks::{expected_exe, pack_all_for, scratch, Launch};
use mgo_tests::fixtures::{c_probe_dynamic, c_probe_static, go_probe, parse_report};
use mgo_tests::harness::{command, pack_with, run, stderr, stdout, Sleeper};

const PATH: Launch = Launch::Direct;

// One test per shared check (`runs_the_best_variant_for_this_cpu`, ...), on the direct path.
mgo_tests::launch_checks!(PATH);

fn status_kb(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {status}"))
}

#[test]
fn program_pages_are_the_bundle_files_own() {
    let bundle = pack_all_for(&scratch("maps", PATH).join("probe"), go_probe(), PATH);
    let canonical = bundle.canonicalize().unwrap();
    let sleeper = Sleeper::start(&mut command(&bundle));
    let maps = sleeper.proc("maps");
    // The probe's text, read-only data and data: file mappings of the bundle, at Go's addresses.
    let program: Vec<&str> = maps
        .lines()
        .filter(|l| l.starts_with("00400000-") || l.contains(canonical.to_str().unwrap()))
        .collect();
    assert!(
        program.iter().any(|l| l.starts_with("00400000-")
            && l.contains(" r-xp ")
            && l.ends_with(canonical.to_str().unwrap())),
        "{maps}"
    );
    assert!(!maps.contains("memfd"), "{maps}");
    // What the launcher leaves behind: nothing of its own segments (at 0x1000000000, within the
    // 16 MiB below the payload region), nothing of the payload region and no other view of the
    // bundle file; only the one-page trampoline it jumped from, anonymous and executable,
    // wherever the kernel's randomisation put it.
    let region = mgo_format::Arch::X86_64.payload_vaddr();
    let in_launcher = |l: &str| {
        u64::from_str_radix(l.split('-').next().unwrap(), 16)
            .is_ok_and(|start| (0x10_0000_0000..region).contains(&start))
    };
    let launcher = maps.lines().filter(|l| in_launcher(l)).count();
    assert_eq!(launcher, 0, "{maps}");
    let trampolines = maps
        .lines()
        .filter(|l| {
            let mut fields = l.split_whitespace();
            let range = fields.next().unwrap_or("");
            let (lo, hi) = range.split_once('-').unwrap_or(("0", "0"));
            let len =
                u64::from_str_radix(hi, 16).unwrap_or(0) - u64::from_str_radix(lo, 16).unwrap_or(0);
            fields.next() == Some("r-xp") && fields.nth(3).is_none() && len == 4096
        })
        .count();
    assert_eq!(trampolines, 1, "{maps}");
    let region_line = format!("{region:x}-");
    assert!(!maps.lines().any(|l| l.starts_with(&region_line)), "{maps}");
    let file_views = program
        .iter()
        .filter(|l| !in_launcher(l) && l.ends_with(canonical.to_str().unwrap()))
        .count();
    assert_eq!(file_views, 3, "text, rodata and data of the probe: {maps}");
    // No copy of the program anywhere: nothing in shared memory.
    assert_eq!(status_kb(&sleeper.proc("status"), "RssShmem:"), 0);
    assert!(sleeper.report.contains("level="));
}

#[test]
fn run_time_override_chooses_the_path() {
    let memfd_packed = pack_all_for(
        &scratch("override", Launch::Memfd).join("probe"),
        go_probe(),
        Launch::Memfd,
    );
    let direct_packed = pack_all_for(&scratch("override", PATH).join("probe"), go_probe(), PATH);
    for (bundle, word, taken) in [
        (&memfd_packed, None, Launch::Memfd),
        (&memfd_packed, Some("direct"), Launch::Direct),
        (&direct_packed, None, Launch::Direct),
        (&direct_packed, Some("memfd"), Launch::Memfd),
        (&direct_packed, Some("log,memfd,direct"), Launch::Direct),
    ] {
        let mut cmd = command(bundle);
        cmd.env("GOAMD64", "v1");
        if let Some(word) = word {
            cmd.env("MGODEBUG", word);
        }
        let out = run(&mut cmd);
        assert!(out.status.success(), "{word:?}: {}", stderr(&out));
        let report = parse_report(&stdout(&out));
        assert_eq!(
            report.get_str("exe").unwrap(),
            expected_exe(bundle, "v1", taken),
            "{} with MGODEBUG={word:?}",
            bundle.display()
        );
    }
}

#[test]
fn packer_marks_mappable_variants_for_direct_launch() {
    let static_c = c_probe_static();
    let dynamic_c = c_probe_dynamic();
    let dir = scratch("flags", PATH);
    // An executable stack is what only the kernel's loader sets up.
    let Some(exec_stack) = build_c(
        &dir,
        "exec-stack",
        "gcc",
        &["-O2", "-static", "-z", "execstack"],
        "int main(void) { return 0; }\n",
    ) else {
        return;
    };
    let mixed = [
        (1, go_probe()[0].as_path()),
        (2, static_c[1].as_path()),
        (3, dynamic_c[2].as_path()),
        (4, exec_stack.as_path()),
    ];
    for (launch, expected) in [
        (PATH, [true, true, true, false]),
        (Launch::Memfd, [false; 4]),
    ] {
        let bundle = pack_with(&dir.join(format!("mixed-{launch:?}")), &mixed, launch);
        let bytes = std::fs::read(&bundle).unwrap();
        let parsed = Bundle::parse_file(&bytes).unwrap();
        let flags: Vec<bool> = parsed
            .entries()
            .map(|e| e.flags & ENTRY_DIRECT != 0)
            .collect();
        assert_eq!(flags, expected, "{launch:?}");
    }
}

/// A C program that prints what it finds in its auxiliary vector beside what it knows of itself:
/// its own headers and entry point, and where its dynamic loader (if any) was mapped.
const AUXV_PROBE: &str = r#"
#define _GNU_SOURCE
#include <elf.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
extern const Elf64_Ehdr __ehdr_start;
extern void _start(void);
static int find_loader(struct dl_phdr_info *info, size_t size, void *base) {
    (void)size;
    if (info->dlpi_name && strstr(info->dlpi_name, "/ld-"))
        *(unsigned long *)base = info->dlpi_addr;
    return 0;
}
int main(void) {
    unsigned long loader = 0;
    dl_iterate_phdr(find_loader, &loader);
    printf("phdr=%lu %lu\n", getauxval(AT_PHDR),
           (unsigned long)&__ehdr_start + __ehdr_start.e_phoff);
    printf("phnum=%lu %lu\n", getauxval(AT_PHNUM), (unsigned long)__ehdr_start.e_phnum);
    printf("phent=%lu %lu\n", getauxval(AT_PHENT), (unsigned long)sizeof(Elf64_Phdr));
    printf("entry=%lu %lu\n", getauxval(AT_ENTRY), (unsigned long)&_start);
    printf("base=%lu %lu\n", getauxval(AT_BASE), loader);
    static char bss[1 << 20];
    unsigned long sum = 0;
    for (unsigned long i = 0; i < sizeof bss; i += 4096) sum += bss[i];
    printf("bss=%lu 0\n", sum);
    return 0;
}
"#;

/// Builds `source` with `cc` and `flags` into the scratch directory; `None` (and a visible
/// SKIPPED line) when the compiler is not installed.
fn build_c(dir: &Path, name: &str, cc: &str, flags: &[&str], source: &str) -> Option<PathBuf> {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).unwrap();
    let out = dir.join(name);
    let result = Command::new(cc)
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .output();
    match result {
        Ok(o) if o.status.success() => Some(out),
        Ok(o) => panic!(
            "{cc} {flags:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("SKIPPED: {cc} is not installed (scripts/install-deps.sh installs it)");
            None
        }
        Err(e) => panic!("running {cc}: {e}"),
    }
}

#[test]
fn auxiliary_vector_describes_the_program() {
    let dir = scratch("auxv", PATH);
    for (name, flags) in [
        ("static", &["-O2", "-static"][..]),
        ("static-pie", &["-O2", "-static-pie"][..]),
        ("dynamic-pie", &["-O2", "-pie"][..]),
        ("dynamic-fixed", &["-O2", "-no-pie"][..]),
    ] {
        let Some(program) = build_c(&dir, name, "gcc", flags, AUXV_PROBE) else {
            return;
        };
        let bundle = pack_with(&dir.join(format!("{name}.bundle")), &[(1, &program)], PATH);
        let out = run(command(&bundle).env("MGODEBUG", "log"));
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("launch path direct"),
            "{name}: {}",
            stderr(&out)
        );
        let text = stdout(&out);
        for line in text.lines() {
            let (key, values) = line.split_once('=').unwrap();
            let (seen, truth) = values.split_once(' ').unwrap();
            assert_eq!(seen, truth, "{name}: {key} in the auxiliary vector");
        }
        assert_eq!(text.lines().count(), 6, "{name}: {text}");
    }
}

#[test]
fn static_pie_lands_at_a_random_base() {
    if std::fs::read_to_string("/proc/sys/kernel/randomize_va_space").is_ok_and(|v| v.trim() == "0")
    {
        println!("SKIPPED: address-space randomisation is off on this machine");
        return;
    }
    let dir = scratch("pie", PATH);
    let source = std::fs::read_to_string(
        mgo_tests::fixtures::workspace_root().join("tests/fixtures/cprobe.c"),
    )
    .unwrap();
    let Some(program) = build_c(&dir, "cprobe", "gcc", &["-O2", "-static-pie"], &source) else {
        return;
    };
    let bundle = pack_with(&dir.join("bundle"), &[(1, &program)], PATH);
    let canonical = bundle.canonicalize().unwrap();
    let base = || {
        let sleeper = Sleeper::start(&mut command(&bundle));
        let maps = sleeper.proc("maps");
        let first = maps
            .lines()
            .find(|l| l.ends_with(canonical.to_str().unwrap()) && !l.starts_with("1000"))
            .unwrap_or_else(|| panic!("the program is not mapped from the bundle: {maps}"))
            .to_string();
        assert_eq!(
            parse_report(&sleeper.report).get_str("exe").unwrap(),
            canonical.to_str().unwrap()
        );
        first.split('-').next().unwrap().to_string()
    };
    let bases: Vec<String> = (0..3).map(|_| base()).collect();
    assert!(
        bases.windows(2).any(|w| w[0] != w[1]),
        "the same base three times: {bases:?}"
    );
}

#[test]
fn musl_programs_start_too() {
    let dir = scratch("musl", PATH);
    let source = std::fs::read_to_string(
        mgo_tests::fixtures::workspace_root().join("tests/fixtures/cprobe.c"),
    )
    .unwrap();
    // Statically linked, and dynamically linked against musl, whose loader is its libc.
    for (name, flags) in [
        ("static", &["-O2", "-static"][..]),
        ("dynamic", &["-O2"][..]),
    ] {
        let Some(program) = build_c(&dir, name, "musl-gcc", flags, &source) else {
            return;
        };
        let bundle = pack_with(&dir.join(format!("{name}.bundle")), &[(1, &program)], PATH);
        let out = run(command(&bundle)
            .args(["a", "b c"])
            .env("PROBE_EXIT", "7")
            .env("MGODEBUG", "log"));
        assert_eq!(out.status.code(), Some(7), "{name}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("launch path direct\n"),
            "{name}: {}",
            stderr(&out)
        );
        let report = parse_report(&stdout(&out));
        assert_eq!(
            report.get_str_array("argv").unwrap(),
            [bundle.to_str().unwrap(), "a", "b c"]
        );
        assert_eq!(
            report.get_str("exe").unwrap(),
            bundle.canonicalize().unwrap().to_str().unwrap()
        );
    }
}

/// The loader is looked for on the machine that runs the bundle. When the direct path cannot map
/// it, the launch goes on through the memfd, where the kernel reports the same missing loader.
#[test]
fn missing_interpreter_falls_back_to_the_memfd() {
    let dir = scratch("no-loader", PATH);
    let Some(program) = build_c(
        &dir,
        "lost",
        "gcc",
        &["-O2", "-Wl,--dynamic-linker=/nonexistent/ld-mgo-test.so"],
        "int main(void) { return 0; }\n",
    ) else {
        return;
    };
    let bundle = pack_with(&dir.join("bundle"), &[(1, &program)], PATH);
    let out = run(command(&bundle).env("MGODEBUG", "log"));
    let err = stderr(&out);
    assert!(
        err.contains(
            "[mgo] launcher: launch path memfd (cannot map the variant directly: its program \
             interpreter cannot be read: ENOENT)"
        ),
        "{err}"
    );
    assert_eq!(out.status.code(), Some(126), "{err}");
    assert!(err.lines().last().unwrap().starts_with("mgo: "), "{err}");
}

/// On arm64 the direct path is the only one that starts a program under plain qemu-user: the
/// memfd path's exec of a foreign binary needs binfmt_misc, mapping it does not.
#[test]
fn arm64_programs_start_under_qemu_user() {
    use mgo_tests::fixtures_arm64::{c_probe_arm64, go_probe_arm64, QEMU};
    if Command::new(QEMU).arg("--version").output().is_err() {
        println!("SKIPPED: {QEMU} is not installed (Debian package qemu-user)");
        return;
    }
    let level = mgo_format::level::parse_aarch64(b"v8.0").unwrap();
    let dir = scratch("arm64", PATH);
    for (name, program) in [
        ("go", go_probe_arm64()),
        ("c", c_probe_arm64("v8.0").path.as_path()),
    ] {
        let bundle = pack_with(&dir.join(name), &[(level, program)], PATH);
        let out = run(Command::new(QEMU)
            .arg(&bundle)
            .args(["a", "b c"])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("MGODEBUG", "log")
            .env("PROBE_EXIT", "7"));
        assert_eq!(out.status.code(), Some(7), "{name}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("[mgo] launcher: launch path direct\n"),
            "{name}: {}",
            stderr(&out)
        );
        let report = parse_report(&stdout(&out));
        if name == "c" {
            // (Go 1.19 records no GOARM64 setting for the probe to report.)
            assert_eq!(report.get_str("level").unwrap(), "v8.0");
        }
        assert_eq!(
            report.get_str_array("argv").unwrap()[1..],
            ["a", "b c"],
            "{name}"
        );
    }
}
