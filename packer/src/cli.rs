//! What the `mgo-pack` command prints: the progress line, reports of a pack, `inspect` as text
//! and JSON, `verify` results. Only the binary uses this module.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::Path;

use mgo_pack::{
    escaped, level_name, BundleInfo, Compression, Event, LevelOrigin, PackError, Packed,
    Verification,
};

/// How much the command says; errors are always printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// The transient progress line, drawn on stderr only when it is a terminal (and not `--quiet`),
/// so logs and pipes never see it.
pub struct Progress {
    enabled: bool,
    drawn: bool,
}

impl Progress {
    pub fn new(verbosity: Verbosity) -> Progress {
        Progress {
            enabled: verbosity != Verbosity::Quiet && std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    pub fn event(&mut self, event: Event<'_>) {
        let text = match event {
            Event::Read {
                index,
                count,
                path,
                len,
            } => format!(
                "reading [{}/{count}] {} ({})",
                index + 1,
                short(path),
                size(len)
            ),
            Event::Building {
                variants,
                compression: Compression::None,
            } => format!("building the bundle of {variants} variants"),
            Event::Building {
                variants,
                compression,
            } => format!("compressing {variants} variants ({compression})"),
            Event::Writing { path, len } => format!("writing {} ({})", short(path), size(len)),
            _ => return,
        };
        self.draw(&text);
    }

    fn draw(&mut self, text: &str) {
        if !self.enabled {
            return;
        }
        // \r and "erase line" redraw in place, which works only while the line fits one row.
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[Kmgo-pack: {text}");
        let _ = err.flush();
        self.drawn = true;
    }

    /// Erases the progress line, before anything else is printed.
    pub fn clear(&mut self) {
        if self.drawn {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
            self.drawn = false;
        }
    }

    /// Whether a closing summary is wanted without `--verbose`: on a terminal, yes.
    pub fn on_terminal(&self) -> bool {
        self.enabled
    }
}

/// A path cut in the middle to at most 40 characters, so that the progress line fits a row.
fn short(path: &Path) -> String {
    const MAX: usize = 40;
    let text = escaped(path).to_string();
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= MAX {
        return text;
    }
    let head: String = chars[..MAX / 2 - 1].iter().collect();
    let tail: String = chars[chars.len() - MAX / 2..].iter().collect();
    format!("{head}…{tail}")
}

/// `1.8 MiB`-style sizes for summaries; exact byte counts appear in `inspect`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Digits grouped by thousands: `1,843,200`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn origin(origin: LevelOrigin) -> &'static str {
    match origin {
        LevelOrigin::Given => "as named",
        LevelOrigin::Position => "by position",
        LevelOrigin::Recorded => "as recorded",
        LevelOrigin::Forced => "forced",
    }
}

/// The report after a pack: per input with `--verbose`, one line on a terminal.
pub fn report_pack(out: &Path, packed: &Packed, verbosity: Verbosity, on_terminal: bool) {
    if verbosity == Verbosity::Quiet {
        return;
    }
    let mut text = String::new();
    if verbosity == Verbosity::Verbose {
        for v in &packed.variants {
            let _ = write!(
                text,
                "mgo-pack: {} {} ({}; {}), {} bytes, xxh3 {:016x}",
                level_name(v.level),
                escaped(&v.path),
                origin(v.origin),
                v.declared,
                grouped(v.len),
                v.content_hash
            );
            match v.own_location {
                Some(why) => {
                    let _ = writeln!(text, "; started from the bundle (direct): {why}");
                }
                None => text.push('\n'),
            }
        }
    }
    if verbosity == Verbosity::Verbose || on_terminal {
        let mut levels: Vec<u32> = packed.variants.iter().map(|v| v.level).collect();
        levels.sort_unstable();
        let names: Vec<&str> = levels.iter().map(|&l| level_name(l)).collect();
        let _ = writeln!(
            text,
            "mgo-pack: wrote {} ({}): {}",
            escaped(out),
            size(packed.bytes.len() as u64),
            names.join(" ")
        );
    }
    eprint!("{text}");
}

pub fn warn(message: &str) {
    eprintln!("mgo-pack: warning: {message}");
}

pub fn error(e: &PackError) {
    eprintln!("mgo-pack: error: {e}");
}

/// `inspect` for people.
pub fn inspect_text(info: &BundleInfo) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: mgo-pack bundle, format version {}, {}, {} bytes",
        escaped(&info.path),
        info.format_version,
        info.arch.name(),
        grouped(info.file_len)
    );
    let _ = writeln!(
        s,
        "runtime: launcher of {} bytes, id {:016x}{}",
        grouped(info.runtime.len),
        info.runtime.id,
        if info.runtime.builtin {
            " (the one this mgo-pack embeds)"
        } else {
            " (not the one this mgo-pack embeds)"
        }
    );
    let _ = writeln!(
        s,
        "payload: {} bytes at offset {:#x}",
        grouped(info.region_len),
        info.region_offset
    );
    let _ = writeln!(s, "variants: {}", info.variants.len());
    let rows: Vec<[String; 6]> = info
        .variants
        .iter()
        .map(|v| {
            let mut notes = Vec::new();
            if let Some(i) = v.same_as {
                notes.push(format!(
                    "same data as {}",
                    level_name(info.variants[i].level)
                ));
            }
            if let Some(d) = v.dictionary {
                notes.push(format!(
                    "dictionary: {}",
                    level_name(info.variants[d].level)
                ));
            }
            if v.flags & mgo_format::ENTRY_OWN_LOCATION != 0 {
                notes.push("direct launch: it finds libraries through $ORIGIN".to_string());
            } else if v.flags & mgo_format::ENTRY_DIRECT != 0 {
                notes.push("direct launch".to_string());
            }
            if v.flags & mgo_format::ENTRY_CACHE != 0 {
                notes.push("cache launch".to_string());
            }
            let note = notes.join("; ");
            [
                v.level_name().to_string(),
                v.encoding.name().to_string(),
                grouped(v.stored_len),
                grouped(v.original_len),
                format!("{:016x}", v.content_hash),
                note,
            ]
        })
        .collect();
    let header = ["level", "encoding", "stored", "original", "xxh3", ""];
    table(&mut s, header, &rows, &[2, 3]);
    s
}

