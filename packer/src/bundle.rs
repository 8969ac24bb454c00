//! Laying out a bundle: the runtime image, then the page-aligned payload region (header, variant
//! data, index), with the image's spare program header turned into the `PT_LOAD` that maps the
//! region. `docs/FORMAT.md` describes the result.

use std::collections::HashMap;

use mgo_format::elf::{Class, Elf, ProgramHeader, PF_R, PT_LOAD, PT_NULL};
use mgo_format::{
    content_hash, direct, Arch, Encoding, Entry, Header, ENTRY_CACHE, ENTRY_DIRECT, ENTRY_LEN,
    ENTRY_OWN_LOCATION, FORMAT_VERSION, HEADER_LEN, NO_DICTIONARY,
};

use crate::compress::{self, Compression};
use crate::{elf_sections, PackError, Variant};

/// The largest bundle of 32-bit programs: the kernel maps the whole of it, the payload region
/// from 64 MiB up (`Arch::payload_vaddr`), in an address space that ends at 2 GiB under the
/// smallest user split 32-bit ARM kernels are built with.
const MAX_ELF32_BUNDLE_LEN: u64 = 1 << 30;

/// How the launcher starts the packed program (docs/ARCHITECTURE.md, "Launch paths").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Launch {
    /// Map each stored variant straight from the bundle file (and a dynamically linked one's
    /// interpreter from its own file) and jump to it: no copy, pages shared by all running
    /// instances. A compressed variant is decoded straight into its segments instead, skipping
    /// what no segment loads. Variants that cannot be mapped (an executable stack, say) are
    /// copied into a memfd and exec'd. Opt-in: `/proc/PID/exe` then names the bundle, not the
    /// variant as mgo documents.
    Direct,
    /// Write the chosen variant once, decoded and hash-checked, as a real executable file in the
    /// user's cache directory (`$XDG_CACHE_HOME/mgo-pack/`, else `~/.cache/mgo-pack/`), named
    /// after the program, and execute that file, then and at every later start: `/proc/PID/exe`
    /// is a real file holding exactly the build's bytes, instances share its page cache, and a
    /// compressed variant is decoded once. Where the cache cannot be used (no home, a read-only
    /// or noexec directory, a full disk, secure-execution mode) the launch goes on as for
    /// [`Launch::Memfd`]. A program that finds its libraries through `$ORIGIN` takes the direct
    /// path instead, as with any launch path: from the cache it would not find them.
    Cache,
    /// Copy every variant into a memfd and exec it, as mgo does (`/proc/PID/exe` then names the
    /// variant). The default, because that name is behaviour mgo's users rely on.
    #[default]
    Memfd,
}

/// Choices that shape the bundle beyond its variants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BundleOptions {
    pub launch: Launch,
    /// How the variants are stored (docs/COMPRESSION.md).
    pub compression: Compression,
    /// With [`Compression::ZstdDict`]: keep the base variant uncompressed, so that it is its own
    /// dictionary where it lies in the bundle (nothing to decode for it, and a static base can
    /// take the direct launch path), at the cost of its compressed size. docs/COMPRESSION.md
    /// weighs the two.
    pub stored_base: bool,
}

impl BundleOptions {
    pub fn with_launch(mut self, launch: Launch) -> BundleOptions {
        self.launch = launch;
        self
    }

    pub fn with_compression(mut self, compression: Compression) -> BundleOptions {
        self.compression = compression;
        self
    }

    pub fn with_stored_base(mut self, stored_base: bool) -> BundleOptions {
        self.stored_base = stored_base;
        self
    }
}

/// Builds the bundle bytes for `variants` (any order; at most one per level) with the default
/// options.
pub fn build_bundle(variants: &[Variant]) -> Result<Vec<u8>, PackError> {
    build_bundle_with(variants, &BundleOptions::default())
}

