//! Why the direct path could not start a variant: the launch then goes on through the memfd (or,
//! when the direct path was the last resort, says why it failed too).

use mgo_format::direct::NotDirect;
use mgo_runtime::message::Line;
use rustix::io::Errno;

use crate::report::errno;

/// Why the direct path was not taken. The launch goes on through the memfd.
#[derive(Clone, Copy)]
pub enum Refusal {
    Layout(NotDirect),
    /// The variant does not start at a page boundary of the file (a bundle the packer did not
    /// lay out for mapping).
    Misaligned,
    /// The kernel would not map it: an address already in use, or a resource limit.
    Map(Errno),
    /// Its program interpreter cannot be opened or read.
    Interpreter(Errno),
    /// Its program interpreter is not a loader the launcher can map.
    InterpreterLayout(NotDirect),
    /// Its compressed bytes do not match their hash or do not decode (the memfd path then
    /// decodes them again, and refuses them with the usual message).
    #[cfg_attr(not(any(feature = "zstd", feature = "deflate")), allow(dead_code))]
    Damaged,
}

impl Refusal {
    pub fn describe(self, line: &mut Line) {
        match self {
            Refusal::Layout(why) => {
                line.str(why.message());
            }
            Refusal::Misaligned => {
                line.str("its bytes are not page-aligned in the bundle");
            }
            Refusal::Map(e) => {
                line.str("mapping it failed: ");
                errno(line, e);
            }
            Refusal::Interpreter(e) => {
                line.str("its program interpreter cannot be read: ");
                errno(line, e);
            }
            Refusal::InterpreterLayout(why) => {
                line.str("its program interpreter ").str(why.message());
            }
            Refusal::Damaged => {
                line.str("its compressed bytes do not match their hash or do not decode");
            }
        }
    }
}
