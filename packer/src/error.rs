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
    #[error("{}: built for {machine}; mgo-pack packs x86-64 programs", path.display())]
    WrongArch { path: PathBuf, machine: String },
    #[error("level {level} is given twice: {} and {}", first.display(), second.display())]
    DuplicateLevel {
        level: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("`{0}` is not a level: use v1, v2, v3 or v4, as in `v3=./app.v3`")]
    BadLevel(String),
    #[error("more than four inputs without a level: name the levels as `vN=PATH`")]
    TooManyInputs,
    #[error("no input files: give the variants as `mgo-pack -o OUT app.v1 app.v2 app.v3 app.v4`")]
    NoInputs,
    #[error("{}: is a directory; -o needs a file name", path.display())]
    OutputIsDirectory { path: PathBuf },
    #[error("{}: the output would overwrite one of the inputs", path.display())]
    OutputIsInput { path: PathBuf },
    #[error("the runtime image for {arch} is damaged: {reason}")]
    RuntimeImage {
        arch: &'static str,
        reason: &'static str,
    },
}

impl PackError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PackError::Io {
            path: path.into(),
            source,
        }
    }
}
