//! Compressed bundles (docs/COMPRESSION.md): which compression to use (`MGO_COMPRESS` with mgo's
//! syntax, or `--compress`, which wins), and encoding the variants: gzip members made with
//! miniz_oxide, zstd frames made with libzstd, and zstd frames against a base variant used as a
//! raw-content dictionary.
//!
//! Each variant is cut into independent frames of about 2 MiB, and at its segments' boundaries
//! (see [`frame_bounds`]), so that the launcher decodes them on several cores at once, each
//! straight to its place; every frame of every variant is compressed in parallel here for the
//! same reason. Every frame is decoded
//! back with the launcher's own decoder (libzstd, libdeflate) and compared before it is accepted:
//! a bundle that would not start is never written.

use std::ffi::OsStr;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use mgo_format::gzip::{member_header, MAX_MEMBER_OUTPUT, MEMBER_HEADER_LEN, MEMBER_TRAILER_LEN};
use mgo_format::{Arch, Encoding};

/// The environment variable mgo reads, with mgo's syntax.
pub const ENV: &str = "MGO_COMPRESS";

/// How the variants of a bundle are stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Compression {
    /// As they are: the smallest launcher, the fastest start, and the direct launch path.
    #[default]
    None,
    /// Gzip at level 1..=9.
    Gzip(u8),
    /// Zstandard at level 1..=22 (20..=22 are zstd's "ultra" levels).
    Zstd(u8),
    /// Zstandard at level 1..=22, every variant but one (the base) encoded with the base as a
    /// raw-content dictionary.
    ZstdDict(u8),
}

/// The level `--compress gzip` means: gzip's best.
pub const GZIP_DEFAULT: u8 = 9;
/// The level `--compress zstd` and `zstd-dict` mean: zstd's best without "ultra" settings.
/// Packing is done once per release, decoding speed does not depend on the level.
pub const ZSTD_DEFAULT: u8 = 19;
pub const ZSTD_MAX: u8 = 22;
pub const GZIP_MAX: u8 = 9;

/// A value that is not a compression mode, with the syntax that would have been right.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompressionSpecError {
    #[error(
        "MGO_COMPRESS={0:?} is not a compression mode: use g1..g9 (gzip), z1..z22 (zstd) or \
         Z1..Z22 (zstd with the base variant as dictionary), or leave it empty for none"
    )]
    Env(String),
    #[error(
        "--compress {0:?} is not a compression mode: use none, gzip[:1..9], zstd[:1..22] or \
         zstd-dict[:1..22]"
    )]
    Option(String),
}

impl Compression {
    /// Parses mgo's `MGO_COMPRESS` syntax: empty (none), `g1`..`g9`, `z1`..`z22`, `Z1`..`Z22`.
    pub fn from_env_value(value: &str) -> Result<Compression, CompressionSpecError> {
        let bad = || CompressionSpecError::Env(value.to_string());
        if value.is_empty() {
            return Ok(Compression::None);
        }
        let (kind, digits) = value.split_at(value.chars().next().map_or(0, char::len_utf8));
        let level = level_digits(digits).ok_or_else(bad)?;
        let mode = match kind {
            "g" => Compression::Gzip(level),
            "z" => Compression::Zstd(level),
            "Z" => Compression::ZstdDict(level),
            _ => return Err(bad()),
        };
        mode.checked().ok_or_else(bad)
    }

    /// Parses the `--compress` syntax: `none`, `gzip[:N]`, `zstd[:N]`, `zstd-dict[:N]`.
    pub fn from_option(value: &str) -> Result<Compression, CompressionSpecError> {
        let bad = || CompressionSpecError::Option(value.to_string());
        let (kind, level) = match value.split_once(':') {
            Some((kind, digits)) => (kind, Some(level_digits(digits).ok_or_else(bad)?)),
            None => (value, None),
        };
        let mode = match kind {
            "none" if level.is_none() => Compression::None,
            "gzip" => Compression::Gzip(level.unwrap_or(GZIP_DEFAULT)),
            "zstd" => Compression::Zstd(level.unwrap_or(ZSTD_DEFAULT)),
            "zstd-dict" => Compression::ZstdDict(level.unwrap_or(ZSTD_DEFAULT)),
            _ => return Err(bad()),
        };
        mode.checked().ok_or_else(bad)
    }

