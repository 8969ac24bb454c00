//! One entry: whether what is under its name may run, and making it (written or decoded,
//! hash-checked, and only then linked under its name).

use core::ffi::CStr;

use mgo_format::{content_hash, Bundle, Entry};
use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, FallocateFlags, Mode, OFlags};
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};

use super::boot::{self, Boot};
use super::path::{Name, ENTRY_MODE, S_IFMT, S_IFREG};
use super::why::{failed, Missed, Place, Unusable};
use crate::decode::{self, Spoiled};
use crate::sys;
use crate::target::proc_fd_path;

pub(super) enum Found {
    /// A file that passes every check but its bytes', with its inode number (which the boot
    /// record names).
    Good(u64),
    /// Something under the entry's name that must not run.
    Bad,
    Missing,
}

/// Where an entry goes and what it must be: its name in its (private) variant directory, the
/// variant it holds and the user it belongs to.
pub(super) struct Slot<'a> {
    pub(super) dir: &'a OwnedFd,
    pub(super) name: &'a CStr,
    pub(super) entry: &'a Entry,
    pub(super) euid: u32,
}

impl Slot<'_> {
    /// Whether the entry may run: a regular file (not a symbolic link) of the user's, mode 0500,
    /// exactly the variant's length. Its contents were hash-checked when it was made; whether
    /// they must be hashed again (made in another boot, not synced) is the boot record's to say.
    pub(super) fn checked(&self) -> Result<Found, Unusable> {
        match rustix::fs::statat(self.dir, self.name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let good = may_run(&st, self.euid, self.entry);
                Ok(if good {
                    Found::Good(st.st_ino)
                } else {
                    Found::Bad
                })
            }
            Err(Errno::NOENT) => Ok(Found::Missing),
            Err(e) => Err(Unusable::Failed(Place::Entry, "stat", e)),
        }
    }

    /// Writes the entry and links it in under its name. Returns whether this launch made it
    /// (`false`: another launcher linked a good one first, which is used instead).
    pub(super) fn make(&self, bundle: &Bundle<'_>, boot: Option<&Boot>) -> Result<bool, Missed> {
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
                Err(Errno::NOENT) => return self.make_by_name(bundle, boot),
                Err(e) => return Err(failed("reopen read-only", e)),
            },
            // File systems without O_TMPFILE.
            Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => {
                return self.make_by_name(bundle, boot)
            }
            Err(e) => return Err(failed("create", e)),
        };
        self.fill(&write, bundle, boot)?;
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
        self.settle(linked, boot)
    }

    /// The entry made under a temporary name in its (private) directory, for systems where an
    /// unnamed file cannot be linked (no `/proc`, no `O_TMPFILE`). A launcher killed while it
    /// writes leaves the temporary file behind, in the variant's directory, which goes with the
    /// variant.
    fn make_by_name(&self, bundle: &Bundle<'_>, boot: Option<&Boot>) -> Result<bool, Missed> {
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
            .fill(&write, bundle, boot)
            .and_then(|()| rustix::fs::fchmod(&write, mode).map_err(|e| failed("fchmod", e)))
            .and_then(|()| {
                drop(write);
                let (dir, temp) = (self.dir, temp.as_cstr());
                let linked = rustix::fs::linkat(dir, temp, dir, self.name, AtFlags::empty());
                self.settle(linked, boot)
            });
        let _ = rustix::fs::unlinkat(self.dir, temp.as_cstr(), AtFlags::empty());
        result
    }

    /// Reserves the entry's blocks, writes the variant (decoded if need be) into it, checking its
    /// hash, and makes sure that a name given to it afterwards never runs missing blocks after a
    /// crash: by recording this boot on the variant's directory (a later boot hashes the entry
    /// before it runs it, `boot.rs`), or where no record can be written, by syncing it.
    fn fill(
        &self,
        write: &OwnedFd,
        bundle: &Bundle<'_>,
        boot: Option<&Boot>,
    ) -> Result<(), Missed> {
        let entry = self.entry;
        crate::xfsz::hold();
        // A full disk or quota is known before anything is decoded. Where blocks cannot be
        // reserved, write(2) says ENOSPC itself.
        match rustix::fs::fallocate(write, FallocateFlags::empty(), 0, entry.original_len) {
            Ok(()) | Err(Errno::OPNOTSUPP | Errno::NOSYS) => {}
            Err(e) => return Err(failed("fallocate", e)),
        }
        match decode::write_variant_to_file(write, bundle, entry) {
            Ok(()) => {}
            Err(Spoiled::Damaged(level)) => return Err(Missed::Damaged(level)),
            Err(Spoiled::Copy(step, e)) => return Err(failed(step.name(), e)),
        }
        let ino = rustix::fs::fstat(write)
            .map_err(|e| failed("fstat", e))?
            .st_ino;
        if let Some(boot) = boot {
            if boot::write(self.dir, ino, Some(boot)).is_ok() {
                return Ok(());
            }
        }
        rustix::fs::fdatasync(write).map_err(|e| failed("fdatasync", e))?;
        // Without it, later starts hash the entry once per boot (or at every start where no
        // record can be written at all); it stays safe either way.
        let _ = boot::write(self.dir, ino, None);
        Ok(())
    }

    /// Removes the entry if it is still the file with inode `ino`: when many launchers find the
    /// same damaged entry at once, one that is slower to hash it does not remove the good entry
    /// another has made meanwhile (that one is then found by `link`'s `EEXIST`, and used).
    /// Fails if it is still there: then it must not be taken for another launcher's entry when
    /// this launch's link finds the name taken.
    pub(super) fn remove_if(&self, ino: u64) -> Result<(), Unusable> {
        match rustix::fs::statat(self.dir, self.name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_ino == ino => {
                rustix::fs::unlinkat(self.dir, self.name, AtFlags::empty())
                    .map_err(|e| Unusable::Failed(Place::Entry, "unlink", e))
            }
            Ok(_) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(Unusable::Failed(Place::Entry, "stat", e)),
        }
    }

    /// The entry found under the name (inode `ino`) that no record vouches for, hashed in full
    /// against the variant's hash. Whether it matched; if it did, the record now vouches for it
    /// (this boot; without a boot identity, synced first).
    pub(super) fn verify(&self, ino: u64, boot: Option<&Boot>) -> Result<bool, Unusable> {
        let fd = rustix::fs::openat(
            self.dir,
            self.name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Unusable::Failed(Place::Entry, "open", e))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| Unusable::Failed(Place::Entry, "fstat", e))?;
        // Replaced since it was checked (by another launcher remaking it): not the file hashed
        // here, so it is checked again from the start.
        if st.st_ino != ino || st.st_mode & S_IFMT != S_IFREG {
            return Ok(false);
        }
        let hash = mapped_hash(&fd, self.entry.original_len)
            .map_err(|e| Unusable::Failed(Place::Entry, "mmap", e))?;
        if hash != self.entry.content_hash {
            return Ok(false);
        }
        if boot.is_none() && rustix::fs::fdatasync(&fd).is_err() {
            return Ok(true);
        }
        let _ = boot::write(self.dir, ino, boot);
        Ok(true)
    }

    /// The entry found under the name (inode `ino`), which its record vouches for in this boot
    /// only, forced to disk and recorded as synced: later starts need not read the boot's id.
    /// Nothing changes where it cannot be (the entry is replaced meanwhile, the sync fails): it
    /// runs anyway, being good in this boot, and a later start tries again.
    pub(super) fn mark_synced(&self, ino: u64) {
        let Ok(fd) = rustix::fs::openat(
            self.dir,
            self.name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            return;
        };
        let same = rustix::fs::fstat(&fd).is_ok_and(|st| st.st_ino == ino);
        if same && rustix::fs::fdatasync(&fd).is_ok() {
            let _ = boot::write(self.dir, ino, None);
        }
    }

    /// The outcome of linking a finished entry in: done, or (EEXIST) another launcher's entry,
    /// used if it checks out (if not, this launch does without the cache).
    fn settle(&self, linked: Result<(), Errno>, boot: Option<&Boot>) -> Result<bool, Missed> {
        match linked {
            Ok(()) => Ok(true),
            Err(Errno::EXIST) => match self.checked()? {
                Found::Good(theirs) => {
                    // The record now names this launch's file, which lost the race: it is set
                    // again for the winner's, linked while this launch was making its own, so
                    // in this boot and complete (or synced, where no boot can be known).
                    if boot.is_some() {
                        let _ = boot::write(self.dir, theirs, boot);
                    }
                    Ok(false)
                }
                _ => Err(Unusable::NotTrusted(Place::Entry).into()),
            },
            Err(e) => Err(failed("link", e)),
        }
    }
}

