//! The fidelity suite: one test per row of `mgo_tests::fidelity::TABLE`, each running real
//! programs as built and packed for every launch path, pointing real tools at them (gdb, strace,
//! valgrind, perf, ltrace, ldd), and checking that what each path shows is what its cell says:
//! the same as the build run directly, or the difference the cell names. A row whose tool or
//! condition is missing here prints `SKIPPED: <test>: <reason>` and checks nothing. Then
//! `docs/FIDELITY.md` is checked to hold the table exactly as the suite has it, and the README's
//! advice on choosing a path to point to it.

use std::collections::BTreeSet;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use mgo_tests::fidelity::{
    beside_it, dot_name, here, in_cache, layout, normalise, render, run_here, tool,
    without_numbers, LaunchPath, Subject, Waiting, TABLE,
};
use mgo_tests::fixtures::{
    c_probe_dynamic, go_selfexe, origin_program, parse_report, rust_probe, tool_probe,
    workspace_root, Report, ORIGIN_LIBRARY,
};
use mgo_tests::harness::{
    cache_home, oracle_level, run, scratch_dir, skipped, spawn, stderr, stdout, write_executable,
};
use mgo_tests::hostile::{blocking, ignoring, with_real_timer, with_rlimit};

use LaunchPath::{Cache, Direct, Memfd};

/// The C probe (`tests/fixtures/cprobe.c`), dynamically linked, all four levels.
fn cprobe(test: &'static str) -> Subject {
    Subject::levels(test, "cprobe", c_probe_dynamic()).started_with(&[])
}

/// The fidelity C program (`tests/fixtures/fidelity/toolprobe.c`), built as a PIE.
fn toolprobe(test: &'static str) -> Subject {
    Subject::one(test, "toolprobe", &tool_probe().pie).started_with(&["hello"])
}

/// The toolprobe, for a row that points `tool` at it: `None` (and a SKIPPED line) when `tool`
/// given `check` does not work here.
fn toolprobe_under(test: &'static str, tool_name: &str, check: &[&str]) -> Option<Subject> {
    tool(test, tool_name, check).then(|| toolprobe(test))
}

/// `tool before... ./NAME after...`, run from `program`'s directory.
fn run_tool(tool: &str, before: &[&str], program: &Path, after: &[&str]) -> Output {
    let mut cmd = beside_it(tool, program);
    run(cmd.args(before).arg(dot_name(program)).args(after))
}

/// The Go program that uses its own executable (`tests/fixtures/fidelity/selfexe`), all four
/// levels, with a file shipped beside each copy.
fn selfexe(test: &'static str) -> Subject {
    Subject::levels(test, "selfexe", go_selfexe())
        .beside("beside.txt", b"shipped beside the program\n")
        .started_with(&["child"])
}

