//! What a flip did: each run of a flipped copy gets one class, by comparison with the unflipped
//! bundle's own run on this CPU (the baseline).
//!
//! The rules, first match wins:
//!
//! 1. `hang`: still running at the timeout, spinning or blocked (`run::wait_exit`; its process
//!    group was killed).
//! 2. `signal`: killed by a signal.
//! 3. `wrong-variant`: it printed a `level=` line other than the baseline's (whatever its
//!    status): the launcher ran another build than it should on this CPU.
//! 4. `same`: exit 0, stdout as the baseline's (the `pid=` and `ppid=` lines aside, which
//!    change from run to run) and stderr as the baseline's: the flip did not matter.
//! 5. `refused`: exit status 120..=126 and stderr exactly one line, starting `mgo: `.
//! 6. `silent`: exit 0 with anything else on stdout or stderr (no level line, other output), or
//!    any other status without an `mgo: ` line: something ran, or failed, without saying so.
//! 7. `other-status`: anything else: exec refused by the kernel (`ENOEXEC`), a status outside
//!    120..=126 with an `mgo: ` line, more than one line on stderr.
//!
//! `hang`, `wrong-variant` and `silent` are the bad classes: the campaign fails on any of them.

use std::fmt;

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Exited(i32),
    Signaled(i32),
    /// Killed as hung (`run::wait_exit`): the CPU time it had used, and whether it was blocked
    /// (every thread asleep, no progress) rather than spinning.
    TimedOut {
        cpu_ms: u64,
        blocked: bool,
    },
    /// The process could not be started at all (exec failed); the error.
    NotStarted(String),
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Exited(code) => write!(f, "exit {code}"),
            Status::Signaled(signal) => f.write_str(&signal_name(*signal)),
            Status::TimedOut { blocked: true, .. } => f.write_str("timeout, blocked"),
            Status::TimedOut { blocked: false, .. } => f.write_str("timeout, spinning"),
            Status::NotStarted(error) => write!(f, "exec failed: {error}"),
        }
    }
}

/// A finished run: status and what it wrote.
#[derive(Clone, Debug)]
pub struct Output {
    pub status: Status,
    /// Other processes of its group still there when it ended (killed then): the class ignores
    /// them, the report counts them.
    pub stragglers: usize,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    Same,
    Refused,
    Hang,
    Signal,
    WrongVariant,
    Silent,
    OtherStatus,
}

impl Class {
    pub const ALL: [Class; 7] = [
        Class::Same,
        Class::Refused,
        Class::Hang,
        Class::Signal,
        Class::WrongVariant,
        Class::Silent,
        Class::OtherStatus,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Class::Same => "same",
            Class::Refused => "refused",
            Class::Hang => "hang",
            Class::Signal => "signal",
            Class::WrongVariant => "wrong-variant",
            Class::Silent => "silent",
            Class::OtherStatus => "other-status",
        }
    }

    pub fn is_bad(self) -> bool {
        matches!(self, Class::Hang | Class::WrongVariant | Class::Silent)
    }
}

/// The unflipped bundle's run, as the flipped ones are compared with it.
#[derive(Clone, Debug)]
pub struct Baseline {
    level: Vec<u8>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Baseline {
    /// The baseline must have run: exit 0 and a `level=` line.
    pub fn new(run: &Output) -> Result<Baseline, String> {
        if run.status != Status::Exited(0) {
            return Err(format!(
                "the unflipped bundle did not run: {}, stderr {:?}",
                run.status,
                String::from_utf8_lossy(&run.stderr)
            ));
        }
        let level = level_line(&run.stdout)
            .ok_or("the unflipped bundle printed no level= line")?
            .to_vec();
        Ok(Baseline {
            level,
            stdout: normalise(&run.stdout),
            stderr: run.stderr.clone(),
        })
    }

    /// `level="v4"`.
    pub fn level(&self) -> String {
        String::from_utf8_lossy(&self.level).into_owned()
    }
}

pub fn classify(baseline: &Baseline, run: &Output) -> Class {
    let code = match run.status {
        Status::TimedOut { .. } => return Class::Hang,
        Status::Signaled(_) => return Class::Signal,
        Status::NotStarted(_) => return Class::OtherStatus,
        Status::Exited(code) => code,
    };
    if level_line(&run.stdout).is_some_and(|level| level != baseline.level.as_slice()) {
        return Class::WrongVariant;
    }
    if code == 0 && normalise(&run.stdout) == baseline.stdout && run.stderr == baseline.stderr {
        return Class::Same;
    }
    let stderr = String::from_utf8_lossy(&run.stderr);
    let mut lines = stderr.lines();
    let one_mgo_line =
        lines.next().is_some_and(|l| l.starts_with("mgo: ")) && lines.next().is_none();
    if (120..=126).contains(&code) && one_mgo_line {
        return Class::Refused;
    }
    let any_mgo_line = stderr.lines().any(|l| l.starts_with("mgo: "));
    if code == 0 || !any_mgo_line {
        return Class::Silent;
    }
    Class::OtherStatus
}

/// How a run's output differs from the baseline's, for the report: `exe, comm` (the keys of
/// the probe's report whose lines differ, or are missing or added), `stderr`, or `no level= line`.
pub fn difference(baseline: &Baseline, run: &Output) -> String {
    if level_line(&run.stdout).is_none() {
        return "no level= line".into();
    }
    let ours = keyed_lines(&baseline.stdout);
    let normalised = normalise(&run.stdout);
    let theirs = keyed_lines(&normalised);
    let lines = |set: &[(&[u8], &[u8])], key: &[u8]| -> Vec<Vec<u8>> {
        set.iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, line)| line.to_vec())
            .collect()
    };
    let mut differing: Vec<String> = Vec::new();
    for (key, _) in ours.iter().chain(&theirs) {
        let name = String::from_utf8_lossy(key).into_owned();
        if !differing.contains(&name) && lines(&ours, key) != lines(&theirs, key) {
            differing.push(name);
        }
    }
    if run.stderr != baseline.stderr {
        differing.push("stderr".into());
    }
    differing.join(", ")
}

