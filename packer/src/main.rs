//! `mgo-pack`: the command line over the `mgo_pack` library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use mgo_pack::{build_bundle, parse_level, write_executable, PackError, Variant};

/// Pack GOAMD64 variants of one program into a single executable that runs the best variant for
/// the CPU it starts on.
#[derive(Parser, Debug)]
#[command(
    name = "mgo-pack",
    version,
    after_help = "Examples:\n  mgo-pack -o app app.v1 app.v2 app.v3 app.v4   inputs are v1..v4 in order\n  \
                  mgo-pack -o app v1=build/app-v1 v3=build/app-v3  name the levels explicitly\n\n\
                  Exit status: 0 packed; 1 an input, the output or the runtime image is unusable; 2 usage error."
)]
struct Cli {
    /// Where to write the bundle (written atomically, mode 0755).
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    /// The variants: `PATH` (positions mean v1, v2, v3, v4) or `vN=PATH`.
    #[arg(value_name = "INPUT", required = true)]
    inputs: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match pack(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mgo-pack: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn pack(cli: &Cli) -> Result<(), PackError> {
    let specs = input_specs(&cli.inputs)?;
    refuse_overwriting_inputs(&cli.output, specs.iter().map(|(_, p)| p.as_path()))?;
    let variants = specs
        .iter()
        .map(|(level, path)| Variant::read(path, Some(*level)))
        .collect::<Result<Vec<_>, _>>()?;
    let bundle = build_bundle(&variants)?;
    write_executable(&cli.output, &bundle)
}

/// Positional inputs are v1, v2, v3, v4 in order, as in mgo; `vN=PATH` names a level.
fn input_specs(inputs: &[String]) -> Result<Vec<(u32, PathBuf)>, PackError> {
    let mut specs = Vec::new();
    let mut next_positional = 1;
    for input in inputs {
        match input.split_once('=') {
            Some((level, path)) if looks_like_level(level) => {
                specs.push((parse_level(level)?, PathBuf::from(path)));
            }
            _ => {
                if next_positional > 4 {
                    return Err(PackError::TooManyInputs);
                }
                specs.push((next_positional, PathBuf::from(input)));
                next_positional += 1;
            }
        }
    }
    Ok(specs)
}

/// `v7=x` is a mistyped level, not a file called `v7=x`.
fn looks_like_level(text: &str) -> bool {
    text.len() <= 3 && text.starts_with('v')
}

fn refuse_overwriting_inputs<'a>(
    output: &Path,
    inputs: impl Iterator<Item = &'a Path>,
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
