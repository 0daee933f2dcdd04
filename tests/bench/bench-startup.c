/* SPDX-License-Identifier: MIT */
/* Exec to READY=1: spawns `keel serve` (no services) N times with a fake NOTIFY_SOCKET, times
 * posix_spawn() to the READY=1 datagram, stops it with SIGTERM and times that to exit too.
 * Usage: bench-startup PATH-TO-KEEL [RUNS [LABEL [KEEL-ARG...]]], the extra arguments going before
 * `serve`. With BENCH_FRESH_STATE=1 in the environment every run gets an empty state_dir, so the
 * certificate service creates its CA and issues its key and certificate each time (a first run).
 * Targets: median exec to READY=1 under 5 ms with no services, 10 ms for a first run of all four. */
#include <signal.h>
#include <stdbool.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define streq(a, b) (strcmp((a), (b)) == 0)

#include <keel/common.h>

extern char **environ;

static int cmp(const void *a, const void *b)
{
    keel_usec_t x = *(const keel_usec_t *) a, y = *(const keel_usec_t *) b;
    return x < y ? -1 : x > y;
}

static int wait_for(int fd, const char *what)
{
    char buf[1024];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
        if (n < 0)
            return -1;
        buf[n] = 0;
        if (strstr(buf, what))
            return 0;
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH-TO-KEEL [RUNS [LABEL [KEEL-ARG...]]]\n", argv[0]);
        return 64;
    }
    int runs = argc > 2 ? atoi(argv[2]) : 50;
    char dir[] = "/tmp/keel-bench-XXXXXX", path[128], empty[128];
    if (!mkdtemp(dir) || runs < 1 || runs > 10000)
        return 1;
    snprintf(path, sizeof path, "%s/notify", dir);
    snprintf(empty, sizeof empty, "%s/keel.yaml", dir);
    fclose(fopen(empty, "w"));
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct timeval tv = { .tv_sec = 10 };
    if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
        return 1;
    setenv("NOTIFY_SOCKET", path, 1);
    setenv("KEEL_DEFAULTS_FILE", "/nonexistent", 1);
    setenv("KEEL_HEALTHCHECK_ADDRESS", "127.0.0.1:0", 1);
    setenv("KEEL_METRICS_ADDRESS", "127.0.0.1:0", 1);
    setenv("KEEL_TOKEN_ADDRESS", "127.0.0.1:0", 1);
    unsetenv("KEEL_FAULT");

    keel_usec_t *ready = calloc((size_t) runs, sizeof *ready), *stop = calloc((size_t) runs, sizeof *stop);
    const char *label = argc > 3 ? argv[3] : "default";
    char *args[32] = { argv[1], (char *) "--config", empty, (char *) "--log-level", (char *) "warning" };
    int n = 5;
    for (int i = 4; i < argc && n < 30; i++)
        args[n++] = argv[i];
    args[n++] = (char *) "serve";
    bool fresh = getenv("BENCH_FRESH_STATE") && streq(getenv("BENCH_FRESH_STATE"), "1");
    /* Never the machine's /var/lib/keel: one private state_dir for all runs, unless each gets its own
     * (a --set state_dir=… given after the label still wins). */
    char shared[160];
    snprintf(shared, sizeof shared, "%s/state", dir);
    setenv("KEEL_STATE_DIR", shared, 1);
    for (int i = 0; i < runs; i++) {
        pid_t pid;
        int status;
        char state[160], rm[200];
        snprintf(state, sizeof state, "%s/state-%d", dir, i);
        if (fresh)
            setenv("KEEL_STATE_DIR", state, 1);
        keel_usec_t t0 = keel_now();
        if (posix_spawn(&pid, argv[1], NULL, NULL, args, environ) != 0 || wait_for(fd, "READY=1") < 0)
            return 1;
        ready[i] = keel_now() - t0;
        t0 = keel_now();
        kill(pid, SIGTERM);
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return 1;
        stop[i] = keel_now() - t0;
        snprintf(rm, sizeof rm, "rm -rf '%s'", state);
        if (fresh && system(rm) != 0)
            return 1;
        while (recv(fd, (char[1024]){ 0 }, 1024, MSG_DONTWAIT) > 0)
            ;
    }
    qsort(ready, (size_t) runs, sizeof *ready, cmp);
    qsort(stop, (size_t) runs, sizeof *stop, cmp);
    printf("bench-startup: %s runs=%d exec_to_ready_median_ms=%.3f p90_ms=%.3f sigterm_to_exit_median_ms=%.3f p90_ms=%.3f\n", label,
           runs, (double) ready[runs / 2] / 1000, (double) ready[runs * 9 / 10] / 1000, (double) stop[runs / 2] / 1000,
           (double) stop[runs * 9 / 10] / 1000);
    char rm[200];
    snprintf(rm, sizeof rm, "rm -rf '%s'", shared);
    if (system(rm) != 0)
        return 1;
    unlink(path);
    unlink(empty);
    rmdir(dir);
    free(ready);
    free(stop);
    return 0;
}