    /// The compression for a pack: the `--compress` value if given, else `MGO_COMPRESS` if set,
    /// else none. An invalid value is an error even where the other one would win, so that a
    /// typo never goes unnoticed.
    pub fn resolve(
        option: Option<&str>,
        env: Option<&OsStr>,
    ) -> Result<Compression, CompressionSpecError> {
        let from_env = match env {
            Some(value) => {
                let text = value.to_str().ok_or_else(|| {
                    CompressionSpecError::Env(value.to_string_lossy().into_owned())
                })?;
                Some(Compression::from_env_value(text)?)
            }
            None => None,
        };
        match option {
            Some(text) => Compression::from_option(text),
            None => Ok(from_env.unwrap_or_default()),
        }
    }

    /// [`Compression::resolve`] with this process's `MGO_COMPRESS`.
    pub fn resolve_with_env(option: Option<&str>) -> Result<Compression, CompressionSpecError> {
        Compression::resolve(option, std::env::var_os(ENV).as_deref())
    }

    fn checked(self) -> Option<Compression> {
        let ok = match self {
            Compression::None => true,
            Compression::Gzip(l) => (1..=GZIP_MAX).contains(&l),
            Compression::Zstd(l) | Compression::ZstdDict(l) => (1..=ZSTD_MAX).contains(&l),
        };
        ok.then_some(self)
    }

    /// The name of the launcher image suffix and the decoder a bundle needs.
    fn codec(self) -> Option<Codec> {
        match self {
            Compression::None => None,
            Compression::Gzip(_) => Some(Codec::Gzip),
            Compression::Zstd(_) | Compression::ZstdDict(_) => Some(Codec::Zstd),
        }
    }
}

/// Digits of a level, without sign or leading zeros ("19", not "+19" or "019").
fn level_digits(digits: &str) -> Option<u8> {
    let plain = !digits.is_empty()
        && digits.len() <= 2
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    plain.then(|| digits.parse().ok()).flatten()
}

impl FromStr for Compression {
    type Err = CompressionSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Compression::from_option(s)
    }
}

impl fmt::Display for Compression {
    /// The `--compress` spelling.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::None => f.write_str("none"),
            Compression::Gzip(l) => write!(f, "gzip:{l}"),
            Compression::Zstd(l) => write!(f, "zstd:{l}"),
            Compression::ZstdDict(l) => write!(f, "zstd-dict:{l}"),
        }
    }
}

/// The decoder a bundle's launcher must carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Codec {
    Zstd,
    Gzip,
}

static X86_64_ZSTD: &[u8] = include_bytes!("../../runtime/image/x86_64-zstd.elf");
static X86_64_GZIP: &[u8] = include_bytes!("../../runtime/image/x86_64-gzip.elf");
static AARCH64_ZSTD: &[u8] = include_bytes!("../../runtime/image/aarch64-zstd.elf");
static AARCH64_GZIP: &[u8] = include_bytes!("../../runtime/image/aarch64-gzip.elf");
static RISCV64_ZSTD: &[u8] = include_bytes!("../../runtime/image/riscv64-zstd.elf");
static RISCV64_GZIP: &[u8] = include_bytes!("../../runtime/image/riscv64-gzip.elf");
static ARM_ZSTD: &[u8] = include_bytes!("../../runtime/image/arm-zstd.elf");
static ARM_GZIP: &[u8] = include_bytes!("../../runtime/image/arm-gzip.elf");
static PPC64LE_ZSTD: &[u8] = include_bytes!("../../runtime/image/ppc64le-zstd.elf");
static PPC64LE_GZIP: &[u8] = include_bytes!("../../runtime/image/ppc64le-gzip.elf");

