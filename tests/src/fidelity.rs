//! The fidelity table: what a packed program and the tools around it see, launch path by launch
//! path, compared with the same build run directly. Each cell is either [`Cell::Same`] (the same
//! as the build run directly, with the bundle in the build's place: the same file name in another
//! directory) or [`Cell::Differs`], a short name for the difference. `docs/FIDELITY.md` holds the
//! table as [`render`] writes it; `tests/tests/fidelity.rs` has one test per row, named as the
//! row's `test`, that observes the behaviour on every path and fails when what it sees is not
//! what the cell says, in either direction: a difference that goes away fails too, until the
//! table says so.
//!
//! Adding a launch path is one [`LaunchPath`] variant and one cell per row (the compiler lists
//! the rows); each row's test then says what the difference on the new path looks like.

use std::fmt::Debug;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use mgo_pack::Launch;

use crate::fixtures::{parse_report, Report};
use crate::harness::{
    cache_home, command, copy_executable, oracle_level, pack_with, run, scratch_dir, skipped,
    spawn, stderr, stdout,
};

/// The ways a bundle starts its program, the table's columns after the build run directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaunchPath {
    /// The build is copied into a sealed memfd, which is executed (the default, as mgo does).
    Memfd,
    /// The launcher maps the build's segments in its own process and jumps to it
    /// (`mgo-pack --launch direct`, `MGODEBUG=direct`).
    Direct,
    /// The launcher writes the build once into a file in the user's cache directory and executes
    /// that file (`mgo-pack --launch cache`, `MGODEBUG=cache`). Every program the suite runs,
    /// the build included, has `XDG_CACHE_HOME` set to one scratch directory.
    Cache,
}

impl LaunchPath {
    /// Every path, in the table's column order.
    pub const ALL: [LaunchPath; 3] = [LaunchPath::Memfd, LaunchPath::Direct, LaunchPath::Cache];

    /// The column's name, as `MGODEBUG` and `--launch` spell the path.
    pub fn name(self) -> &'static str {
        match self {
            LaunchPath::Memfd => "memfd",
            LaunchPath::Direct => "direct",
            LaunchPath::Cache => "cache",
        }
    }

    /// What a bundle is packed with to start on this path.
    pub fn launch(self) -> Launch {
        match self {
            LaunchPath::Memfd => Launch::Memfd,
            LaunchPath::Direct => Launch::Direct,
            LaunchPath::Cache => Launch::Cache,
        }
    }
}

/// One cell: how a behaviour on one launch path compares with the build run directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// The same as the build run directly (with the bundle's path in the build's place).
    Same,
    /// A named difference, as the table shows it.
    Differs(&'static str),
}

/// One behaviour of the program or of a tool pointed at it.
#[derive(Debug)]
pub struct Row {
    /// The test in `tests/tests/fidelity.rs` that observes it.
    pub test: &'static str,
    /// What is compared.
    pub behaviour: &'static str,
    /// What the build run directly shows.
    pub build: &'static str,
    /// One cell per launch path, in [`LaunchPath::ALL`]'s order.
    pub cells: [Cell; LaunchPath::ALL.len()],
}

impl Row {
    pub fn cell(&self, path: LaunchPath) -> Cell {
        self.cells[path as usize]
    }
}

use Cell::{Differs, Same};

