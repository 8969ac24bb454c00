//! Reaching the cache's directories: the base found from the environment, walked from `/`
//! without following symbolic links and checked at every step, and the cache's own directories
//! opened (or made) private.

use core::ffi::CStr;

use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags, Stat, StatVfsMountFlags};
use rustix::io::Errno;

use super::bounds::remove;
use super::path::{Name, Path};
use super::path::{PRIVATE_DIR, S_IFDIR, S_IFMT, S_ISGID, S_ISVTX};
use super::why::{Place, Unusable};
use crate::own_image::PATH_MAX;
use crate::start::StartInfo;
use crate::target::proc_fd_path;

/// The base directory (`$XDG_CACHE_HOME`, else `$HOME/.cache`; a relative or empty setting is
/// unset, as the XDG specification says), created with mode 0700 if it is missing (its parent
/// must exist), and opened at the end of a checked walk from `/`. `walked` is set to the path that
/// was walked (without symbolic links: as written when it has none, else as `/proc` says where
/// they lead).
pub(super) fn base_dir(
    start: &StartInfo,
    euid: u32,
    walked: &mut Path,
) -> Result<OwnedFd, Unusable> {
    let (dir, under) = base_setting(start)?;
    let parts = || dir.split(|&b| b == b'/').chain([under]);
    // Most bases have no symbolic link on their way: walked as written, they need no trip through
    // `/proc`. Any other outcome (a link, `..`, a missing parent) is left to the walk of the path
    // `/proc` resolves, which says what went wrong where.
    let base = match walk(parts(), true, euid, walked) {
        Ok(base) => base,
        Err(_) => walk_resolved(parts(), euid, walked)?,
    };
    // Before anything is made there: nothing could run from it. (Not knowing is no reason to
    // give up: exec will tell.)
    match rustix::fs::fstatvfs(&base) {
        Ok(st) if st.f_flag.contains(StatVfsMountFlags::NOEXEC) => Err(Unusable::Noexec),
        _ => Ok(base),
    }
}

/// Where the environment puts the base: `$XDG_CACHE_HOME` (and nothing under it), else `$HOME`
/// and `.cache` under it. A relative or empty setting is unset, as the XDG specification says.
pub(super) fn base_setting(start: &StartInfo) -> Result<(&[u8], &'static [u8]), Unusable> {
    let var = |name: &[u8]| {
        start
            .env()
            .find_map(|e| e.strip_prefix(name)?.strip_prefix(b"="))
            .filter(|value| value.first() == Some(&b'/'))
    };
    match (var(b"XDG_CACHE_HOME"), var(b"HOME")) {
        (Some(xdg), _) => Ok((xdg, b"")),
        (None, Some(home)) => Ok((home, b".cache")),
        (None, None) => Err(Unusable::NoBase),
    }
}

/// [`walk`] along the path `/proc` resolves `parts` to. Out of line: its two path buffers would
/// otherwise take stack pages, each a page fault, at every start, for a path rarely taken.
#[inline(never)]
fn walk_resolved<'a>(
    parts: impl Iterator<Item = &'a [u8]>,
    euid: u32,
    walked: &mut Path,
) -> Result<OwnedFd, Unusable> {
    let mut literal = Path::root();
    for part in parts.filter(|part| !part.is_empty()) {
        literal.push(part)?;
    }
    let (resolved, create) = resolve(&literal)?;
    walk(resolved.parts(), create, euid, walked)
}

/// The base's path without symbolic links, as `/proc/self/fd` names the directory it leads to
/// (or its parent, when it is still to be made: then `true`). Without `/proc`, the path as given,
/// which the walk then takes only if it has no symbolic link.
pub(super) fn resolve(literal: &Path) -> Result<(Path, bool), Unusable> {
    let open = |path: &CStr| {
        rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let failed = |e| Unusable::Failed(Place::Base, "open", e);
    let (fd, missing) = match open(literal.as_cstr()) {
        Ok(fd) => (fd, None),
        Err(Errno::NOENT) => {
            let (parent, last) = literal.split_last().ok_or(failed(Errno::NOENT))?;
            (open(parent.as_cstr()).map_err(failed)?, Some(last))
        }
        Err(e) => return Err(failed(e)),
    };
    let mut link = [0u8; 32];
    let mut resolved = Path::root();
    let read = rustix::fs::readlinkat_raw(
        rustix::fs::CWD,
        proc_fd_path(&mut link, &fd),
        &mut resolved.buf[..],
    );
    match read {
        Ok(len) if len > 0 && len < PATH_MAX && resolved.buf[0] == b'/' => {
            // `/` itself is the empty path.
            resolved.cut(if len == 1 { 0 } else { len });
        }
        // No /proc.
        _ => return Ok((*literal, missing.is_some())),
    }
    if let Some(last) = &missing {
        resolved.push(last.as_cstr().to_bytes())?;
    }
    Ok((resolved, missing.is_some()))
}

/// Opens the path that `parts` make one directory at a time from `/`, never following a symbolic
/// link, and checks each: a directory of root's or the user's that nobody else may write to (or
/// that is sticky, as `/tmp` is: there nobody may rename what is not theirs). `create`: the last
/// one may be made.
/// Returns the last one, and sets `walked` to the path walked, its empty components left out.
pub(super) fn walk<'a>(
    parts: impl Iterator<Item = &'a [u8]>,
    create: bool,
    euid: u32,
    walked: &mut Path,
) -> Result<OwnedFd, Unusable> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut dir = rustix::fs::open(c"/", flags, Mode::empty())
        .map_err(|e| Unusable::Failed(Place::Above, "open /", e))?;
    trusted(&dir, Place::Above, euid)?;
    walked.cut(0);
    let mut parts = parts.filter(|part| !part.is_empty()).peekable();
    while let Some(part) = parts.next() {
        let place = match parts.peek() {
            Some(_) => Place::Above,
            None => Place::Base,
        };
        if part == b"." || part == b".." {
            return Err(Unusable::NotDirectory(place));
        }
        let name = Name::new(part).ok_or(Unusable::TooLong)?;
        walked.push(part)?;
        let mut opened = rustix::fs::openat(&dir, name.as_cstr(), flags, Mode::empty());
        if matches!(place, Place::Base) && create && matches!(opened, Err(Errno::NOENT)) {
            match rustix::fs::mkdirat(&dir, name.as_cstr(), Mode::from_raw_mode(PRIVATE_DIR)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(Unusable::Failed(place, "mkdir", e)),
            }
            opened = rustix::fs::openat(&dir, name.as_cstr(), flags, Mode::empty());
        }
        dir = match opened {
            Ok(fd) => fd,
            Err(Errno::NOTDIR | Errno::LOOP) => return Err(Unusable::NotDirectory(place)),
            Err(e) => return Err(Unusable::Failed(place, "open", e)),
        };
        trusted(&dir, place, euid)?;
    }
    Ok(dir)
}

