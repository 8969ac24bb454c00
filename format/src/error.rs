use core::fmt;

/// Why bytes are not a usable bundle. Messages are complete sentences without a trailing period,
/// written for the person who ran the program, and need no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatError {
    NotElf,
    UnsupportedElf,
    UnknownArch,
    NoPayloadSegment,
    Truncated,
    BadMagic,
    UnsupportedVersion,
    HeaderCorrupt,
    IndexOutOfBounds,
    IndexCorrupt,
    EntryOutOfBounds,
    UnknownEncoding,
    BadDictionary,
    Empty,
    LauncherCorrupt,
}

/// What [`FormatError::LauncherCorrupt`] says: the launcher writes it from its own copies too
/// (runtime/src/launcher/damaged.rs), as its report code and text are then suspect.
pub const LAUNCHER_CORRUPT: &str =
    "the launcher does not match its checksum (its code or program headers are damaged)";

impl FormatError {
    pub const fn message(self) -> &'static str {
        match self {
            FormatError::NotElf => "not an ELF file",
            FormatError::UnsupportedElf => "not a little-endian ELF32 or ELF64 executable",
            FormatError::UnknownArch => "ELF machine type is not supported by mgo-pack",
            FormatError::NoPayloadSegment => {
                "no mgo-pack payload segment: not a bundle, or a tool rewrote it and dropped the payloads"
            }
            FormatError::Truncated => "bundle is truncated: its payload region extends past the end of the file",
            FormatError::BadMagic => "payload region does not start with the mgo-pack magic",
            FormatError::UnsupportedVersion => "bundle format version is not supported by this launcher",
            FormatError::HeaderCorrupt => "bundle header is corrupted (checksum mismatch)",
            FormatError::IndexOutOfBounds => "bundle index lies outside the payload region",
            FormatError::IndexCorrupt => "bundle index is corrupted (checksum mismatch)",
            FormatError::EntryOutOfBounds => "a variant's data lies outside the payload region",
            FormatError::UnknownEncoding => "a variant uses an unknown encoding",
            FormatError::BadDictionary => "a variant refers to a dictionary that is not a stored variant",
            FormatError::Empty => "bundle holds no variants",
            FormatError::LauncherCorrupt => LAUNCHER_CORRUPT,
        }
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}
