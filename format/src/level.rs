//! Level codes stored in [`crate::Entry::level`].
//!
//! x86-64: the microarchitecture level `N` of `GOAMD64=vN`, 1 to 4.

pub const X86_64_MIN: u32 = 1;
pub const X86_64_MAX: u32 = 4;

/// `"v1"`..`"v4"` for an x86-64 level code, `"v?"` for anything else.
pub const fn x86_64_name(level: u32) -> &'static str {
    match level {
        1 => "v1",
        2 => "v2",
        3 => "v3",
        4 => "v4",
        _ => "v?",
    }
}

/// Parses `v1`..`v4` as `GOAMD64` spells them.
pub fn parse_x86_64(text: &[u8]) -> Option<u32> {
    match text {
        b"v1" => Some(1),
        b"v2" => Some(2),
        b"v3" => Some(3),
        b"v4" => Some(4),
        _ => None,
    }
}
