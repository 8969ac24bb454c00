//! Real programs for the end-to-end tests, built on demand and cached.
//!
//! Each fixture set is the same program compiled for x86-64 levels v1..v4,
//! so a test can pack all four and tell from the program's own report which
//! one the launcher picked. The tests only say what to build: the packer's
//! builder ([`mgo_pack::builder`]) builds it, once per level, and keeps the
//! results under `<target>/fixtures/` with a stamp of what they were built
//! from (the sources, the toolchain, the build command), so they are reused
//! across test processes and runs and rebuilt when any of those change.
//! Building is slow (Go compiles its standard library once per GOAMD64
//! level), and cargo runs every integration-test file as its own process and
//! its tests as parallel threads: a `OnceLock` makes the threads of one
//! process share one build, and the builder's lock file makes other processes
//! wait for it instead of racing it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mgo_pack::builder::{hash_files, BuildError, LevelBuild};

/// The x86-64 micro-architecture levels, in the order every fixture array
/// uses: index 0 is v1, index 3 is v4.
pub const LEVELS: [&str; 4] = ["v1", "v2", "v3", "v4"];

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives one level below the workspace root")
        .to_path_buf()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` when set (relative paths
/// are taken from the workspace root, as cargo does), else `<root>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => workspace_root().join("target"),
    }
}

/// Where fixtures, their stamps and the Go caches live.
pub fn fixtures_dir() -> PathBuf {
    target_dir().join("fixtures")
}

/// A hermetic `go build ARGS` (static, CGO off; see [`LevelBuild::hermetic_go`]) with its
/// caches under the fixtures directory, so that `cargo clean` takes them away too.
pub fn go_build<const N: usize>(args: [&str; N]) -> LevelBuild {
    LevelBuild::go(args)
        .hermetic_go(&fixtures_dir())
        .env("CGO_ENABLED", "0")
}

/// Builds the fixture set `name` (cached, see the module documentation) from `sources`, whose
/// contents are part of its stamp; one path per level of `build`.
pub fn build_cached(name: &str, build: &LevelBuild, sources: &[PathBuf]) -> Vec<PathBuf> {
    let key = format!(
        "sources {:016x}",
        hash_files(sources).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
    );
    build
        .cached(&fixtures_dir(), name, &key)
        .unwrap_or_else(|e| panic!("building fixture {name}: {}", explain(&e)))
}

/// A build error with what the failed build printed, and what to do about a missing tool.
pub fn explain(e: &BuildError) -> String {
    match e {
        BuildError::Failed { output, .. } => format!("{e}\n{output}"),
        BuildError::Spawn { .. } => format!("{e}; run scripts/install-deps.sh"),
        _ => e.to_string(),
    }
}

fn four(paths: Vec<PathBuf>) -> [PathBuf; 4] {
    paths.try_into().expect("four levels")
}

/// `tests/fixtures/goprobe` built with GOAMD64=v1..v4 (static, CGO off).
pub fn go_probe() -> &'static [PathBuf; 4] {
    static CELL: OnceLock<[PathBuf; 4]> = OnceLock::new();
    CELL.get_or_init(|| {
        let src = workspace_root().join("tests/fixtures/goprobe");
        let build = go_build(["-trimpath", "."]).current_dir(&src);
        four(build_cached(
            "goprobe",
            &build,
            &[src.join("main.go"), src.join("go.mod")],
        ))
    })
}

/// `tests/fixtures/cprobe.c` built with gcc `-march=x86-64[-vN] -static`.
pub fn c_probe_static() -> &'static [PathBuf; 4] {
    static CELL: OnceLock<[PathBuf; 4]> = OnceLock::new();
    CELL.get_or_init(|| build_c_probe("cprobe-st", true))
}

/// `tests/fixtures/cprobe.c` built with gcc `-march=x86-64[-vN]`, linked
/// dynamically against the system libc, so the loader has to run too.
pub fn c_probe_dynamic() -> &'static [PathBuf; 4] {
    static CELL: OnceLock<[PathBuf; 4]> = OnceLock::new();
    CELL.get_or_init(|| build_c_probe("cprobe-dyn", false))
}

/// The toolchain's own `gofmt`, built from GOROOT sources for v1..v4: a
/// real, non-trivial program to pack beside the probes.
pub fn gofmt() -> &'static [PathBuf; 4] {
    static CELL: OnceLock<[PathBuf; 4]> = OnceLock::new();
    CELL.get_or_init(|| {
        // Outside any module on purpose: cmd/gofmt belongs to GOROOT.
        let build = go_build(["-trimpath", "cmd/gofmt"]).current_dir(fixtures_dir());
        four(build_cached("gofmt", &build, &[]))
    })
}

