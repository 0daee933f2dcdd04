/* SPDX-License-Identifier: MIT */
/*
 * Where and when a thread just created first runs while its creator keeps working (3 ms of
 * spinning), each in a new process (a child per run):
 *   create_us       pthread_create() in the creator
 *   first_run_us    from before pthread_create() to the thread's first instruction (median)
 *   same_cpu        runs in which the thread first ran on its creator's CPU
 * On a machine where threads run beside each other, first_run_us is tens of µs and same_cpu
 * small; docs/performance.md (start-up) says what this VM does.
 * Usage: bench-thread-start [RUNS] (default 20).
 */
#include <sched.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

typedef struct sample {
    double create_us, first_run_us;
    int same_cpu;
} sample;

static uint64_t t0, ran_at;
static int ran_on;

static void *first_instruction(void *arg)
{
    ran_at = now_ns();
    ran_on = sched_getcpu();
    return arg;
}

static sample one(void)
{
    pthread_t t;
    int cpu = sched_getcpu();
    t0 = now_ns();
    if (pthread_create(&t, NULL, first_instruction, NULL) != 0)
        return (sample){ -1, -1, 0 };
    uint64_t created = now_ns();
    for (volatile uint64_t spin = 0; now_ns() - created < 3000000; spin++)
        ;
    (void) pthread_join(t, NULL);
    return (sample){ (double) (created - t0) / 1000, (double) (ran_at - t0) / 1000, ran_on == cpu };
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 20, same = 0;
    if (runs < 1 || runs > 1000) {
        fprintf(stderr, "usage: bench-thread-start [RUNS 1..1000]\n");
        return 64;
    }
    double create[1000], first[1000];
    for (int r = 0; r < runs; r++) {
        int fd[2], status;
        sample s;
        if (pipe(fd) < 0)
            return 1;
        pid_t pid = fork();
        if (pid == 0) {
            s = one();
            _exit(s.create_us >= 0 && write(fd[1], &s, sizeof s) == (ssize_t) sizeof s ? 0 : 1);
        }
        close(fd[1]);
        ssize_t n = read(fd[0], &s, sizeof s);
        close(fd[0]);
        if (pid < 0 || waitpid(pid, &status, 0) < 0 || status != 0 || n != (ssize_t) sizeof s) {
            fprintf(stderr, "bench-thread-start: run %d failed\n", r);
            return 1;
        }
        create[r] = s.create_us;
        first[r] = s.first_run_us;
        same += s.same_cpu;
    }
    printf("bench-thread-start: runs=%d create_us=%.0f first_run_us=%.0f same_cpu=%d/%d\n", runs, median(create, (size_t) runs),
           median(first, (size_t) runs), same, runs);
    return 0;
}
