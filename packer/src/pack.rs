//! Packing from files, as the command line and build tools do: read the inputs, settle each
//! one's level (given, positional, or recorded in the file itself), build the bundle and write it
//! atomically. The result depends only on the inputs' bytes, their levels and the options: no
//! paths, times or host details reach the bundle.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use mgo_format::content_hash;

use crate::detect::{declared_level, Declared};
use crate::input::{check_file, read_checked, Role};
use crate::{level_name, parse_level, write_executable, PackError, Variant};

/// How an input's level is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LevelSpec {
    /// Given explicitly (`vN=PATH`): must agree with what the file records, unless forced.
    Given(u32),
    /// The input's place among the inputs given without a level (1 = first), as in mgo:
    /// positions mean v1, v2, v3, v4. See [`Packer::pack`] for when the position counts.
    Position(u32),
    /// Whatever the file records (Go build info, GNU ISA note); an error if it records nothing.
    Detect,
}

/// One input file and how its level is chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    pub path: PathBuf,
    pub level: LevelSpec,
}

impl Input {
    /// An input whose level is read from the file.
    pub fn detect(path: impl Into<PathBuf>) -> Input {
        Input {
            path: path.into(),
            level: LevelSpec::Detect,
        }
    }

    /// An input at a given level (1..=4).
    pub fn with_level(path: impl Into<PathBuf>, level: u32) -> Input {
        Input {
            path: path.into(),
            level: LevelSpec::Given(level),
        }
    }

    /// Parses the command line's input syntax: `vN=PATH` names a level, anything else is a path
    /// whose level is its position among such paths (v1, v2, v3, v4). Paths are bytes, as Linux
    /// has them: they need not be UTF-8.
    pub fn parse_args<S: AsRef<OsStr>>(args: &[S]) -> Result<Vec<Input>, PackError> {
        let mut inputs = Vec::with_capacity(args.len());
        let mut position = 0;
        for arg in args {
            let arg = arg.as_ref();
            let bytes = arg.as_bytes();
            let named = bytes
                .iter()
                .position(|&b| b == b'=')
                .map(|at| bytes.split_at(at))
                .filter(|(level, _)| looks_like_level(level));
            match named {
                Some((level, path)) => {
                    let level = std::str::from_utf8(level)
                        .map_err(|_| PackError::BadLevel(String::from_utf8_lossy(level).into()))?;
                    let path = OsStr::from_bytes(&path[1..]);
                    inputs.push(Input::with_level(path, parse_level(level)?));
                }
                None => {
                    position += 1;
                    if position > 4 {
                        return Err(PackError::TooManyInputs);
                    }
                    inputs.push(Input {
                        path: arg.into(),
                        level: LevelSpec::Position(position),
                    });
                }
            }
        }
        Ok(inputs)
    }
}

/// `v7=x` is a mistyped level, not a file called `v7=x`; so is `v8.1,lse=x` (arm64's spelling),
/// `rva21u64=x` (riscv64's), `power7=x` (ppc64le's) and `8=x` (32-bit ARM's `GOARM`, a bare
/// digit, with Go 1.22's `,softfloat` or not). A path such as `./v3=x` or `build/v3=x` stays a
/// path.
fn looks_like_level(text: &[u8]) -> bool {
    let versioned = text.first() == Some(&b'v') && text.get(1).is_some_and(u8::is_ascii_digit);
    let profile = text.starts_with(b"rva") && text.get(3).is_some_and(u8::is_ascii_digit);
    let power = text.starts_with(b"power") && text.get(5).is_some_and(u8::is_ascii_digit);
    let goarm =
        text.first().is_some_and(u8::is_ascii_digit) && text.get(1).is_none_or(|&b| b == b',');
    (versioned || profile || power || goarm) && text.len() <= 16 && !text.contains(&b'/')
}

