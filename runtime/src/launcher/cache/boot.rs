//! When an entry's bytes are known to be on the disk, or known good in this boot: the record
//! that lets a first start skip `fdatasync` without ever running an entry that a crash cut short.
//!
//! Within one boot the kernel's page cache is coherent: an entry linked complete reads complete,
//! whether or not its blocks have reached the disk. Only a crash (a power cut, a panic) can leave
//! a name over blocks that were never written. So an entry is made without waiting for the disk,
//! and its variant's directory records the boot it was written in; a start in a later boot
//! hashes the entry once, in full, against the variant's hash from the bundle's index, before it
//! runs it, and then records the current boot, so that the next starts of that boot skip the hash.
//!
//! The record is an extended attribute, [`RECORD`], on the variant's directory: the walk already
//! holds that directory's descriptor, so a warm start reads it with one `fgetxattr` and opens
//! nothing more (on the entry itself it would cost an open and a close). Its value names the
//! entry it vouches for by its inode number, so that it never covers another file under the same
//! name, and says why that file may run:
//!
//! - `<inode>:<boot id>`: written (or hashed) in that boot; trusted only in that boot;
//! - `<inode>:synced`: its blocks were forced to disk (`fdatasync`); trusted in every boot, as
//!   every entry was before records existed.
//!
//! A record of the first kind is read against the current `boot_id` (an open and a read in
//! `/proc`, about 7 µs of every start that needs it), so it does not stay: the next start in the
//! same boot, the first to run the entry from the cache, syncs it and records it synced. By then
//! the kernel has usually written the blocks already (the first start wrote them moments, or
//! more, before); the sync waits at most for what is left, once per entry. Every start after
//! that reads one record and no `boot_id`.
//!
//! Anything else (no record, another inode, another boot, a value this launcher does not read)
//! means: hash it before running it. Where the file system has no user extended attributes
//! (`EOPNOTSUPP`, ramfs, some FUSE file systems) no record can have been written, so every entry
//! there was made through the fallback, synced before it was linked: it is trusted as before.
//! Where a record cannot be written (`EOPNOTSUPP`, a full disk, a sandbox that refuses the call),
//! the entry is synced before it is linked, as it always was: its safety never depends on the
//! record.
//!
//! The boot's identity is the kernel's `boot_id` (`/proc/sys/kernel/random/boot_id`): 128 random
//! bits drawn at every boot, read once per start. The wall-clock time of the boot
//! (`CLOCK_REALTIME - CLOCK_BOOTTIME`, rounded) would need no `/proc`, but it can name two boots
//! alike, which is the one mistake that must never happen (it would skip a needed hash): machines
//! without a real-time clock start every boot at the same time until NTP sets it, fake-hwclock
//! restores the time saved before the crash, and two machines sharing a home over NFS can boot
//! in the same second. A `boot_id` that is wrong in the other direction (it cannot be read, or a
//! container shows another one) only costs a hash. The cache path already needs `/proc` for the
//! bundle's own path and the unnamed file's link; without it there is no boot identity, and
//! entries are synced before they are linked, as before.

use core::ffi::CStr;

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{Mode, OFlags, XattrFlags};
use rustix::io::Errno;

/// The extended attribute, on the variant's directory, that records when its entry is trusted.
pub const RECORD: &CStr = c"user.mgo-pack.entry";
/// The record's value for an entry synced before it was linked.
const SYNCED: &[u8] = b"synced";
/// A `boot_id`: a UUID in its 36-character text form.
const BOOT_ID_LEN: usize = 36;
/// The longest record: 16 hex digits, `:`, a boot id.
const RECORD_MAX: usize = 16 + 1 + BOOT_ID_LEN;

/// This boot, as the kernel names it.
#[derive(Clone, Copy)]
pub struct Boot {
    id: [u8; BOOT_ID_LEN],
}