/// Appends `rows` under `header` as aligned columns, each line indented by two spaces: numbers
/// (the columns in `right`) right-aligned, words left-aligned.
fn table<const N: usize>(s: &mut String, header: [&str; N], rows: &[[String; N]], right: &[usize]) {
    let header = header.map(String::from);
    let mut widths = [0usize; N];
    for row in std::iter::once(&header).chain(rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::from(" ");
        for (i, cell) in row.iter().enumerate() {
            if right.contains(&i) {
                let _ = write!(line, " {cell:>width$}", width = widths[i]);
            } else {
                let _ = write!(line, " {cell:<width$}", width = widths[i]);
            }
        }
        let _ = writeln!(s, "{}", line.trim_end());
    }
}

/// `inspect --json`: one object; sizes are numbers, hashes 16 hex digits.
pub fn inspect_json(info: &BundleInfo) -> String {
    let mut s = String::new();
    s.push_str("{\n");
    let _ = writeln!(
        s,
        "  \"file\": {},",
        json_string(&info.path.to_string_lossy())
    );
    let _ = writeln!(s, "  \"size\": {},", info.file_len);
    let _ = writeln!(s, "  \"format_version\": {},", info.format_version);
    let _ = writeln!(s, "  \"arch\": {},", json_string(info.arch.name()));
    let _ = writeln!(
        s,
        "  \"runtime\": {{\"size\": {}, \"id\": \"{:016x}\", \"builtin\": {}}},",
        info.runtime.len, info.runtime.id, info.runtime.builtin
    );
    let _ = writeln!(
        s,
        "  \"payload\": {{\"offset\": {}, \"size\": {}}},",
        info.region_offset, info.region_len
    );
    s.push_str("  \"variants\": [");
    for (i, v) in info.variants.iter().enumerate() {
        let index_or_null = |x: Option<usize>| x.map_or("null".to_string(), |i| i.to_string());
        let _ = write!(
            s,
            "{}\n    {{\"index\": {}, \"level\": {}, \"level_code\": {}, \"encoding\": {}, \
             \"stored_size\": {}, \"original_size\": {}, \"content_hash\": \"{:016x}\", \
             \"offset\": {}, \"flags\": {}, \"direct\": {}, \"own_location\": {}, \
             \"cache\": {}, \"dictionary\": {}, \"same_as\": {}}}",
            if i == 0 { "" } else { "," },
            v.index,
            json_string(v.level_name()),
            v.level,
            json_string(v.encoding.name()),
            v.stored_len,
            v.original_len,
            v.content_hash,
            v.offset,
            v.flags,
            v.flags & mgo_format::ENTRY_DIRECT != 0,
            v.flags & mgo_format::ENTRY_OWN_LOCATION != 0,
            v.flags & mgo_format::ENTRY_CACHE != 0,
            index_or_null(v.dictionary),
            index_or_null(v.same_as),
        );
    }
    s.push_str("\n  ]\n}\n");
    s
}

fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `verify`'s report: one line per variant, then the verdict.
pub fn verify_text(verification: &Verification) -> String {
    let info = &verification.info;
    let mut s = String::new();
    if let Err(e) = &verification.launcher {
        let _ = writeln!(s, "launcher FAILED: {e}");
    }
    for (v, result) in info.variants.iter().zip(&verification.results) {
        match result {
            Ok(()) => {
                let _ = writeln!(
                    s,
                    "{} ok: {} bytes, xxh3 {:016x}",
                    v.level_name(),
                    grouped(v.original_len),
                    v.content_hash
                );
            }
            Err(e) => {
                let _ = writeln!(s, "{} FAILED: {e}", v.level_name());
            }
        }
    }
    let failed = verification.results.iter().filter(|r| r.is_err()).count();
    if verification.launcher.is_err() {
        let _ = writeln!(
            s,
            "{}: the launcher FAILED{}",
            info.path.display(),
            if failed == 0 {
                String::new()
            } else {
                format!(", and {failed} of {} variants", info.variants.len())
            }
        );
    } else if failed == 0 {
        let _ = writeln!(
            s,
            "{}: ok, {} variants verified",
            escaped(&info.path),
            info.variants.len()
        );
    } else {
        let _ = writeln!(
            s,
            "{}: {failed} of {} variants FAILED",
            escaped(&info.path),
            info.variants.len()
        );
    }
    s
}

/// `mgo-pack cache list`: the directory, then one row per cached program.
pub fn cache_text(dir: &Path, entries: &[mgo_pack::cache::CacheEntry]) -> String {
    let mut s = String::new();
    let total: u64 = entries.iter().map(|e| e.size).sum();
    let _ = writeln!(
        s,
        "{}: {}, {}",
        escaped(dir),
        cached_programs(entries.len()),
        size(total)
    );
    if entries.is_empty() {
        return s;
    }
    let rows: Vec<[String; 6]> = entries
        .iter()
        .map(|e| {
            [
                e.key.clone(),
                e.level.clone(),
                size(e.size),
                date(e.last_used),
                escaped(Path::new(&e.program)).to_string(),
                e.bundle
                    .as_deref()
                    .map_or("?".to_string(), |b| escaped(b).to_string()),
            ]
        })
        .collect();
    let header = [
        "bundle key",
        "level",
        "size",
        "last used",
        "program",
        "bundle",
    ];
    table(&mut s, header, &rows, &[2]);
    s
}

/// `1 cached program`, `3 cached programs`.
pub fn cached_programs(n: usize) -> String {
    format!("{n} cached program{}", if n == 1 { "" } else { "s" })
}

/// The day of `time`, `YYYY-MM-DD` (UTC).
fn date(time: std::time::SystemTime) -> String {
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Days to a civil date in the proleptic Gregorian calendar (Howard Hinnant's algorithm).
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_days() {
        let at = |secs| date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01");
        assert_eq!(at(951_782_400), "2000-02-29");
        assert_eq!(at(1_709_251_199), "2024-02-29");
        assert_eq!(at(1_735_689_600), "2025-01-01");
    }

    #[test]
    fn sizes_and_groups() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1_843_200), "1,843,200");
    }

    #[test]
    fn long_paths_are_cut_in_the_middle() {
        assert_eq!(short(Path::new("dist/app")), "dist/app");
        let long =
            Path::new("/very/long/directory/name/that/goes/on/and/on/app_linux_amd64_v3/app");
        let cut = short(long);
        assert_eq!(cut.chars().count(), 40);
        assert!(
            cut.starts_with("/very/long/") && cut.ends_with("amd64_v3/app"),
            "{cut}"
        );
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\u0001é\"");
    }
}
