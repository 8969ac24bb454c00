//! Real programs for the end-to-end tests, built on demand and cached.
//!
//! Each fixture set is the same program compiled for x86-64 levels v1..v4,
//! so a test can pack all four and tell from the program's own report which
//! one the launcher picked. Building is slow (Go compiles its standard
//! library once per GOAMD64 level), so results are kept under
//! `<target>/fixtures/` and reused across test processes and runs.
//!
//! Cargo runs every integration-test file as its own process and the tests
//! inside one file as parallel threads, so a set is guarded twice: a
//! `OnceLock` makes threads of one process share a single build, and an
//! exclusive lock on a file in the output directory makes other processes
//! wait for that build instead of racing it. A stamp next to the outputs
//! records what they were built from; it changes when the sources, the
//! toolchain or the build command do, which triggers a rebuild.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread;

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

/// `tests/fixtures/goprobe` built with GOAMD64=v1..v4 (static, CGO off).
pub fn go_probe() -> &'static [PathBuf; 4] {
    static CELL: OnceLock<[PathBuf; 4]> = OnceLock::new();
    CELL.get_or_init(|| {
        go_main_package("goprobe", &workspace_root().join("tests/fixtures/goprobe"))
    })
}

/// The Go module in `src` (main.go and go.mod) built with GOAMD64=v1..v4 as `name`.
fn go_main_package(name: &str, src: &Path) -> [PathBuf; 4] {
    let key = format!(
        "go build -trimpath .\n{}\nsources {:016x}",
        go_toolchain_id(),
        hash_files(&[src.join("main.go"), src.join("go.mod")]),
    );
    build_set(name, &key, |level, out| {
        let mut cmd = go_command(level);
        cmd.current_dir(src).arg("-o").arg(out).arg(".");
        run(cmd, &format!("{name} {level}"));
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
        let dir = fixtures_dir();
        let key = format!("go build -trimpath cmd/gofmt\n{}", go_toolchain_id());
        build_set("gofmt", &key, |level, out| {
            let mut cmd = go_command(level);
            // Outside any module on purpose: cmd/gofmt belongs to GOROOT.
            cmd.current_dir(&dir).arg("-o").arg(out).arg("cmd/gofmt");
            run(cmd, &format!("gofmt {level}"));
        })
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
        let kinds: [(&str, &[&str]); 3] = [
            ("pie", &["-fPIE", "-pie"]),
            ("no-pie", &["-fno-pie", "-no-pie"]),
            ("asan", &["-fsanitize=address", "-fno-omit-frame-pointer"]),
        ];
        let key = format!(
            "gcc -O1 -g {kinds:?}\n{}\nsources {:016x}",
            tool_version("gcc", &["--version"]),
            hash_files(std::slice::from_ref(&src)),
        );
        let parts = kinds.map(|(kind, _)| kind);
        let [pie, no_pie, asan]: [PathBuf; 3] = cached("toolprobe", &key, &parts, |kind, out| {
            let (_, flags) = kinds.iter().find(|(k, _)| *k == kind).unwrap();
            let mut cmd = Command::new("gcc");
            cmd.args(["-O1", "-g"])
                .args(*flags)
                .arg("-o")
                .arg(out)
                .arg(&src);
            run(cmd, &format!("toolprobe {kind}"));
        })
        .try_into()
        .unwrap();
        ToolProbe { pie, no_pie, asan }
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
        let gcc = tool_version("gcc", &["--version"]);
        let lib_key = format!(
            "gcc -shared -fPIC -soname {ORIGIN_LIBRARY}\n{gcc}\nsources {:016x}",
            hash_files(std::slice::from_ref(&lib_src))
        );
        let [library]: [PathBuf; 1] = cached("greet", &lib_key, &["so"], |_, out| {
            let mut cmd = Command::new("gcc");
            cmd.args(["-O1", "-shared", "-fPIC"])
                .arg(format!("-Wl,-soname,{ORIGIN_LIBRARY}"))
                .arg("-o")
                .arg(out)
                .arg(&lib_src);
            run(cmd, "libmgogreet.so");
        })
        .try_into()
        .unwrap();
        let key = format!(
            "gcc -Wl,-rpath,$ORIGIN\n{gcc}\nsources {:016x}",
            hash_files(&[src.clone(), library.clone()])
        );
        let [program]: [PathBuf; 1] = cached("origin", &key, &["bin"], |_, out| {
            let mut cmd = Command::new("gcc");
            cmd.args(["-O1", "-Wl,-rpath,$ORIGIN", "-o"])
                .arg(out)
                .arg(&src)
                .arg(&library);
            run(cmd, "origin");
        })
        .try_into()
        .unwrap();
        (program, library)
    })
}

