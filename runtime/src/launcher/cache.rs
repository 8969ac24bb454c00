//! The cache launch path's file: the chosen variant written once, decoded and hash-checked, as a
//! real executable in the user's cache directory, then exec'd by its path at this start and every
//! later one. `/proc/PID/exe` is then a real file holding exactly the build's bytes, named after
//! the program, with the level in its path:
//!
//! ```text
//! $XDG_CACHE_HOME/mgo-pack/<key>/<content hash> GOAMD64=vN/<the bundle's file name>
//! ```
//!
//! (`~/.cache` without `XDG_CACHE_HOME`), where `<key>` is the XXH3-64 of the bundle's absolute
//! path and `<content hash>` the variant's, both as 16 hex digits.
//!
//! What the launcher trusts, and how (docs/ARCHITECTURE.md, "The cache"):
//! - The path that is exec'd is walked first, one directory at a time from `/`, without following
//!   symbolic links, each opened relative to its parent's descriptor and checked: every directory
//!   above the cache belongs to root or the user and is writable by nobody else (unless sticky),
//!   and the cache's own (`mgo-pack` and below) belong to the user with mode 0700. So nobody
//!   else can change what the path names between the check and the exec.
//! - An entry is run only if it is a regular file of the user's with mode 0500 and exactly the
//!   variant's length; anything else under its name is removed and the entry made again.
//! - An entry is made as an unnamed file (`O_TMPFILE`), filled and hash-checked, synced, closed
//!   for writing and made 0500, and only then linked under its name: a name never shows an
//!   incomplete entry, whatever interrupts the launcher (without `/proc` or `O_TMPFILE`, a file
//!   under a temporary name in the private directory, linked to its name the same way). Two
//!   launchers making the same entry at once both succeed: the second link fails with EEXIST,
//!   and the second launcher checks and runs the first one's entry.
//!
//! Bounds: the bundle's directory (`<key>`) records its last use in its modification time,
//! refreshed at most once a day. When an entry is made, the bundle's other builds (content
//! directories no entry of this bundle names) are removed; when an entry is made or a last use
//! refreshed, so is every bundle directory unused for [`UNUSED_FOR`].

use core::ffi::CStr;
use core::mem::MaybeUninit;

use mgo_format::{content_hash, Bundle, Encoding, Entry};
use mgo_runtime::message::Line;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FallocateFlags, Mode, OFlags, Stat, StatVfsMountFlags, Timespec};
use rustix::io::Errno;

use crate::decode::{self, Spoiled};
use crate::own_image::{own_path, PATH_MAX};
use crate::report::{errno, level_name, SETTING};
use crate::start::StartInfo;
use crate::sys;
use crate::target::proc_fd_path;

/// The cache's own directory, under the base (`$XDG_CACHE_HOME` or `~/.cache`).
const CACHE_DIR: &CStr = c"mgo-pack";
/// In a bundle's directory: a symbolic link to the bundle's path, for `mgo-pack cache list`
/// (never followed by the launcher).
const BUNDLE_LINK: &CStr = c"bundle";
/// A bundle's last use is recorded at most this often (seconds).
pub const TOUCH_EVERY: i64 = 24 * 60 * 60;
/// A bundle's entries unused for this long are removed (seconds).
pub const UNUSED_FOR: i64 = 30 * 24 * 60 * 60;
/// The mode of an entry: the user's to read and run, nobody's to change.
const ENTRY_MODE: u32 = 0o500;
const PRIVATE_DIR: u32 = 0o700;
const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_ISVTX: u32 = 0o1000;
const S_ISGID: u32 = 0o2000;

/// Which directory (or file) a problem is in.
#[derive(Clone, Copy)]
pub enum Place {
    /// A directory between `/` and the base.
    Above,
    /// `$XDG_CACHE_HOME`, or `~/.cache`.
    Base,
    /// `mgo-pack`.
    Cache,
    /// The bundle's directory, `<key>`.
    Bundle,
    /// The variant's directory, `<content hash> GOAMD64=vN`.
    Variant,
    /// The entry, the program's file.
    Entry,
}

impl Place {
    fn name(self) -> &'static str {
        match self {
            Place::Above => "a directory above the cache",
            Place::Base => "the cache's base directory",
            Place::Cache => "the cache directory",
            Place::Bundle => "the bundle's directory in the cache",
            Place::Variant => "the variant's directory in the cache",
            Place::Entry => "the cached program",
        }
    }
}