/// Builds the bundle bytes for `variants` (any order; at most one per level).
pub fn build_bundle_with(
    variants: &[Variant],
    options: &BundleOptions,
) -> Result<Vec<u8>, PackError> {
    let arch = crate::input::common_arch(variants)?;
    let mut order: Vec<&Variant> = variants.iter().collect();
    order.sort_by_key(|v| v.level);
    for pair in order.windows(2) {
        if pair[0].level == pair[1].level {
            return Err(PackError::DuplicateLevel {
                level: crate::level_name(pair[0].level).into(),
                first: pair[0].path.clone(),
                second: pair[1].path.clone(),
            });
        }
    }
    // The direct path's loader (runtime/src/launcher/{moved,segments,enter}.rs) places ELF64
    // programs only: refused outright rather than silently taking the memfd.
    if options.launch == Launch::Direct && arch.class() == Class::Elf32 {
        return Err(PackError::DirectUnsupported {
            arch: crate::input::arch_name(arch),
        });
    }
    let image =
        compress::runtime_image(arch, options.compression).ok_or(PackError::RuntimeImage {
            arch: arch.name(),
            reason: if options.compression == Compression::None {
                "no image for this architecture"
            } else {
                "no launcher with a decoder for this architecture; pack it without compression"
            },
        })?;
    let align = arch.page_align();

    // Identical builds (a program that gains nothing from v3, say) are stored once: each
    // variant refers to one distinct content, named by the first variant that has it.
    let mut contents: Vec<usize> = Vec::new();
    let mut content_of = Vec::with_capacity(order.len());
    let mut hashes = Vec::with_capacity(order.len());
    let mut by_hash: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, variant) in order.iter().enumerate() {
        let hash = content_hash(&variant.bytes);
        hashes.push(hash);
        let same = by_hash.get(&hash).and_then(|candidates| {
            candidates
                .iter()
                .copied()
                .find(|&c| order[contents[c]].bytes == variant.bytes)
        });
        let content = same.unwrap_or_else(|| {
            contents.push(i);
            by_hash.entry(hash).or_default().push(contents.len() - 1);
            contents.len() - 1
        });
        content_of.push(content);
    }
    let data: Vec<&[u8]> = contents
        .iter()
        .map(|&i| order[i].bytes.as_slice())
        .collect();
    let levels: Vec<u32> = contents.iter().map(|&i| order[i].level).collect();
    let encoded = compress::encode_all(&data, &levels, options.compression, options.stored_base)
        .map_err(|failure| PackError::Compression {
            path: order[contents[failure.content]].path.clone(),
            reason: failure.reason,
        })?;

    // Region layout: header, the base variant's Go build information (so that `go version -m`
    // reads the bundle as it reads the program), then each distinct content at a page boundary,
    // then the index.
    let mut region = vec![0u8; HEADER_LEN];
    let buildinfo = elf_sections::go_buildinfo(&order[0].bytes).map(|blob| {
        pad_to(&mut region, GO_BUILDINFO_ALIGN);
        let at = region.len() as u64;
        region.extend_from_slice(&blob);
        (at, blob.len() as u64)
    });
    let mut placed = Vec::with_capacity(contents.len());
    for (content, encoding) in encoded.iter().enumerate() {
        pad_to(&mut region, align);
        let bytes = encoding.bytes.as_deref().unwrap_or(data[content]);
        placed.push((region.len() as u64, bytes.len() as u64));
        region.extend_from_slice(bytes);
    }
    let mut entries = Vec::with_capacity(order.len());
    for (i, variant) in order.iter().enumerate() {
        let content = content_of[i];
        let encoding = &encoded[content];
        // A dictionary is named by its entry: the first variant with the base's content.
        let dictionary = match encoding.dictionary {
            Some(base) => u8::try_from(contents[base])
                .ok()
                .filter(|&index| index != NO_DICTIONARY)
                .ok_or_else(|| PackError::Compression {
                    path: variant.path.clone(),
                    reason: "its dictionary's index does not fit the format".into(),
                })?,
            None => NO_DICTIONARY,
        };
        // The launcher checks the layout again before mapping; this records the choice. A
        // program that must run from the bundle's location takes the direct path whatever the
        // path asked for: a copy elsewhere (a memfd, the cache) would not find its libraries.
        let own_location = crate::input::needs_own_location(&variant.bytes).is_some();
        let direct = (options.launch == Launch::Direct || own_location)
            && launchable_directly(&variant.bytes, encoding.encoding, arch, align);
        let mut flags = 0;
        if direct {
            flags |= ENTRY_DIRECT;
            if own_location {
                flags |= ENTRY_OWN_LOCATION;
            }
        } else if options.launch == Launch::Cache {
            // Any other executable can be cached: it is a file like the build.
            flags |= ENTRY_CACHE;
        }
        let (offset, stored_len) = placed[content];
        entries.push(Entry {
            level: variant.level,
            encoding: encoding.encoding,
            dictionary,
            flags,
            offset,
            stored_len,
            original_len: variant.bytes.len() as u64,
            content_hash: hashes[i],
            stored_hash: content_hash(encoding.bytes.as_deref().unwrap_or(data[content])),
        });
    }
    pad_to(&mut region, 8);
    let index_offset = region.len() as u64;
    for entry in &entries {
        region.extend_from_slice(&entry.to_bytes());
    }
    let index_len = (entries.len() * ENTRY_LEN) as u64;

    // What mgo-pack writes, it reads back.
    let len = (image.len() as u64).div_ceil(align) * align + region.len() as u64;
    let max = match arch.class() {
        Class::Elf64 => crate::MAX_BUNDLE_LEN,
        Class::Elf32 => MAX_ELF32_BUNDLE_LEN,
    };
    if len > max {
        return Err(PackError::BundleTooLarge {
            len,
            max_gib: max >> 30,
        });
    }
    // The launcher with its payload program header filled in comes first: the header records
    // its hash, and the program headers are part of what is hashed.
    let mut out = image.to_vec();
    pad_to(&mut out, align as usize as u64);
    let region_offset = out.len() as u64;
    let phdr = ProgramHeader {
        p_type: PT_LOAD,
        p_flags: PF_R,
        p_offset: region_offset,
        p_vaddr: arch.payload_vaddr(),
        p_paddr: arch.payload_vaddr(),
        p_filesz: region.len() as u64,
        p_memsz: region.len() as u64,
        p_align: align,
    };
    let slot = spare_phdr_offset(image, arch.name())?;
    let class = arch.class();
    phdr.write(class, &mut out[slot..slot + class.phdr_len()]);
    let launcher_hash =
        mgo_format::launcher_hash_of_file(&out).map_err(|e| PackError::RuntimeImage {
            arch: arch.name(),
            reason: e.message(),
        })?;
    // A second copy of the hash, where the launcher reads it before the region (the payload
    // program header is not hashed, so writing it keeps the hash; ELF32 keeps its low half).
    let phdr = ProgramHeader {
        p_paddr: arch.hash_in_phdr(launcher_hash),
        ..phdr
    };
    phdr.write(class, &mut out[slot..slot + class.phdr_len()]);
    let header = Header {
        version: FORMAT_VERSION,
        machine: arch.elf_machine(),
        variant_count: entries.len() as u16,
        flags: 0,
        region_len: region.len() as u64,
        index_offset,
        index_len,
        index_hash: content_hash(&region[index_offset as usize..]),
        launcher_hash,
    };
    region[..HEADER_LEN].copy_from_slice(&header.to_bytes());
    out.extend_from_slice(&region);
    elf_sections::append_section_table(
        &mut out,
        image,
        &region_sections(
            region_offset,
            region.len() as u64,
            arch.payload_vaddr(),
            buildinfo,
        ),
    )?;
    Ok(out)
}

