//! Putting the chosen variant's bytes into the exec target, checked against its content hash.
//!
//! A stored variant is copied with `write`. A compressed one is decoded straight into the memfd:
//! the memfd is sized to the variant, mapped shared and writable, and each of the variant's
//! independent frames is decoded into its own part of that mapping, on as many threads as there
//! are frames and CPUs. Nothing is decoded twice and nothing is copied after decoding: the
//! decoder's output is the program's page cache. The whole result is hashed before the mapping is
//! dropped and the memfd sealed; bytes that fail the hash or did not decode are never executed.
//!
//! Dictionary mode: a variant encoded against another one (the base) needs the base's bytes as
//! they were. A stored base is used where it lies in the mapped bundle; a compressed base is
//! first decoded into a temporary anonymous mapping, released before exec.
//!
//! Memory held during a launch: the variant itself (the memfd), a decoder workspace per thread
//! (libzstd's context, about 160 KiB, or libdeflate's, 11 KiB, plus a 128 KiB stack per helper
//! thread, touched only as deep as used), and in dictionary mode with a compressed base, the
//! base's size until the variant is decoded.

use mgo_format::{Bundle, ContentHasher, Encoding, Entry};
use rustix::fd::{AsFd, OwnedFd};

use crate::launch::{write_all, Failure};

/// Copy and hash in chunks small enough to stay in cache between the hash and the copy.
const CHUNK: usize = 128 * 1024;

/// Whether this launcher image carries a decoder for `encoding`.
pub fn supports(encoding: Encoding) -> bool {
    match encoding {
        Encoding::Stored => true,
        Encoding::Zstd | Encoding::ZstdDictionary => cfg!(feature = "zstd"),
        Encoding::Deflate => cfg!(feature = "deflate"),
    }
}

/// Writes the variant's original bytes into `target`, failing if they do not match the hash.
pub fn write_variant(target: &OwnedFd, bundle: &Bundle<'_>, entry: &Entry) -> Result<(), Failure> {
    if entry.encoding == Encoding::Stored {
        return copy_checked(target, bundle.stored(entry), entry);
    }
    codec::decode_into_memfd(target, bundle, entry)
}

