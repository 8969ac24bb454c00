//! Reading a bundle back: what it holds ([`inspect`]), one variant out ([`extract`]), every
//! variant decoded and checked ([`verify`]). All go through [`decode_variant`], the one place
//! that knows how each encoding turns back into a program.

use std::fmt;
use std::path::{Path, PathBuf};

use mgo_format::elf::Elf;
use mgo_format::{content_hash, Arch, Bundle, Encoding, Entry, FormatError, Region};

use crate::{level_name, runtime_image, PackError};

/// A bundle file read into memory and checked as far as its header and index.
pub struct BundleFile {
    path: PathBuf,
    bytes: Vec<u8>,
    region: Region,
}

/// What a bundle holds, as [`BundleFile::info`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleInfo {
    pub path: PathBuf,
    pub file_len: u64,
    pub format_version: u16,
    pub arch: Arch,
    pub runtime: RuntimeInfo,
    /// Where the payload region lies in the file.
    pub region_offset: u64,
    pub region_len: u64,
    /// The index entries in index order.
    pub variants: Vec<VariantInfo>,
}

/// The launcher at the start of a bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// Bytes before the payload region: the launcher image and its padding.
    pub len: u64,
    /// XXH3-64 of those bytes with the fields a pack fills in zeroed: equal ids mean the same
    /// launcher build.
    pub id: u64,
    /// Whether it is the launcher this mgo-pack embeds (so repacking would keep it).
    pub builtin: bool,
}

impl RuntimeInfo {
    /// The launcher this mgo-pack puts into bundles for `arch`, as it appears in them (padded to
    /// the region alignment).
    pub fn builtin(arch: Arch) -> Option<RuntimeInfo> {
        let image = runtime_image::for_arch(arch)?;
        let mut padded = image.to_vec();
        let align = arch.page_align() as usize;
        padded.resize(padded.len().div_ceil(align) * align, 0);
        Some(RuntimeInfo {
            len: padded.len() as u64,
            id: launcher_id(&padded, None),
            builtin: true,
        })
    }
}

/// One index entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VariantInfo {
    pub index: usize,
    /// Level code (x86-64: N of `GOAMD64=vN`).
    pub level: u32,
    pub encoding: Encoding,
    /// For dictionary encodings: the entry whose original bytes are the dictionary.
    pub dictionary: Option<usize>,
    /// The entry's flag bits (docs/FORMAT.md, index entries).
    pub flags: u16,
    /// Offset of the stored bytes from the start of the payload region.
    pub offset: u64,
    pub stored_len: u64,
    pub original_len: u64,
    /// XXH3-64 of the original bytes.
    pub content_hash: u64,
    /// An earlier entry whose stored bytes these are too (identical builds are stored once).
    pub same_as: Option<usize>,
}

impl VariantInfo {
    pub fn level_name(&self) -> &'static str {
        level_name(self.level)
    }
}

/// Why a variant could not be turned back into its program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// This mgo-pack has no decoder for the encoding.
    Unsupported(Encoding),
    /// The stored bytes do not decode.
    Damaged(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Unsupported(e) => write!(f, "no decoder for {}", e.name()),
            DecodeError::Damaged(reason) => f.write_str(reason),
        }
    }
}

/// The original bytes of `entry`, decoded from its stored form. The result is not checked
/// against the entry's length or hash here: [`BundleFile::decode`] does that.
pub fn decode_variant(bundle: &Bundle<'_>, entry: &Entry) -> Result<Vec<u8>, DecodeError> {
    crate::compress::decode(bundle, entry).map_err(DecodeError::Damaged)
}

/// Whether a failure means "not a bundle" or "a damaged bundle".
fn bundle_error(path: &Path, e: FormatError) -> PackError {
    match e {
        FormatError::NotElf
        | FormatError::UnsupportedElf
        | FormatError::UnknownArch
        | FormatError::NoPayloadSegment => PackError::NotBundle {
            path: path.into(),
            reason: match e {
                FormatError::NotElf => "not an ELF file",
                FormatError::NoPayloadSegment => {
                    "it has no payload segment; if it was a bundle, strip or objcopy removed it"
                }
                other => other.message(),
            },
        },
        other => PackError::DamagedBundle {
            path: path.into(),
            reason: other.message().to_string(),
        },
    }
}

impl BundleFile {
    /// Reads `path` and checks that it is a bundle this mgo-pack understands. Anything but a
    /// regular file (after symbolic links) of at most [`crate::MAX_BUNDLE_LEN`] is refused
    /// before it is read.
    pub fn open(path: impl AsRef<Path>) -> Result<BundleFile, PackError> {
        let path = path.as_ref();
        let bytes = crate::input::read_checked(path, crate::input::Role::Bundle)?;
        BundleFile::from_bytes(path, bytes)
    }