/// Settings that change how a pack is done.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackOptions {
    /// Pack inputs at the level given even where the file records another one.
    pub force: bool,
    /// How the variants are stored (docs/COMPRESSION.md).
    pub compression: crate::Compression,
    /// How the launcher starts them (docs/ARCHITECTURE.md, "Launch paths").
    pub launch: crate::Launch,
}

/// How a packed variant's level was settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LevelOrigin {
    /// `vN=PATH`, matching the file or with the file silent.
    Given,
    /// Its position, the file being silent or agreeing.
    Position,
    /// Read from the file.
    Recorded,
    /// Given or positional, overriding what the file records (`force`).
    Forced,
}

/// What a pack did, one entry per input in the order given.
#[derive(Clone, Debug)]
pub struct PackedVariant {
    pub path: PathBuf,
    pub level: u32,
    pub origin: LevelOrigin,
    pub declared: Declared,
    pub len: u64,
    pub content_hash: u64,
    /// Why the variant runs from the bundle's own location (the direct path, whatever path was
    /// asked for), if it does: `$ORIGIN` in its RUNPATH, say.
    pub own_location: Option<&'static str>,
}

/// A finished pack: the bundle's bytes and how each input went into it.
#[derive(Clone, Debug)]
pub struct Packed {
    pub bytes: Vec<u8>,
    pub variants: Vec<PackedVariant>,
    /// Things worth telling the user that did not stop the pack (levels forced over the files').
    pub warnings: Vec<String>,
}

/// Keeps `own_location` only for the variants the bundle starts from its own location, and warns
/// about the others: a variant that needs its location but cannot take the direct path (an
/// executable stack, say) runs from a copy, where `$ORIGIN` names the wrong directory.
fn own_locations_kept(bytes: &[u8], report: &mut [PackedVariant], warnings: &mut Vec<String>) {
    let Ok(bundle) = mgo_format::Bundle::parse_file(bytes) else {
        return;
    };
    for v in report.iter_mut().filter(|v| v.own_location.is_some()) {
        let kept = bundle.entries().any(|e| {
            e.content_hash == v.content_hash && e.flags & mgo_format::ENTRY_OWN_LOCATION != 0
        });
        if !kept {
            warnings.push(format!(
                "{} {}, but it cannot be started from the bundle's location (the direct path \
                 refuses it): started from a copy, it will not find those libraries",
                crate::escaped(&v.path),
                v.own_location
                    .unwrap_or_default()
                    .trim_start_matches("its "),
            ));
            v.own_location = None;
        }
    }
}

/// Progress of a pack, for a progress display or a log. More kinds may be added.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// Input `index` (0-based) of `count` has been read.
    Read {
        index: usize,
        count: usize,
        path: &'a Path,
        len: u64,
    },
    /// The bundle is being laid out, its variants encoded with `compression` (the long part of
    /// a compressed pack).
    Building {
        variants: usize,
        compression: crate::Compression,
    },
    /// The bundle is being written.
    Writing { path: &'a Path, len: u64 },
}

/// Packs files into a bundle, reporting progress to an optional observer.
///
/// Levels: an input given as `vN=PATH` ([`LevelSpec::Given`]) is at level N, and it is an error
/// (unless [`PackOptions::force`]) when the file records another level. Inputs given by position
/// take the levels their files record when every one of them records one, so their order does
/// not matter; otherwise positions mean v1, v2, v3, v4 as in mgo, and a file recording another
/// level than its position is an error (unless forced, when the position wins).
pub struct Packer<'a> {
    options: PackOptions,
    observer: Option<Observer<'a>>,
}

type Observer<'a> = Box<dyn FnMut(Event<'_>) + 'a>;

/// Each input's level and how it was settled, and the warnings that produced.
type Settled = (Vec<(u32, LevelOrigin)>, Vec<String>);