/// `tests/fixtures/fidelity/backtrace.rs` built by rustc with debug information, for
/// `-Ctarget-cpu=x86-64` (v1).
pub fn rust_probe() -> &'static Path {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    CELL.get_or_init(|| {
        let src = fidelity_source("backtrace.rs");
        let key = format!(
            "rustc --edition 2021 -Copt-level=1 -g -Ctarget-cpu=x86-64\n{}\nsources {:016x}",
            tool_version("rustc", &["--version"]),
            hash_files(std::slice::from_ref(&src)),
        );
        let [program]: [PathBuf; 1] = cached("backtrace", &key, &["v1"], |_, out| {
            let mut cmd = Command::new("rustc");
            cmd.args([
                "--edition",
                "2021",
                "-Copt-level=1",
                "-g",
                "-Ctarget-cpu=x86-64",
            ])
            .arg("-o")
            .arg(out)
            .arg(&src);
            run(cmd, "backtrace.rs");
        })
        .try_into()
        .unwrap();
        program
    })
}

/// `tests/fixtures/fidelity/selfexe` (a Go program that finds, re-runs and reads its own
/// executable) built with GOAMD64=v1..v4.
pub fn go_selfexe() -> &'static [PathBuf; 4] {
    static CELL: OnceLock<[PathBuf; 4]> = OnceLock::new();
    CELL.get_or_init(|| go_main_package("selfexe", &fidelity_source("selfexe")))
}

fn fidelity_source(name: &str) -> PathBuf {
    workspace_root().join("tests/fixtures/fidelity").join(name)
}

fn build_c_probe(name: &str, static_link: bool) -> [PathBuf; 4] {
    let src = workspace_root().join("tests/fixtures/cprobe.c");
    let key = format!(
        "gcc -O2 -march=x86-64[-vN]{}\n{}\nsources {:016x}",
        if static_link { " -static" } else { "" },
        tool_version("gcc", &["--version"]),
        hash_files(std::slice::from_ref(&src)),
    );
    build_set(name, &key, |level, out| {
        let march = match level {
            "v1" => "-march=x86-64".to_string(),
            _ => format!("-march=x86-64-{level}"),
        };
        let mut cmd = Command::new("gcc");
        cmd.args(["-O2", &march]);
        if static_link {
            cmd.arg("-static");
        }
        cmd.arg("-o").arg(out).arg(&src);
        run(cmd, &format!("{name} {level}"));
    })
}