/// The launcher image a bundle with `compression` needs: the plain one carries no decoder (the
/// smallest, 20 KiB), each codec image carries one (docs/COMPRESSION.md lists their sizes).
pub(crate) fn runtime_image(arch: Arch, compression: Compression) -> Option<&'static [u8]> {
    match (arch, compression.codec()) {
        (_, None) => crate::runtime_image::for_arch(arch),
        (Arch::X86_64, Some(Codec::Zstd)) => Some(X86_64_ZSTD),
        (Arch::X86_64, Some(Codec::Gzip)) => Some(X86_64_GZIP),
        (Arch::Aarch64, Some(Codec::Zstd)) => Some(AARCH64_ZSTD),
        (Arch::Aarch64, Some(Codec::Gzip)) => Some(AARCH64_GZIP),
        (Arch::Riscv64, Some(Codec::Zstd)) => Some(RISCV64_ZSTD),
        (Arch::Riscv64, Some(Codec::Gzip)) => Some(RISCV64_GZIP),
        (Arch::Arm, Some(Codec::Zstd)) => Some(ARM_ZSTD),
        (Arch::Arm, Some(Codec::Gzip)) => Some(ARM_GZIP),
        (Arch::Ppc64le, Some(Codec::Zstd)) => Some(PPC64LE_ZSTD),
        (Arch::Ppc64le, Some(Codec::Gzip)) => Some(PPC64LE_GZIP),
    }
}

/// Every launcher image this packer may put into an `arch` bundle: the plain one and the codec
/// ones.
pub(crate) fn runtime_images(arch: Arch) -> impl Iterator<Item = &'static [u8]> {
    [
        Compression::None,
        Compression::Gzip(GZIP_DEFAULT),
        Compression::Zstd(ZSTD_DEFAULT),
    ]
    .into_iter()
    .filter_map(move |compression| runtime_image(arch, compression))
}

/// A frame never exceeds this (gzip records a member's size in 32 bits).
const MAX_FRAME: usize = 1 << 30;
/// Frames of about this size share out evenly over the launcher's threads (it takes them in
/// order, each thread the next one left) and still compress nearly as well as one frame would:
/// 2 MiB holds most of what a Go program's matches reach for.
const PIECE: usize = 2 << 20;
/// The launcher refuses a variant with more than 64 frames; this leaves room for the cuts at
/// segment boundaries.
const MAX_PIECES: usize = 24;
/// More cuts than this at segment boundaries (an ELF file with very many segments) and the
/// variant is cut by size alone: it then goes through the memfd, as any layout the direct path
/// cannot take.
const MAX_SEGMENT_CUTS: usize = 32;

/// Where the frames of a variant begin and end.
///
/// By size: pieces of about [`PIECE`], at most [`MAX_PIECES`] of them. For an ELF executable
/// also at every loadable segment's file boundaries and after the first
/// [`mgo_format::direct::HEAD_FRAME`] bytes, so that the launcher's direct path can read the
/// program headers from the first frame alone, decode every other frame straight to its place
/// in one segment, and skip the frames that no segment loads (symbols, debug information).
pub fn frame_bounds(content: &[u8]) -> Vec<std::ops::Range<usize>> {
    let len = content.len();
    let mut cuts = vec![0, len];
    let segments = segment_cuts(content);
    if segments.len() <= MAX_SEGMENT_CUTS {
        cuts.extend(segments.into_iter().map(|cut| cut.min(len)));
    }
    cuts.sort_unstable();
    cuts.dedup();
    let piece = PIECE.max(len.div_ceil(MAX_PIECES)).min(MAX_FRAME);
    let mut bounds = Vec::new();
    for pair in cuts.windows(2) {
        let (start, end) = (pair[0], pair[1]);
        let count = (end - start).div_ceil(piece);
        let size = (end - start).div_ceil(count);
        bounds.extend(
            (start..end)
                .step_by(size)
                .map(|at| at..(at + size).min(end)),
        );
    }
    bounds
}

/// The file offsets at which an ELF executable's loadable segments begin and end, and the end of
/// the head frame; nothing for bytes that are not ELF.
fn segment_cuts(content: &[u8]) -> Vec<usize> {
    let Ok(elf) = mgo_format::elf::Elf::parse(content) else {
        return Vec::new();
    };
    let mut cuts = vec![mgo_format::direct::HEAD_FRAME];
    for ph in elf.phdrs() {
        if ph.p_type == mgo_format::elf::PT_LOAD && ph.p_filesz > 0 {
            let start = usize::try_from(ph.p_offset).unwrap_or(usize::MAX);
            let end =
                usize::try_from(ph.p_offset.saturating_add(ph.p_filesz)).unwrap_or(usize::MAX);
            cuts.extend([start, end]);
        }
    }
    cuts
}