impl<'a> Packer<'a> {
    pub fn new(options: PackOptions) -> Packer<'a> {
        Packer {
            options,
            observer: None,
        }
    }

    /// Calls `observer` as the pack progresses.
    pub fn on_event(mut self, observer: impl FnMut(Event<'_>) + 'a) -> Packer<'a> {
        self.observer = Some(Box::new(observer));
        self
    }

    fn emit(&mut self, event: Event<'_>) {
        if let Some(observer) = self.observer.as_mut() {
            observer(event);
        }
    }

    /// Reads `inputs` and builds the bundle in memory.
    pub fn pack(&mut self, inputs: &[Input]) -> Result<Packed, PackError> {
        if inputs.is_empty() {
            return Err(PackError::NoInputs);
        }
        // Every input is vetted before any is read: a FIFO or an absurd size named last is refused
        // before gigabytes named first are read.
        for input in inputs {
            check_file(&input.path, Role::Input)?;
        }
        let mut variants = Vec::with_capacity(inputs.len());
        let mut declared = Vec::with_capacity(inputs.len());
        for (index, input) in inputs.iter().enumerate() {
            let (variant, recorded) = read_input(input)?;
            self.emit(Event::Read {
                index,
                count: inputs.len(),
                path: &input.path,
                len: variant.bytes.len() as u64,
            });
            variants.push(variant);
            declared.push(recorded);
        }
        let (levels, mut warnings) = settle_levels(inputs, &declared, self.options.force)?;
        let mut report = Vec::with_capacity(inputs.len());
        for ((variant, (level, origin)), declared) in variants.iter_mut().zip(levels).zip(declared)
        {
            // Settling may fall back on positions, which are x86-64 levels.
            if !mgo_format::level::is_valid(variant.arch, level) {
                return Err(PackError::LevelNotForArch {
                    path: variant.path.clone(),
                    level: level_name(level).to_string(),
                    arch: crate::input::arch_name(variant.arch),
                    hint: crate::input::levels_hint(variant.arch),
                });
            }
            variant.level = level;
            report.push(PackedVariant {
                path: variant.path.clone(),
                level,
                origin,
                declared,
                len: variant.bytes.len() as u64,
                content_hash: content_hash(&variant.bytes),
                own_location: crate::input::needs_own_location(&variant.bytes),
            });
        }
        self.emit(Event::Building {
            variants: variants.len(),
            compression: self.options.compression,
        });
        let bundle_options = crate::BundleOptions::default()
            .with_compression(self.options.compression)
            .with_launch(self.options.launch);
        let bytes = crate::build_bundle_with(&variants, &bundle_options)?;
        own_locations_kept(&bytes, &mut report, &mut warnings);
        Ok(Packed {
            bytes,
            variants: report,
            warnings,
        })
    }

    /// Packs `inputs` and writes the bundle to `output` (atomically, mode 0755). Nothing is
    /// written when anything fails, and an existing `output` is then left as it was.
    pub fn pack_to(&mut self, inputs: &[Input], output: &Path) -> Result<Packed, PackError> {
        refuse_overwriting_inputs(output, inputs.iter().map(|i| i.path.as_path()))?;
        let packed = self.pack(inputs)?;
        self.emit(Event::Writing {
            path: output,
            len: packed.bytes.len() as u64,
        });
        write_executable(output, &packed.bytes)?;
        Ok(packed)
    }
}

/// Packs `inputs` into `output` with `options`; [`Packer`] has the details.
pub fn pack_files(
    inputs: &[Input],
    output: &Path,
    options: &PackOptions,
) -> Result<Packed, PackError> {
    Packer::new(options.clone()).pack_to(inputs, output)
}

fn read_input(input: &Input) -> Result<(Variant, Declared), PackError> {
    let path = &input.path;
    let bytes = read_checked(path, Role::Input)?;
    if mgo_format::Region::locate(&bytes).is_ok() {
        return Err(PackError::AlreadyBundle { path: path.clone() });
    }
    let declared = declared_level(&bytes);
    // The file's own problems (not ELF, wrong machine) come before any question of its level;
    // the level is settled once every input has been read. A position stands for an x86-64
    // level, so a file that records its own (a ppc64le Go build's GOPPC64) is checked with that.
    let provisional = match input.level {
        LevelSpec::Given(level) => level,
        LevelSpec::Position(level) => declared.level.unwrap_or(level),
        LevelSpec::Detect => declared.level.unwrap_or(1),
    };
    let variant = Variant::from_bytes(path, bytes, Some(provisional))?;
    Ok((variant, declared))
}