/// (key, line) for each line, the key being what comes before the first `=`.
fn keyed_lines(stdout: &[u8]) -> Vec<(&[u8], &[u8])> {
    stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let key = l.split(|&b| b == b'=').next().unwrap_or(l);
            (key, l)
        })
        .collect()
}

/// The first `level=` line of a probe's output.
pub fn level_line(stdout: &[u8]) -> Option<&[u8]> {
    stdout
        .split(|&b| b == b'\n')
        .find(|l| l.starts_with(b"level="))
}

/// Stdout without the lines that differ between any two runs of the same program.
fn normalise(stdout: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stdout.len());
    for line in stdout.split_inclusive(|&b| b == b'\n') {
        if !line.starts_with(b"pid=") && !line.starts_with(b"ppid=") {
            out.extend_from_slice(line);
        }
    }
    out
}

/// `SIGSEGV` for 11, and so on for the signals a damaged program dies of.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        31 => "SIGSYS",
        _ => return format!("signal {signal}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBE: &str = "level=\"v4\"\nargv=[\"/w/bundle\"]\npid=100\nppid=99\nexe=\"/memfd:x\"\n";

    fn run(status: Status, stdout: &str, stderr: &str) -> Output {
        Output {
            status,
            stragglers: 0,
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    fn baseline() -> Baseline {
        Baseline::new(&run(Status::Exited(0), PROBE, "")).unwrap()
    }

    #[test]
    fn a_run_like_the_baseline_is_same_whatever_its_pid() {
        let other_pid = PROBE
            .replace("pid=100", "pid=7")
            .replace("ppid=99", "ppid=6");
        assert_eq!(
            classify(&baseline(), &run(Status::Exited(0), &other_pid, "")),
            Class::Same
        );
    }

    #[test]
    fn classifies_each_kind_of_damage() {
        let b = baseline();
        let cases = [
            (
                run(
                    Status::Exited(122),
                    "",
                    "mgo: bundle header is corrupted (checksum mismatch)\n",
                ),
                Class::Refused,
            ),
            (
                run(Status::Exited(126), "", "mgo: a\nmgo: b\n"),
                Class::OtherStatus,
            ),
            (
                run(Status::Exited(127), "", "mgo: cannot\n"),
                Class::OtherStatus,
            ),
            (run(Status::Exited(122), "", ""), Class::Silent),
            (run(Status::Exited(1), "", "segfault?\n"), Class::Silent),
            (
                run(
                    Status::TimedOut {
                        cpu_ms: 1000,
                        blocked: false,
                    },
                    "",
                    "",
                ),
                Class::Hang,
            ),
            (run(Status::Signaled(11), "", ""), Class::Signal),
            (
                run(Status::NotStarted("Exec format error".into()), "", ""),
                Class::OtherStatus,
            ),
            (
                run(Status::Exited(0), &PROBE.replace("v4", "v3"), ""),
                Class::WrongVariant,
            ),
            // A different level wins over whatever else the run did.
            (
                run(Status::Exited(122), &PROBE.replace("v4", "v1"), "mgo: x\n"),
                Class::WrongVariant,
            ),
            // Status 0 with NUL bytes (no program ran), or with the program's output changed.
            (run(Status::Exited(0), "\0\0\0\0", ""), Class::Silent),
            (run(Status::Exited(0), "", ""), Class::Silent),
            (
                run(Status::Exited(0), &PROBE.replace("memfd", "other"), ""),
                Class::Silent,
            ),
            (
                run(Status::Exited(0), PROBE, "mgo: warning\n"),
                Class::Silent,
            ),
        ];
        for (output, expected) in cases {
            assert_eq!(classify(&b, &output), expected, "{output:?}");
        }
    }

    #[test]
    fn names_what_a_silent_run_changed() {
        let b = baseline();
        let fallback = PROBE.replace("/memfd:x", "/dev/shm/#5 (deleted)");
        assert_eq!(
            difference(&b, &run(Status::Exited(0), &fallback, "")),
            "exe"
        );
        let extra = format!("{PROBE}fds=[0,1,2,9]\n");
        assert_eq!(
            difference(&b, &run(Status::Exited(0), &extra, "x\n")),
            "fds, stderr"
        );
        assert_eq!(
            difference(&b, &run(Status::Exited(0), "\0\0", "")),
            "no level= line"
        );
    }

    #[test]
    fn a_baseline_must_have_run_the_probe() {
        assert!(Baseline::new(&run(Status::Exited(0), "hello\n", "")).is_err());
        assert!(Baseline::new(&run(Status::Exited(122), PROBE, "")).is_err());
        assert_eq!(baseline().level(), "level=\"v4\"");
    }
}