/// Whether `st` (not followed if a symbolic link) is an entry that may run: a regular file of
/// the user's, mode 0500, exactly `entry`'s length.
pub(super) fn may_run(st: &rustix::fs::Stat, euid: u32, entry: &Entry) -> bool {
    st.st_mode & S_IFMT == S_IFREG
        && st.st_uid == euid
        && st.st_mode & 0o7777 == ENTRY_MODE
        && st.st_size as u64 == entry.original_len
}

/// The content hash of the first `len` bytes of `fd`, read through a private read-only mapping.
fn mapped_hash(fd: &OwnedFd, len: u64) -> Result<u64, Errno> {
    let len = usize::try_from(len).map_err(|_| Errno::FBIG)?;
    if len == 0 {
        return Ok(content_hash(&[]));
    }
    // SAFETY: a new private read-only mapping of the file, placed by the kernel: it aliases no
    // memory of the launcher's, and it is unmapped below, after its last use.
    let ptr = unsafe {
        rustix::mm::mmap(
            core::ptr::null_mut(),
            len,
            ProtFlags::READ,
            MapFlags::PRIVATE,
            fd,
            0,
        )?
    };
    // SAFETY: the mapping is `len` bytes long and readable. The file is the user's, mode 0500, in
    // the user's private directory: only the user could shorten it meanwhile, which makes this a
    // SIGBUS, not a wrong answer.
    let hash = content_hash(unsafe { core::slice::from_raw_parts(ptr.cast::<u8>(), len) });
    // SAFETY: the mapping made above, no longer used.
    let _ = unsafe { rustix::mm::munmap(ptr, len) };
    Ok(hash)
}
