/*
 * Runs a program and prints its peak resident set in KiB (ru_maxrss from wait4) on stdout; the
 * program's own stdout and stderr go to /dev/null. Usage: maxrss PROGRAM [ARG...]
 *
 * Why not measure from the benchmark itself: exec keeps the peak of the memory image it replaces,
 * and a forked (or vforked) child starts with its parent's, so a child of a 20 MB harness never
 * reports less than 20 MB. This parent is a few pages of no-libc code.
 * Built with `gcc -O2 -static -nostdlib -fno-stack-protector`.
 */
typedef unsigned long u64;

static long sys6(long n, long a, long b, long c, long d, long e, long f) {
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

enum { SYS_WRITE = 1, SYS_OPEN = 2, SYS_DUP2 = 33, SYS_FORK = 57, SYS_EXECVE = 59, SYS_WAIT4 = 61,
       SYS_EXIT_GROUP = 231 };

struct rusage { long utime[2], stime[2]; long maxrss; long rest[13]; };

static void die(int code) { sys6(SYS_EXIT_GROUP, code, 0, 0, 0, 0, 0); }

__attribute__((used, noreturn)) void maxrss_main(long *sp) {
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    if (argc < 2) die(2);
    long pid = sys6(SYS_FORK, 0, 0, 0, 0, 0, 0);
    if (pid < 0) die(3);
    if (pid == 0) {
        int null = (int)sys6(SYS_OPEN, (long)"/dev/null", 2 /* O_RDWR */, 0, 0, 0, 0);
        if (null < 0) die(4);
        sys6(SYS_DUP2, null, 1, 0, 0, 0, 0);
        sys6(SYS_DUP2, null, 2, 0, 0, 0, 0);
        sys6(SYS_EXECVE, (long)argv[1], (long)(argv + 1), (long)envp, 0, 0, 0);
        die(127);
    }
    int status = 0;
    struct rusage ru;
    if (sys6(SYS_WAIT4, pid, (long)&status, 0, (long)&ru, 0, 0) != pid) die(5);
    char buf[24];
    int i = sizeof buf;
    buf[--i] = '\n';
    u64 v = (u64)ru.maxrss;
    do { buf[--i] = (char)('0' + v % 10); v /= 10; } while (v);
    sys6(SYS_WRITE, 1, (long)(buf + i), sizeof buf - i, 0, 0, 0);
    /* The program's own status, so that a failed run is not mistaken for a measurement. */
    die((status & 0x7f) ? 128 + (status & 0x7f) : (status >> 8) & 0xff);
    __builtin_unreachable();
}

__asm__(".globl _start\n"
        "_start:\n"
        "  xor %ebp, %ebp\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call maxrss_main\n"
        "  ud2\n");
