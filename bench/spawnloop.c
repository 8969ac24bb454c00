/* The launcher's own cost at start-up, measured finely: runs two programs alternately, N times
 * each, with the same arguments, and prints for each the 10th percentile, the 25th and the
 * median of its wall-clock time from spawn to exit, in microseconds.
 *
 * Alternating run by run (rather than in blocks, as hyperfine's rounds do) puts both programs
 * under the same drift of a shared machine; the low percentiles are the runs that nothing else
 * disturbed, which is where a difference of tens of microseconds shows.
 *
 * Usage: spawnloop N PROGRAM_A PROGRAM_B [ARGS...]   (output: "p10 p25 median" per program)
 * The programs' stdout goes to /dev/null; the environment is passed on unchanged. */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: spawnloop N PROGRAM_A PROGRAM_B [ARGS...]\n");
        return 2;
    }
    int n = atoi(argv[1]);
    if (n < 10) {
        fprintf(stderr, "spawnloop: N must be at least 10\n");
        return 2;
    }
    double *times[2] = {calloc(n, sizeof(double)), calloc(n, sizeof(double))};
    if (!times[0] || !times[1])
        return 1;
    posix_spawn_file_actions_t quiet;
    posix_spawn_file_actions_init(&quiet);
    posix_spawn_file_actions_addopen(&quiet, 1, "/dev/null", O_WRONLY, 0);
    for (int i = 0; i < n; i++) {
        for (int p = 0; p < 2; p++) {
            /* argv for the child: its own path, then the shared arguments. */
            char *args[argc];
            args[0] = argv[2 + p];
            for (int a = 4; a < argc; a++)
                args[a - 3] = argv[a];
            args[argc - 3] = NULL;
            double start = now_us();
            pid_t pid;
            if (posix_spawn(&pid, argv[2 + p], &quiet, NULL, args, environ) != 0) {
                perror(argv[2 + p]);
                return 1;
            }
            int status;
            if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "spawnloop: %s did not exit with status 0\n", argv[2 + p]);
                return 1;
            }
            times[p][i] = now_us() - start;
        }
    }
    for (int p = 0; p < 2; p++) {
        qsort(times[p], n, sizeof(double), by_value);
        printf("%.1f %.1f %.1f\n", times[p][n / 10], times[p][n / 4], times[p][n / 2]);
    }
    return 0;
}