/// The table, as today's launcher behaves.
pub const TABLE: &[Row] = &[
    Row {
        test: "argv_environment_cwd_and_pid",
        behaviour: "arguments, environment, working directory, pid and parent",
        build: "the caller's",
        cells: [Same, Same, Same],
    },
    Row {
        test: "inherited_descriptors",
        behaviour: "inherited descriptors",
        build: "the caller's, no others",
        cells: [Same, Same, Same],
    },
    Row {
        test: "ignored_and_blocked_signals",
        behaviour: "ignored and blocked signals",
        build: "the caller's",
        cells: [Same, Same, Same],
    },
    Row {
        test: "real_time_timer",
        behaviour: "the real-time interval timer (`alarm`, `setitimer`)",
        build: "the caller's",
        cells: [Same, Same, Same],
    },
    Row {
        test: "exit_status_and_death_by_signal",
        behaviour: "exit status, death by a signal",
        build: "what the caller's `wait` sees",
        cells: [Same, Same, Same],
    },
    Row {
        test: "resource_limits",
        behaviour: "resource limits (`/proc/PID/limits`)",
        build: "the caller's",
        cells: [Same, Same, Same],
    },
    Row {
        test: "personality",
        behaviour: "personality (`setarch -R`)",
        build: "the caller's",
        cells: [Same, Same, Same],
    },
    Row {
        test: "process_name",
        behaviour: "process name: `/proc/PID/comm`, `ps`, `pgrep -x NAME`, `killall NAME`",
        build: "the file's name",
        cells: [
            Differs(
                "`memfd:` and the first 9 bytes of the bundle's absolute path (Linux 6.14+; the \
                 descriptor's number before): `pgrep -x` and `killall` find nothing",
            ),
            Same,
            Same,
        ],
    },
    Row {
        test: "executable_path",
        behaviour: "`/proc/self/exe`, Go's `os.Executable()`, Rust's `current_exe()`",
        build: "the file's path",
        cells: [
            Differs(
                "`/memfd:<absolute path> [GOAMD64=vN] (deleted)`, as mgo names it: no such file",
            ),
            Same,
            Differs("the cache's file: `<cache>/mgo-pack/<key>/<hash> GOAMD64=vN/<name>`"),
        ],
    },
    Row {
        test: "re_executing_itself",
        behaviour: "running itself again through `os.Executable()`",
        build: "runs",
        cells: [Differs("fails: no such file"), Same, Same],
    },
    Row {
        test: "files_beside_the_executable",
        behaviour: "files beside the executable (`dirname(os.Executable())`)",
        build: "found",
        cells: [
            Differs("not found: no such directory"),
            Same,
            Differs("not found: the cache's directory holds only the program"),
        ],
    },
    Row {
        test: "origin_runpath",
        behaviour: "libraries found through `$ORIGIN` in RUNPATH or RPATH (such builds start on \
                    the direct path whatever `--launch` says)",
        build: "loaded",
        cells: [Same, Same, Same],
    },
    Row {
        test: "go_buildinfo_of_the_executable",
        behaviour: "Go's `debug/buildinfo.ReadFile(os.Executable())`",
        build: "the running build's information",
        cells: [
            Differs("cannot open the file"),
            Differs(
                "the bundle's copy of its lowest build's information (`GOAMD64=v1` while v4 \
                 runs, say)",
            ),
            Same,
        ],
    },
    Row {
        test: "archive_appended_to_the_program",
        behaviour: "data appended to the program, read back through `/proc/self/exe`",
        build: "found",
        cells: [Same, Differs("not found: the file is the bundle"), Same],
    },
    Row {
        test: "proc_maps",
        behaviour: "the program's mappings in `/proc/PID/maps`",
        build: "the file, from offset 0",
        cells: [
            Differs("the memfd"),
            Differs("the bundle, at the build's offset in it"),
            Differs("the cache's file, from offset 0"),
        ],
    },
    Row {
        test: "exec_tracing",
        behaviour: "execs seen by `strace -f`",
        build: "one: the program's",
        cells: [
            Differs("two: the bundle's, then `execveat` of the memfd"),
            Same,
            Differs("two: the bundle's, then `execve` of the cache's file"),
        ],
    },
    Row {
        test: "strace_sees_system_calls",
        behaviour: "the program's system calls under `strace -f`",
        build: "traced",
        cells: [Same, Same, Same],
    },
    Row {
        test: "gdb_break_by_name",
        behaviour: "`gdb -batch -ex 'break main' -ex run`",
        build: "stops in `main`",
        cells: [
            Differs("follows the exec into the memfd, reads no symbols there: never stops"),
            Differs("debugs the launcher, which has no `main`: never stops"),
            Differs(
                "follows the exec into the cache's file and reads its symbols, but `break main` \
                 before `run` is refused (the launcher has none): stops only after `set \
                 breakpoint pending on`",
            ),
        ],
    },
    Row {
        test: "gdb_attach_backtrace",
        behaviour: "`gdb -p PID -ex bt`",
        build: "the program's and libc's functions by name",
        cells: [
            Differs("no names at all, libc's neither"),
            Differs("libc's functions by name, the program's as `??`"),
            Same,
        ],
    },
    Row {
        test: "core_dump_backtrace",
        behaviour: "`gdb PROGRAM core` on its core dump",
        build: "the program's and libc's functions by name",
        cells: [
            Differs("libc's functions by name, the program's as `??`: the core names a memfd"),
            Differs("libc's functions by name, the program's as `??`"),
            Differs("libc's functions by name, the program's as `??`: gdb is given the bundle"),
        ],
    },
    Row {
        test: "perf_report_symbols",
        behaviour: "`perf record`, `perf report`",
        build: "samples in the program's functions by name",
        cells: [
            Differs("samples in the memfd, as addresses"),
            Differs("samples in the bundle, as addresses"),
            Same,
        ],
    },
    Row {
        test: "valgrind_memcheck",
        behaviour: "valgrind's memcheck (an invalid read, a leak)",
        build: "reports both, naming the program's functions",
        cells: [
            Differs(
                "checks nothing: valgrind does not follow the exec, the program runs unchecked",
            ),
            Differs("reports both, the program's functions as `???`"),
            Differs(
                "checks nothing: valgrind does not follow the exec, the program runs unchecked",
            ),
        ],
    },
    Row {
        test: "ltrace_library_calls",
        behaviour: "`ltrace`",
        build: "the program's library calls",
        cells: [
            Differs("fails: the bundle has no dynamic symbols"),
            Differs("fails: the bundle has no dynamic symbols"),
            Differs("fails: the bundle has no dynamic symbols"),
        ],
    },
    Row {
        test: "ldd_libraries",
        behaviour: "`ldd`",
        build: "the program's libraries",
        cells: [
            Differs("`not a dynamic executable`"),
            Differs("`not a dynamic executable`"),
            Differs("`not a dynamic executable`"),
        ],
    },
    Row {
        test: "rust_backtrace",
        behaviour: "Rust backtraces (`std::backtrace`, `RUST_BACKTRACE=1`)",
        build: "the program's functions by name",
        cells: [
            Differs("no names: `current_exe()` is no file"),
            Differs("no names: the bundle's symbols are the launcher's"),
            Differs("the program's functions by name; `current_exe()` is the cache's file"),
        ],
    },
    Row {
        test: "launcher_mappings",
        behaviour: "file mappings and executable memory that belong to no loaded object",
        build: "none",
        cells: [
            Same,
            Differs("one anonymous executable page: the launcher's trampoline"),
            Same,
        ],
    },
    Row {
        test: "pie_placement",
        behaviour: "where a PIE is placed",
        build: "randomised apart from libc",
        cells: [Same, Same, Same],
    },
    Row {
        test: "non_pie_heap",
        behaviour: "the heap (`brk`) of a fixed-address program",
        build: "after its bss, below 4 GiB",
        cells: [Same, Same, Same],
    },
    Row {
        test: "address_sanitizer",
        behaviour: "AddressSanitizer builds (`gcc -fsanitize=address`)",
        build: "run, report the error",
        cells: [Same, Same, Same],
    },
    Row {
        test: "at_execfn",
        behaviour: "`AT_EXECFN` (`getauxval`)",
        build: "the path it was started by",
        cells: [
            Differs("`/dev/fd/N`"),
            Same,
            Differs("the cache's file's path"),
        ],
    },
    Row {
        test: "auxv_and_code_bounds",
        behaviour: "`/proc/self/auxv`; `start_code`, `end_code` in `/proc/self/stat`",
        build: "the program's",
        cells: [Same, Same, Same],
    },
];

