//! Where the program's bytes go before exec.
//!
//! First choice: a sealed, close-on-exec memfd, named as mgo names it. When memfds are refused
//! (seccomp, `vm.memfd_noexec=2`) or cannot be executed: an unnamed file in a temporary
//! directory, opened with `O_TMPFILE` so that it never has a name another user could swap and
//! disappears with its last descriptor, whatever kills the process. docs/RELIABILITY.md has the
//! whole list and what cannot work.

use core::ffi::CStr;

use mgo_format::{level, Encoding, Entry};
use mgo_runtime::message::Line;
use mgo_runtime::name::{memfd_name, MEMFD_NAME_MAX};
use rustix::fd::{AsFd, AsRawFd, OwnedFd};
use rustix::fs::{AtFlags, FallocateFlags, MemfdFlags, Mode, OFlags, SealFlags, StatVfsMountFlags};
use rustix::io::Errno;

use crate::decode::Step;
use crate::own_image::{own_path, PATH_MAX};
use crate::start::StartInfo;

/// Creates the memfd that will hold the variant, named as mgo names it: after the bundle's
/// absolute path as `/proc/self/exe` gives it (what Go's `os.Executable` returns), whatever
/// `argv[0]` was; without `/proc`, after the path given to exec.
pub fn memfd(start: &StartInfo, entry: &Entry) -> Result<OwnedFd, Errno> {
    let mut name = [0u8; MEMFD_NAME_MAX + 1];
    let mut exe = [0u8; PATH_MAX];
    let path = match own_path(start, &mut exe) {
        Some(own) => own.bytes,
        None => start.argv0().map_or(&b"mgo"[..], |p| p.to_bytes()),
    };
    let level = level::name(mgo_runtime::cpu::NATIVE, entry.level);
    let len = memfd_name(&mut name, path, level.as_bytes());
    let name = CStr::from_bytes_with_nul(&name[..=len]).map_err(|_| Errno::INVAL)?;
    let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    match rustix::fs::memfd_create(name, flags | MemfdFlags::EXEC) {
        // Kernels before 6.3 do not know MFD_EXEC; there every memfd is executable anyway.
        Err(Errno::INVAL) => rustix::fs::memfd_create(name, flags),
        other => other,
    }
}

/// Seals the filled memfd: the bytes that were hashed are the bytes that run. Nobody holding the
/// memfd (it is close-on-exec, but /proc/PID/fd lets root reopen it) can change them afterwards.
pub fn seal(fd: &OwnedFd) -> Result<(), Errno> {
    let seals = SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE;
    rustix::fs::fcntl_add_seals(fd, seals)
}

/// The directories tried for a file target, in order. Relative or empty settings are ignored (a
/// relative `TMPDIR` would depend on the program's working directory), and so are repeats. In
/// secure-execution mode the caller's `XDG_RUNTIME_DIR` and `TMPDIR` are not used: a directory the
/// caller controls (a FUSE mount, say) could serve other bytes than those written.
pub fn temp_dirs(start: &StartInfo) -> Dirs {
    let mut dirs = Dirs {
        list: [c""; MAX_DIRS],
        len: 0,
    };
    let secure = start.secure();
    let var = |name: &[u8]| {
        if secure {
            return None;
        }
        start.env().find_map(|e| {
            let value = e.strip_prefix(name)?.strip_prefix(b"=")?;
            // SAFETY: `e` is an environment string without its NUL; `value` ends where `e` ends,
            // so the byte after it is that NUL, and the string lives for the whole process.
            Some(unsafe { CStr::from_ptr(value.as_ptr().cast()) })
        })
    };
    for dir in [
        var(b"XDG_RUNTIME_DIR"),
        Some(c"/dev/shm"),
        var(b"TMPDIR"),
        Some(c"/tmp"),
    ]
    .into_iter()
    .flatten()
    {
        let fresh = !dirs.list[..dirs.len].contains(&dir);
        if dir.to_bytes().first() == Some(&b'/') && fresh {
            dirs.list[dirs.len] = dir;
            dirs.len += 1;
        }
    }
    dirs
}

pub const MAX_DIRS: usize = 4;

