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
//!
//! The decoders ([`codec::Decoders`]) and the dictionary ([`codec::Dictionary`]) serve the direct
//! path too (`unpack.rs`), which decodes frames to addresses in the program's segments instead of
//! offsets in a memfd.

use mgo_format::{Bundle, ContentHasher, Encoding, Entry};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;

use crate::report::write_all;

/// Why a variant's bytes could not be put in place.
#[derive(Clone, Copy)]
pub enum Spoiled {
    /// They are not the bytes that were packed (level of the variant): nothing may run them.
    Damaged(u32),
    /// Writing them failed at `Step`: another place may take them.
    Copy(Step, Errno),
}

/// Which part of writing a program into its target failed (a launcher without decoders only
/// writes).
#[derive(Clone, Copy)]
#[cfg_attr(not(any(feature = "zstd", feature = "deflate")), allow(dead_code))]
pub enum Step {
    Write,
    Ftruncate,
    Mmap,
    /// Allocating the pages to decode into.
    Memory,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Write => "write",
            Step::Ftruncate => "ftruncate",
            Step::Mmap => "mmap",
            Step::Memory => "allocating memory",
        }
    }
}

/// Copy and hash in chunks small enough to stay in cache between the hash and the copy.
const CHUNK: usize = 128 * 1024;

/// A file is written in writes this long (each hashed just before it is written), because the
/// page cache sizes a file's folios by the writes that filled it: written 128 KiB at a time, a
/// cache entry sits in 128 KiB folios, and a program exec'd from it starts slower than from the
/// same bytes written in 2 MiB writes, which fill 2 MiB folios that the kernel maps with fewer
/// faults (docs/ARCHITECTURE.md, "What a warm start costs beyond its floor").
const FILE_WRITE: usize = 2 * 1024 * 1024;

/// Whether this launcher image carries a decoder for `encoding`.
pub fn supports(encoding: Encoding) -> bool {
    match encoding {
        Encoding::Stored => true,
        Encoding::Zstd | Encoding::ZstdDictionary => cfg!(feature = "zstd"),
        Encoding::Deflate => cfg!(feature = "deflate"),
    }
}

/// Writes the variant's original bytes into `target`, failing if they do not match the hash.
pub fn write_variant(target: &OwnedFd, bundle: &Bundle<'_>, entry: &Entry) -> Result<(), Spoiled> {
    if entry.encoding == Encoding::Stored {
        return copy_checked(target, bundle.stored(entry), entry, CHUNK);
    }
    codec::decode_into_memfd(target, bundle, entry)
}

/// Writes the variant's original bytes into the regular file `file` with `write`, failing if they
/// do not match the hash: a compressed one is decoded into anonymous memory first. Not through a
/// mapping of the file: the page cache keeps pages written through a mapping as single pages,
/// and a program exec'd from such a file starts measurably slower (13% for `go version`) than
/// from one written with `write`, which the file system caches in large folios.
pub fn write_variant_to_file(
    file: &OwnedFd,
    bundle: &Bundle<'_>,
    entry: &Entry,
) -> Result<(), Spoiled> {
    if entry.encoding == Encoding::Stored {
        return copy_checked(file, bundle.stored(entry), entry, FILE_WRITE);
    }
    codec::decode_and_write(file.as_fd(), bundle, entry)
}

/// `MGODEBUG=extract`: writes the variant to stdout, only if it matches its hash (a compressed one
/// is decoded into anonymous memory first).
pub fn extract(bundle: &Bundle<'_>, entry: &Entry) -> Result<(), Spoiled> {
    if entry.encoding != Encoding::Stored {
        return codec::extract(bundle, entry);
    }
    let data = bundle.stored(entry);
    if mgo_format::content_hash(data) != entry.content_hash {
        return Err(Spoiled::Damaged(entry.level));
    }
    write_all(stdout(), data).map_err(|e| Spoiled::Copy(Step::Write, e))
}

fn stdout() -> BorrowedFd<'static> {
    // SAFETY: descriptor 1 is the launcher's stdout, open for the whole call or invalid (EBADF).
    unsafe { BorrowedFd::borrow_raw(1) }
}

/// Copies `data` into `target` in writes of `write_len` bytes, each hashed just before it is
/// written.
fn copy_checked(
    target: &OwnedFd,
    data: &[u8],
    entry: &Entry,
    write_len: usize,
) -> Result<(), Spoiled> {
    let mut hasher = ContentHasher::new();
    for write in data.chunks(write_len) {
        hasher.update(write);
        write_all(target.as_fd(), write).map_err(|e| Spoiled::Copy(Step::Write, e))?;
    }
    if hasher.finish() != entry.content_hash {
        return Err(Spoiled::Damaged(entry.level));
    }
    Ok(())
}