/// The row observed by `test`.
pub fn row(test: &str) -> &'static Row {
    TABLE
        .iter()
        .find(|row| row.test == test)
        .unwrap_or_else(|| panic!("{test} is no row of fidelity::TABLE"))
}

/// The table in Markdown, as `docs/FIDELITY.md` holds it.
pub fn render() -> String {
    let mut header = vec!["behaviour", "build run directly"];
    header.extend(LaunchPath::ALL.map(LaunchPath::name));
    header.push("test");
    let mut out = markdown_row(&header);
    out += &markdown_row(&vec!["---"; header.len()]);
    for row in TABLE {
        let test = format!("`{}`", row.test);
        let mut cells = vec![row.behaviour, row.build];
        cells.extend(row.cells.iter().map(|cell| match cell {
            Same => "same",
            Differs(what) => what,
        }));
        cells.push(&test);
        out += &markdown_row(&cells);
    }
    out
}

fn markdown_row(cells: &[&str]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

/// What one run shows, or why it cannot be observed here (the cell is then skipped).
pub type Observation<T> = Result<T, String>;

/// One program, as built and as packed for every launch path, each copy named alike in a
/// directory of its own (`<scratch>/build/NAME`, `<scratch>/memfd/NAME`, ...), so that what the
/// copies report differs only by directory.
pub struct Subject {
    test: &'static str,
    name: String,
    build: PathBuf,
    bundles: Vec<(LaunchPath, PathBuf)>,
}

impl Subject {
    /// `variants` packed for every path, beside a copy of `build`, the variant a bundle of them
    /// starts on this machine.
    pub fn new(test: &'static str, name: &str, build: &Path, variants: &[(u32, &Path)]) -> Self {
        row(test);
        // One directory per row and build (a row may compare several programs).
        let from = build.file_name().unwrap().to_str().unwrap();
        let scratch = scratch_dir(&format!("fidelity-{test}-{from}"));
        let dir = |what: &str| {
            let dir = scratch.join(what);
            std::fs::create_dir_all(&dir).unwrap();
            dir.canonicalize().unwrap()
        };
        let copy = dir("build").join(name);
        copy_executable(build, &copy).unwrap();
        let bundles = LaunchPath::ALL
            .iter()
            .map(|&path| {
                let out = dir(path.name()).join(name);
                (path, pack_with(&out, variants, path.launch()))
            })
            .collect();
        Subject {
            test,
            name: name.to_string(),
            build: copy,
            bundles,
        }
    }

    /// One build, packed alone as v1.
    pub fn one(test: &'static str, name: &str, build: &Path) -> Self {
        Subject::new(test, name, build, &[(1, build)])
    }

    /// A fixture's four levels; the build run directly is the one this machine runs.
    pub fn levels(test: &'static str, name: &str, levels: &[PathBuf; 4]) -> Self {
        let best = &levels[oracle_level(levels) as usize - 1];
        Subject::new(test, name, best, &crate::harness::numbered(levels))
    }

    /// Writes a file named `name` holding `contents` beside the build and every bundle.
    pub fn beside(self, name: &str, contents: &[u8]) -> Self {
        for program in self.programs() {
            std::fs::write(program.with_file_name(name), contents).unwrap();
        }
        self
    }

    /// Checks, by the launcher's log, that each bundle run with `args` starts on its path (and
    /// not on another after a fallback, which would make the column say nothing about it).
    pub fn started_with(self, args: &[&str]) -> Self {
        self.started_on(args, |path| path)
    }

    /// Checks, by the launcher's log, that the bundle packed for each path, run with `args`,
    /// starts on the path `taken(path)` says.
    pub fn started_on(self, args: &[&str], taken: impl Fn(LaunchPath) -> LaunchPath) -> Self {
        for (path, bundle) in &self.bundles {
            let out = run(here(bundle).args(args).env("MGODEBUG", "log"));
            // The cache path's line names the file it runs: `launch path cache (PATH)`.
            let line = match taken(*path) {
                LaunchPath::Cache => "[mgo] launcher: launch path cache (".to_string(),
                taken => format!("[mgo] launcher: launch path {}\n", taken.name()),
            };
            assert!(
                stderr(&out).contains(&line),
                "{}: the bundle packed for the {} path did not start as expected ({line}): {}",
                self.test,
                path.name(),
                stderr(&out)
            );
        }
        self
    }

    /// The file name every copy has.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The build, run directly.
    pub fn build(&self) -> &Path {
        &self.build
    }

    /// The bundle packed for `path`.
    pub fn bundle(&self, path: LaunchPath) -> &Path {
        &self.bundles[path as usize].1
    }

    /// The build, then each bundle.
    fn programs(&self) -> impl Iterator<Item = &Path> {
        std::iter::once(self.build.as_path()).chain(self.bundles.iter().map(|(_, b)| b.as_path()))
    }

    /// Observes the build run directly, then each bundle, with `observe(program)`, and checks
    /// each bundle's observation against its cell in this subject's row: equal to the build's
    /// where the cell says [`Cell::Same`]; where it says [`Cell::Differs`], different and
    /// showing that difference, `differs(path, &observation)`. A bundle that cannot be observed
    /// here is a SKIPPED cell; a build that cannot be, a SKIPPED row.
    pub fn compare<T: PartialEq + Debug>(
        &self,
        observe: impl Fn(&Path) -> Observation<T>,
        differs: impl Fn(LaunchPath, &T) -> bool,
    ) {
        let row = row(self.test);
        let build = match observe(&self.build) {
            Ok(seen) => seen,
            Err(why) => return skipped(self.test, &format!("the build run directly: {why}")),
        };
        let mut wrong = Vec::new();
        for (path, bundle) in &self.bundles {
            let seen = match observe(bundle) {
                Ok(seen) => seen,
                Err(why) => {
                    skipped(&format!("{} ({})", self.test, path.name()), &why);
                    continue;
                }
            };
            let (expected, right) = match row.cell(*path) {
                Same => ("same", seen == build),
                Differs(what) => (what, seen != build && differs(*path, &seen)),
            };
            if !right {
                wrong.push(format!(
                    "on the {} path the table says \"{expected}\", but\n  packed: {seen:?}\n  \
                     build run directly: {build:?}",
                    path.name()
                ));
            }
        }
        assert!(wrong.is_empty(), "{}: {}", self.test, wrong.join("\n"));
    }
}

/// A command running `program` as `./NAME` from its own directory (so that `argv[0]`, and
/// whatever is derived from it, reads the same for every copy), with the harness's clean
/// environment.
pub fn here(program: &Path) -> Command {
    beside_it(&dot_name(program), program)
}

/// `./NAME` for `program`: how [`here`] and [`beside_it`] name it.
pub fn dot_name(program: &Path) -> String {
    format!("./{}", program.file_name().unwrap().to_str().unwrap())
}

/// A command running `tool` (looked up in the harness's `PATH`) from `program`'s directory, to
/// be given `program` as [`dot_name`] names it. Its environment has `XDG_CACHE_HOME`, for every
/// program alike, so that bundles packed for the cache path take it.
pub fn beside_it(tool: &str, program: &Path) -> Command {
    let mut cmd = command(Path::new(tool));
    cmd.current_dir(program.parent().unwrap())
        .env("XDG_CACHE_HOME", cache_home());
    cmd
}

/// Whether `seen` starts with a path in the cache directory the suite's programs run with.
pub fn in_cache(seen: &str) -> bool {
    seen.starts_with(&format!("{}/mgo-pack/", cache_home().display()))
}

/// `program` run with `args` as [`here`] runs it.
pub fn run_here(program: &Path, args: &[&str]) -> Output {
    run(here(program).args(args))
}

/// `text` with `program`'s directory written `<dir>`, so that what the build and the bundles
/// report compares equal where only their directories differ.
pub fn normalise(text: &str, program: &Path) -> String {
    let dir = program.parent().unwrap().to_str().unwrap();
    text.replace(dir, "<dir>")
}

/// `text` with every number written `N`: process ids, descriptor numbers, addresses (`0x` and
/// hexadecimal digits).
pub fn without_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let number = if let Some(hex) = rest.strip_prefix("0x") {
            Some(
                2 + hex.len()
                    - hex
                        .trim_start_matches(|c: char| c.is_ascii_hexdigit())
                        .len(),
            )
        } else {
            c.is_ascii_digit()
                .then(|| rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len())
        };
        match number {
            Some(len) => {
                out.push('N');
                rest = &rest[len..];
            }
            None => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

/// Whether `tool` (run with `args`, say `--version`) works here; if not, says why `test` is
/// skipped.
pub fn tool(test: &str, tool: &str, args: &[&str]) -> bool {
    match Command::new(tool).args(args).output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            skipped(
                test,
                &format!("`{tool} {}` fails here: {}", args.join(" "), stderr(&out)),
            );
            false
        }
        Err(e) => {
            skipped(
                test,
                &format!("{tool} cannot run ({e}); scripts/install-deps.sh installs it"),
            );
            false
        }
    }
}

