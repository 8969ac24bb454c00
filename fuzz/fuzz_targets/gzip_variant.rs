//! The stored bytes of a gzip-encoded (deflate) variant, through the launcher's own code: its
//! member splitting (`runtime/src/launcher/deflate.rs` and `frames.rs`, compiled in here as they
//! are) and libdeflate decoding each member into exactly the output range the split assigned.
//! Whatever the bytes, the split must stay inside them and tile the output, and decoding must
//! never write outside its range (the sanitizers watch) or crash.

#![no_main]

#[allow(dead_code)]
#[path = "../../runtime/src/launcher/frames.rs"]
mod frames;

#[allow(dead_code)]
#[path = "../../runtime/src/launcher/deflate.rs"]
mod deflate;

use std::sync::OnceLock;

use libdeflate_sys as _;
use libfuzzer_sys::fuzz_target;

/// Outputs larger than this are skipped (the launcher sizes its output from the index; the
/// fuzzer would only spend its time zeroing memory).
const MAX_OUTPUT: usize = 1 << 24;

struct Decoder {
    _workspace: Box<[u64]>,
    d: deflate::Decompressor,
}

fn decoder() -> deflate::Decompressor {
    static DECODER: OnceLock<Decoder> = OnceLock::new();
    DECODER
        .get_or_init(|| {
            let mut workspace = vec![0u64; deflate::WORKSPACE / 8].into_boxed_slice();
            // SAFETY: WORKSPACE bytes that live as long as the process.
            let d = unsafe { deflate::place(workspace.as_mut_ptr().cast()) }.expect("decompressor");
            Decoder {
                _workspace: workspace,
                d,
            }
        })
        .d
}

fuzz_target!(|stored: &[u8]| {
    let mut frames = frames::Frames::new();
    if deflate::frames(stored, &mut frames).is_none() {
        return;
    }
    let list = frames.as_slice();
    let total = list.iter().map(|f| f.dst_len).sum::<usize>();
    if total > MAX_OUTPUT {
        return;
    }
    assert!(frames.tile(total));
    let mut out = vec![0u8; total];
    for f in list {
        // The launcher slices the stored bytes exactly so.
        let src = &stored[f.src..f.src + f.src_len];
        assert!(f.dst + f.dst_len <= out.len());
        // SAFETY: the range lies inside `out`, which nothing else touches.
        let ok = unsafe { deflate::decode(decoder(), src, out.as_mut_ptr().add(f.dst), f.dst_len) };
        if !ok {
            return;
        }
    }
});