    /// Checks `bytes` as a bundle; `path` names it in messages.
    pub fn from_bytes(path: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<BundleFile, PackError> {
        let path = path.into();
        let region = Region::locate(&bytes).map_err(|e| bundle_error(&path, e))?;
        Bundle::parse_file(&bytes).map_err(|e| bundle_error(&path, e))?;
        Ok(BundleFile {
            path,
            bytes,
            region,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The parsed bundle (checked when the file was opened).
    pub fn bundle(&self) -> Bundle<'_> {
        Bundle::parse_file(&self.bytes).expect("checked in BundleFile::from_bytes")
    }

    /// The header, launcher and index, without decoding any variant.
    pub fn info(&self) -> BundleInfo {
        let bundle = self.bundle();
        let entries: Vec<Entry> = bundle.entries().collect();
        let variants = entries
            .iter()
            .enumerate()
            .map(|(index, e)| VariantInfo {
                index,
                level: e.level,
                encoding: e.encoding,
                dictionary: (e.encoding == Encoding::ZstdDictionary)
                    .then_some(usize::from(e.dictionary)),
                flags: e.flags,
                offset: e.offset,
                stored_len: e.stored_len,
                original_len: e.original_len,
                content_hash: e.content_hash,
                same_as: entries[..index].iter().position(|earlier| {
                    earlier.offset == e.offset && earlier.stored_len == e.stored_len
                }),
            })
            .collect();
        BundleInfo {
            path: self.path.clone(),
            file_len: self.bytes.len() as u64,
            format_version: bundle.header.version,
            arch: bundle.arch,
            runtime: self.runtime_info(),
            region_offset: self.region.file_offset,
            region_len: self.region.len,
            variants,
        }
    }

    fn runtime_info(&self) -> RuntimeInfo {
        let launcher = &self.bytes[..self.region.file_offset as usize];
        let id = launcher_id(launcher, Some(self.region.arch.payload_vaddr()));
        // The plain launcher, or one of the launchers with a decoder (compressed bundles).
        let builtin = crate::compress::runtime_images(self.region.arch).any(|image| {
            let mut padded = image.to_vec();
            padded.resize(launcher.len().max(image.len()), 0);
            padded.len() == launcher.len() && launcher_id(&padded, None) == id
        });
        RuntimeInfo {
            len: launcher.len() as u64,
            id,
            builtin,
        }
    }

    /// The entry a launcher would run when forced to `level`'s exact variant: the first with it.
    pub fn entry_for_level(&self, level: u32) -> Result<Entry, PackError> {
        let bundle = self.bundle();
        let found = bundle.entries().find(|e| e.level == level);
        found.ok_or_else(|| {
            let mut held: Vec<&str> = bundle.entries().map(|e| level_name(e.level)).collect();
            held.dedup();
            PackError::NoSuchVariant {
                path: self.path.clone(),
                level: level_name(level).to_string(),
                available: held.join(", "),
            }
        })
    }

    /// Decodes `entry` and checks its stored bytes' hash (where the index records one), its
    /// length and its content hash.
    pub fn decode(&self, entry: &Entry) -> Result<Vec<u8>, PackError> {
        let level = level_name(entry.level).to_string();
        let stored = content_hash(self.bundle().stored(entry));
        if entry.stored_hash != 0 && stored != entry.stored_hash {
            // The launcher's direct path checks this hash, not the content hash.
            return Err(PackError::VariantDamaged {
                path: self.path.clone(),
                level,
                reason: format!(
                    "stored bytes hash {stored:016x}, the index says {:016x}",
                    entry.stored_hash
                ),
            });
        }
        let bytes = decode_variant(&self.bundle(), entry).map_err(|e| match e {
            DecodeError::Unsupported(encoding) => PackError::UnsupportedEncoding {
                path: self.path.clone(),
                level: level.clone(),
                encoding: encoding.name(),
            },
            DecodeError::Damaged(reason) => PackError::VariantDamaged {
                path: self.path.clone(),
                level: level.clone(),
                reason,
            },
        })?;
        let damaged = |reason: String| PackError::VariantDamaged {
            path: self.path.clone(),
            level: level.clone(),
            reason,
        };
        if bytes.len() as u64 != entry.original_len {
            return Err(damaged(format!(
                "it decodes to {} bytes, the index says {}",
                bytes.len(),
                entry.original_len
            )));
        }
        let hash = content_hash(&bytes);
        if hash != entry.content_hash {
            return Err(damaged(format!(
                "content hash {hash:016x}, the index says {:016x}",
                entry.content_hash
            )));
        }
        Ok(bytes)
    }

    /// The program packed at `level`, byte-identical to the input it was packed from.
    pub fn extract(&self, level: u32) -> Result<Vec<u8>, PackError> {
        self.decode(&self.entry_for_level(level)?)
    }

    /// Decodes every variant and checks every hash, the launcher's included.
    pub fn verify(&self) -> Verification {
        let info = self.info();
        let results = self
            .bundle()
            .entries()
            .map(|entry| self.decode(&entry).map(|_| ()))
            .collect();
        Verification {
            info,
            launcher: self.check_launcher(),
            results,
        }
    }

    /// Checks the launcher image against the hash the header records (bundles from before it
    /// was recorded have none, and pass).
    pub fn check_launcher(&self) -> Result<(), PackError> {
        let recorded = self.bundle().header.launcher_hash;
        let damaged = |reason: String| PackError::DamagedBundle {
            path: self.path.clone(),
            reason,
        };
        if recorded == 0 {
            return Ok(());
        }
        let hash = mgo_format::launcher_hash_of_file(&self.bytes)
            .map_err(|e| damaged(e.message().to_string()))?;
        if hash != recorded {
            return Err(damaged(format!(
                "{}: hash {hash:016x}, the header says {recorded:016x}",
                FormatError::LauncherCorrupt.message()
            )));
        }
        // The decoders' segment, which the launcher checks only before it decodes, against the
        // hash kept in its own bytes.
        if !mgo_format::decoders_of_file_intact(&self.bytes).unwrap_or(false) {
            return Err(damaged(format!(
                "{}: its decoders do not match the hash the launcher records for them",
                FormatError::LauncherCorrupt.message()
            )));
        }
        // The copy the launcher checks itself against first (in the payload program header).
        let copy = mgo_format::elf::Elf::parse(&self.bytes)
            .ok()
            .and_then(|elf| {
                elf.phdrs()
                    .find(|ph| self.bundle().arch.is_payload_segment(ph))
            })
            .and_then(|ph| mgo_format::launcher_hash_in_phdr(&ph));
        let arch = self.bundle().arch;
        if let Some(copy) = copy.filter(|&copy| copy != arch.hash_in_phdr(recorded)) {
            return Err(damaged(format!(
                "{}: the payload program header says {copy:016x}, the header {recorded:016x}",
                FormatError::LauncherCorrupt.message()
            )));
        }
        Ok(())
    }
}

/// The outcome of [`verify`]: the launcher's check, then one result per index entry, in index
/// order.
#[derive(Debug)]
pub struct Verification {
    pub info: BundleInfo,
    pub launcher: Result<(), PackError>,
    pub results: Vec<Result<(), PackError>>,
}

impl Verification {
    pub fn is_ok(&self) -> bool {
        self.launcher.is_ok() && self.results.iter().all(Result::is_ok)
    }

    /// The first failure, if any.
    pub fn first_error(&self) -> Option<&PackError> {
        let launcher = self.launcher.as_ref().err();
        launcher.or_else(|| self.results.iter().find_map(|r| r.as_ref().err()))
    }

    /// The first failure, if any.
    pub fn into_result(self) -> Result<BundleInfo, PackError> {
        self.launcher?;
        for result in self.results {
            result?;
        }
        Ok(self.info)
    }
}

/// Reads a bundle's header, launcher and index.
pub fn inspect(path: impl AsRef<Path>) -> Result<BundleInfo, PackError> {
    Ok(BundleFile::open(path)?.info())
}

/// The program packed at `level` in the bundle at `path`, checked against its hash.
pub fn extract(path: impl AsRef<Path>, level: u32) -> Result<Vec<u8>, PackError> {
    BundleFile::open(path)?.extract(level)
}

/// Decodes and checks every variant of the bundle at `path`.
pub fn verify(path: impl AsRef<Path>) -> Result<Verification, PackError> {
    Ok(BundleFile::open(path)?.verify())
}

/// Hash of a launcher image with what a pack fills in zeroed: the program header that maps the
/// payload region (or, in a pristine image, the spare one that becomes it) and the section table
/// fields. `payload_vaddr` is `None` for a pristine image.
fn launcher_id(launcher: &[u8], payload_vaddr: Option<u64>) -> u64 {
    let mut normalised = launcher.to_vec();
    if let Ok(elf) = Elf::parse(launcher) {
        // The ELF header fields a pack may rewrite: `e_shoff`, and `e_shnum` with `e_shstrndx`
        // (the shape's last four bytes).
        let shape = elf.class.section_shape_field();
        for range in [elf.class.shoff_field(), shape.start + 2..shape.end] {
            if let Some(field) = normalised.get_mut(range) {
                field.fill(0);
            }
        }
        let slot = (0..elf.phnum()).find(|&i| {
            let ph = elf.phdr(i);
            match payload_vaddr {
                Some(vaddr) => ph.p_type == mgo_format::elf::PT_LOAD && ph.p_vaddr == vaddr,
                None => ph.p_type == mgo_format::elf::PT_NULL,
            }
        });
        if let Some(i) = slot {
            let at = elf.phdr_offset(i);
            let end = (at + elf.class.phdr_len()).min(normalised.len());
            normalised[at..end].fill(0);
        }
    }
    content_hash(&normalised)
}
