//! Reading and vetting one input variant.

use std::path::{Path, PathBuf};

use goblin::elf::header::{EM_X86_64, ET_CORE, ET_DYN, ET_EXEC, ET_REL};
use goblin::elf::program_header::PT_INTERP;
use mgo_format::Arch;

use crate::PackError;

/// One build of the program, at one level.
#[derive(Clone, Debug)]
pub struct Variant {
    /// x86-64 level code, 1..=4 (`GOAMD64=vN`).
    pub level: u32,
    pub arch: Arch,
    pub bytes: Vec<u8>,
    pub path: PathBuf,
}

impl Variant {
    /// Reads `path` and checks that it is an x86-64 ELF executable. `level: None` takes the level
    /// the file records; a given level is used as it is (use [`crate::Packer`] to have it checked).
    pub fn read(path: impl AsRef<Path>, level: Option<u32>) -> Result<Variant, PackError> {
        let path = path.as_ref();
        Self::from_bytes(path, read_file(path)?, level)
    }

    pub fn from_bytes(
        path: &Path,
        bytes: Vec<u8>,
        level: Option<u32>,
    ) -> Result<Variant, PackError> {
        let arch = check_executable(path, &bytes)?;
        // Without a level, the one the file records (Go build info, GNU ISA note).
        let level = match level {
            Some(level) => level,
            None => {
                let declared = crate::declared_level(&bytes);
                declared.level.ok_or_else(|| PackError::LevelUnknown {
                    path: path.to_path_buf(),
                    declared: declared.to_string(),
                })?
            }
        };
        Ok(Variant {
            level,
            arch,
            bytes,
            path: path.to_path_buf(),
        })
    }
}

/// Reads an input file whole. Anything but a regular file (after symbolic links) is refused
/// before it is opened: a directory cannot be read, and a FIFO or a terminal would be read
/// until someone closes it.
pub fn read_file(path: &Path) -> Result<Vec<u8>, PackError> {
    let meta = std::fs::metadata(path).map_err(|e| PackError::io(path, e))?;
    if let Some(kind) = not_a_file(&meta) {
        return Err(PackError::InputNotFile {
            path: path.into(),
            kind,
        });
    }
    std::fs::read(path).map_err(|e| PackError::io(path, e))
}

/// What a non-regular file is, for messages.
pub(crate) fn not_a_file(meta: &std::fs::Metadata) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_char_device() || t.is_block_device() {
        Some("a device")
    } else {
        Some("something other than a file")
    }
}

/// Refuses anything the launcher could not exec as a program: other formats, other machines,
/// object files, shared libraries.
fn check_executable(path: &Path, bytes: &[u8]) -> Result<Arch, PackError> {
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        return Err(PackError::NotElf { path: path.into() });
    }
    let elf = goblin::elf::Elf::parse(bytes).map_err(|e| PackError::BadElf {
        path: path.into(),
        reason: e.to_string(),
    })?;
    if !elf.is_64 || !elf.little_endian || elf.header.e_machine != EM_X86_64 {
        let machine = goblin::elf::header::machine_to_str(elf.header.e_machine);
        let bits = if elf.is_64 { 64 } else { 32 };
        return Err(PackError::WrongArch {
            path: path.into(),
            machine: format!("{machine} ({bits}-bit)"),
        });
    }
    match elf.header.e_type {
        ET_EXEC => {}
        ET_DYN => {
            let has_interp = elf.program_headers.iter().any(|ph| ph.p_type == PT_INTERP);
            let pie_flag = elf
                .dynamic
                .as_ref()
                .is_some_and(|d| d.info.flags_1 & goblin::elf::dynamic::DF_1_PIE != 0);
            // A library may name an interpreter to be runnable (libc.so.6 prints its version)
            // and is still a library: it has a soname, which executables do not.
            if !pie_flag && (!has_interp || elf.soname.is_some()) {
                return Err(PackError::NotExecutable {
                    path: path.into(),
                    kind: "a shared library",
                });
            }
        }
        ET_REL => {
            return Err(PackError::NotExecutable {
                path: path.into(),
                kind: "an object file",
            })
        }
        ET_CORE => {
            return Err(PackError::NotExecutable {
                path: path.into(),
                kind: "a core dump",
            })
        }
        _ => {
            return Err(PackError::NotExecutable {
                path: path.into(),
                kind: "an ELF file of unknown type",
            })
        }
    }
    if elf.entry == 0 {
        return Err(PackError::NotExecutable {
            path: path.into(),
            kind: "an ELF file without an entry point",
        });
    }
    Ok(Arch::X86_64)
}

/// Parses `v1`..`v4`.
pub fn parse_level(text: &str) -> Result<u32, PackError> {
    mgo_format::level::parse_x86_64(text.as_bytes())
        .ok_or_else(|| PackError::BadLevel(text.to_string()))
}

/// `v1`..`v4`.
pub fn level_name(level: u32) -> &'static str {
    mgo_format::level::x86_64_name(level)
}
