use std::path::PathBuf;

/// Everything that can stop a pack, each with a message that names the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not an ELF file", path.display())]
    NotElf { path: PathBuf },
    #[error("{}: cannot parse ELF: {reason}", path.display())]
    BadElf { path: PathBuf, reason: String },
    #[error("{}: is {kind}, not an executable program", path.display())]
    NotExecutable { path: PathBuf, kind: &'static str },
    #[error("{}: built for {machine}; mgo-pack packs x86-64 and arm64 programs", path.display())]
    WrongArch { path: PathBuf, machine: String },
    #[error("level {level} is given twice: {} and {}", first.display(), second.display())]
    DuplicateLevel {
        level: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error(
        "`{0}` is not a level: use v1, v2, v3 or v4 for x86-64 (as in `v3=./app.v3`), or v8.0 to \
         v8.9 or v9.0 to v9.5 with optional `,lse` and `,crypto` for arm64 (as in \
         `v8.1,lse=./app.arm64`)"
    )]
    BadLevel(String),
    #[error("more than four inputs without a level: name the levels as `vN=PATH`")]
    TooManyInputs,
    #[error("no input files: give the variants as `mgo-pack -o OUT app.v1 app.v2 app.v3 app.v4`")]
    NoInputs,
    #[error("{}: is a directory; -o needs a file name", path.display())]
    OutputIsDirectory { path: PathBuf },
    /// An input that is not a regular file (a directory, a FIFO, a device): reading it would
    /// fail or never end.
    #[error("{}: is {kind}, not a file; give the path of a built program", path.display())]
    InputNotFile { path: PathBuf, kind: &'static str },
    /// A bundle to read back that is not a regular file: the same, for `inspect`, `extract` and
    /// `verify`.
    #[error("{}: is {kind}, not a file; give the path of an mgo-pack bundle", path.display())]
    BundleNotFile { path: PathBuf, kind: &'static str },
    /// A file larger than mgo-pack reads as an input ([`crate::MAX_INPUT_LEN`]) or as a bundle
    /// ([`crate::MAX_BUNDLE_LEN`]); nothing of it was read.
    #[error(
        "{}: is larger than {max_gib} GiB, the most mgo-pack reads as {role}",
        path.display()
    )]
    TooLarge {
        path: PathBuf,
        max_gib: u64,
        role: &'static str,
    },
    /// The bundle would be larger than `inspect`, `extract` and `verify` read back
    /// ([`crate::MAX_BUNDLE_LEN`]).
    #[error(
        "the bundle would be at least {len} bytes, more than the {max_gib} GiB mgo-pack reads back; \
         pack fewer variants, or compress them"
    )]
    BundleTooLarge { len: u64, max_gib: u64 },
    /// An existing output that is not a regular file: replacing it (a device node, a FIFO) is
    /// never what was meant.
    #[error(
        "{}: is {kind}; -o needs the name of a regular file (which is replaced) or of a new one",
        path.display()
    )]
    OutputNotFile { path: PathBuf, kind: &'static str },
    /// The output's directory cannot hold the bundle (missing, read-only, not a directory).
    #[error("{}: cannot create the bundle in this directory: {source}", path.display())]
    OutputDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Writing the bundle failed (a full disk, a quota): nothing was written.
    #[error(
        "{}: cannot write the bundle: {source}; nothing was written, and an existing {} is unchanged",
        path.display(),
        path.display()
    )]
    WriteOutput {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: the output would overwrite one of the inputs", path.display())]
    OutputIsInput { path: PathBuf },
    #[error("the runtime image for {arch} is damaged: {reason}")]
    RuntimeImage {
        arch: &'static str,
        reason: &'static str,
    },
    /// An input's level as given (`vN=PATH` or its position) differs from what the file records.
    #[error(
        "{}: {given}, but {declared}; correct the level, or pass --force to pack it as {level} anyway",
        path.display()
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
        path.display(),
        path.display()
    )]
    LevelUnknown { path: PathBuf, declared: String },
    #[error(
        "{}: is already an mgo-pack bundle; pack the original builds (`mgo-pack extract` gets them back)",
        path.display()
    )]
    AlreadyBundle { path: PathBuf },
    #[error("{}: not an mgo-pack bundle ({reason})", path.display())]
    NotBundle { path: PathBuf, reason: &'static str },
    #[error("{}: damaged mgo-pack bundle: {reason}", path.display())]
    DamagedBundle { path: PathBuf, reason: String },
    #[error("{}: holds no {level} variant (it holds {available})", path.display())]
    NoSuchVariant {
        path: PathBuf,
        level: String,
        available: String,
    },
    #[error("{}: the {level} variant is damaged: {reason}", path.display())]
    VariantDamaged {
        path: PathBuf,
        level: String,
        reason: String,
    },
    #[error(
        "{}: the {level} variant is stored as {encoding}, which this mgo-pack cannot decode; \
         use the mgo-pack that made the bundle, or a newer one",
        path.display()
    )]
    UnsupportedEncoding {
        path: PathBuf,
        level: String,
        encoding: &'static str,
    },
    /// A level of the other architecture: `v3=` for an arm64 program, `v8.0=` for an x86-64 one.
    #[error(
        "{}: {level} is not an {arch} level, and this is an {arch} program; name {arch} levels \
         as Go does: v1..v4 for x86-64, v8.0..v9.5 with `,lse`/`,crypto` for arm64 \
         (as in `v8.1,lse=PATH`)",
        path.display()
    )]
    LevelNotForArch {
        path: PathBuf,
        level: String,
        arch: &'static str,
    },
    #[error(
        "{} is an {first_arch} program but {} is an {other_arch} program; a bundle holds builds \
         for one architecture: pack each architecture into its own bundle",
        first.display(),
        other.display()
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
        path.display()
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
