//! The launcher's per-user cache of programs (bundles packed with `--launch cache`, or run with
//! `MGODEBUG=cache`): where it is, what it holds, and removing it. The launcher writes it
//! (`runtime/src/launcher/cache/`); docs/ARCHITECTURE.md ("The cache") describes its layout:
//!
//! ```text
//! $XDG_CACHE_HOME/mgo-pack/<key>/<content hash> GOAMD64=vN/<program>
//! $XDG_CACHE_HOME/mgo-pack/<key>/bundle -> <the bundle's path>
//! ```
//!
//! `<key>` is the XXH3-64 of the bundle's absolute path; the bundle's directory's modification
//! time is its last use, which the launcher records at most once a day.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The launcher's cache directory for this environment: `$XDG_CACHE_HOME/mgo-pack`, else
/// `$HOME/.cache/mgo-pack`, as the launcher finds it (a relative or empty setting counts as
/// unset). `None` when neither variable is an absolute path: the launcher caches nothing then.
pub fn cache_dir() -> Option<PathBuf> {
    cache_dir_from(
        std::env::var_os("XDG_CACHE_HOME").as_deref(),
        std::env::var_os("HOME").as_deref(),
    )
}

/// [`cache_dir`] for the given values of `XDG_CACHE_HOME` and `HOME`.
pub fn cache_dir_from(xdg_cache_home: Option<&OsStr>, home: Option<&OsStr>) -> Option<PathBuf> {
    fn absolute(value: Option<&OsStr>) -> Option<&Path> {
        value.map(Path::new).filter(|p| p.is_absolute())
    }
    match (absolute(xdg_cache_home), absolute(home)) {
        (Some(base), _) => Some(base.join("mgo-pack")),
        (None, Some(home)) => Some(home.join(".cache").join("mgo-pack")),
        (None, None) => None,
    }
}

/// One cached program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheEntry {
    /// The program's file.
    pub path: PathBuf,
    /// The bundle's key: 16 hex digits, the XXH3-64 of its absolute path.
    pub key: String,
    /// The bundle's path, as the launcher recorded it when it made the bundle's directory.
    pub bundle: Option<PathBuf>,
    /// The variant's level, as its setting names it (`v3`, `v8.2,lse`).
    pub level: String,
    /// The variant's content hash (XXH3-64 of its bytes).
    pub content_hash: Option<u64>,
    /// The program's name: the bundle's file name.
    pub program: OsString,
    pub size: u64,
    /// When a start last used the bundle's entries (recorded at most once a day).
    pub last_used: SystemTime,
}

/// The entries in the cache directory `dir`, ordered by bundle key, level and name. A missing
/// directory holds none; anything in it that the launcher did not lay out is skipped.
pub fn list(dir: &Path) -> io::Result<Vec<CacheEntry>> {
    let mut entries = Vec::new();
    for key in sorted_dir(dir)? {
        let key_meta = std::fs::symlink_metadata(&key)?;
        if !key_meta.is_dir() {
            continue;
        }
        let key_name = key
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let bundle = std::fs::read_link(key.join("bundle")).ok();
        let last_used = key_meta.modified()?;
        for variant in sorted_dir(&key)? {
            let name = variant
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let Some((hash, level)) = name.split_once(' ') else {
                continue;
            };
            if !std::fs::symlink_metadata(&variant)?.is_dir() {
                continue;
            }
            let level = level.split_once('=').map_or(level, |(_, l)| l).to_string();
            for program in sorted_dir(&variant)? {
                let meta = std::fs::symlink_metadata(&program)?;
                let file_name = program.file_name().unwrap_or_default();
                if !meta.is_file() || file_name.as_encoded_bytes().starts_with(b".tmp-") {
                    continue;
                }
                entries.push(CacheEntry {
                    program: file_name.to_os_string(),
                    path: program.clone(),
                    key: key_name.clone(),
                    bundle: bundle.clone(),
                    level: level.clone(),
                    content_hash: u64::from_str_radix(hash, 16).ok(),
                    size: meta.size(),
                    last_used,
                });
            }
        }
    }
    Ok(entries)
}

/// What [`clear`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cleared {
    pub entries: usize,
    pub bytes: u64,
}

/// Removes the cache directory `dir` with everything in it (a symbolic link in its place is
/// removed, never followed). Programs running from it keep running: their files go when they
/// exit. The next start of a bundle makes its entry again.
pub fn clear(dir: &Path) -> io::Result<Cleared> {
    let entries = list(dir)?;
    let cleared = Cleared {
        entries: entries.len(),
        bytes: entries.iter().map(|e| e.size).sum(),
    };
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(dir)?,
        Ok(_) => std::fs::remove_file(dir)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(cleared)
}

/// The paths in `dir`, sorted; none if it does not exist.
fn sorted_dir(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut paths = match std::fs::read_dir(dir) {
        Ok(read) => read
            .map(|e| e.map(|e| e.path()))
            .collect::<io::Result<Vec<_>>>()?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    paths.sort();
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_follows_xdg() {
        let dir = |xdg: Option<&str>, home: Option<&str>| {
            cache_dir_from(xdg.map(OsStr::new), home.map(OsStr::new))
        };
        assert_eq!(
            dir(Some("/c"), Some("/h")),
            Some(PathBuf::from("/c/mgo-pack"))
        );
        assert_eq!(
            dir(Some("rel"), Some("/h")),
            Some(PathBuf::from("/h/.cache/mgo-pack"))
        );
        assert_eq!(
            dir(Some(""), Some("/h")),
            Some(PathBuf::from("/h/.cache/mgo-pack"))
        );
        assert_eq!(dir(None, Some("h")), None);
        assert_eq!(dir(None, None), None);
    }
}