/// Each input's level and how it was settled, per the rules on [`Packer`].
fn settle_levels(
    inputs: &[Input],
    declared: &[Declared],
    force: bool,
) -> Result<Settled, PackError> {
    let positions_recorded = inputs
        .iter()
        .zip(declared)
        .filter(|(input, _)| matches!(input.level, LevelSpec::Position(_)))
        .all(|(_, d)| d.level.is_some());
    let mut levels = Vec::with_capacity(inputs.len());
    let mut warnings = Vec::new();
    for (input, declared) in inputs.iter().zip(declared) {
        let (level, given) = match input.level {
            LevelSpec::Detect => match declared.level {
                Some(level) => (level, None),
                None => {
                    return Err(PackError::LevelUnknown {
                        path: input.path.clone(),
                        declared: declared.to_string(),
                    })
                }
            },
            LevelSpec::Position(_) if positions_recorded => {
                (declared.level.unwrap_or_default(), None)
            }
            LevelSpec::Position(n) => (
                n,
                Some((
                    LevelOrigin::Position,
                    format!("is input {n} without a level, so {}", level_name(n)),
                )),
            ),
            LevelSpec::Given(n) => (
                n,
                Some((LevelOrigin::Given, format!("is named {}", level_name(n)))),
            ),
        };
        let origin = match (given, declared.level) {
            (None, _) => LevelOrigin::Recorded,
            (Some((origin, _)), None) => origin,
            (Some((origin, _)), Some(recorded)) if recorded == level => origin,
            (Some(_), Some(_)) if force => {
                warnings.push(format!(
                    "{}: packed as {} although {} (--force)",
                    crate::escaped(&input.path),
                    level_name(level),
                    declared
                ));
                LevelOrigin::Forced
            }
            (Some((_, how)), Some(_)) => {
                return Err(PackError::LevelContradiction {
                    path: input.path.clone(),
                    given: how,
                    level: level_name(level).to_string(),
                    declared: declared.to_string(),
                })
            }
        };
        levels.push((level, origin));
    }
    Ok((levels, warnings))
}