/// One variant to encode, by index into the distinct contents of the bundle.
pub(crate) struct Encoded {
    pub encoding: Encoding,
    /// For [`Encoding::ZstdDictionary`]: the index (among the distinct contents) of the base.
    pub dictionary: Option<usize>,
    /// The stored bytes; `None` means stored as they are.
    pub bytes: Option<Vec<u8>>,
}

/// Why compressing failed: the compressor reported an error, or its output did not decode back
/// to the input (a bug this check keeps out of bundles).
#[derive(Clone, Debug)]
pub(crate) struct CompressFailure {
    /// Index among the distinct contents.
    pub content: usize,
    pub reason: String,
}

/// Picks the base of dictionary mode among the distinct contents' levels (x86-64 level codes):
/// v3 if present, which is what most x86-64 machines in service run (every AVX2 CPU since 2013
/// to 2015, and AVX-512 CPUs whose OS or hypervisor hides ZMM), so that most launches decode
/// only the variant they run; otherwise the level nearest to it.
pub(crate) fn dictionary_base(levels: &[u32]) -> usize {
    (0..levels.len())
        .min_by_key(|&i| (levels[i].abs_diff(3), levels[i]))
        .unwrap_or(0)
}

/// Encodes the distinct contents (in bundle order, with their level codes) for `compression`.
pub(crate) fn encode_all(
    contents: &[&[u8]],
    levels: &[u32],
    compression: Compression,
    stored_base: bool,
) -> Result<Vec<Encoded>, CompressFailure> {
    let base = match compression {
        Compression::ZstdDict(_) if contents.len() > 1 => Some(dictionary_base(levels)),
        _ => None,
    };
    // Every (content, frame) pair is one job; results are put back in order, so the output does
    // not depend on scheduling.
    let mut jobs = Vec::new();
    for (i, content) in contents.iter().enumerate() {
        if stored_base && base == Some(i) {
            continue;
        }
        let dict = match base {
            Some(b) if b != i => Some(contents[b]),
            _ => None,
        };
        for range in frame_bounds(content) {
            jobs.push((i, &content[range], dict));
        }
    }
    let level = match compression {
        Compression::None => {
            return Ok(contents
                .iter()
                .map(|_| Encoded {
                    encoding: Encoding::Stored,
                    dictionary: None,
                    bytes: None,
                })
                .collect())
        }
        Compression::Gzip(l) | Compression::Zstd(l) | Compression::ZstdDict(l) => l,
    };
    let results = run_parallel(&jobs, |&(content, data, dict)| {
        let frame = match compression {
            Compression::Gzip(_) => gzip_member(data, level),
            _ => zstd_frame(data, level, dict),
        };
        frame.map_err(|reason| CompressFailure { content, reason })
    });
    let mut frames: Vec<Vec<u8>> = vec![Vec::new(); contents.len()];
    for ((content, _, _), result) in jobs.iter().zip(results) {
        frames[*content].extend_from_slice(&result?);
    }
    Ok(frames
        .into_iter()
        .enumerate()
        .map(|(i, bytes)| {
            let with_dict = base.is_some_and(|b| b != i);
            if stored_base && base == Some(i) {
                return Encoded {
                    encoding: Encoding::Stored,
                    dictionary: None,
                    bytes: None,
                };
            }
            let encoding = match compression {
                Compression::Gzip(_) => Encoding::Deflate,
                _ if with_dict => Encoding::ZstdDictionary,
                _ => Encoding::Zstd,
            };
            // Compression that does not pay (already compressed data) is not kept, except for a
            // dictionary-encoded variant, whose stored form is tiny when it pays at all.
            if bytes.len() >= contents[i].len() && !with_dict {
                return Encoded {
                    encoding: Encoding::Stored,
                    dictionary: None,
                    bytes: None,
                };
            }
            Encoded {
                encoding,
                dictionary: if with_dict { base } else { None },
                bytes: Some(bytes),
            }
        })
        .collect())
}

