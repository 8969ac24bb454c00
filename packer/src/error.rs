use std::ffi::OsStr;
use std::fmt::{self, Write as _};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Everything that can stop a pack, each with a message that names the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("{}: {source}", escaped(path))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not an ELF file", escaped(path))]
    NotElf { path: PathBuf },
    #[error("{}: cannot parse ELF: {reason}", escaped(path))]
    BadElf { path: PathBuf, reason: String },
    #[error("{}: is {kind}, not an executable program", escaped(path))]
    NotExecutable { path: PathBuf, kind: &'static str },
    #[error(
        "{}: built for {machine}; mgo-pack packs x86-64 and arm64 programs",
        escaped(path)
    )]
    WrongArch { path: PathBuf, machine: String },
    #[error(
        "level {level} is given twice: {} and {}",
        escaped(first),
        escaped(second)
    )]
    DuplicateLevel {
        level: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error(
        "`{}` is not a level: use v1, v2, v3 or v4 for x86-64 (as in `v3=./app.v3`), or v8.0 to \
         v8.9 or v9.0 to v9.5 with optional `,lse` and `,crypto` for arm64 (as in \
         `v8.1,lse=./app.arm64`), rva20u64, rva22u64 or rva23u64 for riscv64, power8, power9 or \
         power10 for ppc64le, or 5, 6 or 7 for 32-bit ARM (GOARM)",
        escaped(.0)
    )]
    BadLevel(String),
    #[error("more than four inputs without a level: name the levels as `vN=PATH`")]
    TooManyInputs,
    #[error("no input files: give the variants as `mgo-pack -o OUT app.v1 app.v2 app.v3 app.v4`")]
    NoInputs,
    #[error("{}: is a directory; -o needs a file name", escaped(path))]
    OutputIsDirectory { path: PathBuf },
    /// An input that is not a regular file (a directory, a FIFO, a device): reading it would
    /// fail or never end.
    #[error(
        "{}: is {kind}, not a file; give the path of a built program",
        escaped(path)
    )]
    InputNotFile { path: PathBuf, kind: &'static str },
    /// A bundle to read back that is not a regular file: the same, for `inspect`, `extract` and
    /// `verify`.
    #[error(
        "{}: is {kind}, not a file; give the path of an mgo-pack bundle",
        escaped(path)
    )]
    BundleNotFile { path: PathBuf, kind: &'static str },
    /// A file larger than mgo-pack reads as an input ([`crate::MAX_INPUT_LEN`]) or as a bundle
    /// ([`crate::MAX_BUNDLE_LEN`]); nothing of it was read.
    #[error(
        "{}: is larger than {max_gib} GiB, the most mgo-pack reads as {role}",
        escaped(path)
    )]
    TooLarge {
        path: PathBuf,
        max_gib: u64,
        role: &'static str,
    },
    /// The bundle would be larger than `inspect`, `extract` and `verify` read back
    /// ([`crate::MAX_BUNDLE_LEN`]), or, for 32-bit programs, than a 32-bit address space maps.
    #[error(
        "the bundle would be at least {len} bytes, more than the {max_gib} GiB mgo-pack packs \
         for this architecture (and reads back); pack fewer variants, or compress them"
    )]
    BundleTooLarge { len: u64, max_gib: u64 },
    /// `--launch direct` for an architecture whose launcher has no direct path.
    #[error(
        "--launch direct is not available for {arch} programs (the launcher's in-place loader \
         handles 64-bit programs only): use --launch memfd (the default) or --launch cache"
    )]
    DirectUnsupported { arch: &'static str },
    /// An existing output that is not a regular file: replacing it (a device node, a FIFO) is
    /// never what was meant.
    #[error(
        "{}: is {kind}; -o needs the name of a regular file (which is replaced) or of a new one",
        escaped(path)
    )]
    OutputNotFile { path: PathBuf, kind: &'static str },
    /// The output's directory cannot hold the bundle (missing, read-only, not a directory).
    #[error(
        "{}: cannot create the bundle in this directory: {source}",
        escaped(path)
    )]
    OutputDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Writing the bundle failed (a full disk, a quota): nothing was written.
    #[error(
        "{}: cannot write the bundle: {source}; nothing was written, and an existing {} is unchanged",
        escaped(path),
        escaped(path)
    )]
    WriteOutput {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Writing a variant that `extract` decoded failed: to a file (which is then left as it
    /// was), a device, a FIFO or stdout.
    #[error(
        "{}: cannot write the extracted {level} variant: {}",
        escaped(path),
        os_error(source)
    )]
    WriteVariant {
        path: PathBuf,
        level: String,
        source: std::io::Error,
    },
    #[error("{}: the output would overwrite one of the inputs", escaped(path))]
    OutputIsInput { path: PathBuf },
    #[error("the runtime image for {arch} is damaged: {reason}")]
    RuntimeImage {
        arch: &'static str,
        reason: &'static str,
    },
    /// An input's level as given (`vN=PATH` or its position) differs from what the file records.
    #[error(
        "{}: {given}, but {declared}; correct the level, or pass --force to pack it as {level} anyway",
        escaped(path)
    )]
    LevelContradiction {
        path: PathBuf,
        /// How the level was given: "named v3" or "is input 2, so v2".
        given: String,
        level: String,
        /// What the file records, as [`crate::Declared`] displays it.
        declared: String,
    },
    #[error(
        "{}: {declared}, so its level must be given, as in `v3={}`",
        escaped(path),
        escaped(path)
    )]
    LevelUnknown { path: PathBuf, declared: String },
    #[error(
        "{}: is already an mgo-pack bundle; pack the original builds (`mgo-pack extract` gets them back)",
        escaped(path)
    )]
    AlreadyBundle { path: PathBuf },
    #[error("{}: not an mgo-pack bundle ({reason})", escaped(path))]
    NotBundle { path: PathBuf, reason: &'static str },
    #[error("{}: damaged mgo-pack bundle: {reason}", escaped(path))]
    DamagedBundle { path: PathBuf, reason: String },
    #[error("{}: holds no {level} variant (it holds {available})", escaped(path))]
    NoSuchVariant {
        path: PathBuf,
        level: String,
        available: String,
    },
    #[error("{}: the {level} variant is damaged: {reason}", escaped(path))]
    VariantDamaged {
        path: PathBuf,
        level: String,
        reason: String,
    },
    #[error(
        "{}: the {level} variant is stored as {encoding}, which this mgo-pack cannot decode; \
         use the mgo-pack that made the bundle, or a newer one",
        escaped(path)
    )]
    UnsupportedEncoding {
        path: PathBuf,
        level: String,
        encoding: &'static str,
    },
    /// A level of another architecture: `v3=` for an arm64 program, `v8.0=` for an x86-64 one.
    #[error(
        "{}: {level} is not a level of {arch} programs, and this is one; name its level as Go \
         does: {hint}",
        escaped(path)
    )]
    LevelNotForArch {
        path: PathBuf,
        level: String,
        arch: &'static str,
        /// The architecture's levels, as in `power8, power9 or power10 (as in `power9=PATH`)`.
        hint: &'static str,
    },
    #[error(
        "{} is an {first_arch} program but {} is an {other_arch} program; a bundle holds builds \
         for one architecture: pack each architecture into its own bundle",
        escaped(first),
        escaped(other)
    )]
    MixedArch {
        first: PathBuf,
        first_arch: &'static str,
        other: PathBuf,
        other_arch: &'static str,
    },
    /// The compressor failed, or its output did not decode back to the input.
    #[error(
        "{}: compressing it failed: {reason}; pack it without compression (and report this)",
        escaped(path)
    )]
    Compression { path: PathBuf, reason: String },
    /// `--compress` or `MGO_COMPRESS` holds something that is not a compression mode.
    #[error(transparent)]
    CompressionSpec(#[from] crate::compress::CompressionSpecError),
}