pub(super) fn trusted(dir: &OwnedFd, place: Place, euid: u32) -> Result<(), Unusable> {
    let st = rustix::fs::fstat(dir).map_err(|e| Unusable::Failed(place, "fstat", e))?;
    trusted_dir(&st, place, euid)
}

/// Whether `st` is a directory that may lie on the way to the cache: root's or the user's, and
/// writable by nobody else (unless sticky, as `/tmp` is: there nobody may rename what is not
/// theirs).
pub(super) fn trusted_dir(st: &Stat, place: Place, euid: u32) -> Result<(), Unusable> {
    let mode = st.st_mode;
    if mode & S_IFMT != S_IFDIR {
        return Err(Unusable::NotDirectory(place));
    }
    let owner = st.st_uid == 0 || st.st_uid == euid;
    if !owner || (mode & 0o022 != 0 && mode & S_ISVTX == 0) {
        return Err(Unusable::NotTrusted(place));
    }
    Ok(())
}

/// One of the cache's own directories, opened (for reading, to list it) and checked.
pub(super) struct Private {
    pub(super) fd: OwnedFd,
    pub(super) stat: Stat,
    pub(super) created: bool,
}

/// Whether `st` is one of the cache's own directories as it must be: the user's, mode 0700. (The
/// set-group-ID bit, inherited from a parent that has it, only gives new files the directory's
/// group, which has no access here.)
pub(super) fn is_private(st: &Stat, euid: u32) -> bool {
    st.st_mode & S_IFMT == S_IFDIR
        && st.st_uid == euid
        && st.st_mode & !S_ISGID & 0o7777 == PRIVATE_DIR
}

/// Opens (or makes) `name` in `parent` as a directory of the user's with mode 0700. One that is
/// not (a file, a symbolic link, another owner, other modes) is removed and made again, except
/// the cache directory itself, which the user may have set up otherwise: it is left alone and the
/// cache not used.
pub(super) fn private_dir(
    parent: BorrowedFd<'_>,
    name: &CStr,
    place: Place,
    euid: u32,
) -> Result<Private, Unusable> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let replaceable = !matches!(place, Place::Cache);
    let mut created = false;
    // At most: found wrong and removed, made, opened.
    for _ in 0..3 {
        let bad = match rustix::fs::openat(parent, name, flags, Mode::empty()) {
            Ok(fd) => {
                let stat =
                    rustix::fs::fstat(&fd).map_err(|e| Unusable::Failed(place, "fstat", e))?;
                if is_private(&stat, euid) {
                    return Ok(Private { fd, stat, created });
                }
                let mine = stat.st_mode & S_IFMT == S_IFDIR && stat.st_uid == euid;
                let mode = stat.st_mode & !S_ISGID;
                // Made by this user under an odd umask that took some of the user's own bits.
                if mine
                    && mode & 0o7077 == 0
                    && rustix::fs::fchmod(&fd, Mode::from_raw_mode(PRIVATE_DIR)).is_ok()
                {
                    return Ok(Private { fd, stat, created });
                }
                if !replaceable {
                    return Err(if stat.st_uid == euid {
                        Unusable::NotPrivate
                    } else {
                        Unusable::NotTrusted(place)
                    });
                }
                true
            }
            Err(Errno::NOENT) => {
                match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(PRIVATE_DIR)) {
                    Ok(()) => created = true,
                    Err(Errno::EXIST) => {}
                    Err(e) => return Err(Unusable::Failed(place, "mkdir", e)),
                }
                false
            }
            Err(Errno::NOTDIR | Errno::LOOP) if replaceable => true,
            Err(Errno::NOTDIR | Errno::LOOP) => return Err(Unusable::NotDirectory(place)),
            Err(e) => return Err(Unusable::Failed(place, "open", e)),
        };
        if bad {
            remove(parent, name, 2);
        }
    }
    Err(Unusable::NotTrusted(place))
}
