//! The hostile conditions `tests/hostile.rs` and `tests/secure.rs` start bundles in (and some that
//! `tests/fidelity.rs` starts programs in), created for real in the child process just before it
//! executes: resource limits, ignored and blocked signals, a mount namespace of its own with fresh
//! tmpfs mounts over chosen directories, another user, set-user-ID files. Each helper adds a
//! `pre_exec` step to a [`Command`]; the steps run in the order they were
//! added, after std has changed the child's user (`CommandExt::uid`), if asked to.
//!
//! Conditions that need privileges (a mount namespace, another user, a set-user-ID root file) are
//! checked first by the test, which says why it is skipped when this machine cannot give them.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use mgo_pack::{BundleOptions, Compression, Launch};

use crate::fixtures::{c_probe_static, parse_report};
use crate::harness::{
    command, copy_executable, numbered, oracle_level, pack_options, run, scratch_dir, skipped,
    stdout,
};

/// The user the tests run bundles as: `nobody`, with its group.
pub const NOBODY: u32 = 65534;

fn os_result(failed: bool) -> std::io::Result<()> {
    if failed {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Sets `resource` (`libc::RLIMIT_*`) to `limit`, soft and hard, so that nothing the child runs
/// can raise it again.
pub fn with_rlimit(
    cmd: &mut Command,
    resource: libc::__rlimit_resource_t,
    limit: u64,
) -> &mut Command {
    let value = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
    unsafe { cmd.pre_exec(move || os_result(libc::setrlimit(resource, &value) != 0)) }
}

/// Makes every descriptor of the child above 2 close-on-exec (`close_range`), so that the program
/// starts with only 0, 1 and 2 open, whatever the test process inherited without the flag.
pub fn only_standard_descriptors(cmd: &mut Command) -> &mut Command {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes descriptor flags. Closing them instead would also close
    // the pipe std reports a failed exec through.
    unsafe {
        cmd.pre_exec(|| {
            let failed = libc::syscall(
                libc::SYS_close_range,
                3,
                libc::c_uint::MAX,
                CLOSE_RANGE_CLOEXEC,
            );
            os_result(failed != 0)
        })
    }
}

/// Makes the child ignore `signal`, a disposition exec keeps.
pub fn ignoring(cmd: &mut Command, signal: libc::c_int) -> &mut Command {
    // SAFETY: signal() is async-signal-safe.
    unsafe { cmd.pre_exec(move || os_result(libc::signal(signal, libc::SIG_IGN) == libc::SIG_ERR)) }
}

/// Makes the child start with its real-time interval timer set (`interval` and first expiry, in
/// seconds): interval timers survive exec.
pub fn with_real_timer(cmd: &mut Command, interval: i64, value: i64) -> &mut Command {
    // SAFETY: setitimer is async-signal-safe; the value lives on the child's stack.
    unsafe {
        cmd.pre_exec(move || {
            let timer = libc::itimerval {
                it_interval: libc::timeval {
                    tv_sec: interval,
                    tv_usec: 0,
                },
                it_value: libc::timeval {
                    tv_sec: value,
                    tv_usec: 0,
                },
            };
            os_result(libc::setitimer(libc::ITIMER_REAL, &timer, std::ptr::null_mut()) != 0)
        })
    }
}

/// Makes the child start with `signals` blocked, a mask exec keeps.
pub fn blocking<'a>(cmd: &'a mut Command, signals: &[libc::c_int]) -> &'a mut Command {
    let signals = signals.to_vec();
    // SAFETY: sigemptyset, sigaddset and sigprocmask are async-signal-safe; the set lives on the
    // child's stack and the list was allocated before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &signal in &signals {
                libc::sigaddset(&mut set, signal);
            }
            os_result(libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0)
        })
    }
}

/// Runs the child in a mount namespace of its own (needs `CAP_SYS_ADMIN`), in which a fresh tmpfs
/// mounted with `flags` (`libc::MS_NOEXEC`, or 0) covers each directory of `over`: `/proc` to
/// take it away, `/tmp` and `/dev/shm` to make them noexec. The namespace's mounts are made
/// private first, so that nothing propagates back to the test's own.
pub fn with_tmpfs_over<'a>(
    cmd: &'a mut Command,
    over: &[&Path],
    flags: libc::c_ulong,
) -> &'a mut Command {
    with_tmpfs_options(cmd, over, flags, "")
}

/// [`with_tmpfs_over`] with tmpfs `options` (`size=64k`: a file system that is full at once).
pub fn with_tmpfs_options<'a>(
    cmd: &'a mut Command,
    over: &[&Path],
    flags: libc::c_ulong,
    options: &str,
) -> &'a mut Command {
    let targets: Vec<CString> = over
        .iter()
        .map(|p| CString::new(p.as_os_str().as_bytes()).unwrap())
        .collect();
    let options = CString::new(options).unwrap();
    let setup = move || {
        // SAFETY: unshare and mount with C strings that live in this closure.
        unsafe {
            os_result(libc::unshare(libc::CLONE_NEWNS) != 0)?;
            let none = std::ptr::null();
            let private = libc::MS_REC | libc::MS_PRIVATE;
            os_result(libc::mount(none, c"/".as_ptr(), none, private, none.cast()) != 0)?;
            for target in &targets {
                let (fs, at) = (c"tmpfs".as_ptr(), target.as_ptr());
                os_result(libc::mount(fs, at, fs, flags, options.as_ptr().cast()) != 0)?;
            }
        }
        Ok(())
    };
    // SAFETY: the closure makes system calls only; its strings were allocated before the fork.
    unsafe { cmd.pre_exec(setup) }
}

