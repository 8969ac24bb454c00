//! Running flipped copies of a bundle: one private copy per worker, patched in place (one byte
//! written, and the previous flip's byte restored, per run) rather than rewritten.
//!
//! Every run: stdin `/dev/null`, stdout and stderr to files (a flip that makes the launcher write
//! a whole variant to stdout cannot block on a pipe), a clean environment, the child in a process
//! group of its own. The child's exit is awaited through a pidfd with the timeout; whatever is
//! left in its group is then killed, before the child is reaped, so that the group id cannot
//! have been reused by then. A flip can make the launcher start processes where it meant threads
//! (its decoders' `clone` flags), which outlive it: this process is their subreaper
//! ([`become_subreaper`]), so that every member of the group is reaped, dead, before the copy is
//! patched again (a member still executing it would make that fail with `ETXTBSY`) or the next
//! run starts.
//!
//! Exec fails with `ETXTBSY` while any process holds the file open for writing, and a child
//! started by one thread carries every descriptor of the process until its own exec. So each
//! worker thread first takes a descriptor table of its own ([`private_descriptors`]): the
//! copy's writable descriptor, open for a few microseconds per run, is never copied into another
//! worker's child.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::classify::{Output, Status};
use super::options::Flip;

/// At most this much of each output is kept (a run that writes a variant to stdout writes MBs).
const CAPTURE_LIMIT: u64 = 1 << 20;

/// Gives the calling thread a descriptor table of its own (see the module comment).
pub fn private_descriptors() -> Result<()> {
    // SAFETY: unshare(CLONE_FILES) copies the calling thread's descriptor table; it touches no
    // memory of this process.
    if unsafe { libc::unshare(libc::CLONE_FILES) } != 0 {
        bail!("unshare(CLONE_FILES): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Makes this process the reaper of its orphaned descendants, so that [`run_with_timeout`] can
/// wait for every process a run left in its group.
pub fn become_subreaper() -> Result<()> {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) sets a flag of this process.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        bail!(
            "prctl(PR_SET_CHILD_SUBREAPER): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// A worker's directory: its copy of the bundle and its capture files.
pub struct Slot {
    dir: PathBuf,
    pub bundle: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
    original: Vec<u8>,
    /// The offset currently flipped, if any.
    flipped: Option<u64>,
}

impl Slot {
    /// Writes `bytes` to `dir/bundle`, mode 0755. Call it on the thread that will run the copy,
    /// after [`private_descriptors`].
    pub fn new(dir: &Path, bytes: &[u8]) -> Result<Slot> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let bundle = dir.join("bundle");
        let _ = std::fs::remove_file(&bundle);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(&bundle)
            .with_context(|| format!("creating {}", bundle.display()))?;
        file.write_all_at(bytes, 0)
            .with_context(|| format!("writing {}", bundle.display()))?;
        drop(file);
        Ok(Slot {
            dir: dir.to_path_buf(),
            bundle,
            stdout: dir.join("stdout"),
            stderr: dir.join("stderr"),
            original: bytes.to_vec(),
            flipped: None,
        })
    }

    /// Makes the copy the unflipped bundle with `flip` applied (`None`: unflipped).
    pub fn set(&mut self, flip: Option<Flip>) -> Result<()> {
        let file = self.open_for_writing()?;
        if let Some(at) = self.flipped.take() {
            file.write_all_at(&self.original[at as usize..=at as usize], at)?;
        }
        if let Some(flip) = flip {
            let byte = *self
                .original
                .get(flip.offset as usize)
                .with_context(|| format!("offset {} is past the end of the file", flip.offset))?;
            file.write_all_at(&[byte ^ (1 << flip.bit)], flip.offset)?;
            self.flipped = Some(flip.offset);
        }
        Ok(())
    }

    /// The copy, open for writing: retried for a while on `ETXTBSY` (a process of the last run
    /// still executing it), which [`run_with_timeout`] should have ruled out.
    fn open_for_writing(&self) -> Result<File> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match OpenOptions::new().write(true).open(&self.bundle) {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                result => {
                    return result.with_context(|| {
                        format!(
                            "opening {} for writing (the copy had offset {:?} flipped)",
                            self.bundle.display(),
                            self.flipped
                        )
                    })
                }
            }
        }
    }

    /// Runs the copy as it stands.
    pub fn run(&self, timeout: Duration) -> Result<Output> {
        let stdout = File::create(&self.stdout)?;
        let stderr = File::create(&self.stderr)?;
        let mut cmd = Command::new(&self.bundle);
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let (status, stragglers) = run_with_timeout(&mut cmd, timeout)?;
        Ok(Output {
            status,
            stragglers,
            stdout: read_capped(&self.stdout)?,
            stderr: read_capped(&self.stderr)?,
        })
    }

    /// `mgo-pack verify` on the copy as it stands: true if it says the bundle is sound.
    pub fn verify(&self, mgo_pack: &Path, timeout: Duration) -> Result<bool> {
        let mut cmd = Command::new(mgo_pack);
        cmd.arg("verify")
            .arg(&self.bundle)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Ok(run_with_timeout(&mut cmd, timeout)?.0 == Status::Exited(0))
    }
}

/// Starts `cmd` in a process group of its own and waits for it, killing the group when it hangs
/// (see [`wait_exit`]).
/// Returns how it ended and how many other processes of its group were still there when it did.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<(Status, usize)> {
    cmd.process_group(0);
    let mut child = match spawn(cmd) {
        Ok(child) => child,
        Err(e) => return Ok((Status::NotStarted(e.to_string()), 0)),
    };
    let pid = child.id() as libc::pid_t;
    let waited = wait_exit(pid, timeout);
    // The child is exited but not reaped (or still running): its pid, and so its group id,
    // cannot have been reused. Kill whatever is left of the group either way.
    // SAFETY: kill(2) on our own child's process group.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let status = child.wait().context("waiting for the child")?;
    let stragglers = reap_group(pid);
    let status = match waited? {
        Waited::TimedOut { cpu_ms, blocked } => Status::TimedOut { cpu_ms, blocked },
        Waited::Exited => match (status.code(), status.signal()) {
            (Some(code), _) => Status::Exited(code),
            (None, Some(signal)) => Status::Signaled(signal),
            _ => bail!("unexpected wait status {status:?}"),
        },
    };
    Ok((status, stragglers))
}

