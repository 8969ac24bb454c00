//! A warm start's look at the cache: by path, one `stat` per directory from `/` to the entry,
//! and no descriptor opened or closed. An entry found as the walk (`walk.rs`) would leave it
//! runs from here; anything else (a directory missing or not as it must be, a symbolic link,
//! `.` or `..` in the base, an entry to make, check or replace, a record naming a boot, a last
//! use to record) is left to the walk, which opens each directory, says what is wrong and mends
//! what it may. This saves a warm start some 17 system calls of the walk's (each directory's
//! open, `fstat` and close).
//!
//! It is as safe as the walk, for the walk's own reason: the checks are the same
//! ([`trusted_dir`], [`is_private`], [`may_run`]) and are made from `/` down, so each path
//! looked up runs through directories already found to be root's or the user's and writable by
//! nobody else (or sticky). Nobody else can then rename or replace anything on the path between
//! its check and the exec, which looks the same path up again, exactly as after the walk.

use core::ffi::CStr;

use mgo_format::Entry;
use rustix::fs::{AtFlags, StatVfsMountFlags};

use super::boot::{self, Record};
use super::entry::may_run;
use super::path::{Path, TOUCH_EVERY};
use super::walk::{base_setting, is_private, trusted_dir};
use super::why::Place;
use crate::start::StartInfo;
use crate::sys;

/// The cache's directories under the base, and the entry's name: `mgo-pack`, the bundle's key,
/// the variant's directory, the file.
pub(super) type Names<'a> = [&'a CStr; 4];

/// Writes the entry's path to `path` and returns `true` if the entry there may run as it is:
/// every directory on the way checked, the entry's owner, mode and length right, its record
/// saying it was synced, and the bundle's last use recorded within [`TOUCH_EVERY`]. `false`
/// leaves the start to the walk, which rebuilds `path`.
pub(super) fn found(
    start: &StartInfo,
    euid: u32,
    names: Names<'_>,
    entry: &Entry,
    path: &mut Path,
) -> bool {
    look(start, euid, names, entry, path).is_some()
}

fn look(
    start: &StartInfo,
    euid: u32,
    names: Names<'_>,
    entry: &Entry,
    path: &mut Path,
) -> Option<()> {
    let stat = |path: &Path| {
        rustix::fs::statat(rustix::fs::CWD, path.as_cstr(), AtFlags::SYMLINK_NOFOLLOW).ok()
    };
    let (dir, under) = base_setting(start).ok()?;
    path.cut(0);
    trusted_dir(&stat(path)?, Place::Above, euid).ok()?;
    for part in dir.split(|&b| b == b'/').chain([under]) {
        if part.is_empty() {
            continue;
        }
        if part == b"." || part == b".." {
            return None;
        }
        path.push(part).ok()?;
        trusted_dir(&stat(path)?, Place::Above, euid).ok()?;
    }
    let base = rustix::fs::statvfs(path.as_cstr()).ok()?;
    if base.f_flag.contains(StatVfsMountFlags::NOEXEC) {
        return None;
    }
    let [cache, key, variant, file] = names;
    let mut private = |name: &CStr| {
        path.push(name.to_bytes()).ok()?;
        let st = stat(path)?;
        is_private(&st, euid).then_some(st)
    };
    private(cache)?;
    let last_use = private(key)?.st_mtime;
    private(variant)?;
    if sys::now() - last_use >= TOUCH_EVERY {
        return None;
    }
    let variant_dir = path.len();
    path.push(file.to_bytes()).ok()?;
    let st = stat(path)?;
    if !may_run(&st, euid, entry) {
        return None;
    }
    // The record is on the variant's directory; the path ends at the entry again after.
    path.cut(variant_dir);
    let record = boot::read_at(path.as_cstr(), st.st_ino);
    path.push(file.to_bytes()).ok()?;
    (record == Record::Synced).then_some(())
}
