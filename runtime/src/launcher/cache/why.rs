//! Why the cache cannot serve this start (the launch goes on through the memfd, and
//! `MGODEBUG=log` says why), or why nothing may run at all.

use mgo_runtime::message::Line;
use rustix::io::Errno;

use crate::report::errno;

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
    /// No `/proc`, and the bundle was exec'd by a relative path that cannot be made absolute
    /// (with `..`, or the working directory removed).
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
                line.str(
                    "the bundle's path is unknown (no /proc, and a relative path was run that \
                     cannot be made absolute)",
                );
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

/// A step of making the entry failed.
pub fn failed(step: &'static str, e: Errno) -> Missed {
    Missed::Unusable(Unusable::Failed(Place::Entry, step, e))
}
