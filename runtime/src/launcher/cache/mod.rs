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
//! path (the path it was started by, when that is absolute: [`bundle_path`]) and `<content hash>`
//! the variant's, both as 16 hex digits.
//!
//! What the launcher trusts, and how (docs/ARCHITECTURE.md, "The cache"):
//! - The path that is exec'd is walked first, one directory at a time from `/`, without following
//!   symbolic links, each opened relative to its parent's descriptor and checked: every directory
//!   above the cache belongs to root or the user and is writable by nobody else (unless sticky),
//!   and the cache's own (`mgo-pack` and below) belong to the user with mode 0700. So nobody
//!   else can change what the path names between the check and the exec. A warm start makes the
//!   same checks, in the same order, with one `stat` of each directory's path (`warm.rs`) and
//!   leaves to the walk anything it does not find as it must be.
//! - An entry is run only if it is a regular file of the user's with mode 0500 and exactly the
//!   variant's length; anything else under its name is removed and the entry made again. An
//!   entry written in an earlier boot and never synced is hashed in full once before it runs in
//!   this one (`boot.rs`); if it does not match, it is removed and made again. The first start
//!   to find an entry good in the boot it was written in syncs it, so that the starts after it
//!   need not read the boot's id.
//! - An entry is made as an unnamed file (`O_TMPFILE`), filled and hash-checked, recorded as
//!   written in this boot (or, where no record can be written, synced), closed for writing and
//!   made 0500, and only then linked under its name: a name never shows an incomplete entry,
//!   whatever interrupts the launcher (without `/proc` or `O_TMPFILE`, a file
//!   under a temporary name in the private directory, linked to its name the same way). Two
//!   launchers making the same entry at once both succeed: the second link fails with EEXIST,
//!   and the second launcher checks and runs the first one's entry.
//!
//! Bounds: the bundle's directory (`<key>`) records its last use in its modification time,
//! refreshed at most once a day. When an entry is made, the bundle's other builds (content
//! directories no entry of this bundle names) are removed; when an entry is made or a last use
//! refreshed, so is every bundle directory unused for [`UNUSED_FOR`].

mod boot;
mod bounds;
mod entry;
mod path;
mod walk;
mod warm;
mod why;

use core::ffi::CStr;

use mgo_format::{content_hash, Bundle, Entry};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::AtFlags;
use rustix::io::Errno;

use crate::own_image::{own_path, PATH_MAX};
use crate::report::{level_name, SETTING};
use crate::start::StartInfo;
use crate::sys;
use boot::{Boot, Record};
use bounds::{remove, remove_other_builds, remove_unused, touch};
use entry::{Found, Slot};
use path::{Name, Path, BUNDLE_LINK, CACHE_DIR, TOUCH_EVERY};
use walk::{base_dir, private_dir};
use why::Place;
pub use why::{Missed, Unusable};

/// How the entry was had.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// Found, and trusted as it is (made in this boot, or synced).
    Found,
    /// Found, written in an earlier boot, and hashed in full: it matched.
    Verified,
    /// Made by this launch (or by another launcher at the same moment, whose entry is used).
    Made,
    /// Found, written in an earlier boot, hashed: it did not match, so it was removed and made
    /// again.
    Remade,
}

/// Where an entry's absolute path is written: a page of stack that only the cache path takes.
pub struct EntryPath(Path);

impl EntryPath {
    pub fn new() -> EntryPath {
        EntryPath(Path::root())
    }
}

/// A checked entry, ready to be exec'd by its path.
pub struct Ready<'p> {
    path: &'p EntryPath,
    /// How this launch came by it.
    pub how: How,
}

impl Ready<'_> {
    /// The entry's absolute path.
    pub fn path(&self) -> &CStr {
        self.path.0.as_cstr()
    }

    /// After the kernel refused to exec the entry: one that is not an executable at all (its
    /// blocks lost in a crash, say) is removed, so that the next start makes it again. By its
    /// path, which names what was checked, as for the exec.
    pub fn refused(&self, e: Errno) {
        if e == Errno::NOEXEC {
            let _ = rustix::fs::unlinkat(rustix::fs::CWD, self.path(), AtFlags::empty());
        }
    }
}

