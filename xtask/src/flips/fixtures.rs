//! The bundles a campaign flips: the static C probe built per level, packed by the release
//! `mgo-pack` of this tree (so with the launcher images committed here).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::layout::Layout;

/// How a bundle's variants are stored, which also chooses its launcher image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `runtime/image/x86_64.elf`.
    Stored,
    /// `runtime/image/x86_64-gzip.elf`.
    Gzip,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Stored => "stored",
            Kind::Gzip => "gzip",
        }
    }

    fn pack_args(self) -> &'static [&'static str] {
        match self {
            Kind::Stored => &[],
            Kind::Gzip => &["--compress", "gzip"],
        }
    }
}

const LEVELS: [&str; 4] = ["v1", "v2", "v3", "v4"];

pub struct Prepared {
    pub mgo_pack: PathBuf,
    pub bundles: Vec<Bundle>,
}

pub struct Bundle {
    pub kind: Kind,
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub layout: Layout,
    /// The launcher as `mgo-pack inspect` names it: size and id.
    pub launcher: String,
}

pub fn prepare(root: &Path, work: &Path, kinds: &[Kind]) -> Result<Prepared> {
    std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
    eprintln!("flips: building the packer (release)");
    let mgo_pack = crate::packer::build_release(root)?;
    let probes = build_probes(root, work)?;
    let mut bundles = Vec::new();
    for &kind in kinds {
        let path = work.join(format!("{}.bundle", kind.name()));
        let mut cmd = Command::new(&mgo_pack);
        cmd.args(["--quiet", "--output"]).arg(&path);
        cmd.args(kind.pack_args());
        for (level, probe) in LEVELS.iter().zip(&probes) {
            let mut arg = std::ffi::OsString::from(format!("{level}="));
            arg.push(probe);
            cmd.arg(arg);
        }
        run_ok(&mut cmd, &format!("packing the {} bundle", kind.name()))?;
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let layout = Layout::parse(&bytes)
            .with_context(|| format!("reading the layout of {}", path.display()))?;
        let launcher = launcher_name(&mgo_pack, &path)?;
        bundles.push(Bundle {
            kind,
            path,
            bytes,
            layout,
            launcher,
        });
    }
    Ok(Prepared { mgo_pack, bundles })
}

/// `gcc -static -O2 -march=x86-64[-vN]`, as the end-to-end tests build their static C probe.
fn build_probes(root: &Path, work: &Path) -> Result<Vec<PathBuf>> {
    let src = root.join("tests/fixtures/cprobe.c");
    let mut built = Vec::new();
    for level in LEVELS {
        let march = match level {
            "v1" => "-march=x86-64".to_string(),
            _ => format!("-march=x86-64-{level}"),
        };
        let out = work.join(format!("cprobe-{level}"));
        let mut cmd = Command::new("gcc");
        cmd.args(["-static", "-O2", &march, "-o"])
            .arg(&out)
            .arg(&src);
        run_ok(&mut cmd, &format!("building the {level} probe"))?;
        built.push(out);
    }
    Ok(built)
}

/// "launcher of N bytes, id X" from `mgo-pack inspect --json`.
fn launcher_name(mgo_pack: &Path, bundle: &Path) -> Result<String> {
    let out = Command::new(mgo_pack)
        .args(["inspect", "--json"])
        .arg(bundle)
        .output()
        .context("running mgo-pack inspect")?;
    if !out.status.success() {
        bail!(
            "mgo-pack inspect {} failed: {}",
            bundle.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let runtime = &json["runtime"];
    Ok(format!(
        "launcher of {} bytes, id {}",
        runtime["size"],
        runtime["id"].as_str().unwrap_or("?")
    ))
}

fn run_ok(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("{what}: starting"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
