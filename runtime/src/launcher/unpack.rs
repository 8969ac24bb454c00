//! The direct path for a compressed variant: its frames are decoded straight into the program's
//! own segments, at their addresses, and the launcher jumps to it as for a stored variant. No
//! memfd, no second exec, no copy after decoding, and nothing decoded that no segment loads.
//!
//! The packer cuts an ELF variant's frames at its segments' file boundaries, after a first frame
//! that holds only the ELF header and program headers. So the launcher decodes that head frame
//! on its own (on the stack), checks the layout as it checks a stored variant, reserves the
//! program's address range, maps each segment as zeroed anonymous memory, and decodes every
//! other frame (on all its threads) to the address where its bytes belong; frames outside every
//! segment (symbol tables, debug information) are skipped. Then each segment gets its own
//! protection and the program is entered as in `direct.rs`.
//!
//! The variant's content hash covers the whole file, which is not decoded here; instead the
//! stored (compressed) bytes are checked against the entry's `stored_hash` before anything is
//! decoded, and the decoders are deterministic, so the bytes placed are the bytes packed. A
//! dictionary entry's compressed base is checked the same way.

use mgo_format::direct::{self, NotDirect, HEAD_FRAME, PF_W, PF_X};
use mgo_format::{content_hash, Bundle, Encoding, Entry};
use rustix::io::Errno;
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};

use crate::decode::codec::{list_frames, Decoders, Dictionary};
use crate::decode::Spoiled;
use crate::frames::{Frame, Frames};
use crate::par;
use crate::refusal::Refusal;
use crate::segments::{release, reserve};
use crate::start::StartInfo;

