//! Which bytes of a bundle a campaign flips, and what lives at a given offset.
//!
//! The program headers are read here rather than through `mgo_format::Region::locate`, so that
//! the campaign does not inherit a bug of the reader it is testing: the payload region is the
//! `PT_LOAD` whose flags are exactly `PF_R`. The region header is parsed (and its hash checked)
//! with `mgo_format::Header`.

use std::ops::Range;

use anyhow::{anyhow, bail, Result};
use mgo_format::{Header, ENTRY_LEN, HEADER_LEN};

const PT_LOAD: u32 = 1;
const PF_R: u32 = 4;
const EHDR_LEN: u64 = 64;
const PHDR_LEN: u64 = 56;

/// The two parts `--range` chooses from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Every file byte before the payload region: the launcher image and its padding.
    Launcher,
    /// The payload region's header and its index.
    Headers,
}

#[derive(Clone, Copy, Debug)]
pub struct ProgramHeader {
    pub p_type: u32,
    pub p_flags: u32,
    pub p_offset: u64,
    pub p_filesz: u64,
}

#[derive(Debug)]
pub struct Layout {
    pub phoff: u64,
    pub phdrs: Vec<ProgramHeader>,
    pub region: Range<u64>,
    pub index: Range<u64>,
}

impl Layout {
    pub fn parse(file: &[u8]) -> Result<Layout> {
        if file.len() < EHDR_LEN as usize
            || &file[..4] != b"\x7fELF"
            || file[4] != 2
            || file[5] != 1
        {
            bail!("not a 64-bit little-endian ELF file");
        }
        let phoff = u64_at(file, 32)?;
        let phentsize = u16::from_le_bytes([file[54], file[55]]) as u64;
        let phnum = u16::from_le_bytes([file[56], file[57]]) as u64;
        if phentsize != PHDR_LEN {
            bail!("program header entries of {phentsize} bytes");
        }
        let phdrs = (0..phnum)
            .map(|i| {
                let at = (phoff + i * PHDR_LEN) as usize;
                Ok(ProgramHeader {
                    p_type: u32_at(file, at)?,
                    p_flags: u32_at(file, at + 4)?,
                    p_offset: u64_at(file, at + 8)?,
                    p_filesz: u64_at(file, at + 32)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut payload = phdrs
            .iter()
            .filter(|ph| ph.p_type == PT_LOAD && ph.p_flags == PF_R);
        let (Some(ph), None) = (payload.next(), payload.next()) else {
            bail!("not exactly one read-only PT_LOAD program header");
        };
        let end = ph
            .p_offset
            .checked_add(ph.p_filesz)
            .ok_or_else(|| anyhow!("the payload segment's end overflows"))?;
        let region = ph.p_offset..end;
        let bytes = file
            .get(region.start as usize..region.end as usize)
            .ok_or_else(|| anyhow!("the payload region {region:?} is not inside the file"))?;
        let header = Header::parse(bytes).map_err(|e| anyhow!("region header: {e}"))?;
        let index_end = header
            .index_offset
            .checked_add(header.index_len)
            .filter(|&end| end <= header.region_len && end <= region.end - region.start)
            .ok_or_else(|| anyhow!("the index is not inside the region"))?;
        let index = region.start + header.index_offset..region.start + index_end;
        Ok(Layout {
            phoff,
            phdrs,
            region,
            index,
        })
    }

    /// The file ranges of a part, in file order.
    pub fn ranges(&self, part: Part) -> Vec<Range<u64>> {
        let before_region = 0..self.region.start;
        match part {
            Part::Launcher => vec![before_region],
            Part::Headers => vec![
                self.region.start..self.region.start + HEADER_LEN as u64,
                self.index.clone(),
            ],
        }
    }

    /// What the byte at `offset` of the unflipped bundle is, for a developer reading the report:
    /// `ELF header e_phoff`, `program header 2 (LOAD R) p_filesz`, `segment 0 (LOAD R E) +0x4e1`,
    /// `region header index_hash`, `index entry 3 content_hash`.
    pub fn describe(&self, offset: u64) -> String {
        if offset < EHDR_LEN {
            return format!("ELF header {}", field(EHDR_FIELDS, offset));
        }
        let table = self.phoff..self.phoff + self.phdrs.len() as u64 * PHDR_LEN;
        if table.contains(&offset) {
            let i = (offset - self.phoff) / PHDR_LEN;
            let ph = &self.phdrs[i as usize];
            return format!(
                "program header {i} ({}) {}",
                kind(ph),
                field(PHDR_FIELDS, (offset - self.phoff) % PHDR_LEN)
            );
        }
        let header = self.region.start..self.region.start + HEADER_LEN as u64;
        if header.contains(&offset) {
            return format!(
                "region header {}",
                field(REGION_HEADER_FIELDS, offset - header.start)
            );
        }
        if self.index.contains(&offset) {
            let at = offset - self.index.start;
            return format!(
                "index entry {} {}",
                at / ENTRY_LEN as u64,
                field(ENTRY_FIELDS, at % ENTRY_LEN as u64)
            );
        }
        if offset < self.region.start {
            for (i, ph) in self.phdrs.iter().enumerate() {
                if ph.p_type == PT_LOAD
                    && ph.p_flags != PF_R
                    && (ph.p_offset..ph.p_offset + ph.p_filesz).contains(&offset)
                {
                    return format!("segment {i} ({}) +{:#x}", kind(ph), offset - ph.p_offset);
                }
            }
            return "launcher, outside its segments (section table, padding)".into();
        }
        "payload region".into()
    }
}

/// `LOAD R E`, as readelf writes a program header's type and flags.
fn kind(ph: &ProgramHeader) -> String {
    let name = match ph.p_type {
        0 => "NULL".to_string(),
        1 => "LOAD".to_string(),
        0x6474_e551 => "GNU_STACK".to_string(),
        other => format!("type {other:#x}"),
    };
    let flags: String = [(4, " R"), (2, " W"), (1, " E")]
        .iter()
        .filter(|(bit, _)| ph.p_flags & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    format!("{name}{flags}")
}

/// (start, name) of each field of a structure, in order.
type Fields = &'static [(u64, &'static str)];

const EHDR_FIELDS: Fields = &[
    (0, "e_ident magic"),
    (4, "e_ident class"),
    (5, "e_ident data"),
    (6, "e_ident version"),
    (7, "e_ident osabi"),
    (8, "e_ident padding"),
    (16, "e_type"),
    (18, "e_machine"),
    (20, "e_version"),
    (24, "e_entry"),
    (32, "e_phoff"),
    (40, "e_shoff"),
    (48, "e_flags"),
    (52, "e_ehsize"),
    (54, "e_phentsize"),
    (56, "e_phnum"),
    (58, "e_shentsize"),
    (60, "e_shnum"),
    (62, "e_shstrndx"),
];

const PHDR_FIELDS: Fields = &[
    (0, "p_type"),
    (4, "p_flags"),
    (8, "p_offset"),
    (16, "p_vaddr"),
    (24, "p_paddr"),
    (32, "p_filesz"),
    (40, "p_memsz"),
    (48, "p_align"),
];

/// docs/FORMAT.md section 3.
const REGION_HEADER_FIELDS: Fields = &[
    (0, "magic"),
    (8, "version"),
    (10, "machine"),
    (12, "variant_count"),
    (14, "flags"),
    (16, "region_len"),
    (24, "index_offset"),
    (32, "index_len"),
    (40, "index_hash"),
    (48, "reserved"),
    (56, "header_hash"),
];

/// docs/FORMAT.md section 4.
const ENTRY_FIELDS: Fields = &[
    (0, "level"),
    (4, "encoding"),
    (5, "dictionary"),
    (6, "flags"),
    (8, "offset"),
    (16, "stored_len"),
    (24, "original_len"),
    (32, "content_hash"),
    (40, "stored_hash"),
];

fn field(fields: Fields, at: u64) -> &'static str {
    fields
        .iter()
        .rev()
        .find(|(start, _)| *start <= at)
        .map_or("?", |(_, name)| *name)
}

fn u32_at(b: &[u8], at: usize) -> Result<u32> {
    let bytes = b
        .get(at..at + 4)
        .ok_or_else(|| anyhow!("truncated at {at}"))?;
    Ok(u32::from_le_bytes(bytes.try_into()?))
}

fn u64_at(b: &[u8], at: usize) -> Result<u64> {
    let bytes = b
        .get(at..at + 8)
        .ok_or_else(|| anyhow!("truncated at {at}"))?;
    Ok(u64::from_le_bytes(bytes.try_into()?))
}
