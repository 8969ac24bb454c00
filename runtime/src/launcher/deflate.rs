//! libdeflate's decompressor, compiled from C into the gzip launcher image (see build.rs): about
//! twice as fast as zlib or miniz_oxide, and made for exactly this case, a whole stream decoded
//! into a buffer of known size. It never allocates except the decompressor itself, which the
//! launcher places in each thread's workspace.

use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use mgo_format::gzip::{parse_member, MEMBER_HEADER_LEN};

use crate::frames::{Frame, Frames};

/// libdeflate's decompressor (tables for Huffman decoding) takes about 11 KiB; this leaves room
/// for the alignment its allocator adds.
pub const WORKSPACE: usize = 32 * 1024;

#[allow(non_camel_case_types)]
enum libdeflate_decompressor {}

#[repr(C)]
struct Options {
    sizeof_options: usize,
    malloc_func: Option<unsafe extern "C" fn(usize) -> *mut c_void>,
    free_func: Option<unsafe extern "C" fn(*mut c_void)>,
}

extern "C" {
    fn libdeflate_alloc_decompressor_ex(options: *const Options) -> *mut libdeflate_decompressor;
    fn libdeflate_deflate_decompress(
        d: *mut libdeflate_decompressor,
        src: *const c_void,
        src_len: usize,
        dst: *mut c_void,
        dst_len: usize,
        actual_out: *mut usize,
    ) -> i32;
}

/// The one block `place` hands out: libdeflate asks its allocator exactly once per decompressor.
static ARENA: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());
static ARENA_LEN: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn arena_alloc(size: usize) -> *mut c_void {
    if size > ARENA_LEN.swap(0, Ordering::Relaxed) {
        return core::ptr::null_mut();
    }
    ARENA.swap(core::ptr::null_mut(), Ordering::Relaxed).cast()
}

unsafe extern "C" fn arena_free(_: *mut c_void) {}

/// A decompressor built inside a thread's workspace.
#[derive(Clone, Copy)]
pub struct Decompressor(*mut libdeflate_decompressor);

// SAFETY: each decompressor is used by exactly one thread at a time (its slot's).
unsafe impl Send for Decompressor {}
unsafe impl Sync for Decompressor {}

/// Builds a decompressor in `workspace`. Called from the launcher's own thread only, before any
/// helper thread exists, since the arena is global.
///
/// # Safety
/// `workspace` is [`WORKSPACE`] writable bytes that live as long as the decompressor is used.
pub unsafe fn place(workspace: *mut u8) -> Option<Decompressor> {
    ARENA.store(workspace, Ordering::Relaxed);
    ARENA_LEN.store(WORKSPACE, Ordering::Relaxed);
    let options = Options {
        sizeof_options: core::mem::size_of::<Options>(),
        malloc_func: Some(arena_alloc),
        free_func: Some(arena_free),
    };
    // SAFETY: the options struct is complete and the allocator hands out `workspace` once.
    let d = unsafe { libdeflate_alloc_decompressor_ex(&options) };
    (!d.is_null()).then_some(Decompressor(d))
}

/// Splits `stored` into its gzip members and where each one's output goes.
pub fn frames(stored: &[u8], frames: &mut Frames) -> Option<()> {
    let mut at = 0;
    let mut out = 0usize;
    while at < stored.len() {
        let member = parse_member(&stored[at..])?;
        frames.push(Frame {
            src: at + MEMBER_HEADER_LEN,
            src_len: member.deflate_len,
            dst: out,
            dst_len: member.output_len,
        })?;
        at += member.len;
        out = out.checked_add(member.output_len)?;
    }
    Some(())
}

/// Decodes one member's deflate data into exactly `dst`.
///
/// # Safety
/// `d` is used by no other thread meanwhile; `dst` is `dst_len` writable bytes that no other
/// thread touches meanwhile.
pub unsafe fn decode(d: Decompressor, src: &[u8], dst: *mut u8, dst_len: usize) -> bool {
    // SAFETY: as the caller promises. With no `actual_out`, libdeflate succeeds only if the data
    // fill `dst` exactly, and it never writes outside it.
    let result = unsafe {
        libdeflate_deflate_decompress(
            d.0,
            src.as_ptr().cast(),
            src.len(),
            dst.cast(),
            dst_len,
            core::ptr::null_mut(),
        )
    };
    result == 0
}
