//! A fixed-size line builder: the launcher reports failures as one `mgo: ...` line, written with a
//! single `write` so that concurrent launches never interleave half-lines.

pub struct Line {
    buf: [u8; 1024],
    len: usize,
}

impl Line {
    pub const fn new() -> Line {
        Line {
            buf: [0; 1024],
            len: 0,
        }
    }

    /// Appends bytes, silently dropping what does not fit (keeping room for the final newline).
    pub fn push(&mut self, bytes: &[u8]) -> &mut Line {
        let room = self.buf.len() - 1 - self.len;
        let n = bytes.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        self
    }

    pub fn str(&mut self, s: &str) -> &mut Line {
        self.push(s.as_bytes())
    }

    pub fn dec(&mut self, mut value: u64) -> &mut Line {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        self.push(&digits[i..])
    }

    /// The line with a trailing newline.
    pub fn finish(&mut self) -> &[u8] {
        self.buf[self.len] = b'\n';
        &self.buf[..self.len + 1]
    }
}

impl Default for Line {
    fn default() -> Self {
        Line::new()
    }
}

/// The name of a Linux errno value (the same numbers on x86-64 and arm64), for messages; 0 is what
/// a sandbox's filter returns when it refuses a call without an error code.
pub const fn errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        0 => "no error code",
        1 => "EPERM",
        2 => "ENOENT",
        3 => "ESRCH",
        4 => "EINTR",
        5 => "EIO",
        6 => "ENXIO",
        7 => "E2BIG",
        8 => "ENOEXEC",
        9 => "EBADF",
        10 => "ECHILD",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        15 => "ENOTBLK",
        16 => "EBUSY",
        17 => "EEXIST",
        18 => "EXDEV",
        19 => "ENODEV",
        20 => "ENOTDIR",
        21 => "EISDIR",
        22 => "EINVAL",
        23 => "ENFILE",
        24 => "EMFILE",
        25 => "ENOTTY",
        26 => "ETXTBSY",
        27 => "EFBIG",
        28 => "ENOSPC",
        29 => "ESPIPE",
        30 => "EROFS",
        31 => "EMLINK",
        32 => "EPIPE",
        33 => "EDOM",
        34 => "ERANGE",
        35 => "EDEADLK",
        36 => "ENAMETOOLONG",
        37 => "ENOLCK",
        38 => "ENOSYS",
        39 => "ENOTEMPTY",
        40 => "ELOOP",
        42 => "ENOMSG",
        43 => "EIDRM",
        61 => "ENODATA",
        62 => "ETIME",
        71 => "EPROTO",
        74 => "EBADMSG",
        75 => "EOVERFLOW",
        84 => "EILSEQ",
        95 => "EOPNOTSUPP",
        110 => "ETIMEDOUT",
        116 => "ESTALE",
        121 => "EREMOTEIO",
        122 => "EDQUOT",
        125 => "ECANCELED",
        133 => "EHWPOISON",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_lines() {
        let mut line = Line::new();
        line.str("mgo: ").dec(0).str(" ").dec(18446744073709551615);
        assert_eq!(line.finish(), b"mgo: 0 18446744073709551615\n");
        let mut long = Line::new();
        for _ in 0..2000 {
            long.str("x");
        }
        assert_eq!(long.finish().len(), 1024);
    }
}