/// Why the cache was not used; the launch goes on through the memfd.
#[derive(Clone, Copy)]
pub enum Unusable {
    /// Neither `XDG_CACHE_HOME` nor `HOME` is an absolute path.
    NoBase,
    /// No `/proc`, and the bundle was exec'd by a relative path.
    NoBundlePath,
    /// `/proc/self/exe` says the bundle's file is gone: its name is no longer its own.
    BundleGone,
    /// The entry's path would not fit `PATH_MAX`.
    TooLong,
    /// A symbolic link (or not a directory) where a directory must be; without `/proc`, also a
    /// `.` or `..` in the base's path.
    NotDirectory(Place),
    /// Owned by someone other than the user (or root, above the cache), or writable by others.
    NotTrusted(Place),
    /// The cache directory itself is not the user's alone (mode 0700).
    NotPrivate,
    /// The cache is on a file system mounted `noexec`.
    Noexec,
    /// A compressed variant is decoded through a shared mapping of its file, where a full disk is
    /// a SIGBUS unless the space is reserved first, and this file system cannot reserve it.
    NoReserve,
    /// A system call failed: where, which step, and the errno.
    Failed(Place, &'static str, Errno),
    /// The entry was ready, and exec refused it.
    Exec(Errno),
}

impl Unusable {
    pub fn describe(self, line: &mut Line) {
        match self {
            Unusable::NoBase => {
                line.str("neither XDG_CACHE_HOME nor HOME is an absolute path");
            }
            Unusable::NoBundlePath => {
                line.str("the bundle's path is unknown (no /proc, and a relative path was run)");
            }
            Unusable::BundleGone => {
                line.str("the bundle's file was removed or replaced since it started");
            }
            Unusable::TooLong => {
                line.str("the cached program's path would be longer than PATH_MAX");
            }
            Unusable::NotDirectory(place) => {
                line.str(place.name())
                    .str(" is a symbolic link or not a directory");
            }
            Unusable::NotTrusted(place) => {
                line.str(place.name())
                    .str(" belongs to another user or is writable by others");
            }
            Unusable::NotPrivate => {
                line.str("the cache directory is not the user's alone (mode 0700)");
            }
            Unusable::Noexec => {
                line.str("the cache directory is mounted noexec");
            }
            Unusable::NoReserve => {
                line.str("its file system cannot reserve space for decoding (fallocate)");
            }
            Unusable::Failed(place, step, e) => {
                line.str(place.name()).str(": ").str(step).str(": ");
                errno(line, e);
            }
            Unusable::Exec(e) => {
                line.str("execve: ");
                errno(line, e);
            }
        }
    }
}

/// Why no entry can be had.
pub enum Missed {
    /// The variant's bytes are not the packed ones (its level): nothing may run them.
    Damaged(u32),
    Unusable(Unusable),
}

impl From<Unusable> for Missed {
    fn from(why: Unusable) -> Missed {
        Missed::Unusable(why)
    }
}

/// A checked entry, ready to be exec'd by its path.
pub struct Ready {
    path: Path,
    /// Made by this launch (else found, made by an earlier one or by another launcher at once).
    pub made: bool,
    /// The variant's directory and the entry's name in it, to remove an entry the kernel would
    /// not execute.
    dir: OwnedFd,
    name: Name,
}

impl Ready {
    /// The entry's absolute path.
    pub fn path(&self) -> &CStr {
        self.path.as_cstr()
    }