/// What the selfexe program reports about its own executable, as it ran from `program`.
fn selfexe_report(program: &Path) -> Report {
    let out = run_here(program, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    parse_report(&normalise(&stdout(&out), program))
}

fn key(report: &Report, key: &str) -> String {
    report
        .get_str(key)
        .unwrap_or_else(|| panic!("no string {key} in {report:?}"))
}

fn no_such_file(seen: &str) -> bool {
    seen.contains("no such file or directory")
}

#[test]
fn argv_environment_cwd_and_pid() {
    cprobe("argv_environment_cwd_and_pid").compare(
        |program| {
            let mut cmd = here(program);
            cmd.args(["plain", "with space", "ünï", ""])
                .env("SOME_VAR", "a value")
                .stdout(Stdio::piped());
            let child = spawn(&mut cmd);
            let pid = i64::from(child.id());
            let out = child.wait_with_output().unwrap();
            let report = parse_report(&normalise(&stdout(&out), program));
            Ok(format!(
                "level={} argv={:?} env={:?} cwd={} pid is the child's: {}, parent is the \
                 caller: {}",
                key(&report, "level"),
                report.get_str_array("argv"),
                report.get_str_array("env"),
                key(&report, "cwd"),
                report.get_i64("pid") == Some(pid),
                report.get_i64("ppid") == Some(i64::from(std::process::id())),
            ))
        },
        |_, _| false,
    );
}

#[test]
fn inherited_descriptors() {
    cprobe("inherited_descriptors").compare(
        |program| {
            // 5 and 7 inherited on purpose (no close-on-exec), as a shell hands them on.
            let script = "exec 5</dev/null 7>>/dev/null; exec ./cprobe";
            let out = run(beside_it("bash", program).args(["-c", script]));
            let report = parse_report(&stdout(&out));
            // Pipes are new for every run: their inode numbers are not compared.
            let targets = report.get_str_map("fd_targets").unwrap();
            Ok(targets
                .iter()
                .map(|(fd, target)| format!("{fd}: {}", without_numbers(target)))
                .collect::<Vec<_>>())
        },
        |_, _| false,
    );
}

#[test]
fn ignored_and_blocked_signals() {
    cprobe("ignored_and_blocked_signals").compare(
        |program| {
            let mut cmd = here(program);
            cmd.env("PROBE_SIGNALS", "1");
            ignoring(&mut cmd, libc::SIGHUP);
            ignoring(&mut cmd, libc::SIGUSR1);
            blocking(&mut cmd, &[libc::SIGUSR2, libc::SIGWINCH]);
            let report = parse_report(&stdout(&run(&mut cmd)));
            Ok((
                report.get_i64_array("sigign"),
                report.get_i64_array("sigblocked"),
            ))
        },
        |_, _| false,
    );
}

/// The launcher's watchdog borrows the real-time interval timer (`alarm`) until its self-check
/// has passed: the caller's setting, interval included, is put back before the program starts.
#[test]
fn real_time_timer() {
    cprobe("real_time_timer").compare(
        |program| {
            let mut cmd = here(program);
            cmd.env("PROBE_ITIMER", "1");
            with_real_timer(&mut cmd, 500, 700);
            let report = parse_report(&stdout(&run(&mut cmd)));
            Ok(report.get_i64_array("itimer_real"))
        },
        |_, _| false,
    );
}

#[test]
fn exit_status_and_death_by_signal() {
    cprobe("exit_status_and_death_by_signal").compare(
        |program| {
            let ends = [("PROBE_EXIT", "42"), ("PROBE_SIGNAL", "TERM")];
            Ok(ends.map(|(var, value)| {
                let status = run(here(program).env(var, value)).status;
                (status.code(), status.signal())
            }))
        },
        |_, _| false,
    );
}

/// `/proc/PID/<file>` of the toolprobe waiting in the process `setup` prepared.
fn waiting_proc(program: &Path, file: &str, setup: impl FnOnce(&mut Command)) -> String {
    let mut cmd = here(program);
    cmd.arg("wait");
    setup(&mut cmd);
    Waiting::start(&mut cmd).proc(file)
}

#[test]
fn resource_limits() {
    toolprobe("resource_limits").compare(
        |program| {
            Ok(waiting_proc(program, "limits", |cmd| {
                with_rlimit(cmd, libc::RLIMIT_NOFILE, 777);
                with_rlimit(cmd, libc::RLIMIT_STACK, 12 << 20);
                with_rlimit(cmd, libc::RLIMIT_CORE, 0);
            }))
        },
        |_, _| false,
    );
}

#[test]
fn personality() {
    toolprobe("personality").compare(
        |program| {
            Ok(waiting_proc(program, "personality", |cmd| {
                // What `setarch -R` does: no address-space randomisation.
                // SAFETY: personality() is async-signal-safe.
                unsafe {
                    cmd.pre_exec(|| {
                        match libc::personality(libc::ADDR_NO_RANDOMIZE as libc::c_ulong) {
                            -1 => Err(std::io::Error::last_os_error()),
                            _ => Ok(()),
                        }
                    })
                };
            }))
        },
        |_, _| false,
    );
}

#[test]
fn process_name() {
    let test = "process_name";
    if !tool(test, "pgrep", &["-V"]) || !tool(test, "killall", &["-V"]) {
        return;
    }
    // A name no other process has, so that pgrep and killall can only find this one. Signal 0
    // (`killall -s 0`) only asks whether a process of that name exists.
    let name = format!("fid{}", std::process::id());
    let subject = Subject::one(test, &name, &tool_probe().pie).started_with(&["hello"]);
    let tools = |pid: u32| {
        let ps = run(Command::new("ps").args(["-o", "comm=", "-p", &pid.to_string()]));
        let pgrep = run(Command::new("pgrep").args(["-x", &name]));
        let killall = run(Command::new("killall").args(["-s", "0", &name]));
        format!(
            "ps: {}, pgrep -x finds it: {}, killall finds it: {}",
            stdout(&ps).trim(),
            stdout(&pgrep).lines().any(|l| l == pid.to_string()),
            killall.status.success()
        )
    };
    subject.compare(
        |program| {
            // Started as `./NAME`: the kernel's name for a memfd comes from the memfd's name,
            // which is the bundle's absolute path whatever `argv[0]` says.
            let mut cmd = here(program);
            let waiting = Waiting::start(cmd.arg("wait"));
            Ok((
                waiting.proc("comm").trim().to_string(),
                tools(waiting.pid()),
            ))
        },
        |path, (comm, tools)| {
            let bundle = subject.bundle(path).to_str().unwrap();
            let memfd = format!("memfd:{}", &bundle[..9]);
            let before_6_14 = comm.bytes().all(|b| b.is_ascii_digit());
            path == Memfd
                && (*comm == memfd || before_6_14)
                && tools.contains("pgrep -x finds it: false, killall finds it: false")
        },
    );
}

#[test]
fn executable_path() {
    let test = "executable_path";
    let differs = |path, seen: &String| match path {
        Memfd => seen.starts_with("/memfd:<dir>/") && seen.ends_with("exists: false"),
        Cache => in_cache(seen) && seen.ends_with("exists: true"),
        Direct => false,
    };
    selfexe(test).compare(
        |program| {
            let report = selfexe_report(program);
            let exists = report.get("exists") == Some("true");
            Ok(format!("{}, exists: {exists}", key(&report, "executable")))
        },
        differs,
    );
    let rust = Subject::one(test, "backtrace", rust_probe()).started_with(&[]);
    rust.compare(
        |program| {
            let report = parse_report(&normalise(&stdout(&run_here(program, &[])), program));
            let exists = report.get("exists") == Some("true");
            Ok(format!("{}, exists: {exists}", key(&report, "current_exe")))
        },
        differs,
    );
}

#[test]
fn re_executing_itself() {
    selfexe("re_executing_itself").compare(
        |program| Ok(key(&selfexe_report(program), "reexec")),
        |path, seen| path == Memfd && no_such_file(seen),
    );
}

#[test]
fn files_beside_the_executable() {
    selfexe("files_beside_the_executable").compare(
        |program| Ok(key(&selfexe_report(program), "beside")),
        |path, seen| path != Direct && no_such_file(seen),
    );
}

/// The packer starts a build that finds libraries through `$ORIGIN` from the bundle's own
/// location, on the direct path, whatever `--launch` asks for: both columns are that path.
/// Forced onto the memfd at run time, the dynamic loader finds nothing beside the memfd.
#[test]
fn origin_runpath() {
    let (program, library) = origin_program();
    let subject = Subject::one("origin_runpath", "origin", program)
        .beside(ORIGIN_LIBRARY, &std::fs::read(library).unwrap())
        .started_on(&[], |_| Direct);
    subject.compare(
        |program| {
            let out = run_here(program, &[]);
            Ok((out.status.code(), stdout(&out)))
        },
        |_, _| false,
    );
    let forced = run(here(subject.bundle(Memfd)).env("MGODEBUG", "memfd"));
    assert_eq!(forced.status.code(), Some(127), "{}", stderr(&forced));
}

#[test]
fn go_buildinfo_of_the_executable() {
    let test = "go_buildinfo_of_the_executable";
    if oracle_level(go_selfexe()) == 1 {
        return skipped(
            test,
            "this CPU runs v1, the lowest build, whose information the bundle carries",
        );
    }
    selfexe(test).compare(
        |program| {
            let report = selfexe_report(program);
            Ok(format!(
                "{} (running {})",
                key(&report, "buildinfo"),
                key(&report, "level")
            ))
        },
        |path, seen| match path {
            Memfd => no_such_file(seen),
            Direct => seen.starts_with("GOAMD64=v1 (running v"),
            Cache => false,
        },
    );
}

#[test]
fn archive_appended_to_the_program() {
    let test = "archive_appended_to_the_program";
    // The data, its length and a magic number appended to a copy of the build, as self-extracting
    // programs append their archives.
    let dir = scratch_dir("fidelity-appended-build");
    let appended = dir.join("toolprobe");
    let data = b"shipped inside the program";
    let mut bytes = std::fs::read(&tool_probe().pie).unwrap();
    bytes.extend_from_slice(data);
    bytes.extend_from_slice(&(data.len() as u64).to_le_bytes());
    bytes.extend_from_slice(b"MGOFIDAR");
    write_executable(&appended, &bytes).unwrap();
    Subject::one(test, "toolprobe", &appended)
        .started_with(&["hello"])
        .compare(
            |program| Ok(stdout(&run_here(program, &["trailer"]))),
            |path, seen| path == Direct && seen == "appended=null\n",
        );
}

#[test]
fn proc_maps() {
    toolprobe("proc_maps").compare(
        |program| {
            let mut cmd = here(program);
            let waiting = Waiting::start(cmd.arg("wait"));
            let start = format!("{:x}-", waiting.report.get_i64("program").unwrap());
            let maps = waiting.proc("maps");
            let line = maps
                .lines()
                .find(|l| l.starts_with(&start))
                .unwrap_or_else(|| panic!("nothing at {start} in {maps}"));
            // start-end perms offset device inode path
            let fields: Vec<&str> = line.splitn(6, ' ').collect();
            let file = normalise(fields[5].trim_start(), program);
            Ok(format!("{file} at offset {}", fields[2]))
        },
        |path, seen| match path {
            Memfd => seen.starts_with("/memfd:"),
            Direct => {
                seen.starts_with("<dir>/toolprobe at offset ") && !seen.ends_with(" 00000000")
            }
            Cache => in_cache(seen) && seen.ends_with("/toolprobe at offset 00000000"),
        },
    );
}

/// The calls `strace -f -e trace=<calls>` shows `program` (run with `args`) making, without
/// pids: `name(arguments) = result`.
fn strace(test: &str, program: &Path, calls: &str, args: &[&str]) -> Vec<String> {
    let log = program.with_file_name(format!("strace-{test}.log"));
    let trace = format!("trace={calls}");
    let options = ["-f", "-qq", "-e", &trace, "-o", log.to_str().unwrap()];
    let out = run_tool("strace", &options, program, args);
    assert!(out.status.success(), "strace: {}", stderr(&out));
    let text = std::fs::read_to_string(&log).unwrap();
    text.lines()
        .filter_map(|line| Some(normalise(line.split_once(' ')?.1.trim_start(), program)))
        .collect()
}

#[test]
fn exec_tracing() {
    let test = "exec_tracing";
    let Some(subject) = toolprobe_under(test, "strace", &["-V"]) else {
        return;
    };
    subject.compare(
        |program| {
            let calls = strace(test, program, "execve,execveat", &["hello"]);
            // The call, its first argument (the file or the descriptor) and the result.
            let execs = calls.iter().filter_map(|call| {
                let (name, args) = call.split_once('(')?;
                let first = args.split([',', ')']).next()?;
                Some(format!("{name}({first}) = {}", call.rsplit_once(" = ")?.1))
            });
            Ok(execs.collect::<Vec<_>>())
        },
        |path, execs| {
            let second = match path {
                Memfd => "execveat(".to_string(),
                Cache => format!("execve(\"{}/mgo-pack/", cache_home().display()),
                Direct => return false,
            };
            execs.len() == 2
                && execs[0] == "execve(\"./toolprobe\") = 0"
                && execs[1].starts_with(&second)
                && execs[1].ends_with(" = 0")
        },
    );
}

#[test]
fn strace_sees_system_calls() {
    let test = "strace_sees_system_calls";
    let Some(subject) = toolprobe_under(test, "strace", &["-V"]) else {
        return;
    };
    subject.compare(
        |program| {
            let opens = strace(test, program, "openat", &["hello"]);
            let marker = "\"/nonexistent/mgo-fidelity-marker\"";
            let seen: Vec<String> = opens.into_iter().filter(|c| c.contains(marker)).collect();
            assert!(!seen.is_empty(), "strace did not see the marker opened");
            Ok(seen)
        },
        |_, _| false,
    );
}

/// `gdb -nx -batch` with `commands` (each given with `-ex`) and then `args`, run from
/// `program`'s directory: its stdout and stderr together.
fn gdb(program: &Path, commands: &[&str], args: &[&str]) -> String {
    let mut cmd = beside_it("gdb", program);
    cmd.args(["-nx", "-batch"]);
    for command in commands {
        cmd.args(["-ex", command]);
    }
    let out = run(cmd.args(args));
    format!("{}{}", stdout(&out), stderr(&out))
}

#[test]
fn gdb_break_by_name() {
    let test = "gdb_break_by_name";
    let Some(subject) = toolprobe_under(test, "gdb", &["--version"]) else {
        return;
    };
    subject.compare(
        |program| {
            let name = dot_name(program);
            let args = ["--args", &name, "hello"];
            let text = gdb(program, &["break main", "run"], &args);
            // Asked to keep a breakpoint it cannot place yet, gdb places it in a program that
            // an exec brings in, where it finds the symbol.
            let pending = gdb(
                program,
                &["set breakpoint pending on", "break main", "run"],
                &args,
            );
            let stops = |text: &str| text.contains("\nBreakpoint 1, main (");
            Ok(format!(
                "stops in main: {}, with the breakpoint pending: {}, follows an exec into a \
                 memfd: {}",
                stops(&text),
                stops(&pending),
                text.contains("is executing new program: /memfd:")
            ))
        },
        |path, seen| {
            let (pending, memfd) = (path == Cache, path == Memfd);
            *seen
                == format!(
                    "stops in main: false, with the breakpoint pending: {pending}, follows an \
                     exec into a memfd: {memfd}"
                )
        },
    );
}

/// Whether a backtrace gdb printed names frame 0 (in libc, where the toolprobe waits or
/// aborts), and `function` and `main` in the program.
fn backtrace_names(text: &str, function: &str) -> String {
    let frame0 = text.lines().find(|l| l.starts_with("#0 ")).unwrap_or("");
    format!(
        "names libc's function: {}, names the program's: {}",
        !frame0.is_empty() && !frame0.contains(" ?? ("),
        text.contains(&format!(" {function} (")) && text.contains(" main (")
    )
}

/// The difference the cells of the gdb backtrace rows name: libc's functions by name on the
/// direct path, and there too on the memfd path when `memfd_libc` says so; never the program's.
fn program_unnamed(path: LaunchPath, seen: &str, memfd_libc: bool) -> bool {
    let libc = path == Direct || memfd_libc;
    seen == format!("names libc's function: {libc}, names the program's: false")
}

#[test]
fn gdb_attach_backtrace() {
    let test = "gdb_attach_backtrace";
    let Some(subject) = toolprobe_under(test, "gdb", &["--version"]) else {
        return;
    };
    subject.compare(
        |program| {
            let mut cmd = here(program);
            let waiting = Waiting::start(cmd.arg("wait"));
            let text = gdb(program, &["bt"], &["-p", &waiting.pid().to_string()]);
            if text.contains("ptrace: Operation not permitted") {
                return Err(format!("gdb cannot attach here: {text}"));
            }
            Ok(backtrace_names(&text, "fidelity_wait"))
        },
        |path, seen| program_unnamed(path, seen, false),
    );
}

#[test]
fn core_dump_backtrace() {
    let test = "core_dump_backtrace";
    if !tool(test, "gdb", &["--version"]) {
        return;
    }
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    if pattern.trim() != "core" {
        return skipped(
            test,
            &format!(
                "core dumps do not go to the working directory here: core_pattern {pattern:?}"
            ),
        );
    }
    toolprobe(test).compare(
        |program| {
            let core = program.with_file_name("core");
            let _ = std::fs::remove_file(&core);
            let mut cmd = here(program);
            let out = run(with_rlimit(
                cmd.arg("abort"),
                libc::RLIMIT_CORE,
                libc::RLIM_INFINITY,
            ));
            if !out.status.core_dumped() {
                return Err(format!("no core dump: {:?}", out.status));
            }
            let text = gdb(program, &["bt"], &[&dot_name(program), "core"]);
            Ok(backtrace_names(&text, "fidelity_abort"))
        },
        |path, seen| program_unnamed(path, seen, true),
    );
}

#[test]
fn perf_report_symbols() {
    let test = "perf_report_symbols";
    let Some(subject) = toolprobe_under(test, "perf", &["stat", "-e", "cpu-clock", "--", "true"])
    else {
        return;
    };
    subject.compare(
        |program| {
            let data = program.with_file_name("perf.data");
            let data = data.to_str().unwrap();
            let options = ["record", "-q", "-e", "cpu-clock", "-o", data, "--"];
            let record = run_tool("perf", &options, program, &["spin"]);
            assert!(record.status.success(), "{}", stderr(&record));
            let report = run(beside_it("perf", program)
                .args(["report", "--stdio", "--sort", "dso,sym", "-i", data]));
            // The hottest line: "  99.40%  toolprobe  [.] fidelity_spin".
            let text = stdout(&report);
            let hottest = text
                .lines()
                .find(|l| !l.starts_with('#') && l.contains(" [.] "))
                .unwrap_or_else(|| panic!("no user-space sample: {text}"));
            let (dso, symbol) = hottest.split_once(" [.] ").unwrap();
            let dso = dso.trim().split_once('%').unwrap().1.trim();
            let symbol = symbol.trim();
            let named = !symbol.starts_with("0x");
            Ok(format!(
                "in {dso}, {}",
                if named { symbol } else { "an address" }
            ))
        },
        |path, seen| match path {
            Memfd => *seen == "in toolprobe [GOAMD64=v1] (deleted), an address",
            Direct => *seen == "in toolprobe, an address",
            Cache => false,
        },
    );
}

#[test]
fn valgrind_memcheck() {
    let test = "valgrind_memcheck";
    let Some(subject) = toolprobe_under(test, "valgrind", &["--version"]) else {
        return;
    };
    subject.compare(
        |program| {
            let out = run_tool("valgrind", &["--leak-check=full"], program, &["leak"]);
            let text = stderr(&out);
            Ok(format!(
                "invalid read: {}, leak: {}, names fidelity_leak: {}",
                text.contains("Invalid read of size 4"),
                text.contains("definitely lost: 16 bytes in 1 blocks"),
                text.contains(" fidelity_leak (")
            ))
        },
        |path, seen| match path {
            Memfd | Cache => {
                *seen == "invalid read: false, leak: false, names fidelity_leak: false"
            }
            Direct => *seen == "invalid read: true, leak: true, names fidelity_leak: false",
        },
    );
}

#[test]
fn ltrace_library_calls() {
    let test = "ltrace_library_calls";
    let Some(subject) = toolprobe_under(test, "ltrace", &["-V"]) else {
        return;
    };
    subject.compare(
        |program| {
            let out = run_tool("ltrace", &["-e", "puts"], program, &["hello"]);
            let text = stderr(&out);
            let traced = text.contains("puts(\"hello\")");
            Ok(if traced {
                "traces puts(\"hello\")".to_string()
            } else {
                without_numbers(text.lines().next().unwrap_or(""))
            })
        },
        |_, seen| seen.starts_with("Couldn't find .dynsym or .dynstr"),
    );
}

#[test]
fn ldd_libraries() {
    let test = "ldd_libraries";
    let Some(subject) = toolprobe_under(test, "ldd", &["--version"]) else {
        return;
    };
    subject.compare(
        |program| {
            let out = run_tool("ldd", &[], program, &[]);
            let text = format!("{}{}", stdout(&out), stderr(&out));
            Ok(if text.contains("libc.so.6 => ") {
                "lists libc.so.6".to_string()
            } else {
                text.trim().to_string()
            })
        },
        |_, seen| seen == "not a dynamic executable",
    );
}

#[test]
fn rust_backtrace() {
    Subject::one("rust_backtrace", "backtrace", rust_probe())
        .started_with(&[])
        .compare(
            |program| {
                let out = run_here(program, &[]);
                let report = parse_report(&normalise(&stdout(&out), program));
                Ok((
                    report.get("names_its_functions") == Some("true"),
                    key(&report, "current_exe"),
                ))
            },
            |path, (names, exe)| match path {
                Memfd => !names && exe.starts_with("/memfd:"),
                Direct => !names && exe == "<dir>/backtrace",
                Cache => *names && in_cache(exe) && exe.ends_with("/backtrace"),
            },
        );
}

#[test]
fn launcher_mappings() {
    toolprobe("launcher_mappings").compare(
        |program| {
            let stray = layout(program).get_str_array("stray").unwrap();
            Ok(stray
                .iter()
                .map(|m| normalise(m, program))
                .collect::<Vec<_>>())
        },
        |path, stray| path == Direct && stray.len() == 1 && stray[0].ends_with(" r-xp anonymous"),
    );
}

#[test]
fn pie_placement() {
    let test = "pie_placement";
    if std::fs::read_to_string("/proc/sys/kernel/randomize_va_space").is_ok_and(|v| v.trim() == "0")
    {
        return skipped(test, "address-space randomisation is off on this machine");
    }
    toolprobe(test).compare(
        |program| {
            let offset = || {
                let report = layout(program);
                report.get_i64("libc").unwrap() - report.get_i64("program").unwrap()
            };
            let same = offset() == offset();
            Ok(format!(
                "libc's offset from the program is the same in two runs: {same}"
            ))
        },
        |_, _| false,
    );
}

#[test]
fn non_pie_heap() {
    Subject::one("non_pie_heap", "toolprobe", &tool_probe().no_pie)
        .started_with(&["hello"])
        .compare(
            |program| {
                let report = layout(program);
                let (brk, bss_end) = (report.get_i64("brk"), report.get_i64("bss_end"));
                Ok(format!(
                    "after the bss: {}, below 4 GiB: {}",
                    brk >= bss_end,
                    brk < Some(1 << 32)
                ))
            },
            |_, _| false,
        );
}

#[test]
fn address_sanitizer() {
    Subject::one("address_sanitizer", "asan", &tool_probe().asan)
        .started_with(&["hello"])
        .compare(
            |program| {
                let out = run_here(program, &["leak"]);
                let text = stderr(&out);
                // The sanitizer's first words, without its "==pid==" and the address.
                let line = text
                    .lines()
                    .filter_map(|l| l.strip_prefix("==")?.split_once("==").map(|(_, w)| w))
                    .find(|words| words.starts_with(|c: char| c.is_ascii_alphabetic()))
                    .unwrap_or("(nothing)");
                let line = line.split(" on address").next().unwrap();
                Ok(format!("exit {:?}: {line}", out.status.code()))
            },
            |_, _| false,
        );
}

#[test]
fn at_execfn() {
    toolprobe("at_execfn").compare(
        |program| Ok(normalise(&key(&layout(program), "execfn"), program)),
        |path, execfn| match path {
            Memfd => execfn.starts_with("/dev/fd/"),
            Cache => in_cache(execfn) && execfn.ends_with("/toolprobe"),
            Direct => false,
        },
    );
}

#[test]
fn auxv_and_code_bounds() {
    toolprobe("auxv_and_code_bounds").compare(
        |program| {
            let report = layout(program);
            Ok(format!(
                "auxv entries that differ: {:?}, code bounds are the program's: {:?}",
                report.get_i64_array("auxv_mismatches"),
                report.get("code_in_program")
            ))
        },
        |_, _| false,
    );
}

/// The start and end markers of the table in `docs/FIDELITY.md`.
const BEGIN: &str = "<!-- fidelity table: generated from tests/src/fidelity.rs, checked by \
                     tests/tests/fidelity.rs -->\n";
const END: &str = "<!-- end of the fidelity table -->\n";

#[test]
fn docs_table_matches_the_suite() {
    let path = workspace_root().join("docs/FIDELITY.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let table = doc
        .split_once(BEGIN)
        .and_then(|(_, rest)| rest.split_once(END))
        .map(|(table, _)| table);
    let expected = render();
    assert!(
        table == Some(expected.as_str()),
        "{} does not hold the suite's table between\n{BEGIN}and\n{END}Put this there:\n\n{BEGIN}{expected}{END}",
        path.display()
    );
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    assert!(
        readme.contains("**Choosing a launch path.** [docs/FIDELITY.md](docs/FIDELITY.md)"),
        "the README's advice on choosing a launch path no longer points to docs/FIDELITY.md"
    );
}

/// Every row has its test here, and every test here but the two that check the suite itself
/// observes a row.
#[test]
fn every_row_has_a_test() {
    let tests: BTreeSet<&str> = include_str!("fidelity.rs")
        .split("#[test]\nfn ")
        .skip(1)
        .filter_map(|rest| rest.split_once("()").map(|(name, _)| name))
        .filter(|name| !["docs_table_matches_the_suite", "every_row_has_a_test"].contains(name))
        .collect();
    let rows: BTreeSet<&str> = TABLE.iter().map(|row| row.test).collect();
    assert_eq!(tests, rows, "tests (left) and the table's rows (right)");
}
