//! The stored form of [`crate::Encoding::Deflate`]: one or more gzip members (RFC 1952), each an
//! independent frame, so that the launcher can decode them on several cores at once. Concatenated
//! members are themselves a valid gzip file (`gzip -d` reads the stored bytes as they are).
//!
//! Every member has one fixed header, whose extra field (subfield `MP`) records the member's
//! total length, so that a reader finds the next member without decoding this one:
//!
//! ```text
//! 0   1f 8b 08 04        magic, CM = deflate, FLG = FEXTRA only
//! 4   00 00 00 00        MTIME = 0 (reproducible)
//! 8   00 03              XFL = 0, OS = 3 (Unix)
//! 10  08 00              XLEN = 8
//! 12  'M' 'P' 04 00      subfield MP, 4 bytes:
//! 16  u32                the member's total length, header and trailer included
//! 20  ...                raw deflate data (RFC 1951)
//! -8  u32 CRC-32, u32 ISIZE   the standard trailer; ISIZE is the member's exact output length
//! ```

/// Length of the fixed member header.
pub const MEMBER_HEADER_LEN: usize = 20;
/// Length of the member trailer (CRC-32 and ISIZE).
pub const MEMBER_TRAILER_LEN: usize = 8;
/// A member's output must fit ISIZE (32 bits); the packer keeps members far smaller.
pub const MAX_MEMBER_OUTPUT: usize = u32::MAX as usize;

/// The header of a member of `member_len` bytes in total.
pub fn member_header(member_len: u32) -> [u8; MEMBER_HEADER_LEN] {
    let mut h = [0u8; MEMBER_HEADER_LEN];
    h[..4].copy_from_slice(&[0x1f, 0x8b, 0x08, 0x04]);
    h[9] = 3;
    h[10..12].copy_from_slice(&8u16.to_le_bytes());
    h[12..14].copy_from_slice(b"MP");
    h[14..16].copy_from_slice(&4u16.to_le_bytes());
    h[16..20].copy_from_slice(&member_len.to_le_bytes());
    h
}

/// One member found at the start of some bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// Total length of the member.
    pub len: usize,
    /// Offset of the raw deflate data (always [`MEMBER_HEADER_LEN`]) and its length.
    pub deflate_len: usize,
    /// Length of the member's output (ISIZE).
    pub output_len: usize,
    /// The CRC-32 of the output, as recorded.
    pub crc32: u32,
}

/// Reads the member at the start of `bytes`; `None` if it is not one this format writes or does
/// not fit in `bytes`.
pub fn parse_member(bytes: &[u8]) -> Option<Member> {
    let header = bytes.get(..MEMBER_HEADER_LEN)?;
    if header[..4] != [0x1f, 0x8b, 0x08, 0x04] || header[10..16] != [8, 0, b'M', b'P', 4, 0] {
        return None;
    }
    let len = u32::from_le_bytes(header[16..20].try_into().ok()?) as usize;
    if len < MEMBER_HEADER_LEN + MEMBER_TRAILER_LEN || len > bytes.len() {
        return None;
    }
    let trailer = &bytes[len - MEMBER_TRAILER_LEN..len];
    Some(Member {
        len,
        deflate_len: len - MEMBER_HEADER_LEN - MEMBER_TRAILER_LEN,
        output_len: u32::from_le_bytes(trailer[4..8].try_into().ok()?) as usize,
        crc32: u32::from_le_bytes(trailer[..4].try_into().ok()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let mut member = member_header(30).to_vec();
        member.extend_from_slice(&[0x03, 0x00]); // an empty final fixed-Huffman block
        member.extend_from_slice(&0u32.to_le_bytes());
        member.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(
            parse_member(&member),
            Some(Member {
                len: 30,
                deflate_len: 2,
                output_len: 0,
                crc32: 0
            })
        );
        assert_eq!(parse_member(&member[..29]), None);
        member[3] = 0x0c;
        assert_eq!(parse_member(&member), None);
    }
}
