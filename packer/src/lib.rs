//! mgo-pack as a library: turn already-built variants of one program into a single executable
//! whose launcher runs the best variant for the CPU it lands on, and read such bundles back.
//! The `mgo-pack` command is a thin layer over this crate.
//!
//! Packing files, with levels read from the files where they record them (Go build info, GNU
//! ISA notes) and given explicitly where they do not:
//!
//! ```no_run
//! use mgo_pack::{Input, PackOptions};
//!
//! let inputs = [
//!     Input::detect("dist/app_linux_amd64_v1/app"),
//!     Input::detect("dist/app_linux_amd64_v3/app"),
//!     Input::with_level("build/app-c-v2", 2),
//! ];
//! let packed = mgo_pack::pack_files(&inputs, "app".as_ref(), &PackOptions::default())?;
//! for v in &packed.variants {
//!     println!("{} {}", mgo_pack::level_name(v.level), v.path.display());
//! }
//! # Ok::<(), mgo_pack::PackError>(())
//! ```
//!
//! Reading a bundle back:
//!
//! ```no_run
//! let info = mgo_pack::inspect("app")?;
//! println!("{} variants", info.variants.len());
//! let v3 = mgo_pack::extract("app", 3)?; // byte-identical to the v3 input
//! mgo_pack::verify("app")?.into_result()?; // every variant decoded and hash-checked
//! # Ok::<(), mgo_pack::PackError>(())
//! ```
//!
//! Building a program once per level (Go, cargo, any compiler) before packing it: [`builder`].
//!
//! The lower layer, for callers that have the bytes already: [`Variant`], [`build_bundle`],
//! [`write_executable`]. [`cache`] lists and clears the launcher's per-user cache of programs
//! (bundles packed with [`Launch::Cache`]).

pub mod builder;
mod bundle;
pub mod cache;
mod cleanup;
pub mod compress;
pub mod detect;
mod elf_sections;
mod error;
mod input;
pub mod inspect;
mod output;
mod pack;
pub mod runtime_image;

pub use bundle::{build_bundle, build_bundle_with, BundleOptions, Launch};
pub use compress::{Compression, CompressionSpecError};
pub use detect::{declared_level, Declared};
pub use error::{escaped, os_error, Escaped, PackError};
pub use input::{
    level_name, needs_own_location, parse_level, Variant, MAX_BUNDLE_LEN, MAX_INPUT_LEN,
};
pub use inspect::{
    decode_variant, extract, inspect, verify, BundleFile, BundleInfo, RuntimeInfo, VariantInfo,
    Verification,
};
pub use mgo_format::{Arch, Encoding, FORMAT_VERSION};
pub use output::write_executable;
pub use pack::{
    pack_files, Event, Input, LevelOrigin, LevelSpec, PackOptions, Packed, PackedVariant, Packer,
};
