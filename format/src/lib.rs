//! The mgo-pack bundle format, shared by the packer (which writes it) and the launcher (which
//! reads it), so that the two sides cannot drift. `no_std`, allocation-free, and defensive: every
//! offset read from a file is bounds-checked before use. `docs/FORMAT.md` is the prose version.
//!
//! A bundle is an ELF executable: the launcher ("runtime image") whose one spare program header
//! (`PT_NULL`) the packer turns into a read-only `PT_LOAD` covering the *payload region* it
//! appends. The region holds a [`Header`], the variants' bytes and an index of [`Entry`]s.

#![no_std]

pub mod direct;
pub mod elf;
mod error;
pub mod gzip;
mod hash;
mod launcher;
mod layout;
pub mod level;

pub use direct::{ENTRY_DIRECT, ENTRY_OWN_LOCATION};
pub use error::{FormatError, LAUNCHER_CORRUPT};
pub use hash::{content_hash, ContentHasher};
pub use launcher::{
    decoder_hash_in_slot, decoder_hash_matches, decoders_of_file_intact, is_decoder_segment,
    launcher_hash, launcher_hash_in_phdr, launcher_hash_of_file, record_decoder_hashes,
    DECODER_HASH_MARK, DECODER_HASH_SLOT_LEN,
};
pub use layout::{
    Arch, Bundle, Encoding, Entry, Header, Region, ENTRY_CACHE, ENTRY_LEN, FORMAT_VERSION,
    HEADER_LEN, MAGIC, NO_DICTIONARY,
};
