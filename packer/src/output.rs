//! Writing the bundle so that a failure never leaves a half-written file: the bytes go to a
//! temporary file beside the destination, which is renamed over it only when complete.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::PackError;

/// Writes `bytes` to `path` atomically with mode 0755. On any error the destination is untouched
/// and the temporary file is removed.
pub fn write_executable(path: &Path, bytes: &[u8]) -> Result<(), PackError> {
    if path.is_dir() {
        return Err(PackError::OutputIsDirectory { path: path.into() });
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".mgo-pack-")
        .tempfile_in(dir)
        .map_err(|e| PackError::io(dir, e))?;
    let io = |e| PackError::io(path, e);
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o755))
        .map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path)
        .map_err(|e| PackError::io(path, e.error))?;
    Ok(())
}