/// A toolprobe started in `wait` mode: it has printed its layout report and blocks reading its
/// stdin. Killed and reaped when dropped.
pub struct Waiting {
    child: Child,
    pub report: Report,
}

impl Waiting {
    /// Starts `cmd` (a toolprobe given the argument `wait`) and reads its report.
    pub fn start(cmd: &mut Command) -> Waiting {
        let mut child = spawn(cmd.stdin(Stdio::piped()).stdout(Stdio::piped()));
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut text = String::new();
        while !text.contains("ready=1\n") {
            let before = text.len();
            reader.read_line(&mut text).unwrap();
            if text.len() == before {
                let _ = child.kill();
                let status = child.wait();
                panic!("{cmd:?} ended before it was ready ({status:?}): {text}");
            }
        }
        Waiting {
            child,
            report: parse_report(&text),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `/proc/PID/<file>` of the waiting program.
    pub fn proc(&self, file: &str) -> String {
        std::fs::read_to_string(format!("/proc/{}/{file}", self.pid())).unwrap()
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The toolprobe's `layout` report, run as [`here`] runs it.
pub fn layout(program: &Path) -> Report {
    let out = run_here(program, &["layout"]);
    assert!(out.status.success(), "{}", stderr(&out));
    parse_report(&stdout(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_named_once_and_cells_name_their_difference() {
        for (i, row) in TABLE.iter().enumerate() {
            assert!(
                TABLE[..i].iter().all(|other| other.test != row.test),
                "{} twice",
                row.test
            );
            for cell in row.cells {
                if let Differs(what) = cell {
                    assert!(!what.is_empty() && !what.contains('|'), "{}", row.test);
                }
            }
        }
    }

    #[test]
    fn renders_one_line_per_row_and_a_column_per_path() {
        let table = render();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), TABLE.len() + 2);
        assert_eq!(
            lines[0],
            "| behaviour | build run directly | memfd | direct | cache | test |"
        );
        assert_eq!(lines[1], "| --- | --- | --- | --- | --- | --- |");
        assert_eq!(
            lines[2],
            "| arguments, environment, working directory, pid and parent | the caller's | same \
             | same | same | `argv_environment_cwd_and_pid` |"
        );
    }

    #[test]
    fn numbers_and_directories_are_normalised() {
        assert_eq!(
            without_numbers("==1234== at 0x7ffd4a: fd 3"),
            "==N== at N: fd N"
        );
        assert_eq!(
            normalise("/a/b/prog and /a/b/x", Path::new("/a/b/prog")),
            "<dir>/prog and <dir>/x"
        );
    }
}