/// Reaps what is left of process group `pgid` (killed already): its members that were the
/// child's children are ours now (see [`become_subreaper`]). Returns, once none is left, how
/// many it reaped.
fn reap_group(pgid: libc::pid_t) -> usize {
    let mut reaped = 0;
    loop {
        let mut status = 0;
        // SAFETY: waitpid(2) on a process group whose members are our children.
        let pid = unsafe { libc::waitpid(-pgid, &mut status, 0) };
        if pid > 0 {
            reaped += 1;
        } else if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return reaped; // ECHILD: none left.
        }
    }
}

/// `cmd.spawn()`, retried a few times on `ETXTBSY` (which [`private_descriptors`] should rule
/// out; a process outside this one could still hold the file).
fn spawn(cmd: &mut Command) -> std::io::Result<Child> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            result => return result,
        }
    }
}

/// How waiting for a child ended.
enum Waited {
    Exited,
    /// Still running: `cpu_ms` of CPU used, `blocked` if none of its threads could run.
    TimedOut {
        cpu_ms: u64,
        blocked: bool,
    },
}

/// Waits until `pid` (our child) exits or hangs, without reaping it.
///
/// A hang is judged on what the process did, not on the wall clock alone, so that a loaded
/// machine does not turn a slow run into a hang: at `timeout`, a process that has used half of
/// it in CPU time is spinning; one whose threads are all asleep, without CPU progress between
/// two looks, is blocked; one that is runnable but starved of CPU is given more time, up to ten
/// times `timeout`, and then counted as a hang too.
fn wait_exit(pid: libc::pid_t, timeout: Duration) -> Result<Waited> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        bail!(
            "pidfd_open: {} (Linux 5.3 or later is needed)",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: the descriptor was just returned to us and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let start = Instant::now();
    let mut deadline = start + timeout;
    let mut last_cpu = None;
    loop {
        if poll_until(&fd, deadline)? {
            return Ok(Waited::Exited);
        }
        let Some((cpu_ms, runnable)) = usage(pid) else {
            // Gone from /proc between two looks: poll again, it reports the exit.
            deadline = Instant::now() + Duration::from_millis(10);
            continue;
        };
        let spinning = Duration::from_millis(cpu_ms) >= timeout / 2;
        let blocked = !runnable && last_cpu == Some(cpu_ms);
        if spinning || blocked || start.elapsed() >= timeout * 10 {
            return Ok(Waited::TimedOut { cpu_ms, blocked });
        }
        last_cpu = Some(cpu_ms);
        deadline = Instant::now() + timeout / 4;
    }
}

/// Polls the pidfd until the process exits (true) or `deadline` passes (false).
fn poll_until(fd: &OwnedFd, deadline: Instant) -> Result<bool> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // Rounded up, so that the last poll does not return early and spin.
        let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n > 0 {
            return Ok(true);
        }
        if n == 0 && left.is_zero() {
            return Ok(false);
        }
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                bail!("poll on a pidfd: {e}");
            }
        }
    }
}

/// The CPU time a process has used (all its threads, ms) and whether any of its threads is
/// running, runnable or in an uninterruptible wait (state R or D), from /proc.
fn usage(pid: libc::pid_t) -> Option<(u64, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name in parentheses: state is field 3, utime and stime fields 14, 15.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let mut runnable = false;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let state = stat
            .rfind(')')
            .and_then(|at| stat[at + 1..].split_whitespace().next());
        runnable |= matches!(state, Some("R" | "D"));
    }
    Some((ticks * 1000 / hz, runnable))
}

fn read_capped(path: &Path) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    File::open(path)
        .with_context(|| format!("opening {}", path.display()))?
        .take(CAPTURE_LIMIT)
        .read_to_end(&mut out)?;
    Ok(out)
}
