//! Writing the bundle so that a failure never leaves a half-written file, nor a temporary one.
//!
//! The bytes go to an unnamed file (`O_TMPFILE`) in the destination's directory, which is given
//! a temporary name only once complete and synced, and renamed over the destination at once:
//! whatever ends the process before that, SIGKILL included, the kernel frees the file. On a file
//! system without `O_TMPFILE` (or where the unnamed file cannot be linked: no `/proc`) the bytes
//! go to a named temporary file instead, as `.mgo-pack-<pid>-<time>-<n>`; SIGINT, SIGTERM,
//! SIGHUP and the other signals that end a process remove it ([`crate::cleanup`]), and only
//! SIGKILL (or a crash) can leave it behind.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::cleanup;
use crate::input::not_a_file;
use crate::PackError;

/// Writes `bytes` to `path` atomically with mode 0755, synced. On any error the destination is
/// untouched and no temporary file is left; nor is one left when a signal ends the process in
/// the middle (SIGKILL aside, on a file system without `O_TMPFILE`).
pub fn write_executable(path: &Path, bytes: &[u8]) -> Result<(), PackError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(PackError::OutputIsDirectory { path: path.into() })
        }
        Ok(meta) => {
            if let Some(kind) = not_a_file(&meta) {
                return Err(PackError::OutputNotFile {
                    path: path.into(),
                    kind,
                });
            }
        }
        // Not there yet (or not reachable: creating the temporary file will tell).
        Err(_) => {}
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let cannot_create = |source| PackError::OutputDir {
        path: dir.into(),
        source,
    };
    let failed = |source| PackError::WriteOutput {
        path: path.into(),
        source,
    };
    match unnamed_file(dir) {
        Ok(file) => {
            fill(&file, bytes).map_err(failed)?;
            if let Ok((tmp, ())) = Temporary::claim(dir, |name| link_unnamed(&file, name)) {
                return tmp.rename_to(path).map_err(failed);
            }
            // Not linkable here: written again under a name, below.
        }
        Err(e) if no_tmpfile(&e) => {}
        Err(e) => return Err(cannot_create(e)),
    }
    let (tmp, file) = Temporary::claim(dir, |name| {
        // create_new: never opens a file someone else put there (or a symbolic link).
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(name)
    })
    .map_err(cannot_create)?;
    fill(&file, bytes).map_err(failed)?;
    drop(file);
    tmp.rename_to(path).map_err(failed)
}

/// An unnamed regular file in `dir`, which vanishes with its last descriptor unless linked.
fn unnamed_file(dir: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o600)
        .open(dir)
}

/// What `open(O_TMPFILE)` answers where the file system (or the kernel) has no unnamed files.
fn no_tmpfile(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
    )
}

/// The bytes, mode 0755 and a sync: everything but the name.
fn fill(mut file: &File, bytes: &[u8]) -> std::io::Result<()> {
    file.write_all(bytes)?;
    // Explicitly: the mode given at creation is reduced by the umask.
    file.set_permissions(std::fs::Permissions::from_mode(0o755))?;
    file.sync_all()
}

/// Gives the unnamed `file` the name `name`: through `/proc/thread-self/fd/N`, which needs no
/// privilege, else with `AT_EMPTY_PATH`, which needs `CAP_DAC_READ_SEARCH`. Not `/proc/self`:
/// that is the thread group leader's descriptor table, and a thread with a table of its own
/// (`unshare(CLONE_FILES)`, as the tests write executables) would link whatever file the leader
/// has under the same number.
fn link_unnamed(file: &File, name: &Path) -> std::io::Result<()> {
    let to = CString::new(name.as_os_str().as_bytes())?;
    let proc_path = CString::new(format!("/proc/thread-self/fd/{}", file.as_raw_fd()))?;
    // SAFETY: linkat with NUL-terminated paths and a descriptor this function borrows.
    let linked = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            proc_path.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if linked == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.kind() == std::io::ErrorKind::AlreadyExists {
        return Err(e);
    }
    // SAFETY: as above, with an empty path naming the descriptor itself.
    let linked = unsafe {
        libc::linkat(
            file.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    if linked == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A named file beside the destination, removed when dropped unless it was renamed, and removed
/// by a signal handler should a signal (SIGINT, SIGTERM, SIGHUP, ...) end the process meanwhile.
struct Temporary {
    path: PathBuf,
    persisted: bool,
    _armed: cleanup::Armed,
}

impl Temporary {
    /// Makes a file under a fresh name in `dir` with `create`, which fails with `AlreadyExists`
    /// when the name is taken (then another is tried). The name is recorded for the signal
    /// handler before the file exists, so that there is no moment when it exists unrecorded.
    fn claim<T>(
        dir: &Path,
        mut create: impl FnMut(&Path) -> std::io::Result<T>,
    ) -> std::io::Result<(Temporary, T)> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let mut tries = 0;
        loop {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let path = dir.join(format!(
                ".mgo-pack-{}-{nanos:x}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            let armed = cleanup::arm(&path);
            match create(&path) {
                Ok(made) => {
                    let tmp = Temporary {
                        path,
                        persisted: false,
                        _armed: armed,
                    };
                    return Ok((tmp, made));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 100 => {
                    tries += 1
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Renames the file over `path`; on failure it is removed.
    fn rename_to(mut self, path: &Path) -> std::io::Result<()> {
        std::fs::rename(&self.path, path)?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("mgo-pack-output-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_atomically_and_leaves_nothing_else() {
        let dir = scratch("ok");
        let out = dir.join("out");
        std::fs::write(&out, b"old").unwrap();
        write_executable(&out, b"new bytes").unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"new bytes");
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(names(&dir), ["out"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_what_is_not_a_regular_file_and_missing_directories() {
        let dir = scratch("refused");
        let fifo = dir.join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let err = write_executable(&fifo, b"x").unwrap_err();
        assert!(
            matches!(err, PackError::OutputNotFile { kind: "a FIFO", .. }),
            "{err}"
        );
        let err = write_executable(&dir, b"x").unwrap_err();
        assert!(matches!(err, PackError::OutputIsDirectory { .. }), "{err}");
        let err = write_executable(&dir.join("missing/out"), b"x").unwrap_err();
        assert!(matches!(err, PackError::OutputDir { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "{}: cannot create the bundle in this directory: No such file or directory (os error 2)",
                dir.join("missing").display()
            )
        );
        assert_eq!(names(&dir), ["fifo"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