/// Runs `f` over `items` on all available cores; results in the items' order.
fn run_parallel<I: Sync, T: Send>(items: &[I], f: impl Fn(&I) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<T>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let value = f(item);
                *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
            });
        }
    });
    results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every job ran")
        })
        .collect()
}

/// One zstd frame of `data`, with its content size recorded (the launcher needs it to place
/// the frame's output) and no checksum (the launcher hashes the whole variant anyway).
fn zstd_frame(data: &[u8], level: u8, dict: Option<&[u8]>) -> Result<Vec<u8>, String> {
    use zstd::zstd_safe::{CCtx, CParameter, DCtx};
    let zerr = |e: usize| zstd::zstd_safe::get_error_name(e).to_string();
    let mut cctx = CCtx::try_create().ok_or("libzstd could not allocate a context")?;
    cctx.set_parameter(CParameter::CompressionLevel(level.into()))
        .map_err(zerr)?;
    cctx.set_parameter(CParameter::ContentSizeFlag(true))
        .map_err(zerr)?;
    cctx.set_parameter(CParameter::ChecksumFlag(false))
        .map_err(zerr)?;
    if let Some(dict) = dict {
        // Matches may reach from the end of the frame back to the start of the dictionary, so
        // the window must span both; long-distance matching finds the base's copy of each
        // stretch of code wherever it moved to.
        let span = (dict.len() + data.len()).max(1);
        let window_log = (usize::BITS - (span - 1).leading_zeros()).clamp(10, 31);
        cctx.set_parameter(CParameter::WindowLog(window_log))
            .map_err(zerr)?;
        cctx.set_parameter(CParameter::EnableLongDistanceMatching(true))
            .map_err(zerr)?;
        cctx.ref_prefix(dict).map_err(zerr)?;
    }
    let mut frame = Vec::with_capacity(zstd::zstd_safe::compress_bound(data.len()));
    cctx.compress2(&mut frame, data).map_err(zerr)?;

    // Decode it back as the launcher will: one shot into a buffer of exactly the content size,
    // with the base as raw content.
    let mut back = vec![0u8; data.len()];
    let mut dctx = DCtx::try_create().ok_or("libzstd could not allocate a context")?;
    let n = match dict {
        Some(dict) => dctx.decompress_using_dict(&mut back[..], &frame, dict),
        None => dctx.decompress(&mut back[..], &frame),
    }
    .map_err(zerr)?;
    if n != data.len() || back != data {
        return Err("a zstd frame did not decode back to its input".into());
    }
    Ok(frame)
}

/// One gzip member of `data` (mgo_format::gzip), compressed with miniz_oxide.
fn gzip_member(data: &[u8], level: u8) -> Result<Vec<u8>, String> {
    if data.len() > MAX_MEMBER_OUTPUT {
        return Err("a frame is larger than a gzip member can hold".into());
    }
    let deflate = miniz_oxide::deflate::compress_to_vec(data, level);
    let total = MEMBER_HEADER_LEN + deflate.len() + MEMBER_TRAILER_LEN;
    let total32 = u32::try_from(total).map_err(|_| "a gzip member exceeds 4 GiB".to_string())?;
    let mut member = Vec::with_capacity(total);
    member.extend_from_slice(&member_header(total32));
    member.extend_from_slice(&deflate);
    member.extend_from_slice(&libdeflater::crc32(data).to_le_bytes());
    member.extend_from_slice(&(data.len() as u32).to_le_bytes());

    // Decode it back with libdeflate, the launcher's decoder.
    let mut back = vec![0u8; data.len()];
    let mut d = libdeflater::Decompressor::new();
    let n = d
        .deflate_decompress(&deflate, &mut back)
        .map_err(|e| format!("a gzip member does not decode back: {e:?}"))?;
    if n != data.len() || back != data {
        return Err("a gzip member did not decode back to its input".into());
    }
    Ok(member)
}