impl PackError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PackError::Io {
            path: path.into(),
            source,
        }
    }
}

/// An I/O error as a message shows it: the system's words and the errno's name, as in `No space
/// left on device (ENOSPC)`; `(os error N)` for an errno not named here.
pub fn os_error(e: &std::io::Error) -> String {
    const NAMES: [(i32, &str); 32] = [
        (libc::EPERM, "EPERM"),
        (libc::ENOENT, "ENOENT"),
        (libc::EINTR, "EINTR"),
        (libc::EIO, "EIO"),
        (libc::ENXIO, "ENXIO"),
        (libc::EBADF, "EBADF"),
        (libc::EAGAIN, "EAGAIN"),
        (libc::ENOMEM, "ENOMEM"),
        (libc::EACCES, "EACCES"),
        (libc::EFAULT, "EFAULT"),
        (libc::EBUSY, "EBUSY"),
        (libc::EEXIST, "EEXIST"),
        (libc::EXDEV, "EXDEV"),
        (libc::ENODEV, "ENODEV"),
        (libc::ENOTDIR, "ENOTDIR"),
        (libc::EISDIR, "EISDIR"),
        (libc::EINVAL, "EINVAL"),
        (libc::ENFILE, "ENFILE"),
        (libc::EMFILE, "EMFILE"),
        (libc::ETXTBSY, "ETXTBSY"),
        (libc::EFBIG, "EFBIG"),
        (libc::ENOSPC, "ENOSPC"),
        (libc::ESPIPE, "ESPIPE"),
        (libc::EROFS, "EROFS"),
        (libc::EMLINK, "EMLINK"),
        (libc::EPIPE, "EPIPE"),
        (libc::ENAMETOOLONG, "ENAMETOOLONG"),
        (libc::ELOOP, "ELOOP"),
        (libc::EOPNOTSUPP, "EOPNOTSUPP"),
        (libc::EDQUOT, "EDQUOT"),
        (libc::ESTALE, "ESTALE"),
        (libc::ENOSYS, "ENOSYS"),
    ];
    let text = e.to_string();
    let Some(code) = e.raw_os_error() else {
        return text;
    };
    match NAMES.iter().find(|&&(n, _)| n == code) {
        Some((_, name)) => {
            let words = text.strip_suffix(&format!(" (os error {code})"));
            format!("{} ({name})", words.unwrap_or(&text))
        }
        None => text,
    }
}

