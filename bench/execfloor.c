/*
 * The floor of any launcher that starts a program from a file: one extra exec, and nothing
 * else (no bundle, no CPU detection, no cache lookup, no libc). The benchmark times
 * `execfloor PROGRAM ARGS...` beside the cache launch path, whose warm start is exactly this: the
 * launcher started, then the cached file exec'd by its path. Usage: execfloor PROGRAM [ARG...];
 * the program sees ARG... as argv and this environment.
 * Built with `gcc -O2 -static -nostdlib -fno-stack-protector`.
 */

static long sys3(long n, long a, long b, long c) {
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c)
                     : "rcx", "r11", "memory");
    return ret;
}

enum { SYS_EXECVE = 59, SYS_EXIT_GROUP = 231 };

__attribute__((used, noreturn)) void execfloor_main(long *sp) {
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    if (argc < 2) sys3(SYS_EXIT_GROUP, 2, 0, 0);
    /* By path, as the launcher execs a cache entry: the kernel looks the path up again. */
    sys3(SYS_EXECVE, (long)argv[1], (long)(argv + 1), (long)envp);
    sys3(SYS_EXIT_GROUP, 7, 0, 0);
    __builtin_unreachable();
}

__asm__(".globl _start\n"
        "_start:\n"
        "  xor %ebp, %ebp\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call execfloor_main\n"
        "  ud2\n");
