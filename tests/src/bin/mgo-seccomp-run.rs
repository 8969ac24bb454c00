//! `mgo-seccomp-run [--by-fd] [--argv0 NAME] [--user UID:GID] RULE... -- PROGRAM ARG...`: runs
//! PROGRAM under a
//! seccomp filter that makes chosen system calls fail with a chosen errno, the way hardened
//! sandboxes (firejail, systemd's `SystemCallFilter=`, container profiles) refuse them. The
//! launcher's fallback tests use it.
//!
//! A RULE is `NAME=ERRNO`, or `NAME=ERRNO:argN&MASK` to fail the call only when argument N has
//! one of MASK's bits set: `execveat=ENOSYS:arg4&0x1000` refuses `execveat(fd, "",
//! AT_EMPTY_PATH)` but lets a plain `execveat(AT_FDCWD, path)` through, and
//! `openat=EOPNOTSUPP:arg2&0x400000` refuses only `O_TMPFILE`. NAME is one of the x86-64 system
//! calls listed in `SYSCALLS` or a number; ERRNO a name from `ERRNOS` or a number.
//!
//! The filter is inherited by everything PROGRAM runs. PROGRAM itself is started with `execve`,
//! or with `execveat(AT_FDCWD, PROGRAM, 0)` when `execve` is refused outright. `--by-fd` opens
//! PROGRAM and starts it with `execveat(fd, "", AT_EMPTY_PATH)` (as `fexecve` does: the kernel
//! then records `/dev/fd/N` as its path, which only `/proc` can resolve); `--argv0` sets the
//! program's `argv[0]` (PROGRAM by default). Rules and options may be empty: `mgo-seccomp-run
//! --by-fd -- PROGRAM` only changes how PROGRAM is started.
//!
//! The filter is normally installed under `no_new_privs`, which also makes the kernel ignore the
//! set-user-ID bit of everything PROGRAM runs. `--user UID:GID` (for root: it needs
//! `CAP_SYS_ADMIN`) installs it without `no_new_privs`, then becomes UID:GID with no
//! supplementary groups before starting PROGRAM, so that a set-user-ID PROGRAM started by that
//! user gets its owner's identity and runs in secure-execution mode, under the filter.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

const SYSCALLS: &[(&str, u32)] = &[
    ("open", 2),
    ("execve", 59),
    ("fdatasync", 75),
    ("ftruncate", 77),
    ("mkdir", 83),
    ("fchmod", 91),
    ("fsetxattr", 190),
    ("openat", 257),
    ("mkdirat", 258),
    ("linkat", 265),
    ("fchmodat", 268),
    ("fallocate", 285),
    ("memfd_create", 319),
    ("execveat", 322),
    ("fchmodat2", 452),
];

const ERRNOS: &[(&str, u32)] = &[
    ("EPERM", 1),
    ("ENOENT", 2),
    ("EIO", 5),
    ("ENOMEM", 12),
    ("EACCES", 13),
    ("EINVAL", 22),
    ("EMFILE", 24),
    ("EFBIG", 27),
    ("ENOSPC", 28),
    ("EPIPE", 32),
    ("EROFS", 30),
    ("ENOSYS", 38),
    ("EOPNOTSUPP", 95),
];

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
// struct seccomp_data: nr (u32) at 0, arch (u32) at 4, instruction pointer at 8, args at 16.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JSET_K: u16 = 0x45;
const BPF_RET_K: u16 = 0x06;

#[derive(Debug)]
struct Rule {
    nr: u32,
    errno: u32,
    /// (argument index, mask): fail only when the argument's low 32 bits share a bit with mask.
    arg: Option<(u32, u32)>,
}

fn lookup(table: &[(&str, u32)], text: &str) -> Option<u32> {
    table
        .iter()
        .find(|(name, _)| *name == text)
        .map(|&(_, n)| n)
        .or_else(|| parse_number(text))
}