/// A path, or any other text that came from outside (a level as typed), as every message shows
/// it: on one line whatever it holds, and unambiguous. Control characters are escaped (`\n`,
/// `\t`, `\r`, `\x1b`, `\u{85}`, and the Unicode line and paragraph separators), bytes that are
/// not UTF-8 are written `\xff`, and a backslash is doubled; everything else, non-ASCII letters
/// included, is shown as it is.
pub fn escaped<S: AsRef<OsStr> + ?Sized>(text: &S) -> Escaped<'_> {
    Escaped(text.as_ref().as_bytes())
}

/// See [`escaped`].
#[derive(Clone, Copy, Debug)]
pub struct Escaped<'a>(&'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '\n' => f.write_str("\\n")?,
                    '\r' => f.write_str("\\r")?,
                    '\t' => f.write_str("\\t")?,
                    c if c.is_ascii_control() => write!(f, "\\x{:02x}", c as u32)?,
                    c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                        write!(f, "\\u{{{:x}}}", c as u32)?
                    }
                    c => f.write_char(c)?,
                }
            }
            for byte in chunk.invalid() {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_text_stays_on_one_line() {
        let shown = |bytes: &[u8]| escaped(OsStr::from_bytes(bytes)).to_string();
        assert_eq!(shown(b"dist/app_v3"), "dist/app_v3");
        assert_eq!(shown("caf\u{e9}/\u{4e16}".as_bytes()), "caf\u{e9}/\u{4e16}");
        assert_eq!(shown(b"a\nb\rc\td"), "a\\nb\\rc\\td");
        assert_eq!(shown(b"\x1b[31m\x7f"), "\\x1b[31m\\x7f");
        assert_eq!(shown(b"bad-\xff\xfe"), "bad-\\xff\\xfe");
        assert_eq!(shown(b"back\\slash"), "back\\\\slash");
        assert_eq!(
            shown("nel\u{85}ls\u{2028}".as_bytes()),
            "nel\\u{85}ls\\u{2028}"
        );
    }
}