pub struct Dirs {
    list: [&'static CStr; MAX_DIRS],
    len: usize,
}

impl Dirs {
    pub fn iter(&self) -> impl Iterator<Item = &'static CStr> + '_ {
        self.list[..self.len].iter().copied()
    }
}

/// A file target: the bytes go in through `write`; once `write` is closed, `exec` is what runs.
/// Exec refuses a file that is open for writing anywhere (ETXTBSY), so two descriptors are needed.
pub struct TempFile {
    pub write: OwnedFd,
    pub exec: OwnedFd,
}

/// Creates an unnamed, executable file in `dir`. With `/proc`, the file never has a name: it is
/// made with `O_TMPFILE` and reopened read-only through its `/proc/self/fd` link. Without `/proc`
/// (or without `O_TMPFILE` support in the file system), it is created in a fresh private
/// directory and both names are removed before a byte is written (see [`private_file`]).
/// `random` makes the private directory's name unpredictable.
pub fn temp_file(path: &CStr, random: u64) -> Result<TempFile, Failed> {
    let created = rustix::fs::open(
        path,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::EXCL | OFlags::CLOEXEC,
        Mode::RWXU,
    );
    let file = match created {
        Ok(write) => {
            executable(&write)?;
            let mut link = [0u8; 32];
            match rustix::fs::open(
                proc_fd_path(&mut link, &write),
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(exec) => TempFile { write, exec },
                // No /proc: the unnamed file cannot be reopened; a private name can.
                Err(Errno::NOENT) => private_file(path, random)?,
                Err(e) => return Err(Failed::Reopen(e)),
            }
        }
        // Kernels or file systems without O_TMPFILE.
        Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => private_file(path, random)?,
        Err(e) => return Err(Failed::Create(e)),
    };
    // The mode is the file's own, not the umask's: only its owner may run it.
    rustix::fs::fchmod(&file.write, Mode::RWXU).map_err(Failed::Fchmod)?;
    Ok(file)
}

/// Allocates the file's blocks for the whole variant before anything is written into it. A
/// compressed variant is decoded through a shared mapping, where a full file system (a small
/// `/dev/shm`, as containers have) would be a SIGBUS in the middle of decoding; reserved up
/// front, it is ENOSPC here, and the launch moves on to the next directory.
pub fn reserve(fd: &OwnedFd, entry: &Entry) -> Result<(), Errno> {
    let len = match entry.encoding {
        Encoding::Stored => entry.stored_len,
        _ => entry.original_len,
    };
    match rustix::fs::fallocate(fd, FallocateFlags::empty(), 0, len) {
        // File systems that cannot reserve: writes will tell, and a mapping may fault.
        Ok(()) | Err(Errno::OPNOTSUPP | Errno::NOSYS) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Refuses a file on a `noexec` mount before anything is copied into it.
fn executable(fd: &OwnedFd) -> Result<(), Failed> {
    match rustix::fs::fstatvfs(fd) {
        Ok(st) if st.f_flag.contains(StatVfsMountFlags::NOEXEC) => Err(Failed::Noexec),
        // Not knowing is no reason to give up: exec will tell.
        _ => Ok(()),
    }
}

/// The file target without `/proc`: `dir/.mgo-RANDOM/p`, in a directory made for this launch
/// with mode 0700 and checked to be ours, so no other user can enter it, let alone swap the file.
/// The file is opened twice (to write, and read-only to exec), then the file and the directory
/// are removed before anything is written: the names exist for a handful of system calls, and
/// only a launcher killed in exactly that window leaves an empty directory behind.
fn private_file(dir: &CStr, random: u64) -> Result<TempFile, Failed> {
    let parent = rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(Failed::Create)?;
    let mut name = *b".mgo-0000000000000000\0";
    let mut random = random;
    let mut tries = 0;
    let name = loop {
        for (i, digit) in name[5..21].iter_mut().enumerate() {
            *digit = b"0123456789abcdef"[(random >> (60 - 4 * i)) as usize & 15];
        }
        let cname = CStr::from_bytes_with_nul(&name).map_err(|_| Failed::Create(Errno::INVAL))?;
        match rustix::fs::mkdirat(&parent, cname, Mode::RWXU) {
            Ok(()) => break cname,
            Err(Errno::EXIST) if tries < 4 => {
                tries += 1;
                random = random.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15;
            }
            Err(e) => return Err(Failed::Private(e)),
        }
    };
    let made = make_private(&parent, name);
    // Whatever happened, the directory goes; it can only be removed once it is empty, so a
    // directory that turned out not to be ours (swapped in by someone else) is never emptied.
    let removed = rustix::fs::unlinkat(&parent, name, AtFlags::REMOVEDIR);
    let file = made?;
    removed.map_err(Failed::Private)?;
    Ok(file)
}

fn make_private(parent: &OwnedFd, name: &CStr) -> Result<TempFile, Failed> {
    let sub = rustix::fs::openat(
        parent,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(Failed::Private)?;
    let st = rustix::fs::fstat(&sub).map_err(Failed::Private)?;
    if st.st_uid != rustix::process::geteuid().as_raw() || st.st_mode & 0o077 != 0 {
        return Err(Failed::Private(Errno::PERM));
    }
    let file = c"p";
    let write = rustix::fs::openat(
        &sub,
        file,
        OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::RWXU,
    )
    .map_err(Failed::Private)?;
    let exec = rustix::fs::openat(
        &sub,
        file,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    );
    let unlinked = rustix::fs::unlinkat(&sub, file, AtFlags::empty());
    let exec = exec.map_err(Failed::Private)?;
    unlinked.map_err(Failed::Private)?;
    executable(&write)?;
    Ok(TempFile { write, exec })
}

/// Why a path failed.
#[derive(Clone, Copy)]
pub enum Failed {
    /// `memfd_create` or `open(O_TMPFILE)`.
    Create(Errno),
    /// The directory's file system is mounted `noexec`.
    Noexec,
    /// Copying the program in (a full file system, a size limit).
    Copy(Step, Errno),
    /// Reserving the file's blocks before the copy.
    Fallocate(Errno),
    /// Making the file executable by its owner only.
    Fchmod(Errno),
    Seal(Errno),
    /// Reopening the unnamed file read-only through `/proc/self/fd`.
    Reopen(Errno),
    /// Making the private directory used when `/proc` is missing.
    Private(Errno),
    Exec {
        execveat: Errno,
        execve: Option<Errno>,
    },
}

/// `/proc/self/fd/N` for `fd`.
pub fn proc_fd_path<'b>(buf: &'b mut [u8; 32], fd: &impl AsFd) -> &'b CStr {
    let mut line = Line::new();
    line.str("/proc/self/fd/")
        .dec(fd.as_fd().as_raw_fd() as u64);
    let bytes = line.finish();
    let len = bytes.len() - 1;
    buf[..len].copy_from_slice(&bytes[..len]);
    buf[len] = 0;
    // The digits of a descriptor never hold a NUL, and the path is at most 24 bytes long.
    CStr::from_bytes_with_nul(&buf[..=len]).unwrap_or(c"/proc/self/fd")
}