/// Whether this process can give a child a mount namespace with a tmpfs of its own; if not, says
/// why `test` is skipped.
pub fn can_mount_privately(test: &str) -> bool {
    let dir = scratch_dir(&format!("{test}-mount-check"));
    let mut cmd = command(Path::new("/bin/true"));
    match with_tmpfs_over(&mut cmd, &[&dir], 0).status() {
        Ok(status) if status.success() => true,
        result => {
            skipped(
                test,
                &format!("cannot make a mount namespace with a tmpfs here: {result:?}"),
            );
            false
        }
    }
}

/// Runs the child as `nobody` (user and group 65534, no supplementary groups).
pub fn as_nobody(cmd: &mut Command) -> &mut Command {
    cmd.uid(NOBODY).gid(NOBODY)
}

/// `program` run as `nobody`, in the tests' clean environment.
pub fn nobody(program: &Path) -> Command {
    let mut cmd = command(program);
    as_nobody(&mut cmd);
    cmd
}

/// Whether the tests run as root, which creating set-user-ID root files and running them as
/// another user needs; if not, says why `test` is skipped.
pub fn root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        skipped(
            test,
            "not root: cannot make root-owned files for another user to run",
        );
    }
    root
}

/// A fresh directory with mode 0755 under the scratch space, for files that `nobody` runs: `None`
/// when one of the directories above it does not let other users through.
pub fn public_dir(name: &str) -> Option<PathBuf> {
    let dir = scratch_dir(name);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let real = dir.canonicalize().unwrap();
    let searchable = real
        .ancestors()
        .all(|d| std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0));
    searchable.then_some(dir)
}

/// A fresh directory for `test`'s files that `nobody` can reach, made by root: `None` (the test
/// skipped, saying why) when the tests do not run as root or there is no such directory.
pub fn root_public_dir(test: &str) -> Option<PathBuf> {
    if !root(test) {
        return None;
    }
    let dir = public_dir(test);
    if dir.is_none() {
        skipped(
            test,
            "the scratch directory is not reachable by other users",
        );
    }
    dir
}

/// [`root_public_dir`] with the set-user-ID root copy of the static probe's bundle packed for
/// `launch` in it (`app`): `(dir, app)`, or `None` (the test skipped, saying why) also when
/// set-user-ID programs do not work there.
pub fn setuid_bundle(test: &str, launch: Launch) -> Option<(PathBuf, PathBuf)> {
    let dir = root_public_dir(test)?;
    if let Some(why) = setuid_refused(&dir, best_static().1, nobody) {
        skipped(test, &why);
        return None;
    }
    let packed = static_bundle(&dir.join("packed"), launch, Compression::None);
    let app = install(&packed, &dir.join("app"), 0o4711);
    Some((dir, app))
}

/// Copies `from` (a build, or a bundle) to `to` with `mode` (0o711, 0o4711, ...), owned by the
/// test's user.
pub fn install(from: &Path, to: &Path, mode: u32) -> PathBuf {
    copy_executable(from, to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode)).unwrap();
    to.to_path_buf()
}

/// Why set-user-ID root programs cannot be tested here (a `nosuid` mount, say), or `None` when
/// they can: a set-user-ID root copy of `build` (a C probe) in `dir`, run as `nobody` by the
/// command `wrap` makes for it (with whatever else the test's runs have), must get user 0 in
/// secure-execution mode.
pub fn setuid_refused(
    dir: &Path,
    build: &Path,
    wrap: impl FnOnce(&Path) -> Command,
) -> Option<String> {
    let copy = install(build, &dir.join("setuid-check"), 0o4711);
    let out = run(wrap(&copy).env("PROBE_CREDS", "1"));
    let _ = std::fs::remove_file(&copy);
    let report = parse_report(&stdout(&out));
    let (euid, secure) = (report.get_i64("euid"), report.get_i64("at_secure"));
    (euid != Some(0) || secure != Some(1)).then(|| {
        format!(
            "a set-user-ID root program run by user {NOBODY} does not get user 0 in secure \
             mode here ({}: {:?}, euid {euid:?}, AT_SECURE {secure:?})",
            dir.display(),
            out.status,
        )
    })
}

/// The static C probe's four builds packed into `out`. The static probe can take every launch
/// path, the direct path included, which is the launcher's last resort.
pub fn static_bundle(out: &Path, launch: Launch, compression: Compression) -> PathBuf {
    let options = BundleOptions::default()
        .with_launch(launch)
        .with_compression(compression);
    pack_options(out, &numbered(c_probe_static()), &options)
}

/// The level this CPU runs (`v4`, ...), and the static probe's build of it, which a bundle of the
/// static probe starts.
pub fn best_static() -> (String, &'static Path) {
    let level = oracle_level(c_probe_static());
    (format!("v{level}"), &c_probe_static()[level as usize - 1])
}