#[cfg(not(any(feature = "zstd", feature = "deflate")))]
mod codec {
    use super::*;

    // `choose` refuses what this launcher cannot decode before anything gets here.
    pub fn decode_into_memfd(_: &OwnedFd, _: &Bundle<'_>, entry: &Entry) -> Result<(), Spoiled> {
        Err(Spoiled::Damaged(entry.level))
    }

    pub fn extract(_: &Bundle<'_>, entry: &Entry) -> Result<(), Spoiled> {
        Err(Spoiled::Damaged(entry.level))
    }

    pub fn decode_and_write(
        _: BorrowedFd<'_>,
        _: &Bundle<'_>,
        entry: &Entry,
    ) -> Result<(), Spoiled> {
        Err(Spoiled::Damaged(entry.level))
    }
}

#[cfg(any(feature = "zstd", feature = "deflate"))]
pub mod codec {
    use core::ffi::c_void;
    use core::sync::atomic::{AtomicI32, Ordering};

    use mgo_format::{content_hash, Bundle, Encoding, Entry};
    use rustix::fd::{BorrowedFd, OwnedFd};
    use rustix::io::Errno;
    use rustix::mm::{MapFlags, ProtFlags};

    use super::{stdout, Spoiled, Step};
    use crate::frames::{Frame, Frames};
    use crate::par::{self, Slots};
    use crate::report::write_all;

    /// A writable mapping: of the memfd (shared, so that the writes are the memfd's pages) or
    /// anonymous memory. Unmapped on drop: a memfd cannot take `F_SEAL_WRITE` while a writable
    /// shared mapping of it exists.
    pub struct Mapping {
        ptr: *mut u8,
        len: usize,
    }

    impl Mapping {
        fn memfd(fd: &OwnedFd, len: usize) -> Result<Mapping, Spoiled> {
            rustix::fs::ftruncate(fd, len as u64).map_err(|e| Spoiled::Copy(Step::Ftruncate, e))?;
            // SAFETY: a fresh shared mapping of the whole memfd, which nothing else maps.
            let ptr = unsafe {
                rustix::mm::mmap(
                    core::ptr::null_mut(),
                    len,
                    ProtFlags::READ | ProtFlags::WRITE,
                    MapFlags::SHARED,
                    fd,
                    0,
                )
                .map_err(|e| Spoiled::Copy(Step::Mmap, e))?
            };
            Ok(Mapping {
                ptr: ptr.cast(),
                len,
            })
        }

        fn anonymous(len: usize) -> Result<Mapping, Spoiled> {
            // SAFETY: a fresh private anonymous mapping; asking for transparent huge pages only
            // changes how the kernel backs it (one fault per 2 MiB instead of per 4 KiB, where
            // THP is enabled for madvise).
            let ptr = unsafe {
                let ptr = rustix::mm::mmap_anonymous(
                    core::ptr::null_mut(),
                    len,
                    ProtFlags::READ | ProtFlags::WRITE,
                    MapFlags::PRIVATE,
                )
                .map_err(|e| Spoiled::Copy(Step::Mmap, e))?;
                let _ = rustix::mm::madvise(ptr, len, rustix::mm::Advice::LinuxHugepage);
                ptr
            };
            Ok(Mapping {
                ptr: ptr.cast(),
                len,
            })
        }

