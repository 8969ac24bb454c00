//! The direct launch path: no memfd, no copy, no second exec. A stored variant's segments are
//! moved out of the kernel's mapping of the payload region to their addresses (`moved.rs`), a
//! compressed one is decoded straight into them (`unpack.rs`); a dynamically linked program's
//! interpreter is mapped from its own file as the kernel would (`segments.rs`); then the
//! launcher enters the program (`enter.rs`). A stored program's pages are the bundle file's page
//! cache, shared by every running instance.
//!
//! Whatever `mgo_format::direct::check` refuses, and any failure before the jump, leaves the
//! process as it was and the launch goes on through the memfd.

use mgo_format::direct::{self, HEAD_FRAME};
use mgo_format::{Bundle, Encoding, Entry};

use crate::enter::{enter, Placement, Trampoline};
use crate::refusal::Refusal;
use crate::segments::{enter_point, release, reserve};
use crate::start::StartInfo;

/// Starts `entry` on the direct path: a stored variant by moving its pages out of the kernel's
/// mapping of the region, a compressed one by decoding it into its segments. Returns the reason
/// when it cannot (the process then as it was); it does not return when the program started.
/// `ready` runs once the program is in place, just before the jump, for the log lines.
pub fn launch(
    start: &StartInfo,
    bundle: &Bundle<'_>,
    entry: &Entry,
    place: &Placement,
    ready: impl FnOnce(),
) -> Refusal {
    let machine = bundle.arch.elf_machine();
    let page = start.page_size();
    let trampoline = match Trampoline::new(page as usize) {
        Ok(trampoline) => trampoline,
        Err(e) => return Refusal::Map(e),
    };
    if entry.encoding != Encoding::Stored {
        #[cfg(any(feature = "zstd", feature = "deflate"))]
        return crate::unpack::place(start, bundle, entry, |image, bias| {
            match enter_point(image, bias, machine, page) {
                Ok(entered) => enter(start, image, bias, entered, place, trampoline, ready),
                Err(refusal) => refusal,
            }
        });
        // A launcher without decoders refused the entry before getting here.
        #[cfg(not(any(feature = "zstd", feature = "deflate")))]
        return Refusal::Layout(mgo_format::direct::NotDirect::HeadFrame);
    }
    let data = bundle.stored(entry);
    if data.as_ptr() as u64 & (page - 1) != 0 {
        return Refusal::Misaligned;
    }
    // The headers are read from a copy: the variant's first page leaves the region with the
    // rest when the segments are moved.
    let mut head = [0u8; HEAD_FRAME];
    let head_len = data.len().min(HEAD_FRAME);
    head[..head_len].copy_from_slice(&data[..head_len]);
    let image = match direct::check_head(&head[..head_len], data.len() as u64, machine, page) {
        Ok(image) => image,
        Err(why) => return Refusal::Layout(why),
    };
    let bias = match reserve(&image, page) {
        Ok(bias) => bias,
        Err(e) => return Refusal::Map(e),
    };
    // The interpreter first: once the segments are moved, nothing may fail.
    let entered = match enter_point(&image, bias, machine, page) {
        Ok(entered) => entered,
        Err(refusal) => {
            release(&image, bias);
            return refusal;
        }
    };
    if let Err(e) = crate::moved::place(&image, data, page, bias) {
        release(&image, bias);
        return Refusal::Map(e);
    }
    enter(start, &image, bias, entered, place, trampoline, ready)
}