/// Finds the entry for `entry` of `bundle`, or makes it, checked either way, and writes its path
/// to `at`. In secure-execution mode the caller must not get here (the environment would choose
/// where the program comes from).
pub fn entry<'p>(
    start: &StartInfo,
    bundle: &Bundle<'_>,
    entry: &Entry,
    at: &'p mut EntryPath,
) -> Result<Ready<'p>, Missed> {
    // The bundle's path is read into the buffer the entry's path is then written over: one page
    // of stack less, one page fault less.
    let (key, file_name) = {
        let own = bundle_path(start, &mut at.0.buf)?;
        let file_name = own.rsplit(|&b| b == b'/').next().unwrap_or(b"");
        let file_name = Name::new(file_name).ok_or(Unusable::NoBundlePath)?;
        let mut key = Name::empty();
        key.hex(content_hash(own));
        (key, file_name)
    };
    let mut variant = Name::empty();
    variant.hex(entry.content_hash);
    variant.push(b" ");
    variant.push(SETTING.as_bytes());
    variant.push(level_name(entry.level).as_bytes());

    let euid = rustix::process::geteuid().as_raw();
    let path = &mut at.0;
    let names = [
        CACHE_DIR,
        key.as_cstr(),
        variant.as_cstr(),
        file_name.as_cstr(),
    ];
    if warm::found(start, euid, names, entry, path) {
        let at: &'p EntryPath = at;
        return Ok(Ready {
            path: at,
            how: How::Found,
        });
    }
    let base = base_dir(start, euid, path)?;
    for part in [CACHE_DIR, key.as_cstr(), variant.as_cstr()] {
        path.push(part.to_bytes())?;
    }
    path.push(file_name.as_cstr().to_bytes())?;
    let cache = private_dir(base.as_fd(), CACHE_DIR, Place::Cache, euid)?;
    let bundle_dir = private_dir(cache.fd.as_fd(), key.as_cstr(), Place::Bundle, euid)?;
    if bundle_dir.created {
        link_bundle(start, &bundle_dir.fd);
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
    let how = match slot.checked()? {
        // The warm start's case: synced, so no boot need be read.
        Found::Good(ino) => match boot::read(&variant_dir.fd, ino) {
            Record::Synced => How::Found,
            record => {
                let boot = Boot::current();
                if record.vouches_in(boot.as_ref()) {
                    // Written in this boot: synced now, so that later starts skip `boot_id`.
                    slot.mark_synced(ino);
                    How::Found
                } else if slot.verify(ino, boot.as_ref())? {
                    How::Verified
                } else {
                    slot.remove_if(ino)?;
                    slot.make(bundle, boot.as_ref())?;
                    How::Remade
                }
            }
        },
        found => {
            if let Found::Bad = found {
                remove(variant_dir.fd.as_fd(), slot.name, 1);
            }
            slot.make(bundle, Boot::current().as_ref())?;
            How::Made
        }
    };
    let made = matches!(how, How::Made | How::Remade);

    let now = sys::now();
    let touched = now - bundle_dir.stat.st_mtime >= TOUCH_EVERY && touch(&bundle_dir.fd);
    if made {
        remove_other_builds(bundle_dir.fd.as_fd(), bundle);
    }
    if made || touched {
        remove_unused(cache.fd.as_fd(), key.as_cstr(), now);
    }
    let at: &'p EntryPath = at;
    Ok(Ready { path: at, how })
}

/// The bundle's path, which keys and names its entries: the path it was exec'd by
/// (`AT_EXECFN`, on the initial stack) where that names the file itself rather than a descriptor
/// (`fexecve` passes `/dev/fd/N`): as it is when absolute, else joined to the working directory
/// ([`from_working_dir`]). Failing that, the file `/proc/self/exe` names. The first two cost at
/// most a `getcwd`; the last, a process's first look into its own `/proc` directory, costs about
/// 10 µs (docs/ARCHITECTURE.md, "What a warm start costs beyond its floor"). A bundle started by
/// two paths (a symbolic link and its target) has two keys, each with the file name it was
/// started by, which is also what the kernel names the process after.
fn bundle_path<'b>(start: &StartInfo, buf: &'b mut [u8; PATH_MAX]) -> Result<&'b [u8], Unusable> {
    let by_exec = start.execfn().map(CStr::to_bytes).unwrap_or(b"");
    if by_exec.first() == Some(&b'/') {
        if !by_exec.starts_with(b"/dev/fd/") && !by_exec.starts_with(b"/proc/") {
            return Ok(by_exec);
        }
    } else if let Some(len) = from_working_dir(by_exec, buf) {
        return Ok(&buf[..len]);
    }
    let own = own_path(start, buf).ok_or(Unusable::NoBundlePath)?;
    if own.bytes.first() != Some(&b'/') {
        return Err(Unusable::NoBundlePath);
    }
    if own.resolved && own.bytes.ends_with(b" (deleted)") {
        return Err(Unusable::BundleGone);
    }
    Ok(own.bytes)
}

/// `relative`, the path exec was given, made absolute in `buf` against the working directory,
/// where exec looked it up (the launcher has not moved since); returns its length. `.` and empty
/// components are left out, so that `./app` and `app` are one bundle. `None` for a path with
/// `..` (after a symbolic link, the text would name another file than the one exec found), for
/// an empty one, and where the working directory has no path (removed, or outside this process's
/// root).
fn from_working_dir(relative: &[u8], buf: &mut [u8; PATH_MAX]) -> Option<usize> {
    let parts = || relative.split(|&b| b == b'/');
    if relative.is_empty() || parts().any(|part| part == b"..") {
        return None;
    }
    let mut len = sys::getcwd(&mut buf[..]).ok()?;
    if buf.first() != Some(&b'/') {
        return None;
    }
    // `/` itself: its components are appended after the one slash.
    if len == 1 {
        len = 0;
    }
    for part in parts().filter(|part| !part.is_empty() && *part != b".") {
        let end = len + 1 + part.len();
        if end >= PATH_MAX {
            return None;
        }
        buf[len] = b'/';
        buf[len + 1..end].copy_from_slice(part);
        len = end;
    }
    Some(len)
}

/// Names the bundle in its new directory in the cache (`mgo-pack cache` lists it). Out of line:
/// its path buffers would otherwise take stack pages, each a page fault, at every start.
#[inline(never)]
fn link_bundle(start: &StartInfo, dir: &OwnedFd) {
    let mut own = [0u8; PATH_MAX];
    let mut link = Path::root();
    if let Ok(bundle) = bundle_path(start, &mut own) {
        if link.push(bundle).is_ok() {
            let _ = rustix::fs::symlinkat(link.as_cstr(), dir, BUNDLE_LINK);
        }
    }
}