        pub fn bytes(&self) -> &[u8] {
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

    fn variant_len(entry: &Entry) -> Result<usize, Spoiled> {
        // An empty variant cannot be mapped; no ELF program is empty anyway.
        match usize::try_from(entry.original_len) {
            Ok(len) if len > 0 => Ok(len),
            _ => Err(Spoiled::Damaged(entry.level)),
        }
    }

    pub fn decode_into_memfd(
        memfd: &OwnedFd,
        bundle: &Bundle<'_>,
        entry: &Entry,
    ) -> Result<(), Spoiled> {
        let len = variant_len(entry)?;
        let out = Mapping::memfd(memfd, len)?;
        decode_checked(bundle, entry, &out)
    }

    pub fn extract(bundle: &Bundle<'_>, entry: &Entry) -> Result<(), Spoiled> {
        decode_and_write(stdout(), bundle, entry)
    }

    /// Decodes the variant into anonymous memory, checks its hash, and writes it to `out`.
    pub fn decode_and_write(
        out: BorrowedFd<'_>,
        bundle: &Bundle<'_>,
        entry: &Entry,
    ) -> Result<(), Spoiled> {
        let len = variant_len(entry)?;
        let decoded = Mapping::anonymous(len)?;
        decode_checked(bundle, entry, &decoded)?;
        write_all(out, decoded.bytes()).map_err(|e| Spoiled::Copy(Step::Write, e))
    }

    fn decode_checked(bundle: &Bundle<'_>, entry: &Entry, out: &Mapping) -> Result<(), Spoiled> {
        let mut frames = Frames::new();
        if list_frames(bundle, entry, &mut frames).is_none() {
            return Err(Spoiled::Damaged(entry.level));
        }
        let decoders = Decoders::new(entry.encoding, par::threads_for(frames.as_slice().len()))
            .map_err(|e| Spoiled::Copy(Step::Memory, e))?;
        let dict = Dictionary::for_entry(bundle, entry, &decoders)?;
        decode_whole(&decoders, bundle, entry, &frames, out, dict.bytes())?;
        drop(dict);
        if content_hash(out.bytes()) != entry.content_hash {
            return Err(Spoiled::Damaged(entry.level));
        }
        Ok(())
    }

    /// The raw-content dictionary a zstd-dict entry is decoded against: the base's bytes where
    /// they lie in the bundle if it is stored, else the base decoded into temporary memory.
    pub enum Dictionary<'a> {
        None,
        Stored(&'a [u8]),
        Decoded(Mapping),
    }

    impl<'a> Dictionary<'a> {
        /// A compressed base is decoded with `decoders`, the variant's own (both are zstd), so
        /// that one set of threads and workspaces serves the whole launch.
        pub fn for_entry(
            bundle: &Bundle<'a>,
            entry: &Entry,
            decoders: &Decoders,
        ) -> Result<Dictionary<'a>, Spoiled> {
            if entry.encoding != Encoding::ZstdDictionary {
                return Ok(Dictionary::None);
            }
            let base = bundle
                .entry(entry.dictionary as usize)
                .map_err(|_| Spoiled::Damaged(entry.level))?;
            match base.encoding {
                Encoding::Stored => Ok(Dictionary::Stored(bundle.stored(&base))),
                // A dictionary that itself needs a dictionary: the packer never chains them.
                Encoding::ZstdDictionary => Err(Spoiled::Damaged(base.level)),
                _ => {
                    let temp = Mapping::anonymous(variant_len(&base)?)?;
                    // The base's own content hash is not checked: any wrong byte of it that the
                    // variant uses makes the variant fail its own check.
                    let mut frames = Frames::new();
                    if list_frames(bundle, &base, &mut frames).is_none() {
                        return Err(Spoiled::Damaged(base.level));
                    }
                    decode_whole(decoders, bundle, &base, &frames, &temp, None)?;
                    Ok(Dictionary::Decoded(temp))
                }
            }
        }

        pub fn bytes(&self) -> Option<&[u8]> {
            match self {
                Dictionary::None => None,
                Dictionary::Stored(bytes) => Some(bytes),
                Dictionary::Decoded(mapping) => Some(mapping.bytes()),
            }
        }
    }

    /// Lists `entry`'s frames; `None` if its stored bytes are not frames of its encoding.
    pub fn list_frames(bundle: &Bundle<'_>, entry: &Entry, frames: &mut Frames) -> Option<()> {
        crate::own_image::check_decoders();
        let stored = bundle.stored(entry);
        match entry.encoding {
            #[cfg(feature = "zstd")]
            Encoding::Zstd | Encoding::ZstdDictionary => crate::zstd::frames(stored, frames),
            #[cfg(feature = "deflate")]
            Encoding::Deflate => crate::deflate::frames(stored, frames),
            _ => None,
        }
    }

    /// Decodes all of `entry`, whose frames are `frames`, into `out` (exactly its length).
    fn decode_whole(
        decoders: &Decoders,
        bundle: &Bundle<'_>,
        entry: &Entry,
        frames: &Frames,
        out: &Mapping,
        dict: Option<&[u8]>,
    ) -> Result<(), Spoiled> {
        if !frames.tile(out.len) {
            return Err(Spoiled::Damaged(entry.level));
        }
        let frames = frames.as_slice();
        let base = out.ptr as usize;
        decoders.run(
            entry,
            bundle.stored(entry),
            frames,
            &|_, f: &Frame| Some((base + f.dst) as *mut u8),
            dict,
        )
    }

    /// One decoder per thread, each in its own slot's workspace.
    pub struct Decoders {
        slots: Slots,
        encoding: Encoding,
        #[cfg_attr(not(feature = "zstd"), allow(dead_code))]
        work: usize,
        #[cfg(feature = "deflate")]
        deflate: [Option<crate::deflate::Decompressor>; par::MAX_THREADS],
    }