impl Boot {
    /// Reads the kernel's `boot_id`; `None` without `/proc` or with a value not in the UUID form.
    pub fn current() -> Option<Boot> {
        let fd = rustix::fs::open(
            c"/proc/sys/kernel/random/boot_id",
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let mut buf = [0u8; BOOT_ID_LEN + 2];
        let len = rustix::io::read(&fd, &mut buf[..]).ok()?;
        let text = buf[..len].strip_suffix(b"\n").unwrap_or(&buf[..len]);
        let uuid = text.len() == BOOT_ID_LEN
            && text.iter().enumerate().all(|(i, &b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_hexdigit(),
            });
        let mut id = [0u8; BOOT_ID_LEN];
        id.copy_from_slice(text.get(..BOOT_ID_LEN)?);
        uuid.then_some(Boot { id })
    }
}

/// What the record on a variant's directory says of the entry with inode `ino`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// It may run in any boot: synced, or on a file system that keeps no records (every entry
    /// there was synced). No boot need be read.
    Synced,
    /// Written (or hashed) in the boot with this id: trusted in that boot only.
    InBoot([u8; BOOT_ID_LEN]),
    /// Nothing says when it was written: no record, one for another inode, one this launcher
    /// does not read. It must be hashed before it runs.
    Unknown,
}

impl Record {
    /// Whether the record lets the entry run unhashed in `boot` (the current one, if known).
    pub fn vouches_in(&self, boot: Option<&Boot>) -> bool {
        match self {
            Record::Synced => true,
            Record::InBoot(id) => boot.is_some_and(|boot| *id == boot.id),
            Record::Unknown => false,
        }
    }
}

/// Reads the record on the variant's directory `dir` for the entry with inode `ino`.
pub fn read(dir: &OwnedFd, ino: u64) -> Record {
    let mut buf = [0u8; RECORD_MAX];
    let len = rustix::fs::fgetxattr(dir, RECORD, &mut buf[..]);
    parse(len.map(|len| &buf[..len]), ino)
}

/// [`read`] for the variant's directory at `path` (not followed if a symbolic link).
pub fn read_at(path: &CStr, ino: u64) -> Record {
    let mut buf = [0u8; RECORD_MAX];
    let len = rustix::fs::lgetxattr(path, RECORD, &mut buf[..]);
    parse(len.map(|len| &buf[..len]), ino)
}

/// What a record's value (or the error reading it gave) says of the entry with inode `ino`.
fn parse(value: Result<&[u8], Errno>, ino: u64) -> Record {
    let value = match value {
        Ok(value) => value,
        Err(Errno::OPNOTSUPP) => return Record::Synced,
        // ENODATA (none), ERANGE (longer than any this launcher writes), anything else.
        Err(_) => return Record::Unknown,
    };
    let mut digits = [0u8; 16];
    hex(&mut digits, ino);
    let Some(rest) = value
        .strip_prefix(&digits[..])
        .and_then(|rest| rest.strip_prefix(b":"))
    else {
        return Record::Unknown;
    };
    if rest == SYNCED {
        return Record::Synced;
    }
    match <[u8; BOOT_ID_LEN]>::try_from(rest) {
        Ok(id) => Record::InBoot(id),
        Err(_) => Record::Unknown,
    }
}

/// Records that the entry with inode `ino` is good in `boot` (`None`: synced, good in every
/// boot). Through the directory's descriptor, never by path.
pub fn write(dir: &impl AsFd, ino: u64, boot: Option<&Boot>) -> Result<(), Errno> {
    let mut value = [0u8; RECORD_MAX];
    hex(&mut value[..16], ino);
    value[16] = b':';
    let tail: &[u8] = boot.map_or(SYNCED, |boot| &boot.id[..]);
    let end = 17 + tail.len();
    value[17..end].copy_from_slice(tail);
    rustix::fs::fsetxattr(dir, RECORD, &value[..end], XattrFlags::empty())
}

fn hex(out: &mut [u8], value: u64) {
    for (i, digit) in out.iter_mut().take(16).enumerate() {
        *digit = b"0123456789abcdef"[(value >> (60 - 4 * i)) as usize & 15];
    }
}