/// The fidelity tests' C program, `tests/fixtures/fidelity/toolprobe.c`, built with debug
/// information (gcc `-O1 -g`) in the three ways the tests need.
pub struct ToolProbe {
    /// A position-independent executable, as gcc builds by default.
    pub pie: PathBuf,
    /// A fixed-address executable (`-no-pie`), whose heap the kernel places after its bss.
    pub no_pie: PathBuf,
    /// A PIE built with `-fsanitize=address`.
    pub asan: PathBuf,
}

/// The fidelity tests' C program, built and cached (see [`ToolProbe`]).
pub fn tool_probe() -> &'static ToolProbe {
    static CELL: OnceLock<ToolProbe> = OnceLock::new();
    CELL.get_or_init(|| {
        let src = fidelity_source("toolprobe.c");
        let build = |kind: &str, flags: &[&str]| {
            let mut args = vec!["-O1", "-g"];
            args.extend(flags);
            args.extend(["-o", "{out}", utf8(&src)]);
            one(
                &format!("toolprobe-{kind}"),
                LevelBuild::command("gcc", args),
                std::slice::from_ref(&src),
            )
        };
        ToolProbe {
            pie: build("pie", &["-fPIE", "-pie"]),
            no_pie: build("no-pie", &["-fno-pie", "-no-pie"]),
            asan: build("asan", &["-fsanitize=address", "-fno-omit-frame-pointer"]),
        }
    })
}

/// The soname of the library [`origin_program`] needs: the file name it must have beside the
/// program.
pub const ORIGIN_LIBRARY: &str = "libmgogreet.so";

/// `tests/fixtures/fidelity/origin.c`, linked with RUNPATH `$ORIGIN` against the library built
/// from `greet.c`: `(program, library)`. The program starts only where a copy of the library
/// named [`ORIGIN_LIBRARY`] lies beside it.
pub fn origin_program() -> &'static (PathBuf, PathBuf) {
    static CELL: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    CELL.get_or_init(|| {
        let (lib_src, src) = (fidelity_source("greet.c"), fidelity_source("origin.c"));
        let soname = format!("-Wl,-soname,{ORIGIN_LIBRARY}");
        let library = one(
            "greet",
            LevelBuild::command(
                "gcc",
                [
                    "-O1",
                    "-shared",
                    "-fPIC",
                    &soname,
                    "-o",
                    "{out}",
                    utf8(&lib_src),
                ],
            ),
            std::slice::from_ref(&lib_src),
        );
        let program = one(
            "origin",
            LevelBuild::command(
                "gcc",
                [
                    "-O1",
                    "-Wl,-rpath,$ORIGIN",
                    "-o",
                    "{out}",
                    utf8(&src),
                    utf8(&library),
                ],
            ),
            &[src.clone(), library.clone()],
        );
        (program, library)
    })
}

/// `tests/fixtures/fidelity/backtrace.rs` built by rustc with debug information, for
/// `-Ctarget-cpu=x86-64` (v1).
pub fn rust_probe() -> &'static Path {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    CELL.get_or_init(|| {
        let src = fidelity_source("backtrace.rs");
        let args = [
            "--edition",
            "2021",
            "-Copt-level=1",
            "-g",
            "-Ctarget-cpu=x86-64",
            "-o",
            "{out}",
            utf8(&src),
        ];
        one(
            "backtrace",
            LevelBuild::command("rustc", args),
            std::slice::from_ref(&src),
        )
    })
}

/// `tests/fixtures/fidelity/selfexe` (a Go program that finds, re-runs and reads its own
/// executable) built with GOAMD64=v1..v4.
pub fn go_selfexe() -> &'static [PathBuf; 4] {
    static CELL: OnceLock<[PathBuf; 4]> = OnceLock::new();
    CELL.get_or_init(|| {
        let src = fidelity_source("selfexe");
        let build = go_build(["-trimpath", "."]).current_dir(&src);
        four(build_cached(
            "selfexe",
            &build,
            &[src.join("main.go"), src.join("go.mod")],
        ))
    })
}

fn fidelity_source(name: &str) -> PathBuf {
    workspace_root().join("tests/fixtures/fidelity").join(name)
}

/// One build (at v1) of a fixture that is not built per level.
fn one(name: &str, build: LevelBuild, sources: &[PathBuf]) -> PathBuf {
    build_cached(name, &build.levels([1]), sources).remove(0)
}

fn utf8(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 workspace path")
}

