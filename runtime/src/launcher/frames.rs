//! The independent frames of one compressed variant: where each one's bytes are in the stored
//! data and where its output goes in the variant. The packer writes at most a handful; a bundle
//! with more than the launcher has room for is refused as damaged.

/// Far more than the packer writes (it caps frames at 8 per variant).
pub const MAX_FRAMES: usize = 64;

#[derive(Clone, Copy, Default)]
pub struct Frame {
    /// Offset and length in the stored data.
    pub src: usize,
    pub src_len: usize,
    /// Offset and length in the variant's original bytes.
    pub dst: usize,
    pub dst_len: usize,
}

pub struct Frames {
    list: [Frame; MAX_FRAMES],
    len: usize,
}

impl Frames {
    pub fn new() -> Frames {
        Frames {
            list: [Frame::default(); MAX_FRAMES],
            len: 0,
        }
    }

    /// Appends a frame; `None` when the list is full.
    pub fn push(&mut self, frame: Frame) -> Option<()> {
        *self.list.get_mut(self.len)? = frame;
        self.len += 1;
        Some(())
    }

    pub fn as_slice(&self) -> &[Frame] {
        &self.list[..self.len]
    }

    /// The frames' outputs exactly tile `0..total`, in order.
    pub fn tile(&self, total: usize) -> bool {
        let mut at = 0;
        for frame in self.as_slice() {
            if frame.dst != at {
                return false;
            }
            match at.checked_add(frame.dst_len) {
                Some(next) => at = next,
                None => return false,
            }
        }
        at == total
    }
}