/// Decodes `entry` into its segments, then hands the placed image and its load bias to `then`
/// (which enters it, or returns why not). Returns only if the program did not start, with the
/// process as it was.
pub fn place(
    start: &StartInfo,
    bundle: &Bundle<'_>,
    entry: &Entry,
    then: impl FnOnce(&direct::Image<'_>, u64) -> Refusal,
) -> Refusal {
    let page = start.page_size();
    let machine = bundle.arch.elf_machine();
    if let Err(refusal) = stored_bytes_intact(bundle, entry) {
        return refusal;
    }
    let mut frames = Frames::new();
    let Ok(original_len) = usize::try_from(entry.original_len) else {
        return Refusal::Damaged;
    };
    if list_frames(bundle, entry, &mut frames).is_none() || !frames.tile(original_len) {
        return Refusal::Damaged;
    }
    let frames = frames.as_slice();
    let Some(&head_frame) = frames.first().filter(|f| f.dst_len <= HEAD_FRAME) else {
        return Refusal::Layout(NotDirect::HeadFrame);
    };
    let decoders = match Decoders::new(entry.encoding, par::threads_for(frames.len())) {
        Ok(decoders) => decoders,
        Err(e) => return Refusal::Map(e),
    };
    let dict = match Dictionary::for_entry(bundle, entry, &decoders) {
        Ok(dict) => dict,
        Err(_) => return Refusal::Damaged,
    };
    let stored = bundle.stored(entry);
    let mut head = [0u8; HEAD_FRAME];
    // SAFETY: slot 0 is this thread's, and no helper thread exists yet; `head` has room for the
    // frame (checked above).
    let decoded = unsafe {
        decoders.decode_one(
            0,
            &stored[head_frame.src..head_frame.src + head_frame.src_len],
            head.as_mut_ptr(),
            head_frame.dst_len,
            dict.bytes(),
        )
    };
    if !decoded {
        return Refusal::Damaged;
    }
    let head = &head[..head_frame.dst_len];
    let image = match direct::check_head(head, entry.original_len, machine, page) {
        Ok(image) => image,
        Err(why) => return Refusal::Layout(why),
    };
    // Where each frame goes, before anything is mapped: a frame with no single place refuses the
    // whole variant.
    let mut places = [None; crate::frames::MAX_FRAMES];
    for (place, f) in places.iter_mut().zip(frames) {
        match direct::place(&image, f.dst as u64, f.dst_len as u64) {
            Ok(at) => *place = at,
            Err(why) => return Refusal::Layout(why),
        }
    }
    let bias = match reserve(&image, page) {
        Ok(bias) => bias,
        Err(e) => return Refusal::Map(e),
    };
    let placed = map_zeroed(&image, page, bias)
        .map_err(Refusal::Map)
        .and_then(|()| {
            let target = |i: usize, _: &Frame| Some((places[i]? + bias) as usize as *mut u8);
            decoders
                .run(entry, stored, frames, &target, dict.bytes())
                .map_err(|failure| match failure {
                    // No memory for the pages: say so, rather than blame the bundle.
                    Spoiled::Copy(_, e) => Refusal::Map(e),
                    _ => Refusal::Damaged,
                })?;
            protect(&image, page, bias).map_err(Refusal::Map)
        });
    // The decoders' memory and a decoded dictionary are the launcher's, not the program's.
    drop(decoders);
    drop(dict);
    let refusal = match placed {
        Ok(()) => then(&image, bias),
        Err(refusal) => refusal,
    };
    release(&image, bias);
    refusal
}

/// Checks the entry's stored bytes, and a compressed dictionary base's, against their hashes.
fn stored_bytes_intact(bundle: &Bundle<'_>, entry: &Entry) -> Result<(), Refusal> {
    let intact = |e: &Entry| {
        if e.stored_hash == 0 {
            Err(Refusal::Layout(NotDirect::NoStoredHash))
        } else if content_hash(bundle.stored(e)) != e.stored_hash {
            Err(Refusal::Damaged)
        } else {
            Ok(())
        }
    };
    intact(entry)?;
    if entry.encoding != Encoding::ZstdDictionary {
        return Ok(());
    }
    match bundle.entry(entry.dictionary as usize) {
        Ok(base) if base.encoding == Encoding::Stored => Ok(()),
        Ok(base) => intact(&base),
        Err(_) => Err(Refusal::Damaged),
    }
}

/// Maps every loadable segment as zeroed, writable anonymous memory over the reservation.
fn map_zeroed(image: &direct::Image<'_>, page: u64, bias: u64) -> Result<(), Errno> {
    for (start, len, _) in spans(image, page, bias) {
        // SAFETY: inside the reservation made for this image (segments checked disjoint and
        // within lo..hi); nothing else lives there.
        unsafe {
            let at = rustix::mm::mmap_anonymous(
                start as *mut _,
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::FIXED,
            )?;
            // Transparent huge pages where the system allows them on request: fewer faults while
            // decoding, fewer TLB misses while the program runs.
            let _ = rustix::mm::madvise(at, len, rustix::mm::Advice::LinuxHugepage);
        }
    }
    Ok(())
}

/// Gives each segment its own protection, now that its bytes are in place.
fn protect(image: &direct::Image<'_>, page: u64, bias: u64) -> Result<(), Errno> {
    for (start, len, flags) in spans(image, page, bias) {
        let mut prot = MprotectFlags::READ;
        if flags & PF_W != 0 {
            prot |= MprotectFlags::WRITE;
        }
        if flags & PF_X != 0 {
            prot |= MprotectFlags::EXEC;
        }
        if prot != MprotectFlags::READ | MprotectFlags::WRITE {
            // SAFETY: a segment mapped by `map_zeroed`; only its protection changes.
            unsafe { rustix::mm::mprotect(start as *mut _, len, prot)? };
        }
    }
    Ok(())
}

/// Each loadable segment's pages: (address, length, `p_flags`).
fn spans<'a>(
    image: &'a direct::Image<'a>,
    page: u64,
    bias: u64,
) -> impl Iterator<Item = (usize, usize, u32)> + 'a {
    let mask = page - 1;
    image.loads().map(move |ph| {
        let start = (ph.p_vaddr + bias) & !mask;
        let end = (ph.p_vaddr + bias + ph.p_memsz + mask) & !mask;
        (start as usize, (end - start) as usize, ph.p_flags)
    })
}