fn build_c_probe(name: &str, static_link: bool) -> [PathBuf; 4] {
    let src = workspace_root().join("tests/fixtures/cprobe.c");
    let mut args = vec!["-O2", "-march={march}"];
    if static_link {
        args.push("-static");
    }
    let src_arg = src.to_str().expect("a UTF-8 workspace path");
    args.extend(["-o", "{out}", src_arg]);
    let build = LevelBuild::command("gcc", args);
    four(build_cached(name, &build, std::slice::from_ref(&src)))
}

/// What a probe printed: one `key=value` line per item, each value JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Key to the raw JSON text of its value.
    pub fields: BTreeMap<String, String>,
}

/// Splits probe output into its fields. Lines without `=` are ignored, so
/// stray output cannot break parsing; a repeated key keeps its last value.
pub fn parse_report(stdout: &str) -> Report {
    let fields = stdout
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    Report { fields }
}

impl Report {
    /// The raw JSON text of `key`'s value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// `key`'s value when it is a JSON string.
    pub fn get_str(&self, key: &str) -> Option<String> {
        match parse_json(self.get(key)?)? {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// `key`'s value when it is a JSON integer.
    pub fn get_i64(&self, key: &str) -> Option<i64> {
        match parse_json(self.get(key)?)? {
            Json::Number(n) => n.parse().ok(),
            _ => None,
        }
    }

    /// `key`'s value when it is a JSON array of strings.
    pub fn get_str_array(&self, key: &str) -> Option<Vec<String>> {
        match parse_json(self.get(key)?)? {
            Json::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Json::String(s) => Some(s),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }

    /// `key`'s value when it is a JSON array of integers (e.g. `fds`).
    pub fn get_i64_array(&self, key: &str) -> Option<Vec<i64>> {
        match parse_json(self.get(key)?)? {
            Json::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Json::Number(n) => n.parse().ok(),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }

    /// `key`'s value when it is a JSON object of strings (e.g. `fd_targets`).
    pub fn get_str_map(&self, key: &str) -> Option<BTreeMap<String, String>> {
        match parse_json(self.get(key)?)? {
            Json::Object(entries) => entries
                .into_iter()
                .map(|(k, v)| match v {
                    Json::String(s) => Some((k, s)),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }
}

/// Decodes one JSON string literal (quotes included); `None` unless `text`
/// is exactly one valid string, optionally surrounded by whitespace.
pub fn decode_json_string(text: &str) -> Option<String> {
    match parse_json(text)? {
        Json::String(s) => Some(s),
        _ => None,
    }
}

/// Just enough JSON for probe reports. Numbers keep their text so callers
/// choose the type and nothing is rounded through f64.
#[derive(Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

fn parse_json(text: &str) -> Option<Json> {
    let mut p = Parser { text, pos: 0 };
    let value = p.value()?;
    p.skip_ws();
    (p.pos == text.len()).then_some(value)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.bump()? == b).then_some(())
    }

    fn eat_word(&mut self, word: &str) -> Option<()> {
        self.text[self.pos..]
            .starts_with(word)
            .then(|| self.pos += word.len())
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn value(&mut self) -> Option<Json> {
        self.skip_ws();
        match self.peek()? {
            b'"' => self.string().map(Json::String),
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Some(Json::Array(items));
                }
                loop {
                    items.push(self.value()?);
                    self.skip_ws();
                    match self.bump()? {
                        b',' => continue,
                        b']' => return Some(Json::Array(items)),
                        _ => return None,
                    }
                }
            }
            b'{' => {
                self.pos += 1;
                let mut entries = Vec::new();
                self.skip_ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Some(Json::Object(entries));
                }
                loop {
                    self.skip_ws();
                    let key = self.string()?;
                    self.skip_ws();
                    self.eat(b':')?;
                    entries.push((key, self.value()?));
                    self.skip_ws();
                    match self.bump()? {
                        b',' => continue,
                        b'}' => return Some(Json::Object(entries)),
                        _ => return None,
                    }
                }
            }
            b't' => self.eat_word("true").map(|()| Json::Bool(true)),
            b'f' => self.eat_word("false").map(|()| Json::Bool(false)),
            b'n' => self.eat_word("null").map(|()| Json::Null),
            b'-' | b'0'..=b'9' => self.number().map(Json::Number),
            _ => None,
        }
    }

    fn digits(&mut self) -> Option<()> {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        (self.pos > start).then_some(())
    }

    fn number(&mut self) -> Option<String> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        self.digits()?;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.digits()?;
        }
        Some(self.text[start..self.pos].to_string())
    }

    fn hex4(&mut self) -> Option<u32> {
        let hex = self.text.get(self.pos..self.pos + 4)?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.pos += 4;
        u32::from_str_radix(hex, 16).ok()
    }

    fn string(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let mut out = String::new();
        loop {
            // Copy unescaped runs whole; `pos` only ever stops on ASCII
            // bytes, so slicing `text` stays on char boundaries.
            let rest = &self.text[self.pos..];
            let run = rest
                .find(|c: char| c == '"' || c == '\\' || c < ' ')
                .unwrap_or(rest.len());
            out.push_str(&rest[..run]);
            self.pos += run;
            match self.bump()? {
                b'"' => return Some(out),
                b'\\' => {}
                // Raw control characters are not allowed inside strings.
                _ => return None,
            }
            let c = match self.bump()? {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => {
                    let unit = self.hex4()?;
                    match unit {
                        0xD800..=0xDBFF => {
                            // A high surrogate only means something together
                            // with the low one that must follow it.
                            self.eat(b'\\')?;
                            self.eat(b'u')?;
                            let low = self.hex4()?;
                            if !(0xDC00..=0xDFFF).contains(&low) {
                                return None;
                            }
                            char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))?
                        }
                        0xDC00..=0xDFFF => return None,
                        _ => char::from_u32(unit)?,
                    }
                }
                _ => return None,
            };
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plain_and_escaped_strings() {
        assert_eq!(decode_json_string(r#""""#).as_deref(), Some(""));
        assert_eq!(decode_json_string(r#""a b""#).as_deref(), Some("a b"));
        assert_eq!(decode_json_string(r#""ünï""#).as_deref(), Some("ünï"));
        assert_eq!(
            decode_json_string(r#""q\" b\\ s\/ \b\f\n\r\t""#).as_deref(),
            Some("q\" b\\ s/ \u{8}\u{c}\n\r\t")
        );
        assert_eq!(
            decode_json_string(r#""\u0001\u00e9\u003c\u20AC""#).as_deref(),
            Some("\u{1}é<€")
        );
        assert_eq!(decode_json_string(" \"x\" ").as_deref(), Some("x"));
    }

    #[test]
    fn decodes_surrogate_pairs() {
        assert_eq!(
            decode_json_string(r#""\ud83d\ude00!""#).as_deref(),
            Some("😀!")
        );
        assert_eq!(
            decode_json_string(r#""\uD834\uDD1E""#).as_deref(),
            Some("𝄞")
        );
    }

    #[test]
    fn rejects_malformed_strings() {
        for bad in [
            r#""unterminated"#,
            r#""bad \x escape""#,
            r#""\u12""#,
            r#""\u12g4""#,
            r#""\ud83d""#,
            r#""\ud83d\u0041""#,
            r#""\ude00""#,
            "\"raw\ncontrol\"",
            r#""a" trailing"#,
            "noquotes",
            "",
        ] {
            assert_eq!(decode_json_string(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parses_reports() {
        let report = parse_report(concat!(
            "level=\"v3\"\n",
            "argv=[\"/p\",\"a b\",\"\\u00fcn\\u00ef\",\"\"]\n",
            "pid=1234\n",
            "fds=[0, 1,2]\n",
            "fd_targets={\"0\":\"pipe:[1]\",\"1\":\"/dev/null\"}\n",
            "eq=\"x=y\"\n",
            "noise without separator\n",
        ));
        assert_eq!(report.get("level"), Some("\"v3\""));
        assert_eq!(report.get_str("level").as_deref(), Some("v3"));
        assert_eq!(
            report.get_str_array("argv"),
            Some(vec!["/p".into(), "a b".into(), "ünï".into(), String::new()])
        );
        assert_eq!(report.get_i64("pid"), Some(1234));
        assert_eq!(report.get_i64_array("fds"), Some(vec![0, 1, 2]));
        let targets = report.get_str_map("fd_targets").unwrap();
        assert_eq!(targets["0"], "pipe:[1]");
        assert_eq!(targets["1"], "/dev/null");
        assert_eq!(report.get_str("eq").as_deref(), Some("x=y"));
        assert_eq!(report.fields.len(), 6);
        // Wrong shapes are None rather than a panic.
        assert_eq!(report.get_str("pid"), None);
        assert_eq!(report.get_i64_array("argv"), None);
        assert_eq!(report.get_str("missing"), None);
    }

    #[test]
    fn parses_other_json_values() {
        assert_eq!(parse_json("null"), Some(Json::Null));
        assert_eq!(parse_json(" true "), Some(Json::Bool(true)));
        assert_eq!(parse_json("-1.5e+3"), Some(Json::Number("-1.5e+3".into())));
        assert_eq!(parse_json("[]"), Some(Json::Array(vec![])));
        assert_eq!(parse_json("{}"), Some(Json::Object(vec![])));
        assert_eq!(parse_json("[1,]"), None);
        assert_eq!(parse_json("-"), None);
        assert_eq!(parse_json("tru"), None);
    }
}
