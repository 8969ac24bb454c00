//! Writing the bundle so that a failure never leaves a half-written file: the bytes go to a
//! temporary file beside the destination, which is renamed over it only when complete.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::input::not_a_file;
use crate::PackError;

/// Writes `bytes` to `path` atomically with mode 0755. On any error the destination is untouched
/// and the temporary file is removed. (Only a process killed in the middle of the write leaves
/// its temporary file, `.mgo-pack-*` beside the destination; the destination itself is never
/// partial.)
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
    let (mut tmp, file) = Temporary::create(dir).map_err(|source| PackError::OutputDir {
        path: dir.into(),
        source,
    })?;
    let failed = |source| PackError::WriteOutput {
        path: path.into(),
        source,
    };
    let mut file = file;
    file.write_all(bytes).map_err(failed)?;
    // Explicitly: the mode given at creation is reduced by the umask.
    file.set_permissions(std::fs::Permissions::from_mode(0o755))
        .map_err(failed)?;
    file.sync_all().map_err(failed)?;
    drop(file);
    std::fs::rename(&tmp.path, path).map_err(failed)?;
    tmp.persisted = true;
    Ok(())
}

/// A new file beside the destination, removed when dropped unless it was renamed.
struct Temporary {
    path: PathBuf,
    persisted: bool,
}

impl Temporary {
    fn create(dir: &Path) -> std::io::Result<(Temporary, File)> {
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
            // create_new: never opens a file someone else put there (or a symbolic link).
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(file) => {
                    let tmp = Temporary {
                        path,
                        persisted: false,
                    };
                    return Ok((tmp, file));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 100 => {
                    tries += 1
                }
                Err(e) => return Err(e),
            }
        }
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
