/* SPDX-License-Identifier: MIT */
/* bench-exec N PROGRAM [ARGS...]: the median and p90 of N fork+exec+wait of PROGRAM, in
 * microseconds: what a program's dynamic libraries cost before its main() (decision 15). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int compare(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int n = argc > 2 ? atoi(argv[1]) : 0;
    double *t = n > 0 ? calloc((size_t) n, sizeof *t) : NULL;
    if (!t) {
        fprintf(stderr, "usage: bench-exec N PROGRAM [ARGS...]\n");
        return 64;
    }
    for (int i = 0; i < n; i++) {
        struct timespec a, b;
        int status;
        (void) clock_gettime(CLOCK_MONOTONIC, &a);
        pid_t pid = fork();
        if (pid == 0) {
            (void) freopen("/dev/null", "w", stdout);
            execv(argv[2], argv + 2);
            _exit(127);
        }
        (void) waitpid(pid, &status, 0);
        (void) clock_gettime(CLOCK_MONOTONIC, &b);
        t[i] = (double) (b.tv_sec - a.tv_sec) * 1e6 + (double) (b.tv_nsec - a.tv_nsec) / 1e3;
    }
    qsort(t, (size_t) n, sizeof *t, compare);
    printf("bench-exec: %s runs=%d median_us=%.0f p90_us=%.0f\n", argv[2], n, t[n / 2], t[n * 9 / 10]);
    free(t);
    return 0;
}
