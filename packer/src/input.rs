//! Reading and vetting one input variant.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use goblin::elf::header::{
    EM_AARCH64, EM_ARM, EM_PPC64, EM_RISCV, EM_X86_64, ET_CORE, ET_DYN, ET_EXEC, ET_REL,
};
use goblin::elf::program_header::PT_INTERP;
use mgo_format::Arch;

use crate::PackError;

/// One build of the program, at one level.
#[derive(Clone, Debug)]
pub struct Variant {
    /// Level code (mgo_format::level): 1..=4 for x86-64 (`GOAMD64=vN`), an arm64 code for
    /// arm64 (`GOARM64=v8.1,lse`); it must be a level of `arch`.
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
        if !mgo_format::level::is_valid(arch, level) {
            return Err(PackError::LevelNotForArch {
                path: path.to_path_buf(),
                level: level_name(level).to_string(),
                arch: arch_name(arch),
                hint: levels_hint(arch),
            });
        }
        Ok(Variant {
            level,
            arch,
            bytes,
            path: path.to_path_buf(),
        })
    }
}

/// The largest input mgo-pack reads: 4 GiB. Every input is held in memory with the bundle made
/// of it, and the largest real programs are a few hundred MB; a file over this is refused before
/// a byte of it is read.
pub const MAX_INPUT_LEN: u64 = 4 << 30;

/// The largest file `inspect`, `extract` and `verify` read as a bundle: 64 GiB, sixteen variants
/// at [`MAX_INPUT_LEN`]. The packer refuses to write a larger one, so a larger file is no bundle
/// of ours; it is refused before a byte of it is read.
pub const MAX_BUNDLE_LEN: u64 = 64 << 30;

/// What a file is read as: this decides the message for a file that is not a regular one, and
/// the largest size read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Input,
    Bundle,
}

impl Role {
    fn max_len(self) -> u64 {
        match self {
            Role::Input => MAX_INPUT_LEN,
            Role::Bundle => MAX_BUNDLE_LEN,
        }
    }

    fn not_a_file(self, path: &Path, kind: &'static str) -> PackError {
        let path = path.into();
        match self {
            Role::Input => PackError::InputNotFile { path, kind },
            Role::Bundle => PackError::BundleNotFile { path, kind },
        }
    }

    /// Refuses what `meta` describes unless it is a regular file of at most [`Role::max_len`].
    fn check(self, path: &Path, meta: &std::fs::Metadata) -> Result<(), PackError> {
        if let Some(kind) = not_a_file(meta) {
            return Err(self.not_a_file(path, kind));
        }
        if meta.len() > self.max_len() {
            return Err(self.too_large(path));
        }
        Ok(())
    }

    fn too_large(self, path: &Path) -> PackError {
        PackError::TooLarge {
            path: path.into(),
            max_gib: self.max_len() >> 30,
            role: match self {
                Role::Input => "an input",
                Role::Bundle => "a bundle",
            },
        }
    }
}

/// Refuses `path` (after symbolic links) unless it is a regular file no larger than `role`
/// allows, without opening it: a directory cannot be read, a FIFO or a terminal would be read
/// until someone closes it, `/dev/zero` never ends, and opening some devices has effects.
pub(crate) fn check_file(path: &Path, role: Role) -> Result<(), PackError> {
    let meta = std::fs::metadata(path).map_err(|e| PackError::io(path, e))?;
    role.check(path, &meta)
}

/// Reads an input file whole; see [`read_checked`].
pub fn read_file(path: &Path) -> Result<Vec<u8>, PackError> {
    read_checked(path, Role::Input)
}

/// Reads a file whole once [`check_file`] accepts it. The file is opened without waiting (should
/// the path have become a FIFO since, the open does not wait for a writer), checked again on the
/// open descriptor, and read no further than `role` allows, should it grow meanwhile.
pub(crate) fn read_checked(path: &Path, role: Role) -> Result<Vec<u8>, PackError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    check_file(path, role)?;
    let io = |e| PackError::io(path, e);
    // O_NONBLOCK changes nothing for the regular file this is checked to be below.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    role.check(path, &meta)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(role.max_len() + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > role.max_len() {
        return Err(role.too_large(path));
    }
    Ok(bytes)
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
    let arch = match elf.header.e_machine {
        EM_X86_64 => Some(Arch::X86_64),
        EM_AARCH64 => Some(Arch::Aarch64),
        EM_RISCV => Some(Arch::Riscv64),
        EM_ARM => Some(Arch::Arm),
        // Little-endian only (checked below): big-endian ppc64 has no launcher.
        EM_PPC64 => Some(Arch::Ppc64le),
        _ => None,
    };
    let class_fits = |arch: &Arch| elf.is_64 == (arch.class() == mgo_format::elf::Class::Elf64);
    let Some(arch) = arch.filter(|a| class_fits(a) && elf.little_endian) else {
        let machine = goblin::elf::header::machine_to_str(elf.header.e_machine);
        let bits = if elf.is_64 { 64 } else { 32 };
        return Err(PackError::WrongArch {
            path: path.into(),
            machine: format!("{machine} ({bits}-bit)"),
        });
    };
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
    Ok(arch)
}

