//! Putting the chosen variant's bytes into the exec target, checked against its content hash.

use mgo_format::{ContentHasher, Entry};
use rustix::fd::{AsFd, OwnedFd};

use crate::launch::{write_all, Failure};

/// Copy and hash in chunks small enough to stay in cache between the hash and the copy.
const CHUNK: usize = 128 * 1024;

/// Writes the variant's original bytes into `target`, failing if they do not match the hash.
pub fn write_variant(target: &OwnedFd, stored: &[u8], entry: &Entry) -> Result<(), Failure> {
    copy_checked(target, stored, entry)
}

fn copy_checked(memfd: &OwnedFd, data: &[u8], entry: &Entry) -> Result<(), Failure> {
    let mut hasher = ContentHasher::new();
    for chunk in data.chunks(CHUNK) {
        hasher.update(chunk);
        write_all(memfd.as_fd(), chunk).map_err(Failure::Copy)?;
    }
    if hasher.finish() != entry.content_hash {
        return Err(Failure::Corrupt(entry.level));
    }
    Ok(())
}
