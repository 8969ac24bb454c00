//! The launcher's own exit statuses, chosen above the range programs commonly use so that a
//! caller can tell a launcher failure from the program's own status. docs/ARCHITECTURE.md lists
//! them; when the program runs, its status is the caller's, untouched.

/// `GOAMD64` holds something other than `v1`..`v4`.
pub const BAD_OVERRIDE: i32 = 120;
/// The launcher cannot open or map its own executable.
pub const OWN_FILE: i32 = 121;
/// The bundle is damaged: truncated, corrupted, or not a bundle at all.
pub const BAD_BUNDLE: i32 = 122;
/// No packed variant can run on this CPU.
pub const NO_VARIANT: i32 = 123;
/// `MGODEBUG=extract` could not write the variant to stdout.
pub const EXTRACT_FAILED: i32 = 124;
/// Every way of starting the program failed (as a shell says 126 for "cannot execute").
pub const CANNOT_EXECUTE: i32 = 126;
