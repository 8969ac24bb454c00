//! The memfd's name, which is what `/proc/PID/exe` shows: `/memfd:<name> (deleted)`.

/// The kernel refuses memfd names longer than this (NAME_MAX less the `memfd:` prefix).
pub const MEMFD_NAME_MAX: usize = 249;

/// Writes `<path> [GOAMD64=vN]` and a NUL into `buf`, as mgo names its memfd, and returns its
/// length without the NUL. A path too long for the kernel keeps its end (the program's name) behind
/// a `...`, so that a long install path never makes the launch fail.
pub fn memfd_name(buf: &mut [u8; MEMFD_NAME_MAX + 1], path: &[u8], level: &str) -> usize {
    const PREFIX: &[u8] = b" [GOAMD64=";
    const ELLIPSIS: &[u8] = b"...";
    let suffix_len = PREFIX.len() + level.len() + 1;
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
    push(PREFIX);
    push(level.as_bytes());
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
        let len = memfd_name(&mut buf, b"/usr/bin/foobar", "v3");
        assert_eq!(&buf[..len], b"/usr/bin/foobar [GOAMD64=v3]");
        assert_eq!(buf[len], 0);
    }

    #[test]
    fn long_paths_keep_their_end() {
        let mut path = std::vec![b'a'; 4000];
        path.extend_from_slice(b"/tool");
        let mut buf = [0u8; MEMFD_NAME_MAX + 1];
        let len = memfd_name(&mut buf, &path, "v4");
        assert_eq!(len, MEMFD_NAME_MAX);
        assert!(buf[..len].starts_with(b"...aaa"));
        assert!(buf[..len].ends_with(b"a/tool [GOAMD64=v4]"));
    }
}