fn refuse_overwriting_inputs<'p>(
    output: &Path,
    inputs: impl Iterator<Item = &'p Path>,
) -> Result<(), PackError> {
    let Ok(out) = output.canonicalize() else {
        return Ok(());
    };
    for input in inputs {
        if input.canonicalize().is_ok_and(|p| p == out) {
            return Err(PackError::OutputIsInput {
                path: output.into(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Source;

    fn go(level: u32) -> Declared {
        Declared {
            level: Some(level),
            source: Source::GoBuildInfo {
                go_version: "go1.19".into(),
                variable: "GOAMD64",
                setting: Some(level_name(level).into()),
            },
        }
    }

    fn silent() -> Declared {
        Declared {
            level: None,
            source: Source::Nothing,
        }
    }

    fn levels(inputs: &[Input], declared: &[Declared], force: bool) -> Vec<u32> {
        let (levels, _) = settle_levels(inputs, declared, force).unwrap();
        levels.into_iter().map(|(l, _)| l).collect()
    }

    #[test]
    fn parses_positional_and_named_inputs() {
        let inputs = Input::parse_args(&["a", "v3=b", "c", "v4=d=e"]).unwrap();
        assert_eq!(inputs[0].level, LevelSpec::Position(1));
        assert_eq!(inputs[1].level, LevelSpec::Given(3));
        assert_eq!(inputs[1].path, Path::new("b"));
        assert_eq!(inputs[2].level, LevelSpec::Position(2));
        assert_eq!(inputs[3].path, Path::new("d=e"));
        assert!(matches!(
            Input::parse_args(&["v7=x"]),
            Err(PackError::BadLevel(_))
        ));
        assert!(matches!(
            Input::parse_args(&["v3.x=y"]),
            Err(PackError::BadLevel(_))
        ));
        assert_eq!(
            Input::parse_args(&["./v3=x"]).unwrap()[0].path,
            Path::new("./v3=x")
        );
        assert_eq!(
            Input::parse_args(&["vendor=x"]).unwrap()[0].path,
            Path::new("vendor=x")
        );
        // riscv64's profiles, and a mistyped one.
        assert_eq!(
            Input::parse_args(&["rva22u64=x"]).unwrap()[0].level,
            LevelSpec::Given(22)
        );
        assert!(matches!(
            Input::parse_args(&["rva21u64=x"]),
            Err(PackError::BadLevel(_))
        ));
        assert_eq!(
            Input::parse_args(&["rvalue=x"]).unwrap()[0].path,
            Path::new("rvalue=x")
        );
        // 32-bit ARM's GOARM levels, and mistyped ones.
        assert_eq!(
            Input::parse_args(&["7=x"]).unwrap()[0].level,
            LevelSpec::Given(7)
        );
        for bad in ["8=x", "7,softfloat=x"] {
            assert!(
                matches!(Input::parse_args(&[bad]), Err(PackError::BadLevel(_))),
                "{bad}"
            );
        }
        assert_eq!(
            Input::parse_args(&["2024=x"]).unwrap()[0].path,
            Path::new("2024=x")
        );
        // ppc64le's levels, and a mistyped one.
        assert_eq!(
            Input::parse_args(&["power9=x"]).unwrap()[0].level,
            LevelSpec::Given(0x109)
        );
        assert!(matches!(
            Input::parse_args(&["power7=x"]),
            Err(PackError::BadLevel(_))
        ));
        assert_eq!(
            Input::parse_args(&["powerful=x"]).unwrap()[0].path,
            Path::new("powerful=x")
        );
        // A path that merely contains `=` is a path.
        assert_eq!(
            Input::parse_args(&["dir/x=y"]).unwrap()[0].path,
            Path::new("dir/x=y")
        );
        assert!(matches!(
            Input::parse_args(&["a", "b", "c", "d", "e"]),
            Err(PackError::TooManyInputs)
        ));
    }

    #[test]
    fn recorded_levels_make_order_irrelevant() {
        let inputs = Input::parse_args(&["x", "y", "z"]).unwrap();
        assert_eq!(levels(&inputs, &[go(3), go(1), go(4)], false), [3, 1, 4]);
    }

    #[test]
    fn silent_files_use_positions_and_recorded_ones_must_agree() {
        let inputs = Input::parse_args(&["x", "y", "z"]).unwrap();
        assert_eq!(
            levels(&inputs, &[silent(), go(2), silent()], false),
            [1, 2, 3]
        );
        let err = settle_levels(&inputs, &[silent(), go(3), silent()], false).unwrap_err();
        assert!(matches!(err, PackError::LevelContradiction { .. }), "{err}");
        let (forced, warnings) =
            settle_levels(&inputs, &[silent(), go(3), silent()], true).unwrap();
        assert_eq!(forced[1], (2, LevelOrigin::Forced));
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn given_levels_must_agree_unless_forced() {
        let inputs = vec![Input::with_level("x", 3)];
        assert_eq!(levels(&inputs, &[silent()], false), [3]);
        assert_eq!(levels(&inputs, &[go(3)], false), [3]);
        assert!(settle_levels(&inputs, &[go(1)], false).is_err());
        assert_eq!(levels(&inputs, &[go(1)], true), [3]);
    }

    #[test]
    fn detection_needs_a_record() {
        let inputs = vec![Input::detect("x")];
        assert_eq!(levels(&inputs, &[go(2)], false), [2]);
        let err = settle_levels(&inputs, &[silent()], true).unwrap_err();
        assert!(matches!(err, PackError::LevelUnknown { .. }), "{err}");
    }
}
