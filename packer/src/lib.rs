//! mgo-pack as a library: turn already-built variants of one program into a single executable
//! whose launcher runs the best variant for the CPU it lands on.
//!
//! ```no_run
//! let variants = vec![
//!     mgo_pack::Variant::read("app.v1", Some(1))?,
//!     mgo_pack::Variant::read("app.v3", Some(3))?,
//! ];
//! let bundle = mgo_pack::build_bundle(&variants)?;
//! mgo_pack::write_executable("app".as_ref(), &bundle)?;
//! # Ok::<(), mgo_pack::PackError>(())
//! ```

mod bundle;
mod error;
mod input;
mod output;
pub mod runtime_image;

pub use bundle::build_bundle;
pub use error::PackError;
pub use input::{level_name, parse_level, Variant};
pub use mgo_format::Arch;
pub use output::write_executable;