fn parse_number(text: &str) -> Option<u32> {
    match text.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

fn parse_rule(text: &str) -> Result<Rule, String> {
    let (name, rest) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: a rule is NAME=ERRNO[:argN&MASK]"))?;
    let (errno, cond) = match rest.split_once(':') {
        Some((errno, cond)) => (errno, Some(cond)),
        None => (rest, None),
    };
    let nr = lookup(SYSCALLS, name).ok_or_else(|| format!("`{name}`: unknown system call"))?;
    let errno = lookup(ERRNOS, errno).ok_or_else(|| format!("`{errno}`: unknown errno"))?;
    let arg = match cond {
        None => None,
        Some(cond) => {
            let (index, mask) = cond
                .strip_prefix("arg")
                .and_then(|c| c.split_once('&'))
                .ok_or_else(|| format!("`{cond}`: a condition is argN&MASK"))?;
            let index = parse_number(index).filter(|&i| i < 6);
            let mask = parse_number(mask);
            match (index, mask) {
                (Some(i), Some(m)) => Some((i, m)),
                _ => return Err(format!("`{cond}`: argument 0..5 and a numeric mask")),
            }
        }
    };
    Ok(Rule { nr, errno, arg })
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The filter: other architectures' calls pass; for each rule, load the call number, skip the
/// rule unless it matches (and its argument condition holds), else return the errno.
fn program_for(rules: &[Rule]) -> Vec<libc::sock_filter> {
    let mut body = Vec::new();
    for rule in rules {
        let mut block = vec![stmt(BPF_LD_W_ABS, OFF_NR)];
        let tail = if rule.arg.is_some() { 3 } else { 1 };
        block.push(jump(BPF_JEQ_K, rule.nr, 0, tail));
        if let Some((index, mask)) = rule.arg {
            // Little-endian: the low half of argument N.
            block.push(stmt(BPF_LD_W_ABS, OFF_ARGS + 8 * index));
            block.push(jump(BPF_JSET_K, mask, 0, 1));
        }
        block.push(stmt(BPF_RET_K, SECCOMP_RET_ERRNO | (rule.errno & 0xffff)));
        body.extend(block);
    }
    let mut prog = vec![stmt(BPF_LD_W_ABS, OFF_ARCH)];
    let to_allow = u8::try_from(body.len()).expect("too many rules");
    prog.push(jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 0, to_allow));
    prog.extend(body);
    prog.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    prog
}

/// Installs the filter, under `no_new_privs` unless `privileged` (the caller has
/// `CAP_SYS_ADMIN`).
fn install(prog: &[libc::sock_filter], privileged: bool) -> std::io::Result<()> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: plain prctl calls; `fprog` points at a valid filter that outlives the call (the
    // kernel copies it).
    unsafe {
        if !privileged && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &fprog as *const libc::sock_fprog,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `UID:GID`, as numbers.
fn parse_user(text: &std::ffi::OsStr) -> Option<(libc::uid_t, libc::gid_t)> {
    let (uid, gid) = text.to_str()?.split_once(':')?;
    Some((uid.parse().ok()?, gid.parse().ok()?))
}

/// Becomes `uid:gid` for good (real, effective and saved IDs), with no supplementary groups.
fn become_user((uid, gid): (libc::uid_t, libc::gid_t)) -> std::io::Result<()> {
    // SAFETY: plain credential system calls.
    let failed = unsafe {
        libc::setgroups(0, std::ptr::null()) != 0
            || libc::setresgid(gid, gid, gid) != 0
            || libc::setresuid(uid, uid, uid) != 0
    };
    if failed {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let Some(split) = args.iter().position(|a| a == "--") else {
        eprintln!(
            "usage: mgo-seccomp-run [--by-fd] [--argv0 NAME] [--user UID:GID] \
             NAME=ERRNO[:argN&MASK]... -- PROGRAM [ARG...]"
        );
        return ExitCode::from(2);
    };
    let mut rules = Vec::new();
    let mut by_fd = false;
    let mut argv0 = None;
    let mut user = None;
    let mut options = args[..split].iter();
    while let Some(arg) = options.next() {
        if arg == "--user" {
            match options.next().and_then(|u| parse_user(u)) {
                Some(ids) => user = Some(ids),
                None => {
                    eprintln!("mgo-seccomp-run: --user takes UID:GID");
                    return ExitCode::from(2);
                }
            }
            continue;
        }
        if arg == "--by-fd" {
            by_fd = true;
            continue;
        }
        if arg == "--argv0" {
            argv0 = options.next().cloned();
            continue;
        }
        match arg
            .to_str()
            .ok_or("rules are ASCII".to_string())
            .and_then(parse_rule)
        {
            Ok(rule) => rules.push(rule),
            Err(e) => {
                eprintln!("mgo-seccomp-run: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let command = &args[split + 1..];
    if command.is_empty() {
        eprintln!("mgo-seccomp-run: no program given");
        return ExitCode::from(2);
    }
    let cstrings: Vec<CString> = command
        .iter()
        .map(|a| CString::new(a.as_bytes()).expect("NUL in argument"))
        .collect();
    let program = cstrings[0].clone();
    let argv0 = argv0.map(|a| CString::new(a.as_bytes()).expect("NUL in argv0"));
    let mut argv: Vec<*const libc::c_char> = cstrings.iter().map(|c| c.as_ptr()).collect();
    if let Some(name) = &argv0 {
        argv[0] = name.as_ptr();
    }
    argv.push(std::ptr::null());
    let execve_refused = by_fd || rules.iter().any(|r| r.nr == 59 && r.arg.is_none());
    let execveat_refused = rules.iter().any(|r| r.nr == 322 && r.arg.is_none());
    if execve_refused && execveat_refused {
        eprintln!("mgo-seccomp-run: with both execve and execveat refused, nothing can be started");
        return ExitCode::from(2);
    }
    let fd = if by_fd {
        // SAFETY: opening a path given as a C string.
        let fd = unsafe { libc::open(program.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            let err = std::io::Error::last_os_error();
            eprintln!("mgo-seccomp-run: {}: {err}", command[0].to_string_lossy());
            return ExitCode::from(127);
        }
        fd
    } else {
        libc::AT_FDCWD
    };
    let (path, flags) = if by_fd {
        (c"".as_ptr(), libc::AT_EMPTY_PATH)
    } else {
        (program.as_ptr(), 0)
    };
    if let Err(e) = install(&program_for(&rules), user.is_some()) {
        eprintln!("mgo-seccomp-run: installing the seccomp filter: {e}");
        return ExitCode::from(125);
    }
    if let Some(Err(e)) = user.map(become_user) {
        eprintln!("mgo-seccomp-run: becoming the user: {e}");
        return ExitCode::from(125);
    }
    extern "C" {
        static environ: *const *const libc::c_char;
    }
    // No retry on ETXTBSY: the tests write PROGRAM so that no child of theirs holds it open
    // for writing (mgo_tests::harness::write_executable), and a busy file is a failure to see.
    // SAFETY: argv is a NULL-terminated array of C strings that outlive the call; environ is the
    // process's environment as libc keeps it.
    let err = unsafe {
        if execve_refused {
            libc::syscall(libc::SYS_execveat, fd, path, argv.as_ptr(), environ, flags);
        } else {
            libc::execve(program.as_ptr(), argv.as_ptr(), environ);
        }
        std::io::Error::last_os_error()
    };
    eprintln!("mgo-seccomp-run: {}: {err}", command[0].to_string_lossy());
    ExitCode::from(127)
}
