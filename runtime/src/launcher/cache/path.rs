//! The cache's paths and names: fixed-size, NUL-terminated buffers built without allocation.

use core::ffi::CStr;

use super::why::Unusable;
use crate::own_image::PATH_MAX;

/// The cache's own directory, under the base (`$XDG_CACHE_HOME` or `~/.cache`).
pub const CACHE_DIR: &CStr = c"mgo-pack";
/// In a bundle's directory: a symbolic link to the bundle's path, for `mgo-pack cache list`
/// (never followed by the launcher).
pub const BUNDLE_LINK: &CStr = c"bundle";
/// A bundle's last use is recorded at most this often (seconds).
pub const TOUCH_EVERY: i64 = 24 * 60 * 60;
/// A bundle's entries unused for this long are removed (seconds).
pub const UNUSED_FOR: i64 = 30 * 24 * 60 * 60;
/// The mode of an entry: the user's to read and run, nobody's to change.
pub const ENTRY_MODE: u32 = 0o500;
pub const PRIVATE_DIR: u32 = 0o700;
pub const S_IFMT: u32 = 0o170_000;
pub const S_IFDIR: u32 = 0o040_000;
pub const S_IFREG: u32 = 0o100_000;
pub const S_ISVTX: u32 = 0o1000;
pub const S_ISGID: u32 = 0o2000;

/// An absolute path being built, NUL-terminated, at most `PATH_MAX` with its NUL.
#[derive(Clone, Copy)]
pub(super) struct Path {
    pub(super) buf: [u8; PATH_MAX],
    len: usize,
}

impl Path {
    /// `/`, as an empty path that `push` adds to.
    pub(super) fn root() -> Path {
        Path {
            buf: [0; PATH_MAX],
            len: 0,
        }
    }

    /// Appends `/` and `part` (a path that starts with `/` is appended as it is).
    pub(super) fn push(&mut self, part: &[u8]) -> Result<(), Unusable> {
        let slash = usize::from(part.first() != Some(&b'/'));
        let end = self.len + slash + part.len();
        if end >= PATH_MAX || part.contains(&0) {
            return Err(Unusable::TooLong);
        }
        if slash == 1 {
            self.buf[self.len] = b'/';
        }
        self.buf[self.len + slash..end].copy_from_slice(part);
        self.cut(end);
        Ok(())
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Keeps the first `len` bytes.
    pub(super) fn cut(&mut self, len: usize) {
        self.len = len;
        self.buf[len] = 0;
    }

    pub(super) fn as_cstr(&self) -> &CStr {
        if self.len == 0 {
            return c"/";
        }
        // The path is always NUL-terminated (`cut`), and `push` refuses parts that hold a NUL.
        CStr::from_bytes_with_nul(&self.buf[..=self.len]).unwrap_or(c"/")
    }

    /// The components, without empty ones.
    pub(super) fn parts(&self) -> impl Iterator<Item = &[u8]> {
        self.buf[..self.len]
            .split(|&b| b == b'/')
            .filter(|part| !part.is_empty())
    }

    /// The parent's path and the last component (`None` for `/`).
    pub(super) fn split_last(&self) -> Option<(Path, Name)> {
        let mut trimmed = &self.buf[..self.len];
        while let [rest @ .., b'/'] = trimmed {
            trimmed = rest;
        }
        let cut = trimmed.iter().rposition(|&b| b == b'/')?;
        let last = Name::new(&trimmed[cut + 1..])?;
        let mut parent = *self;
        parent.cut(cut);
        Some((parent, last))
    }
}

/// One file name (at most `NAME_MAX`), NUL-terminated.
pub(super) struct Name {
    buf: [u8; 256],
    len: usize,
}

impl Name {
    pub(super) fn empty() -> Name {
        Name {
            buf: [0; 256],
            len: 0,
        }
    }

    /// `bytes` as a name: `None` if it is empty or too long, or holds `/` or NUL.
    pub(super) fn new(bytes: &[u8]) -> Option<Name> {
        let mut name = Name::empty();
        let clean = !bytes.is_empty() && !bytes.iter().any(|&b| b == b'/' || b == 0);
        (clean && name.push(bytes)).then_some(name)
    }

    /// Appends `bytes`; whether they fitted.
    pub(super) fn push(&mut self, bytes: &[u8]) -> bool {
        let end = self.len + bytes.len();
        if end >= self.buf.len() {
            return false;
        }
        self.buf[self.len..end].copy_from_slice(bytes);
        self.buf[end] = 0;
        self.len = end;
        true
    }

    /// Appends `value` as 16 lower-case hex digits.
    pub(super) fn hex(&mut self, value: u64) {
        let mut digits = [0u8; 16];
        for (i, digit) in digits.iter_mut().enumerate() {
            *digit = b"0123456789abcdef"[(value >> (60 - 4 * i)) as usize & 15];
        }
        self.push(&digits);
    }

    pub(super) fn as_cstr(&self) -> &CStr {
        CStr::from_bytes_with_nul(&self.buf[..=self.len]).unwrap_or(c".")
    }
}
