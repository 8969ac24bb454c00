//! The C allocator's symbols, for libzstd in a launcher without libc. Its context constructors
//! and destructors reference `malloc`, `calloc` and `free` even though the launcher only uses
//! static contexts, which never allocate; these satisfy the linker and make any allocation
//! attempt fail cleanly (libzstd checks for NULL). Kept out of `zstd.rs` so that a program with
//! a real libc (the fuzz targets) can compile that file.

use core::ffi::c_void;

#[no_mangle]
extern "C" fn malloc(_: usize) -> *mut c_void {
    core::ptr::null_mut()
}

#[no_mangle]
extern "C" fn calloc(_: usize, _: usize) -> *mut c_void {
    core::ptr::null_mut()
}

#[no_mangle]
extern "C" fn free(_: *mut c_void) {}