/// A `go build` whose result depends only on the level and the sources:
/// user settings, go.work files, proxies and toolchain switching are all
/// shut out, and the caches stay inside the target directory so that
/// `cargo clean` takes them away too.
fn go_command(level: &str) -> Command {
    let dir = fixtures_dir();
    let mut cmd = Command::new("go");
    cmd.args(["build", "-trimpath"])
        .env("GOAMD64", level)
        .env("GOOS", "linux")
        .env("GOARCH", "amd64")
        .env("CGO_ENABLED", "0")
        // -modcacherw keeps the module cache deletable by `cargo clean`.
        .env("GOFLAGS", "-mod=mod -modcacherw")
        .env("GOPROXY", "off")
        .env("GO111MODULE", "on")
        .env("GOWORK", "off")
        .env("GOENV", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPATH", dir.join("gopath"));
    cmd
}

fn go_toolchain_id() -> String {
    format!(
        "{}\n{}",
        tool_version("go", &["version"]),
        tool_version("go", &["env", "GOROOT"])
    )
}

/// Runs `tool args` for its first output line, which identifies the
/// toolchain in the stamp; a missing tool is a setup problem, not a test
/// failure, so the message says how to fix it.
fn tool_version(tool: &str, args: &[&str]) -> String {
    let output = match Command::new(tool).args(args).output() {
        Ok(output) => output,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "`{tool}` is not installed (or not on PATH); the end-to-end fixtures need it. \
             Run scripts/install-deps.sh"
        ),
        Err(e) => panic!("cannot run `{tool}`: {e}"),
    };
    assert!(
        output.status.success(),
        "`{tool} {}` failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines().next().unwrap_or("").trim().to_string()
}

fn run(mut cmd: Command, what: &str) {
    let output = match cmd.output() {
        Ok(output) => output,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "building fixture {what}: {:?} is not installed; run scripts/install-deps.sh",
            cmd.get_program()
        ),
        Err(e) => panic!("building fixture {what}: cannot run {cmd:?}: {e}"),
    };
    assert!(
        output.status.success(),
        "building fixture {what} failed ({}): {cmd:?}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Makes sure `<fixtures>/bin/<name>-v1..v4` match `key`, building them
/// (four levels in parallel) under the cross-process lock if not.
fn build_set(name: &str, key: &str, build: impl Fn(&str, &Path) + Sync) -> [PathBuf; 4] {
    cached(name, key, &LEVELS, build)
        .try_into()
        .expect("one output per level")
}

/// Makes sure `<fixtures>/bin/<name>-<part>` exist for every part (a `,` in a part becomes `_`)
/// and were built as `key` says, building them (in parallel, `build(part, output)`) under a lock
/// that other test processes wait on. A stamp beside the outputs records `key`.
pub fn cached(
    name: &str,
    key: &str,
    parts: &[&str],
    build: impl Fn(&str, &Path) + Sync,
) -> Vec<PathBuf> {
    let dir = fixtures_dir();
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap_or_else(|e| panic!("creating {}: {e}", bin.display()));
    let outputs: Vec<PathBuf> = parts
        .iter()
        .map(|part| bin.join(format!("{name}-{}", part.replace(',', "_"))))
        .collect();

    let lock_path = dir.join(format!("{name}.lock"));
    let lock = File::create(&lock_path)
        .unwrap_or_else(|e| panic!("creating {}: {e}", lock_path.display()));
    lock.lock()
        .unwrap_or_else(|e| panic!("locking {}: {e}", lock_path.display()));

    let stamp = dir.join(format!("{name}.stamp"));
    let current = fs::read_to_string(&stamp).ok();
    if current.as_deref() == Some(key) && outputs.iter().all(|p| p.is_file()) {
        return outputs;
    }

    // Without this, a build that dies half-way could leave a mix of old and
    // new binaries behind a stamp that still looks valid once the sources
    // are put back the way they were.
    let _ = fs::remove_file(&stamp);
    thread::scope(|scope| {
        for (part, out) in parts.iter().zip(&outputs) {
            let build = &build;
            scope.spawn(move || {
                // Replacing by rename rather than writing in place: another
                // test process may be executing the old binary right now,
                // and writing to a running executable fails with ETXTBSY.
                // Appended, not set as an extension: arm64 level names have
                // dots of their own.
                let tmp = PathBuf::from(format!("{}.tmp", out.display()));
                let _ = fs::remove_file(&tmp);
                build(part, &tmp);
                fs::rename(&tmp, out).unwrap_or_else(|e| {
                    panic!("renaming {} to {}: {e}", tmp.display(), out.display())
                });
            });
        }
    });
    let tmp = stamp.with_extension("stamp.tmp");
    fs::write(&tmp, key).unwrap_or_else(|e| panic!("writing {}: {e}", tmp.display()));
    fs::rename(&tmp, &stamp).unwrap_or_else(|e| panic!("writing {}: {e}", stamp.display()));
    // The lock is released when `lock` is dropped here.
    outputs
}

/// FNV-1a over the files' names and contents: stable across Rust releases
/// (unlike `DefaultHasher`), which matters because the stamp outlives the
/// test binary that wrote it.
pub fn hash_files(paths: &[PathBuf]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for path in paths {
        let data = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let name = path
            .file_name()
            .map(|n| n.as_encoded_bytes())
            .unwrap_or(b"");
        for &b in name.iter().chain([0u8].iter()).chain(&data) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
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
