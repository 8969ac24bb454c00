//! Finding and mapping the launcher's own executable, where the payloads are.

use core::ffi::CStr;
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::start::StartInfo;

/// The bundle file, mapped read-only for the life of the launcher.
pub struct Mapped {
    pub bytes: &'static [u8],
}

const AT_PHDR: usize = 3;
const AT_PHNUM: usize = 5;

/// Opens the launcher's own file: `/proc/self/exe` names exactly the inode the kernel executed;
/// without `/proc`, the path given to execve (`AT_EXECFN`); failing that, `argv[0]` resolved the
/// way a shell would have found it. A file found by name is taken only if its program headers
/// are the ones the kernel loaded, so that another program of the same name is never read as
/// the bundle. (Someone able to replace the bundle under its name between the kernel's exec and
/// this open could as well have replaced it before the exec: the names add no exposure. And the
/// bytes that run are still checked against the hashes in the index.)
pub fn open(start: &StartInfo) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC;
    let first = match rustix::fs::open(c"/proc/self/exe", flags, Mode::empty()) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let ours = |fd: OwnedFd| is_running_image(&fd, start).then_some(fd);
    if let Some(path) = start.execfn() {
        if let Some(fd) = rustix::fs::open(path, flags, Mode::empty())
            .ok()
            .and_then(ours)
        {
            return Ok(fd);
        }
    }
    if let Some(argv0) = start.argv0() {
        if let Some(fd) = open_like_shell(argv0, start, flags).and_then(ours) {
            return Ok(fd);
        }
    }
    Err(first)
}

/// Whether `fd` holds the program headers the kernel loaded this process from (`AT_PHDR`,
/// `AT_PHNUM`). They include the payload segment's offset and size, so a different program, or
/// another bundle of a different size, does not match.
fn is_running_image(fd: &OwnedFd, start: &StartInfo) -> bool {
    const PHDR_LEN: usize = 56;
    let (Some(phdr), Some(phnum)) = (start.aux(AT_PHDR), start.aux(AT_PHNUM)) else {
        // Every Linux kernel passes both; without them there is nothing to compare.
        return true;
    };
    let mut ehdr = [0u8; 64];
    if !read_exact_at(fd, &mut ehdr, 0) {
        return false;
    }
    let phoff = u64::from_le_bytes([
        ehdr[32], ehdr[33], ehdr[34], ehdr[35], ehdr[36], ehdr[37], ehdr[38], ehdr[39],
    ]);
    let phentsize = u16::from_le_bytes([ehdr[54], ehdr[55]]) as usize;
    let count = u16::from_le_bytes([ehdr[56], ehdr[57]]) as usize;
    let mut file_phdrs = [0u8; 16 * PHDR_LEN];
    let Some(file_phdrs) = file_phdrs.get_mut(..count * PHDR_LEN) else {
        return false;
    };
    if phentsize != PHDR_LEN || count != phnum || phdr == 0 || !read_exact_at(fd, file_phdrs, phoff)
    {
        return false;
    }
    // SAFETY: the kernel points AT_PHDR at the launcher's program headers, which lie in its first
    // loaded segment (runtime/link/*.ld puts them there) and so are mapped and readable.
    let loaded = unsafe { core::slice::from_raw_parts(phdr as *const u8, count * PHDR_LEN) };
    file_phdrs == loaded
}

fn read_exact_at(fd: &OwnedFd, mut buf: &mut [u8], mut offset: u64) -> bool {
    while !buf.is_empty() {
        match rustix::io::pread(fd, &mut *buf, offset) {
            Ok(0) | Err(_) => return false,
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    true
}

/// A name with a slash is a path; a bare name is looked up in each `PATH` directory in turn
/// (an empty entry meaning the current directory), as execvp does.
fn open_like_shell(name: &CStr, start: &StartInfo, flags: OFlags) -> Option<OwnedFd> {
    let name = name.to_bytes();
    if name.is_empty() {
        return None;
    }
    if name.contains(&b'/') {
        let mut buf = [0u8; 4096];
        return open_joined(&mut buf, &[name], flags);
    }
    let path = start.env().find_map(|e| e.strip_prefix(b"PATH="))?;
    path.split(|&b| b == b':').find_map(|dir| {
        let mut buf = [0u8; 4096];
        let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
        open_joined(&mut buf, &[dir, b"/", name], flags)
    })
}

fn open_joined(buf: &mut [u8; 4096], parts: &[&[u8]], flags: OFlags) -> Option<OwnedFd> {
    let mut len = 0;
    for part in parts {
        buf.get_mut(len..len + part.len())?.copy_from_slice(part);
        len += part.len();
    }
    *buf.get_mut(len)? = 0;
    let path = CStr::from_bytes_with_nul(&buf[..=len]).ok()?;
    rustix::fs::open(path, flags, Mode::empty()).ok()
}

/// Maps the whole file read-only. The mapping is never unmapped: exec replaces it.
pub fn map(fd: &OwnedFd) -> Result<Mapped, Errno> {
    let size = rustix::fs::fstat(fd)?.st_size;
    let len = usize::try_from(size).map_err(|_| Errno::FBIG)?;
    if len == 0 {
        return Ok(Mapped { bytes: &[] });
    }
    // SAFETY: a fresh private read-only mapping of `len` bytes of `fd`, which the kernel places
    // where nothing else lives. It is never unmapped or written, so a 'static shared borrow of it
    // is sound as long as the file is not truncated while the launcher runs (a bundle being
    // rewritten in place under a running launcher is outside what any loader can guard against).
    unsafe {
        let ptr = rustix::mm::mmap(
            core::ptr::null_mut(),
            len,
            rustix::mm::ProtFlags::READ,
            rustix::mm::MapFlags::PRIVATE,
            fd,
            0,
        )?;
        Ok(Mapped {
            bytes: core::slice::from_raw_parts(ptr as *const u8, len),
        })
    }
}