    impl Decoders {
        /// Decoders for `encoding` on up to `threads` threads. Call from the launcher's own
        /// thread, before any helper exists.
        pub fn new(encoding: Encoding, threads: usize) -> Result<Decoders, Errno> {
            crate::own_image::check_decoders();
            let work = match encoding {
                #[cfg(feature = "deflate")]
                Encoding::Deflate => crate::deflate::WORKSPACE,
                #[cfg(feature = "zstd")]
                Encoding::Zstd | Encoding::ZstdDictionary => crate::zstd::workspace_len(),
                _ => return Err(Errno::NOSYS),
            };
            let slots = Slots::new(threads, work)?;
            #[cfg(feature = "deflate")]
            let mut deflate = [None; par::MAX_THREADS];
            #[cfg(feature = "deflate")]
            if encoding == Encoding::Deflate {
                for (i, d) in deflate.iter_mut().enumerate().take(slots.count()) {
                    // SAFETY: each slot's workspace is WORKSPACE bytes that outlive the run.
                    *d = unsafe { crate::deflate::place(slots.workspace(i)) };
                }
            }
            Ok(Decoders {
                slots,
                encoding,
                work,
                #[cfg(feature = "deflate")]
                deflate,
            })
        }

        /// Decodes one frame into exactly `dst_len` bytes at `dst`, on `slot`'s decoder.
        ///
        /// # Safety
        /// Only the thread that owns `slot` calls this; `dst` is `dst_len` writable bytes that
        /// no other thread touches meanwhile.
        pub unsafe fn decode_one(
            &self,
            slot: usize,
            src: &[u8],
            dst: *mut u8,
            dst_len: usize,
            dict: Option<&[u8]>,
        ) -> bool {
            match self.encoding {
                #[cfg(feature = "deflate")]
                Encoding::Deflate => {
                    // Gzip has no dictionary mode: only zstd-dict entries come with one.
                    let _ = dict;
                    let Some(d) = self.deflate[slot] else {
                        return false;
                    };
                    // SAFETY: as the caller promises; the decompressor is the slot's alone.
                    unsafe { crate::deflate::decode(d, src, dst, dst_len) }
                }
                #[cfg(feature = "zstd")]
                Encoding::Zstd | Encoding::ZstdDictionary => {
                    // SAFETY: as the caller promises; the workspace is the slot's alone, `work`
                    // bytes, page-aligned.
                    unsafe {
                        crate::zstd::decode(
                            self.slots.workspace(slot),
                            self.work,
                            src,
                            dst,
                            dst_len,
                            dict,
                        )
                    }
                }
                _ => false,
            }
        }

        /// Decodes every frame that `place` (given its index) gives an address to (`None`: skip it) on all the
        /// decoders' threads at once. The frames' destinations must be disjoint and writable.
        pub fn run(
            &self,
            entry: &Entry,
            stored: &[u8],
            frames: &[Frame],
            place: &(dyn Fn(usize, &Frame) -> Option<*mut u8> + Sync),
            dict: Option<&[u8]>,
        ) -> Result<(), Spoiled> {
            let errno = AtomicI32::new(0);
            let job = |slot: usize, i: usize| {
                let f = &frames[i];
                let Some(dst) = place(i, f) else {
                    return true;
                };
                if !populate(dst, f.dst_len, &errno) {
                    return false;
                }
                // SAFETY: `slot` is this thread's; the frame's destination is disjoint from every
                // other frame's (the caller's promise) and inside writable memory.
                unsafe {
                    self.decode_one(
                        slot,
                        &stored[f.src..f.src + f.src_len],
                        dst,
                        f.dst_len,
                        dict,
                    )
                }
            };
            if par::run(&self.slots, frames.len(), &job) {
                return Ok(());
            }
            match errno.load(Ordering::Relaxed) {
                0 => Err(Spoiled::Damaged(entry.level)),
                raw => Err(Spoiled::Copy(Step::Memory, Errno::from_raw_os_error(raw))),
            }
        }
    }

    const PAGE: usize = 4096;

    /// Allocates the pages of `dst..dst + len` now, in one system call, instead of one page fault
    /// per page during decoding; each thread does it for its own frames, so the kernel's page
    /// allocation and zeroing run in parallel too. It also turns a lack of memory or space (a
    /// full tmpfs behind a file target) into an error here, where decoding through the mapping
    /// would die of SIGBUS. Kernels before 5.14 answer EINVAL: then the pages come with the
    /// writes, as usual.
    fn populate(dst: *mut u8, len: usize, errno: &AtomicI32) -> bool {
        let start = dst as usize & !(PAGE - 1);
        let end = (dst as usize + len).div_ceil(PAGE) * PAGE;
        // SAFETY: the pages hold the frame's destination, which lies inside one writable
        // mapping; populating pages does not change their contents.
        let result = unsafe {
            rustix::mm::madvise(
                start as *mut c_void,
                end - start,
                rustix::mm::Advice::LinuxPopulateWrite,
            )
        };
        match result {
            Ok(()) | Err(Errno::INVAL) => true,
            Err(e) => {
                let _ = errno.compare_exchange(
                    0,
                    e.raw_os_error(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                false
            }
        }
    }
}