/// The original bytes of a compressed entry, decoded as the launcher does (for `extract` and
/// `verify`). The result is not hash-checked here.
pub fn decode(
    bundle: &mgo_format::Bundle<'_>,
    entry: &mgo_format::Entry,
) -> Result<Vec<u8>, String> {
    let stored = bundle.stored(entry);
    let len = usize::try_from(entry.original_len).map_err(|_| "variant too large".to_string())?;
    match entry.encoding {
        Encoding::Stored => Ok(stored.to_vec()),
        Encoding::Deflate => {
            let mut out = Vec::with_capacity(len);
            let mut rest = stored;
            let mut d = libdeflater::Decompressor::new();
            while !rest.is_empty() {
                let member = mgo_format::gzip::parse_member(rest)
                    .ok_or("a gzip member's header is damaged")?;
                let start = out.len();
                out.resize(start + member.output_len, 0);
                let deflate = &rest[MEMBER_HEADER_LEN..MEMBER_HEADER_LEN + member.deflate_len];
                let n = d
                    .deflate_decompress(deflate, &mut out[start..])
                    .map_err(|e| format!("a gzip member does not decode: {e:?}"))?;
                if n != member.output_len {
                    return Err("a gzip member decodes to the wrong length".into());
                }
                rest = &rest[member.len..];
            }
            Ok(out)
        }
        Encoding::Zstd | Encoding::ZstdDictionary => {
            let dict = if entry.encoding == Encoding::ZstdDictionary {
                let base = bundle
                    .entry(entry.dictionary as usize)
                    .map_err(|e| e.message().to_string())?;
                if base.encoding == Encoding::ZstdDictionary {
                    return Err("its dictionary is itself dictionary-encoded".into());
                }
                Some(decode(bundle, &base)?)
            } else {
                None
            };
            let mut out = vec![0u8; len];
            let mut dctx = zstd::zstd_safe::DCtx::try_create()
                .ok_or("libzstd could not allocate a context")?;
            let mut at: usize = 0;
            let mut rest = stored;
            while !rest.is_empty() {
                let frame_len = zstd::zstd_safe::find_frame_compressed_size(rest)
                    .map_err(|e| zstd::zstd_safe::get_error_name(e).to_string())?;
                let frame = &rest[..frame_len.min(rest.len())];
                let content = zstd::zstd_safe::get_frame_content_size(frame)
                    .ok()
                    .flatten()
                    .ok_or("a zstd frame does not record its size")?;
                let end = usize::try_from(content)
                    .ok()
                    .and_then(|c| at.checked_add(c))
                    .filter(|&end| end <= len)
                    .ok_or("the zstd frames decode to more than the variant's length")?;
                let target = &mut out[at..end];
                let n = match &dict {
                    Some(dict) => dctx.decompress_using_dict(target, frame, dict),
                    None => dctx.decompress(target, frame),
                }
                .map_err(|e| zstd::zstd_safe::get_error_name(e).to_string())?;
                if n != end - at {
                    return Err("a zstd frame decodes to the wrong length".into());
                }
                at = end;
                rest = &rest[frame.len()..];
            }
            if at != len {
                return Err("the zstd frames decode to less than the variant's length".into());
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mgo_syntax() {
        use Compression::*;
        assert_eq!(Compression::from_env_value(""), Ok(None));
        assert_eq!(Compression::from_env_value("g1"), Ok(Gzip(1)));
        assert_eq!(Compression::from_env_value("g9"), Ok(Gzip(9)));
        assert_eq!(Compression::from_env_value("z1"), Ok(Zstd(1)));
        assert_eq!(Compression::from_env_value("z11"), Ok(Zstd(11)));
        assert_eq!(Compression::from_env_value("z19"), Ok(Zstd(19)));
        assert_eq!(Compression::from_env_value("z22"), Ok(Zstd(22)));
        assert_eq!(Compression::from_env_value("Z1"), Ok(ZstdDict(1)));
        assert_eq!(Compression::from_env_value("Z22"), Ok(ZstdDict(22)));
        for bad in [
            "g0",
            "g10",
            "z0",
            "z23",
            "Z0",
            "Z23",
            "g",
            "z",
            "Z",
            "x3",
            "G9",
            "gz",
            "g-1",
            "g+1",
            "z019",
            "z1.5",
            " z3",
            "z3 ",
            "zstd",
            "none",
            "é3",
            "z999999999999999999999",
        ] {
            assert_eq!(
                Compression::from_env_value(bad),
                Err(CompressionSpecError::Env(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn option_syntax() {
        use Compression::*;
        assert_eq!(Compression::from_option("none"), Ok(None));
        assert_eq!(Compression::from_option("gzip"), Ok(Gzip(9)));
        assert_eq!(Compression::from_option("gzip:1"), Ok(Gzip(1)));
        assert_eq!(Compression::from_option("zstd"), Ok(Zstd(19)));
        assert_eq!(Compression::from_option("zstd:3"), Ok(Zstd(3)));
        assert_eq!(Compression::from_option("zstd:22"), Ok(Zstd(22)));
        assert_eq!(Compression::from_option("zstd-dict"), Ok(ZstdDict(19)));
        assert_eq!(Compression::from_option("zstd-dict:11"), Ok(ZstdDict(11)));
        for bad in [
            "",
            "none:1",
            "gzip:0",
            "gzip:10",
            "zstd:0",
            "zstd:23",
            "zstd-dict:23",
            "zstd:",
            "gzip:",
            "Zstd",
            "zstd:x",
            "zstd:1:2",
            "lz4",
            "g9",
            "z19",
            "deflate",
            "zstd-dict:-1",
        ] {
            assert_eq!(
                Compression::from_option(bad),
                Err(CompressionSpecError::Option(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for mode in [
            Compression::None,
            Compression::Gzip(6),
            Compression::Zstd(22),
            Compression::ZstdDict(1),
        ] {
            assert_eq!(mode.to_string().parse::<Compression>(), Ok(mode));
        }
    }

    #[test]
    fn option_wins_over_env() {
        let env = |s: &str| Some(std::ffi::OsString::from(s));
        assert_eq!(
            Compression::resolve(Some("gzip:3"), env("Z19").as_deref()),
            Ok(Compression::Gzip(3))
        );
        assert_eq!(
            Compression::resolve(Some("none"), env("z5").as_deref()),
            Ok(Compression::None)
        );
        assert_eq!(
            Compression::resolve(None, env("Z19").as_deref()),
            Ok(Compression::ZstdDict(19))
        );
        assert_eq!(Compression::resolve(None, None), Ok(Compression::None));
        assert_eq!(
            Compression::resolve(None, env("").as_deref()),
            Ok(Compression::None)
        );
        // A broken variable is reported even when the option overrides it.
        assert_eq!(
            Compression::resolve(Some("zstd"), env("z99").as_deref()),
            Err(CompressionSpecError::Env("z99".into()))
        );
        assert_eq!(
            Compression::resolve(Some("zstd:99"), None),
            Err(CompressionSpecError::Option("zstd:99".into()))
        );
    }

    #[test]
    fn messages_name_the_value_and_the_syntax() {
        let e = Compression::from_env_value("z0").unwrap_err().to_string();
        assert!(
            e.contains("MGO_COMPRESS=\"z0\"") && e.contains("z1..z22"),
            "{e}"
        );
        let e = Compression::from_option("lz4").unwrap_err().to_string();
        assert!(
            e.contains("--compress \"lz4\"") && e.contains("zstd-dict"),
            "{e}"
        );
    }

    #[test]
    fn frames_are_few_and_even() {
        let plain = |len: usize| frame_bounds(&vec![0u8; len]);
        assert_eq!(plain(0), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(plain(1000), vec![0..1000]);
        assert_eq!(plain(PIECE), vec![0..PIECE]);
        assert_eq!(plain(PIECE + 1).len(), 2);
        let go = plain(15_282_458);
        assert_eq!(go.len(), 8);
        assert_eq!(go.last().unwrap().end, 15_282_458);
        assert!(go.windows(2).all(|w| w[0].end == w[1].start));
        assert_eq!(plain(200 << 20).len(), MAX_PIECES);
    }

    #[test]
    fn elf_frames_follow_the_segments() {
        use mgo_format::elf::{ProgramHeader, EHDR_LEN, PHDR_LEN, PT_LOAD};
        // Text from 0 to 0x5000, data from 0x6000 to 0x6800, then 3 MiB nobody loads.
        let len = 0x6800 + (3 << 20);
        let mut elf = vec![0u8; len];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[16..18].copy_from_slice(&2u16.to_le_bytes());
        elf[18..20].copy_from_slice(&62u16.to_le_bytes());
        elf[32..40].copy_from_slice(&(EHDR_LEN as u64).to_le_bytes());
        elf[54..56].copy_from_slice(&(PHDR_LEN as u16).to_le_bytes());
        elf[56..58].copy_from_slice(&2u16.to_le_bytes());
        for (i, (offset, filesz)) in [(0u64, 0x5000u64), (0x6000, 0x800)].into_iter().enumerate() {
            let ph = ProgramHeader {
                p_type: PT_LOAD,
                p_flags: 4,
                p_offset: offset,
                p_vaddr: 0x400000 + offset,
                p_paddr: 0,
                p_filesz: filesz,
                p_memsz: filesz,
                p_align: 0x1000,
            };
            let at = EHDR_LEN + i * PHDR_LEN;
            elf[at..at + PHDR_LEN].copy_from_slice(&ph.to_bytes());
        }
        let bounds = frame_bounds(&elf);
        assert_eq!(bounds[0], 0..4096);
        assert_eq!(bounds[1], 4096..0x5000);
        assert_eq!(bounds[2], 0x5000..0x6000);
        assert_eq!(bounds[3], 0x6000..0x6800);
        assert_eq!(bounds.len(), 6, "{bounds:x?}");
        assert_eq!(bounds.last().unwrap().end, len);
        assert!(bounds.windows(2).all(|w| w[0].end == w[1].start));
    }

    #[test]
    fn a_stored_base_is_kept_as_it_is() {
        let a = sample(300_000, 1);
        let b = sample(300_000, 2);
        let encoded = encode_all(&[&a, &b], &[1, 3], Compression::ZstdDict(3), true).unwrap();
        assert_eq!(encoded[1].encoding, Encoding::Stored);
        assert!(encoded[1].bytes.is_none());
        assert_eq!(encoded[0].encoding, Encoding::ZstdDictionary);
        assert_eq!(encoded[0].dictionary, Some(1));
        // Without dictionary mode the option changes nothing.
        let plain = encode_all(&[&a, &b], &[1, 3], Compression::Zstd(3), true).unwrap();
        assert!(plain.iter().all(|e| e.encoding == Encoding::Zstd));
    }

    #[test]
    fn base_is_v3_or_nearest() {
        assert_eq!(dictionary_base(&[1, 2, 3, 4]), 2);
        assert_eq!(dictionary_base(&[1, 2]), 1);
        assert_eq!(dictionary_base(&[1, 4]), 1);
        assert_eq!(dictionary_base(&[2, 4]), 0);
        assert_eq!(dictionary_base(&[1]), 0);
    }

    fn sample(len: usize, seed: u8) -> Vec<u8> {
        // Compressible but not trivial: a repeating ramp with sparse changes.
        (0..len)
            .map(|i| (i % 251) as u8 ^ if i % 4099 == 0 { seed } else { 0 })
            .collect()
    }

    #[test]
    fn every_mode_decodes_back() {
        let a = sample(300_000, 1);
        let b = sample(300_000, 2);
        for mode in [
            Compression::Gzip(1),
            Compression::Gzip(9),
            Compression::Zstd(1),
            Compression::Zstd(19),
            Compression::ZstdDict(3),
        ] {
            let encoded = encode_all(&[&a, &b], &[1, 3], mode, false).unwrap();
            assert_eq!(encoded.len(), 2);
            for (e, original) in encoded.iter().zip([&a, &b]) {
                let bytes = e.bytes.as_ref().expect("compressible");
                assert!(bytes.len() < original.len() / 4, "{mode}: {}", bytes.len());
            }
            if mode == Compression::ZstdDict(3) {
                assert_eq!(encoded[1].encoding, Encoding::Zstd, "v3 is the base");
                assert_eq!(encoded[0].encoding, Encoding::ZstdDictionary);
                assert_eq!(encoded[0].dictionary, Some(1));
            }
        }
    }
}
