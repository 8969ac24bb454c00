//! The launcher's own exit statuses, chosen above the range programs commonly use so that a
//! caller can tell a launcher failure from the program's own status. docs/ARCHITECTURE.md lists
//! them, docs/RELIABILITY.md says which conditions lead to each; when the program runs, its
//! status is the caller's, untouched.

/// `GOAMD64` holds something other than `v1`..`v4`.
pub const BAD_OVERRIDE: i32 = 120;
/// The launcher cannot open or map its own executable.
pub const OWN_FILE: i32 = 121;
/// The bundle is damaged: truncated, corrupted (a header, index or variant not matching its
/// hash), offsets or sizes outside the file, or not a bundle at all. Nothing was executed.
pub const BAD_BUNDLE: i32 = 122;
/// No packed variant can run on this CPU.
pub const NO_VARIANT: i32 = 123;
/// `MGODEBUG=extract` could not write the variant to stdout.
pub const EXTRACT_FAILED: i32 = 124;
/// Every way of starting the program failed (as a shell says 126 for "cannot execute"): the
/// memfd and a file in each temporary directory, each exec'd by `execveat` or through
/// `/proc/self/fd`; the line names each path tried and why it failed.
pub const CANNOT_EXECUTE: i32 = 126;
