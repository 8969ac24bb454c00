//! The stored bytes of a zstd-encoded variant, optionally with a dictionary, through the
//! launcher's own code: `runtime/src/launcher/zstd.rs` (compiled in) splits them into frames with
//! `ZSTD_findFrameCompressedSize` and `ZSTD_getFrameContentSize`, the launcher's `Frames` tiles
//! them over the output, and each is decoded by a static context into exactly its range. Input:
//! two bytes of dictionary length, the dictionary, the stored bytes.

#![no_main]

#[allow(dead_code)]
#[path = "../../runtime/src/launcher/frames.rs"]
mod frames;
#[path = "../../runtime/src/launcher/zstd.rs"]
mod zstd;

use frames::Frames;
use libfuzzer_sys::fuzz_target;
use zstd_sys as _;

const MAX_OUTPUT: usize = 1 << 24;

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let dict_len = (u16::from_le_bytes(*head) as usize).min(rest.len());
    let (dict, stored) = rest.split_at(dict_len);
    let dict = (!dict.is_empty()).then_some(dict);

    let mut frames = Frames::new();
    if zstd::frames(stored, &mut frames).is_none() {
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
    let work_len = zstd::workspace_len();
    let mut workspace = vec![0u64; work_len.div_ceil(8)];
    for f in list {
        let src = &stored[f.src..f.src + f.src_len];
        assert!(f.dst + f.dst_len <= out.len());
        // SAFETY: the workspace is `work_len` bytes, 8-byte aligned, used by this thread only;
        // the output range lies inside `out`.
        let decoded = unsafe {
            zstd::decode(
                workspace.as_mut_ptr().cast(),
                work_len,
                src,
                out.as_mut_ptr().add(f.dst),
                f.dst_len,
                dict,
            )
        };
        if !decoded {
            return;
        }
    }
});