/// `MGODEBUG=extract` for a compressed variant: decodes it (into anonymous memory) and writes it
/// to stdout, only if it matches its hash.
pub fn extract(bundle: &Bundle<'_>, entry: &Entry) -> Result<(), Failure> {
    codec::extract(bundle, entry)
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

#[cfg(not(any(feature = "zstd", feature = "deflate")))]
mod codec {
    use super::*;

    pub fn decode_into_memfd(_: &OwnedFd, _: &Bundle<'_>, entry: &Entry) -> Result<(), Failure> {
        Err(Failure::UnsupportedEncoding(entry.encoding))
    }

    pub fn extract(_: &Bundle<'_>, entry: &Entry) -> Result<(), Failure> {
        Err(Failure::UnsupportedEncoding(entry.encoding))
    }
}

#[cfg(any(feature = "zstd", feature = "deflate"))]
mod codec {
    use core::ffi::c_void;
    use core::sync::atomic::{AtomicI32, Ordering};

    use mgo_format::{content_hash, Bundle, Encoding, Entry};
    use rustix::fd::{BorrowedFd, OwnedFd};
    use rustix::io::Errno;
    use rustix::mm::{MapFlags, ProtFlags};

    use crate::frames::{Frame, Frames};
    use crate::launch::{write_all, Failure};
    use crate::par::{self, Slots};

    /// A writable mapping: of the memfd (shared, so that the writes are the memfd's pages) or
    /// anonymous memory. Unmapped on drop: a memfd cannot take `F_SEAL_WRITE` while a writable
    /// shared mapping of it exists.
    struct Mapping {
        ptr: *mut u8,
        len: usize,
    }

    impl Mapping {
        fn memfd(fd: &OwnedFd, len: usize) -> Result<Mapping, Errno> {
            rustix::fs::ftruncate(fd, len as u64)?;
            // SAFETY: a fresh shared mapping of the whole memfd, which nothing else maps.
            let ptr = unsafe {
                rustix::mm::mmap(
                    core::ptr::null_mut(),
                    len,
                    ProtFlags::READ | ProtFlags::WRITE,
                    MapFlags::SHARED,
                    fd,
                    0,
                )?
            };
            Ok(Mapping {
                ptr: ptr.cast(),
                len,
            })
        }

        fn anonymous(len: usize) -> Result<Mapping, Errno> {
            // SAFETY: a fresh private anonymous mapping; asking for transparent huge pages only
            // changes how the kernel backs it (one fault per 2 MiB instead of per 4 KiB, where
            // THP is enabled for madvise).
            let ptr = unsafe {
                let ptr = rustix::mm::mmap_anonymous(
                    core::ptr::null_mut(),
                    len,
                    ProtFlags::READ | ProtFlags::WRITE,
                    MapFlags::PRIVATE,
                )?;
                let _ = rustix::mm::madvise(ptr, len, rustix::mm::Advice::LinuxHugepage);
                ptr
            };
            Ok(Mapping {
                ptr: ptr.cast(),
                len,
            })
        }

        fn bytes(&self) -> &[u8] {
            // SAFETY: the mapping is `len` readable bytes for as long as self lives; writers
            // (the decoding threads) have all finished when this is called.
            unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
        }
    }

    impl Drop for Mapping {
        fn drop(&mut self) {
            // SAFETY: the mapping made in the constructor; no borrow of it outlives self.
            unsafe {
                let _ = rustix::mm::munmap(self.ptr.cast::<c_void>(), self.len);
            }
        }
    }

    fn variant_len(entry: &Entry) -> Result<usize, Failure> {
        // An empty variant cannot be mapped; no ELF program is empty anyway.
        match usize::try_from(entry.original_len) {
            Ok(len) if len > 0 => Ok(len),
            _ => Err(Failure::Corrupt(entry.level)),
        }
    }

    pub fn decode_into_memfd(
        memfd: &OwnedFd,
        bundle: &Bundle<'_>,
        entry: &Entry,
    ) -> Result<(), Failure> {
        let len = variant_len(entry)?;
        let out = Mapping::memfd(memfd, len).map_err(Failure::Copy)?;
        decode_checked(bundle, entry, &out)
    }

    pub fn extract(bundle: &Bundle<'_>, entry: &Entry) -> Result<(), Failure> {
        let len = variant_len(entry)?;
        let out = Mapping::anonymous(len).map_err(Failure::Copy)?;
        decode_checked(bundle, entry, &out)?;
        // SAFETY: descriptor 1 is the launcher's stdout, open for the whole call or invalid.
        let stdout = unsafe { BorrowedFd::borrow_raw(1) };
        write_all(stdout, out.bytes()).map_err(Failure::Extract)
    }

    fn decode_checked(bundle: &Bundle<'_>, entry: &Entry, out: &Mapping) -> Result<(), Failure> {
        match entry.encoding {
            Encoding::ZstdDictionary => {
                let base = bundle
                    .entry(entry.dictionary as usize)
                    .map_err(Failure::Bundle)?;
                match base.encoding {
                    Encoding::Stored => decode(bundle, entry, out, Some(bundle.stored(&base)))?,
                    // A dictionary that itself needs a dictionary: the packer never chains them.
                    Encoding::ZstdDictionary => return Err(Failure::Corrupt(base.level)),
                    _ => {
                        let temp =
                            Mapping::anonymous(variant_len(&base)?).map_err(Failure::Copy)?;
                        // The base's own hash is not checked: any wrong byte of it that the
                        // variant uses makes the variant fail its hash below.
                        decode(bundle, &base, &temp, None)?;
                        decode(bundle, entry, out, Some(temp.bytes()))?;
                    }
                }
            }
            _ => decode(bundle, entry, out, None)?,
        }
        if content_hash(out.bytes()) != entry.content_hash {
            return Err(Failure::Corrupt(entry.level));
        }
        Ok(())
    }

    /// The output pointer, shared by the threads; each writes only its frames' ranges.
    struct Output {
        ptr: *mut u8,
        /// The first error from allocating the output's pages, if any.
        errno: AtomicI32,
    }
    // SAFETY: the frames' output ranges are disjoint (checked by `Frames::tile`), so threads
    // never write the same byte.
    unsafe impl Sync for Output {}

    impl Output {
        fn at(&self, offset: usize) -> *mut u8 {
            self.ptr.wrapping_add(offset)
        }

        /// Allocates the pages of `offset..offset + len` now, in one system call, instead of
        /// one page fault per page during decoding; each thread does it for its own frames, so
        /// the kernel's page allocation and zeroing run in parallel too. It also turns a lack
        /// of memory or space (a full tmpfs behind a file target) into an error here, where
        /// decoding through the mapping would die of SIGBUS. Kernels before 5.14 answer EINVAL:
        /// then the pages come with the writes, as usual.
        fn populate(&self, offset: usize, len: usize) -> bool {
            let start = offset & !(PAGE - 1);
            let end = (offset + len).div_ceil(PAGE) * PAGE;
            // SAFETY: the range lies inside the mapping (its end rounded up to a page, which
            // the mapping covers); populating pages does not change their contents.
            let result = unsafe {
                rustix::mm::madvise(
                    self.ptr.wrapping_add(start).cast(),
                    end - start,
                    rustix::mm::Advice::LinuxPopulateWrite,
                )
            };
            match result {
                Ok(()) | Err(Errno::INVAL) => true,
                Err(e) => {
                    let _ = self.errno.compare_exchange(
                        0,
                        e.raw_os_error(),
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    false
                }
            }
        }

        fn failure(&self) -> Option<Failure> {
            match self.errno.load(Ordering::Relaxed) {
                0 => None,
                raw => Some(Failure::Copy(Errno::from_raw_os_error(raw))),
            }
        }
    }

    const PAGE: usize = 4096;

    /// Decodes `entry`'s frames into `out` (exactly its length), on several threads if it has
    /// several frames.
    fn decode(
        bundle: &Bundle<'_>,
        entry: &Entry,
        out: &Mapping,
        dict: Option<&[u8]>,
    ) -> Result<(), Failure> {
        let damaged = Failure::Corrupt(entry.level);
        let stored = bundle.stored(entry);
        let mut frames = Frames::new();
        let listed = match entry.encoding {
            #[cfg(feature = "zstd")]
            Encoding::Zstd | Encoding::ZstdDictionary => crate::zstd::frames(stored, &mut frames),
            #[cfg(feature = "deflate")]
            Encoding::Deflate => crate::deflate::frames(stored, &mut frames),
            other => return Err(Failure::UnsupportedEncoding(other)),
        };
        if listed.is_none() || !frames.tile(out.len) {
            return Err(damaged);
        }
        let frames = frames.as_slice();
        let threads = par::threads_for(frames.len());
        let output = Output {
            ptr: out.ptr,
            errno: AtomicI32::new(0),
        };
        let ok = match entry.encoding {
            #[cfg(feature = "deflate")]
            Encoding::Deflate => {
                // Gzip has no dictionary mode: `decode_checked` passes a dictionary only for
                // zstd-dict entries.
                let _ = dict;
                let slots =
                    Slots::new(threads, crate::deflate::WORKSPACE).map_err(Failure::Copy)?;
                let mut decoders = [None; par::MAX_THREADS];
                for (i, d) in decoders.iter_mut().enumerate().take(slots.count()) {
                    // SAFETY: each slot's workspace is WORKSPACE bytes that outlive the run.
                    *d = unsafe { crate::deflate::place(slots.workspace(i)) };
                }
                let job = |slot: usize, i: usize| {
                    let f: &Frame = &frames[i];
                    let Some(d) = decoders[slot] else {
                        return false;
                    };
                    if !output.populate(f.dst, f.dst_len) {
                        return false;
                    }
                    // SAFETY: the slot's decompressor serves only this thread; the frame's
                    // output range lies inside the mapping and no other job writes it.
                    unsafe {
                        crate::deflate::decode(
                            d,
                            &stored[f.src..f.src + f.src_len],
                            output.at(f.dst),
                            f.dst_len,
                        )
                    }
                };
                par::run(&slots, frames.len(), &job)
            }
            #[cfg(feature = "zstd")]
            _ => {
                let work = crate::zstd::workspace_len();
                let slots = Slots::new(threads, work).map_err(Failure::Copy)?;
                let job = |slot: usize, i: usize| {
                    let f: &Frame = &frames[i];
                    if !output.populate(f.dst, f.dst_len) {
                        return false;
                    }
                    // SAFETY: the slot's workspace serves only this thread and is `work` bytes,
                    // page-aligned; the frame's output range lies inside the mapping and no other
                    // job writes it.
                    unsafe {
                        crate::zstd::decode(
                            slots.workspace(slot),
                            work,
                            &stored[f.src..f.src + f.src_len],
                            output.at(f.dst),
                            f.dst_len,
                            dict,
                        )
                    }
                };
                par::run(&slots, frames.len(), &job)
            }
            #[cfg(not(feature = "zstd"))]
            _ => false,
        };
        match (ok, output.failure()) {
            (true, _) => Ok(()),
            (false, Some(failure)) => Err(failure),
            (false, None) => Err(damaged),
        }
    }
}
