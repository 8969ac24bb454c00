//! The memfd's name, which is what `/proc/PID/exe` shows: `/memfd:<name> (deleted)`.

use mgo_format::{level, Arch};

use crate::cpu::NATIVE;

/// The kernel refuses memfd names longer than this (NAME_MAX less the `memfd:` prefix).
pub const MEMFD_NAME_MAX: usize = 249;

/// Writes `<path> [GOAMD64=vN]` and a NUL into `buf`, as mgo names its memfd, and returns its
/// length without the NUL. A path too long for the kernel keeps its end (the program's name) behind
/// a `...`, so that a long install path never makes the launch fail. On arm64 the variable is
/// `GOARM64`: `<path> [GOARM64=v8.2,lse]`.
pub fn memfd_name(buf: &mut [u8; MEMFD_NAME_MAX + 1], path: &[u8], level: &[u8]) -> usize {
    memfd_name_for(NATIVE, buf, path, level)
}

/// [`memfd_name`] for a launcher running on `arch`.
pub fn memfd_name_for(
    arch: Arch,
    buf: &mut [u8; MEMFD_NAME_MAX + 1],
    path: &[u8],
    level: &[u8],
) -> usize {
    const ELLIPSIS: &[u8] = b"...";
    let variable = level::variable(arch).as_bytes();
    let suffix_len = 2 + variable.len() + 1 + level.len() + 1;
    let room = MEMFD_NAME_MAX - suffix_len;
    let mut len = 0;
    let mut push = |bytes: &[u8]| {
        buf[len..len + bytes.len()].copy_from_slice(bytes);
        len += bytes.len();
    };
    if path.len() <= room {
        push(path);
    } else {
        push(ELLIPSIS);
        push(&path[path.len() - (room - ELLIPSIS.len())..]);
    }
    push(b" [");
    push(variable);
    push(b"=");
    push(level);
    push(b"]");
    buf[len] = 0;
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_like_mgo() {
        let mut buf = [0xffu8; MEMFD_NAME_MAX + 1];
        let len = memfd_name(&mut buf, b"/usr/bin/foobar", b"v3");
        assert_eq!(&buf[..len], b"/usr/bin/foobar [GOAMD64=v3]");
        assert_eq!(buf[len], 0);
    }

    #[test]
    fn arm64_names_say_goarm64() {
        let mut buf = [0xffu8; MEMFD_NAME_MAX + 1];
        let len = memfd_name_for(Arch::Aarch64, &mut buf, b"/usr/bin/foobar", b"v8.2,lse");
        assert_eq!(&buf[..len], b"/usr/bin/foobar [GOARM64=v8.2,lse]");
        let long = std::vec![b'a'; 4000];
        let len = memfd_name_for(Arch::Aarch64, &mut buf, &long, b"v9.5,lse,crypto");
        assert_eq!(len, MEMFD_NAME_MAX);
        assert!(buf[..len].ends_with(b"aaa [GOARM64=v9.5,lse,crypto]"));
    }

    #[test]
    fn long_paths_keep_their_end() {
        let mut path = std::vec![b'a'; 4000];
        path.extend_from_slice(b"/tool");
        let mut buf = [0u8; MEMFD_NAME_MAX + 1];
        let len = memfd_name(&mut buf, &path, b"v4");
        assert_eq!(len, MEMFD_NAME_MAX);
        assert!(buf[..len].starts_with(b"...aaa"));
        assert!(buf[..len].ends_with(b"a/tool [GOAMD64=v4]"));
    }
}
