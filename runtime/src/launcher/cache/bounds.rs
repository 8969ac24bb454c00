//! What the cache keeps: a bundle's last use, and the removal of superseded and unused entries.

use core::ffi::CStr;
use core::mem::MaybeUninit;

use mgo_format::Bundle;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags, Timespec};
use rustix::io::Errno;

use super::path::{BUNDLE_LINK, S_IFDIR, S_IFMT, UNUSED_FOR};

/// Records a use of the bundle's directory (its modification time). Whether it was recorded.
pub(super) fn touch(dir: &OwnedFd) -> bool {
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: rustix::fs::UTIME_NOW,
    };
    let times = rustix::fs::Timestamps {
        last_access: now,
        last_modification: now,
    };
    rustix::fs::futimens(dir, &times).is_ok()
}

/// Removes the bundle's directories for builds it no longer holds: content hashes that no entry
/// of this bundle has (the builds of an older bundle at the same path).
pub(super) fn remove_other_builds(dir: BorrowedFd<'_>, bundle: &Bundle<'_>) {
    each_name(dir, |name| {
        let bytes = name.to_bytes();
        if name == BUNDLE_LINK {
            return;
        }
        let current = bytes
            .get(..16)
            .and_then(parse_hex)
            .is_some_and(|hash| bundle.entries().any(|e| e.content_hash == hash));
        if !current {
            remove(dir, name, 2);
        }
    });
}

/// Removes every bundle's directory (a name of 16 hex digits) but `keep` whose last use is more
/// than [`UNUSED_FOR`] before `now`.
pub(super) fn remove_unused(cache: BorrowedFd<'_>, keep: &CStr, now: i64) {
    each_name(cache, |name| {
        let key = name.to_bytes().len() == 16 && parse_hex(name.to_bytes()).is_some();
        if !key || name == keep {
            return;
        }
        if let Ok(st) = rustix::fs::statat(cache, name, AtFlags::SYMLINK_NOFOLLOW) {
            if st.st_mode & S_IFMT == S_IFDIR && now - st.st_mtime > UNUSED_FOR {
                remove(cache, name, 3);
            }
        }
    });
}

/// Calls `f` with each name in `dir` but `.` and `..`.
pub(super) fn each_name(dir: BorrowedFd<'_>, mut f: impl FnMut(&CStr)) {
    let mut buf = [MaybeUninit::<u8>::uninit(); 2048];
    let mut names = rustix::fs::RawDir::new(dir, &mut buf);
    while let Some(Ok(e)) = names.next() {
        let name = e.file_name();
        if name != c"." && name != c".." {
            f(name);
        }
    }
}

/// Removes `name` from `parent`: a file, a symbolic link (not what it points at), or a directory
/// with what it holds, `depth` levels down at most.
pub(super) fn remove(parent: BorrowedFd<'_>, name: &CStr, depth: u32) {
    if rustix::fs::unlinkat(parent, name, AtFlags::empty()) != Err(Errno::ISDIR) || depth == 0 {
        return;
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    if let Ok(dir) = rustix::fs::openat(parent, name, flags, Mode::empty()) {
        each_name(dir.as_fd(), |inner| remove(dir.as_fd(), inner, depth - 1));
    }
    let _ = rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR);
}

pub(super) fn parse_hex(digits: &[u8]) -> Option<u64> {
    if digits.len() != 16 {
        return None;
    }
    digits.iter().try_fold(0u64, |value, &d| {
        let digit = (d as char).to_digit(16)?;
        Some(value << 4 | u64::from(digit))
    })
}