/// Go's reader wants the build information blob 16-byte aligned.
const GO_BUILDINFO_ALIGN: u64 = 16;

/// Sections that together cover the whole payload region, so that `strip` and `objcopy` keep
/// every byte of it: the region header, the optional `.go.buildinfo` copy, and the rest.
fn region_sections(
    offset: u64,
    len: u64,
    vaddr: u64,
    buildinfo: Option<(u64, u64)>,
) -> Vec<elf_sections::Section> {
    let section = |name, start: u64, end: u64, align| elf_sections::Section {
        name,
        offset: offset + start,
        addr: vaddr + start,
        size: end - start,
        align,
    };
    match buildinfo {
        Some((at, size)) => vec![
            section(".mgo.header", 0, at, 8),
            section(".go.buildinfo", at, at + size, GO_BUILDINFO_ALIGN),
            section(".mgo.payload", at + size, len, 8),
        ],
        None => vec![section(".mgo.payload", 0, len, 8)],
    }
}

/// The file offset of the image's one spare (`PT_NULL`) program header.
fn spare_phdr_offset(image: &[u8], arch: &'static str) -> Result<usize, PackError> {
    let damaged = |reason| PackError::RuntimeImage { arch, reason };
    let elf = Elf::parse(image).map_err(|e| damaged(e.message()))?;
    let mut spare = (0..elf.phnum()).filter(|&i| elf.phdr(i).p_type == PT_NULL);
    match (spare.next(), spare.next()) {
        (Some(i), None) => Ok(elf.phdr_offset(i)),
        _ => Err(damaged("it needs exactly one spare program header")),
    }
}

fn pad_to(bytes: &mut Vec<u8>, align: u64) {
    let len = bytes.len() as u64;
    let padded = len.div_ceil(align) * align;
    bytes.resize(padded as usize, 0);
}

/// Whether the launcher can start `bytes` without a memfd: a stored variant by mapping its
/// segments from the bundle, a compressed one by decoding its frames straight into them (which
/// needs the frames cut as [`compress::frame_bounds`] cuts ELF files).
pub(crate) fn launchable_directly(
    bytes: &[u8],
    encoding: Encoding,
    arch: Arch,
    align: u64,
) -> bool {
    let Ok(image) = direct::check(bytes, arch.elf_machine(), align) else {
        return false;
    };
    if encoding == Encoding::Stored {
        return true;
    }
    let frames = compress::frame_bounds(bytes);
    frames
        .first()
        .is_some_and(|head| head.end <= direct::HEAD_FRAME)
        && frames
            .iter()
            .all(|frame| direct::place(&image, frame.start as u64, frame.len() as u64).is_ok())
}
