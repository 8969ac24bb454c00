/*
 * The floor of the memfd launch design: copy a program into a memfd and exec it, and nothing
 * else (no bundle to parse, no CPU detection, no hash, no libc). The benchmark times
 * `floor FILE ARGS...` beside the launcher to show how much of the launcher's cost is the copy
 * itself. Usage: floor PROGRAM [ARG...]; the program sees ARG... as argv and this environment.
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

enum { SYS_WRITE = 1, SYS_OPEN = 2, SYS_FSTAT = 5, SYS_MMAP = 9, SYS_EXIT_GROUP = 231,
       SYS_MEMFD_CREATE = 319, SYS_EXECVEAT = 322 };

struct kstat { u64 dev, ino, nlink; unsigned mode, uid, gid, pad; u64 rdev; long size; long rest[10]; };

static void die(int code) { sys6(SYS_EXIT_GROUP, code, 0, 0, 0, 0, 0); }

__attribute__((used, noreturn)) void floor_main(long *sp) {
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    if (argc < 2) die(2);
    int fd = (int)sys6(SYS_OPEN, (long)argv[1], 02000000 /* O_CLOEXEC */, 0, 0, 0, 0);
    struct kstat st;
    if (fd < 0 || sys6(SYS_FSTAT, fd, (long)&st, 0, 0, 0, 0) < 0) die(3);
    /* MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC, as the launcher asks. */
    int memfd = (int)sys6(SYS_MEMFD_CREATE, (long)"floor", 1 | 2 | 0x10, 0, 0, 0, 0);
    if (memfd < 0) die(4);
    /* The same copy the launcher makes: write() from a read-only private mapping of the file. */
    char *p = (char *)sys6(SYS_MMAP, 0, st.size, 1 /* PROT_READ */, 2 /* MAP_PRIVATE */, fd, 0);
    if ((unsigned long)p > -4096UL) die(5);
    for (long off = 0; off < st.size;) {
        long n = sys6(SYS_WRITE, memfd, (long)(p + off), st.size - off, 0, 0, 0);
        if (n <= 0) die(6);
        off += n;
    }
    sys6(SYS_EXECVEAT, memfd, (long)"", (long)(argv + 1), (long)envp, 0x1000 /* AT_EMPTY_PATH */, 0);
    die(7);
    __builtin_unreachable();
}

__asm__(".globl _start\n"
        "_start:\n"
        "  xor %ebp, %ebp\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call floor_main\n"
        "  ud2\n");