/// Why a program must run from its own file's location, if it must: libraries it finds through
/// `$ORIGIN` in its RUNPATH or RPATH, which the dynamic loader resolves from `/proc/self/exe`. A
/// program started from a memfd (or any copy elsewhere) would not find them.
pub fn needs_own_location(bytes: &[u8]) -> Option<&'static str> {
    let elf = goblin::elf::Elf::parse(bytes).ok()?;
    let origin = |path: &&str| path.contains("$ORIGIN") || path.contains("${ORIGIN}");
    if elf.runpaths.iter().any(origin) {
        Some("its RUNPATH finds libraries through $ORIGIN")
    } else if elf.rpaths.iter().any(origin) {
        Some("its RPATH finds libraries through $ORIGIN")
    } else {
        None
    }
}

/// Parses a level as Go's setting spells it: `v1`..`v4` (x86-64, `GOAMD64`), `v8.0`..`v9.5`
/// with `,lse` and `,crypto` (arm64, `GOARM64`), `rva20u64`.. (riscv64, `GORISCV64`), `5`,
/// `6`, `7` (32-bit ARM, `GOARM`) or `power8`.. (ppc64le, `GOPPC64`). They never collide, so a level can be parsed
/// before the file it belongs to is read; [`Variant::from_bytes`] then checks that it is a level
/// of the file's architecture.
pub fn parse_level(text: &str) -> Result<u32, PackError> {
    let bytes = text.as_bytes();
    mgo_format::level::parse_x86_64(bytes)
        .or_else(|| mgo_format::level::parse_aarch64(bytes))
        .or_else(|| mgo_format::level::parse_riscv64(bytes))
        .or_else(|| mgo_format::level::parse_arm(bytes))
        .or_else(|| mgo_format::level::parse_ppc64le(bytes))
        .ok_or_else(|| PackError::BadLevel(text.to_string()))
}

/// A level's name as Go's setting spells it: `v3` (x86-64), `v8.2,lse` (arm64), `rva22u64`
/// (riscv64), `7` (32-bit ARM) or `power9` (ppc64le); `v?` for a code that is none of them.
pub fn level_name(level: u32) -> &'static str {
    use mgo_format::level::{name, Aarch64Level};
    // The 34 arm64 names, made once: callers keep names as long as they like.
    static AARCH64_NAMES: OnceLock<Vec<(u32, &'static str)>> = OnceLock::new();
    let names = AARCH64_NAMES.get_or_init(|| {
        let mut names: Vec<(u32, &'static str)> = Vec::new();
        for (major, minors) in [(8, 0..=9), (9, 0..=5)] {
            for minor in minors {
                for (lse, crypto) in [(false, false), (false, true), (true, false), (true, true)] {
                    let Some(level) = Aarch64Level::new(major, minor, lse, crypto) else {
                        continue;
                    };
                    let code = level.code();
                    if names.iter().all(|&(c, _)| c != code) {
                        let text = name(Arch::Aarch64, code).as_str().to_owned();
                        names.push((code, Box::leak(text.into_boxed_str())));
                    }
                }
            }
        }
        names
    });
    let other = || {
        use mgo_format::level::{arm_name, is_valid, ppc64le_name, riscv64_name, x86_64_name};
        if is_valid(Arch::Riscv64, level) {
            riscv64_name(level)
        } else if is_valid(Arch::Arm, level) {
            arm_name(level)
        } else if is_valid(Arch::Ppc64le, level) {
            ppc64le_name(level)
        } else {
            x86_64_name(level)
        }
    };
    names
        .iter()
        .find(|&&(code, _)| code == level)
        .map_or_else(other, |&(_, n)| n)
}

/// `x86-64` or `arm64`, as messages name an architecture.
pub(crate) fn arch_name(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86-64",
        Arch::Aarch64 => "arm64",
        Arch::Riscv64 => "riscv64",
        Arch::Arm => "32-bit ARM",
        Arch::Ppc64le => "ppc64le",
    }
}

/// An architecture's levels as Go spells them, for messages.
pub(crate) fn levels_hint(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "v1, v2, v3 or v4 (as in `v3=PATH`)",
        Arch::Aarch64 => "v8.0..v8.9 or v9.0..v9.5 with `,lse`/`,crypto` (as in `v8.1,lse=PATH`)",
        Arch::Riscv64 => "rva20u64, rva22u64 or rva23u64 (as in `rva22u64=PATH`)",
        Arch::Ppc64le => "power8, power9 or power10 (as in `power9=PATH`)",
        Arch::Arm => "5, 6 or 7, as GOARM (as in `7=PATH`)",
    }
}

/// The one architecture all `variants` are built for: a bundle carries one launcher, so it
/// cannot mix them.
pub(crate) fn common_arch(variants: &[Variant]) -> Result<Arch, PackError> {
    let first = variants.first().ok_or(PackError::NoInputs)?;
    match variants.iter().find(|v| v.arch != first.arch) {
        None => Ok(first.arch),
        Some(other) => Err(PackError::MixedArch {
            first: first.path.clone(),
            first_arch: arch_name(first.arch),
            other: other.path.clone(),
            other_arch: arch_name(other.arch),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_are_read() {
        let dir = std::env::temp_dir().join(format!("mgo-pack-input-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        // Reading the FIFO would wait for a writer forever: it is refused before it is opened.
        let err = read_file(&fifo).unwrap_err();
        assert!(
            matches!(err, PackError::InputNotFile { kind: "a FIFO", .. }),
            "{err}"
        );
        let err = Variant::read(&dir, Some(1)).unwrap_err();
        assert!(
            matches!(
                err,
                PackError::InputNotFile {
                    kind: "a directory",
                    ..
                }
            ),
            "{err}"
        );
        let file = dir.join("file");
        std::fs::write(&file, b"bytes").unwrap();
        assert_eq!(read_file(&file).unwrap(), b"bytes");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
