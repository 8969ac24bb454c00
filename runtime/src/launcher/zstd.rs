//! libzstd's own decompressor, compiled from C into the zstd launcher image (see build.rs): the
//! same code, and so the same speed, as the libzstd the packer compresses with. Each thread gets
//! a static decompression context in its workspace, so nothing is ever allocated (`c_alloc.rs`
//! gives libzstd the allocator symbols it links against). Free of launcher-only symbols, so the
//! fuzz target `zstd_variant` compiles this very file.

use core::ffi::c_void;

use crate::frames::{Frame, Frames};

#[allow(non_camel_case_types)]
enum ZSTD_DCtx {}

extern "C" {
    fn ZSTD_estimateDCtxSize() -> usize;
    fn ZSTD_initStaticDCtx(workspace: *mut c_void, size: usize) -> *mut ZSTD_DCtx;
    fn ZSTD_decompressDCtx(
        dctx: *mut ZSTD_DCtx,
        dst: *mut c_void,
        capacity: usize,
        src: *const c_void,
        len: usize,
    ) -> usize;
    fn ZSTD_decompress_usingDict(
        dctx: *mut ZSTD_DCtx,
        dst: *mut c_void,
        capacity: usize,
        src: *const c_void,
        len: usize,
        dict: *const c_void,
        dict_len: usize,
    ) -> usize;
    fn ZSTD_findFrameCompressedSize(src: *const c_void, len: usize) -> usize;
    fn ZSTD_getFrameContentSize(src: *const c_void, len: usize) -> u64;
    fn ZSTD_isError(code: usize) -> u32;
}

/// Bytes of workspace one thread needs.
pub fn workspace_len() -> usize {
    // SAFETY: a pure function of the library's build.
    unsafe { ZSTD_estimateDCtxSize() }
}

/// Splits `stored` into its frames (each must state its content size) and where each one's
/// output goes. Walking the block headers reads a few bytes per 128 KiB block.
pub fn frames(stored: &[u8], frames: &mut Frames) -> Option<()> {
    let mut at = 0;
    let mut out = 0usize;
    while at < stored.len() {
        let rest = &stored[at..];
        // SAFETY: both functions read only inside `rest`.
        let (len, content) = unsafe {
            let len = ZSTD_findFrameCompressedSize(rest.as_ptr().cast(), rest.len());
            if ZSTD_isError(len) != 0 || len > rest.len() {
                return None;
            }
            (len, ZSTD_getFrameContentSize(rest.as_ptr().cast(), len))
        };
        // Unknown (u64::MAX) and error (u64::MAX - 1) sizes fail the conversion below for any
        // variant smaller than 16 EiB, as does a size that does not fit the address space.
        let content = usize::try_from(content).ok()?;
        frames.push(Frame {
            src: at,
            src_len: len,
            dst: out,
            dst_len: content,
        })?;
        at += len;
        out = out.checked_add(content)?;
    }
    Some(())
}

/// Decodes one frame into exactly `dst`, with `dict` (if any) as raw-content dictionary.
///
/// # Safety
/// `workspace` is `workspace_len()` writable bytes, 8-byte aligned, used by no other thread;
/// `dst` is `dst_len` writable bytes that no other thread touches meanwhile.
pub unsafe fn decode(
    workspace: *mut u8,
    workspace_len: usize,
    src: &[u8],
    dst: *mut u8,
    dst_len: usize,
    dict: Option<&[u8]>,
) -> bool {
    // SAFETY: as the caller promises; libzstd writes only inside `dst[..dst_len]` and reads only
    // inside `src` and `dict`. A dictionary without zstd's dictionary magic (an ELF file starts
    // with 0x7f 'E' 'L' 'F') is taken as raw content, the way the packer's `refPrefix` used it.
    unsafe {
        let dctx = ZSTD_initStaticDCtx(workspace.cast(), workspace_len);
        if dctx.is_null() {
            return false;
        }
        let written = match dict {
            None => ZSTD_decompressDCtx(dctx, dst.cast(), dst_len, src.as_ptr().cast(), src.len()),
            Some(dict) => ZSTD_decompress_usingDict(
                dctx,
                dst.cast(),
                dst_len,
                src.as_ptr().cast(),
                src.len(),
                dict.as_ptr().cast(),
                dict.len(),
            ),
        };
        ZSTD_isError(written) == 0 && written == dst_len
    }
}
