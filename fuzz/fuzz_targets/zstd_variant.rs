//! The stored bytes of a zstd-encoded variant, optionally with a dictionary, through the same
//! steps as the launcher's `runtime/src/launcher/zstd.rs` (which cannot be compiled in here: it
//! defines the C allocator's symbols for the libc-free launcher): split into frames by
//! `ZSTD_findFrameCompressedSize` and `ZSTD_getFrameContentSize`, the frames tiled over the
//! output with the launcher's own `Frames` (compiled in), each decoded by a static context into
//! exactly its range. Input: two bytes of dictionary length, the dictionary, the stored bytes.

#![no_main]

#[allow(dead_code)]
#[path = "../../runtime/src/launcher/frames.rs"]
mod frames;

use core::ffi::c_void;

use frames::{Frame, Frames};
use libfuzzer_sys::fuzz_target;
use zstd_sys as _;

const MAX_OUTPUT: usize = 1 << 24;

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

/// As `zstd::frames` in the launcher.
fn split(stored: &[u8], frames: &mut Frames) -> Option<()> {
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

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let dict_len = (u16::from_le_bytes(*head) as usize).min(rest.len());
    let (dict, stored) = rest.split_at(dict_len);
    let dict = (!dict.is_empty()).then_some(dict);

    let mut frames = Frames::new();
    if split(stored, &mut frames).is_none() {
        return;
    }
    let list = frames.as_slice();
    let Some(total) = list.iter().try_fold(0usize, |a, f| a.checked_add(f.dst_len)) else {
        return;
    };
    if total > MAX_OUTPUT {
        return;
    }
    assert!(frames.tile(total));
    let mut out = vec![0u8; total];
    // SAFETY: a pure function of the library's build.
    let work_len = unsafe { ZSTD_estimateDCtxSize() };
    let mut workspace = vec![0u64; work_len.div_ceil(8)];
    for f in list {
        let src = &stored[f.src..f.src + f.src_len];
        assert!(f.dst + f.dst_len <= out.len());
        // SAFETY: the workspace is `work_len` bytes, 8-byte aligned; the output range lies
        // inside `out`; libzstd reads only inside `src` and `dict`.
        let written = unsafe {
            let dctx = ZSTD_initStaticDCtx(workspace.as_mut_ptr().cast(), work_len);
            assert!(!dctx.is_null());
            let dst = out.as_mut_ptr().add(f.dst).cast();
            match dict {
                None => ZSTD_decompressDCtx(dctx, dst, f.dst_len, src.as_ptr().cast(), src.len()),
                Some(d) => ZSTD_decompress_usingDict(
                    dctx,
                    dst,
                    f.dst_len,
                    src.as_ptr().cast(),
                    src.len(),
                    d.as_ptr().cast(),
                    d.len(),
                ),
            }
        };
        // SAFETY: a pure function.
        if unsafe { ZSTD_isError(written) } != 0 {
            return;
        }
        // The launcher accepts a frame only if it fills its range exactly.
        assert!(written <= f.dst_len);
        if written != f.dst_len {
            return;
        }
    }
});