    /// After the kernel refused to exec the entry: one that is not an executable at all (its
    /// blocks lost in a crash, say) is removed, so that the next start makes it again.
    pub fn refused(&self, e: Errno) {
        if e == Errno::NOEXEC {
            let _ = rustix::fs::unlinkat(&self.dir, self.name.as_cstr(), AtFlags::empty());
        }
    }
}

/// Finds the entry for `entry` of `bundle`, or makes it, checked either way. In secure-execution
/// mode the caller must not get here (the environment would choose where the program comes from).
pub fn entry(start: &StartInfo, bundle: &Bundle<'_>, entry: &Entry) -> Result<Ready, Missed> {
    let mut own = [0u8; PATH_MAX];
    let own = own_path(start, &mut own).ok_or(Unusable::NoBundlePath)?;
    if own.bytes.first() != Some(&b'/') {
        return Err(Unusable::NoBundlePath.into());
    }
    if own.resolved && own.bytes.ends_with(b" (deleted)") {
        return Err(Unusable::BundleGone.into());
    }
    let file_name = own.bytes.rsplit(|&b| b == b'/').next().unwrap_or(b"");
    let file_name = Name::new(file_name).ok_or(Unusable::NoBundlePath)?;
    let mut key = Name::empty();
    key.hex(content_hash(own.bytes));
    let mut variant = Name::empty();
    variant.hex(entry.content_hash);
    variant.push(b" ");
    variant.push(SETTING.as_bytes());
    variant.push(level_name(entry.level).as_bytes());

    let euid = rustix::process::geteuid().as_raw();
    let (base, mut path) = base_dir(start, euid)?;
    for part in [CACHE_DIR, key.as_cstr(), variant.as_cstr()] {
        path.push(part.to_bytes())?;
    }
    path.push(file_name.as_cstr().to_bytes())?;
    let cache = private_dir(base.as_fd(), CACHE_DIR, Place::Cache, euid)?;
    let bundle_dir = private_dir(cache.fd.as_fd(), key.as_cstr(), Place::Bundle, euid)?;
    if bundle_dir.created {
        let mut link = Path::root();
        if link.push(own.bytes).is_ok() {
            let _ = rustix::fs::symlinkat(link.as_cstr(), &bundle_dir.fd, BUNDLE_LINK);
        }
    }
    let variant_dir = private_dir(
        bundle_dir.fd.as_fd(),
        variant.as_cstr(),
        Place::Variant,
        euid,
    )?;

    let slot = Slot {
        dir: &variant_dir.fd,
        name: file_name.as_cstr(),
        entry,
        euid,
    };
    let made = match slot.checked()? {
        Found::Good => false,
        found => {
            if let Found::Bad = found {
                remove(variant_dir.fd.as_fd(), slot.name, 1);
            }
            slot.make(bundle)?
        }
    };

    let now = sys::now();
    let touched = now - bundle_dir.stat.st_mtime >= TOUCH_EVERY && touch(&bundle_dir.fd);
    if made {
        remove_other_builds(bundle_dir.fd.as_fd(), bundle);
    }
    if made || touched {
        remove_unused(cache.fd.as_fd(), key.as_cstr(), now);
    }
    Ok(Ready {
        path,
        made,
        dir: variant_dir.fd,
        name: file_name,
    })
}

/// The base directory (`$XDG_CACHE_HOME`, else `$HOME/.cache`; a relative or empty setting is
/// unset, as the XDG specification says), created with mode 0700 if it is missing (its parent
/// must exist), and opened at the end of a checked walk from `/`. Returns it with the path that
/// was walked (without symbolic links, when `/proc` says what they lead to).
fn base_dir(start: &StartInfo, euid: u32) -> Result<(OwnedFd, Path), Unusable> {
    let var = |name: &[u8]| {
        start
            .env()
            .find_map(|e| e.strip_prefix(name)?.strip_prefix(b"="))
            .filter(|value| value.first() == Some(&b'/'))
    };
    let mut literal = Path::root();
    match (var(b"XDG_CACHE_HOME"), var(b"HOME")) {
        (Some(xdg), _) => literal.push(xdg)?,
        (None, Some(home)) => {
            literal.push(home)?;
            literal.push(b".cache")?;
        }
        (None, None) => return Err(Unusable::NoBase),
    }
    let (walked, create) = resolve(&literal)?;
    let base = walk(&walked, create, euid)?;
    // Before anything is made there: nothing could run from it. (Not knowing is no reason to
    // give up: exec will tell.)
    match rustix::fs::fstatvfs(&base) {
        Ok(st) if st.f_flag.contains(StatVfsMountFlags::NOEXEC) => Err(Unusable::Noexec),
        _ => Ok((base, walked)),
    }
}

/// The base's path without symbolic links, as `/proc/self/fd` names the directory it leads to
/// (or its parent, when it is still to be made: then `true`). Without `/proc`, the path as given,
/// which the walk then takes only if it has no symbolic link.
fn resolve(literal: &Path) -> Result<(Path, bool), Unusable> {
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

/// Opens `path` one directory at a time from `/`, never following a symbolic link, and checks
/// each: a directory of root's or the user's that nobody else may write to (or that is sticky, as
/// `/tmp` is: there nobody may rename what is not theirs). `create`: the last one may be made.
fn walk(path: &Path, create: bool, euid: u32) -> Result<OwnedFd, Unusable> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut dir = rustix::fs::open(c"/", flags, Mode::empty())
        .map_err(|e| Unusable::Failed(Place::Above, "open /", e))?;
    trusted(&dir, Place::Above, euid)?;
    let mut parts = path.parts().peekable();
    while let Some(part) = parts.next() {
        let place = match parts.peek() {
            Some(_) => Place::Above,
            None => Place::Base,
        };
        if part == b"." || part == b".." {
            return Err(Unusable::NotDirectory(place));
        }
        let name = Name::new(part).ok_or(Unusable::TooLong)?;
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

fn trusted(dir: &OwnedFd, place: Place, euid: u32) -> Result<(), Unusable> {
    let st = rustix::fs::fstat(dir).map_err(|e| Unusable::Failed(place, "fstat", e))?;
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
struct Private {
    fd: OwnedFd,
    stat: Stat,
    created: bool,
}

/// Opens (or makes) `name` in `parent` as a directory of the user's with mode 0700. One that is
/// not (a file, a symbolic link, another owner, other modes) is removed and made again, except
/// the cache directory itself, which the user may have set up otherwise: it is left alone and the
/// cache not used.
fn private_dir(
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
                let mode = stat.st_mode;
                let mine = mode & S_IFMT == S_IFDIR && stat.st_uid == euid;
                // The set-group-ID bit, inherited from a parent that has it, only gives new
                // files the directory's group, which has no access here.
                let mode = mode & !S_ISGID;
                if mine && mode & 0o7777 == PRIVATE_DIR {
                    return Ok(Private { fd, stat, created });
                }
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

enum Found {
    Good,
    /// Something under the entry's name that must not run.
    Bad,
    Missing,
}

/// Where an entry goes and what it must be: its name in its (private) variant directory, the
/// variant it holds and the user it belongs to.
struct Slot<'a> {
    dir: &'a OwnedFd,
    name: &'a CStr,
    entry: &'a Entry,
    euid: u32,
}

impl Slot<'_> {
    /// Whether the entry may run: a regular file (not a symbolic link) of the user's, mode 0500,
    /// exactly the variant's length. Its contents were hash-checked when it was made.
    fn checked(&self) -> Result<Found, Unusable> {
        match rustix::fs::statat(self.dir, self.name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let mode = st.st_mode;
                let good = mode & S_IFMT == S_IFREG
                    && st.st_uid == self.euid
                    && mode & 0o7777 == ENTRY_MODE
                    && st.st_size as u64 == self.entry.original_len;
                Ok(if good { Found::Good } else { Found::Bad })
            }
            Err(Errno::NOENT) => Ok(Found::Missing),
            Err(e) => Err(Unusable::Failed(Place::Entry, "stat", e)),
        }
    }

    /// Writes the entry and links it in under its name. Returns whether this launch made it
    /// (`false`: another launcher linked a good one first, which is used instead).
    fn make(&self, bundle: &Bundle<'_>) -> Result<bool, Missed> {
        let unnamed = rustix::fs::openat(
            self.dir,
            c".",
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::RWXU,
        );
        // The unnamed file is linked through its /proc/self/fd link, from a second, read-only
        // descriptor: exec refuses a file still open for writing anywhere (ETXTBSY), and another
        // launcher may exec the entry the moment it has its name.
        let mut link = [0u8; 32];
        let (write, read) = match unnamed {
            Ok(write) => match rustix::fs::open(
                proc_fd_path(&mut link, &write),
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(read) => (write, read),
                // No /proc: the file cannot be linked; a temporary name can.
                Err(Errno::NOENT) => return self.make_by_name(bundle),
                Err(e) => return Err(failed("reopen read-only", e)),
            },
            // File systems without O_TMPFILE.
            Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => {
                return self.make_by_name(bundle)
            }
            Err(e) => return Err(failed("create", e)),
        };
        self.fill(&write, bundle)?;
        drop(write);
        let mode = Mode::from_raw_mode(ENTRY_MODE);
        rustix::fs::fchmod(&read, mode).map_err(|e| failed("fchmod", e))?;
        let from = proc_fd_path(&mut link, &read);
        let linked = rustix::fs::linkat(
            rustix::fs::CWD,
            from,
            self.dir,
            self.name,
            AtFlags::SYMLINK_FOLLOW,
        );
        self.settle(linked)
    }

    /// The entry made under a temporary name in its (private) directory, for systems where an
    /// unnamed file cannot be linked (no `/proc`, no `O_TMPFILE`). A launcher killed while it
    /// writes leaves the temporary file behind, in the variant's directory, which goes with the
    /// variant.
    fn make_by_name(&self, bundle: &Bundle<'_>) -> Result<bool, Missed> {
        let mut random = [0u8; 8];
        let _ = sys::getrandom(&mut random);
        let mut temp = Name::empty();
        temp.push(b".tmp-");
        temp.hex(u64::from_ne_bytes(random));
        let write = rustix::fs::openat(
            self.dir,
            temp.as_cstr(),
            OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::RWXU,
        )
        .map_err(|e| failed("create", e))?;
        let mode = Mode::from_raw_mode(ENTRY_MODE);
        let result = self
            .fill(&write, bundle)
            .and_then(|()| rustix::fs::fchmod(&write, mode).map_err(|e| failed("fchmod", e)))
            .and_then(|()| {
                drop(write);
                let (dir, temp) = (self.dir, temp.as_cstr());
                let linked = rustix::fs::linkat(dir, temp, dir, self.name, AtFlags::empty());
                self.settle(linked)
            });
        let _ = rustix::fs::unlinkat(self.dir, temp.as_cstr(), AtFlags::empty());
        result
    }

    /// Reserves the entry's blocks, writes (or decodes) the variant into it, checking its hash,
    /// and syncs it, so that a name given to it afterwards never shows missing blocks after a
    /// crash.
    fn fill(&self, write: &OwnedFd, bundle: &Bundle<'_>) -> Result<(), Missed> {
        let entry = self.entry;
        match rustix::fs::fallocate(write, FallocateFlags::empty(), 0, entry.original_len) {
            Ok(()) => {}
            // A stored variant is written with write(2), which says ENOSPC; a compressed one is
            // decoded through a shared mapping, where a full disk would be SIGBUS.
            Err(Errno::OPNOTSUPP | Errno::NOSYS) if entry.encoding == Encoding::Stored => {}
            Err(Errno::OPNOTSUPP | Errno::NOSYS) => return Err(Unusable::NoReserve.into()),
            Err(e) => return Err(failed("fallocate", e)),
        }
        match decode::write_variant(write, bundle, entry) {
            Ok(()) => {}
            Err(Spoiled::Damaged(level)) => return Err(Missed::Damaged(level)),
            Err(Spoiled::Copy(step, e)) => return Err(failed(step.name(), e)),
        }
        rustix::fs::fdatasync(write).map_err(|e| failed("fdatasync", e))
    }

    /// The outcome of linking a finished entry in: done, or (EEXIST) another launcher's entry,
    /// used if it checks out (if not, this launch does without the cache).
    fn settle(&self, linked: Result<(), Errno>) -> Result<bool, Missed> {
        match linked {
            Ok(()) => Ok(true),
            Err(Errno::EXIST) => match self.checked()? {
                Found::Good => Ok(false),
                _ => Err(Unusable::NotTrusted(Place::Entry).into()),
            },
            Err(e) => Err(failed("link", e)),
        }
    }
}

/// A step of making the entry failed.
fn failed(step: &'static str, e: Errno) -> Missed {
    Missed::Unusable(Unusable::Failed(Place::Entry, step, e))
}

/// Records a use of the bundle's directory (its modification time). Whether it was recorded.
fn touch(dir: &OwnedFd) -> bool {
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
fn remove_other_builds(dir: BorrowedFd<'_>, bundle: &Bundle<'_>) {
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
fn remove_unused(cache: BorrowedFd<'_>, keep: &CStr, now: i64) {
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
fn each_name(dir: BorrowedFd<'_>, mut f: impl FnMut(&CStr)) {
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
fn remove(parent: BorrowedFd<'_>, name: &CStr, depth: u32) {
    if rustix::fs::unlinkat(parent, name, AtFlags::empty()) != Err(Errno::ISDIR) || depth == 0 {
        return;
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    if let Ok(dir) = rustix::fs::openat(parent, name, flags, Mode::empty()) {
        each_name(dir.as_fd(), |inner| remove(dir.as_fd(), inner, depth - 1));
    }
    let _ = rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR);
}

fn parse_hex(digits: &[u8]) -> Option<u64> {
    if digits.len() != 16 {
        return None;
    }
    digits.iter().try_fold(0u64, |value, &d| {
        let digit = (d as char).to_digit(16)?;
        Some(value << 4 | u64::from(digit))
    })
}

/// An absolute path being built, NUL-terminated, at most `PATH_MAX` with its NUL.
#[derive(Clone, Copy)]
struct Path {
    buf: [u8; PATH_MAX],
    len: usize,
}

impl Path {
    /// `/`, as an empty path that `push` adds to.
    fn root() -> Path {
        Path {
            buf: [0; PATH_MAX],
            len: 0,
        }
    }

    /// Appends `/` and `part` (a path that starts with `/` is appended as it is).
    fn push(&mut self, part: &[u8]) -> Result<(), Unusable> {
        let slash = usize::from(part.first() != Some(&b'/'));
        let end = self.len + slash + part.len();
        if end >= PATH_MAX || part.contains(&0) {
            return Err(Unusable::TooLong);
        }
        if slash == 1 {
            self.buf[self.len] = b'/';
        }
        self.buf[self.len + slash..end].copy_from_slice(part);
        self.cut(end);
        Ok(())
    }

    /// Keeps the first `len` bytes.
    fn cut(&mut self, len: usize) {
        self.len = len;
        self.buf[len] = 0;
    }

    fn as_cstr(&self) -> &CStr {
        if self.len == 0 {
            return c"/";
        }
        // The path is always NUL-terminated (`cut`), and `push` refuses parts that hold a NUL.
        CStr::from_bytes_with_nul(&self.buf[..=self.len]).unwrap_or(c"/")
    }

    /// The components, without empty ones.
    fn parts(&self) -> impl Iterator<Item = &[u8]> {
        self.buf[..self.len]
            .split(|&b| b == b'/')
            .filter(|part| !part.is_empty())
    }

    /// The parent's path and the last component (`None` for `/`).
    fn split_last(&self) -> Option<(Path, Name)> {
        let mut trimmed = &self.buf[..self.len];
        while let [rest @ .., b'/'] = trimmed {
            trimmed = rest;
        }
        let cut = trimmed.iter().rposition(|&b| b == b'/')?;
        let last = Name::new(&trimmed[cut + 1..])?;
        let mut parent = *self;
        parent.cut(cut);
        Some((parent, last))
    }
}

/// One file name (at most `NAME_MAX`), NUL-terminated.
struct Name {
    buf: [u8; 256],
    len: usize,
}

impl Name {
    fn empty() -> Name {
        Name {
            buf: [0; 256],
            len: 0,
        }
    }

    /// `bytes` as a name: `None` if it is empty or too long, or holds `/` or NUL.
    fn new(bytes: &[u8]) -> Option<Name> {
        let mut name = Name::empty();
        let clean = !bytes.is_empty() && !bytes.iter().any(|&b| b == b'/' || b == 0);
        (clean && name.push(bytes)).then_some(name)
    }

    /// Appends `bytes`; whether they fitted.
    fn push(&mut self, bytes: &[u8]) -> bool {
        let end = self.len + bytes.len();
        if end >= self.buf.len() {
            return false;
        }
        self.buf[self.len..end].copy_from_slice(bytes);
        self.buf[end] = 0;
        self.len = end;
        true
    }

    /// Appends `value` as 16 lower-case hex digits.
    fn hex(&mut self, value: u64) {
        let mut digits = [0u8; 16];
        for (i, digit) in digits.iter_mut().enumerate() {
            *digit = b"0123456789abcdef"[(value >> (60 - 4 * i)) as usize & 15];
        }
        self.push(&digits);
    }

    fn as_cstr(&self) -> &CStr {
        CStr::from_bytes_with_nul(&self.buf[..=self.len]).unwrap_or(c".")
    }
}
