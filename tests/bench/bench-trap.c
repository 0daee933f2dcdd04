/* SPDX-License-Identifier: MIT */
/*
 * What the machine charges for entering its kernel, the unit every start-up figure is made of
 * (docs/performance.md): medians over ROUNDS of
 *   syscall_ns         one getppid()
 *   anon_fault_ns      a fresh anonymous page, touched (one page fault)
 *   anon_populate_ns   the same page made by one MADV_POPULATE_WRITE over 256 pages
 *   cow_fault_ns       a private page of a mapped file written (a copy-on-write fault, what the
 *                      loader's relocations make)
 *   file_fault_ns      a page of a mapped file read, the kernel mapping its neighbours too
 *   clone_us           pthread_create() and the thread's first instruction, a new process each
 * On hardware a fault costs ~1 µs and a thread ~20 µs; where entering the kernel goes through a
 * hypervisor, the fault itself is the cost and populating in bulk is a tenth of it.
 * Usage: bench-trap [ROUNDS] (default 5).
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

#define PAGES 256
#define PAGE  4096

/* A file of at least PAGES pages that every Debian machine has. */
static const char *const big_files[] = { "/usr/lib/x86_64-linux-gnu/libcrypto.so.3", "/usr/lib/x86_64-linux-gnu/libc.so.6",
                                         "/bin/bash" };

static double per_page(uint64_t t0)
{
    return (double) (now_ns() - t0) / PAGES;
}

static char *map(int prot, int flags, int fd)
{
    char *p = mmap(NULL, PAGES * PAGE, prot, flags, fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

static double touch(char *p, int write)
{
    volatile char sink = 0;
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < PAGES; i++) {
        if (write)
            p[i * PAGE] = 1;
        else
            sink += p[i * PAGE];
    }
    (void) sink;
    return per_page(t0);
}

static int open_big(void)
{
    for (size_t i = 0; i < sizeof big_files / sizeof *big_files; i++) {
        int fd = open(big_files[i], O_RDONLY | O_CLOEXEC);
        if (fd >= 0 && lseek(fd, 0, SEEK_END) >= PAGES * PAGE)
            return fd;
        if (fd >= 0)
            close(fd);
    }
    return -1;
}

static void *first_instruction(void *arg)
{
    *(uint64_t *) arg = now_ns();
    return NULL;
}

/* In a child, so that the thread is its process's first, as a service's are at start-up. */
static double clone_us(void)
{
    int fd[2], status;
    double us = -1;
    if (pipe(fd) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        pthread_t t;
        uint64_t ran = 0, t0 = now_ns();
        double d =
            pthread_create(&t, NULL, first_instruction, &ran) == 0 && pthread_join(t, NULL) == 0 ? (double) (ran - t0) / 1000 : -1;
        _exit(write(fd[1], &d, sizeof d) == sizeof d ? 0 : 1);
    }
    close(fd[1]);
    if (pid < 0 || read(fd[0], &us, sizeof us) != sizeof us)
        us = -1;
    close(fd[0]);
    if (pid > 0)
        (void) waitpid(pid, &status, 0);
    return us;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 5, fd = open_big();
    if (rounds < 1 || rounds > 100 || fd < 0) {
        fprintf(stderr, "usage: bench-trap [ROUNDS 1..100] (needs libcrypto.so.3, libc.so.6 or bash of %d pages)\n", PAGES);
        return 64;
    }
    double sys[100], anon[100], pop[100], cow[100], file[100], thr[100];
    for (int r = 0; r < rounds; r++) {
        uint64_t t0 = now_ns();
        for (int i = 0; i < 10000; i++)
            (void) syscall(SYS_getppid);
        sys[r] = (double) (now_ns() - t0) / 10000;
        char *a = map(PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1),
             *b = map(PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
        char *c = map(PROT_READ | PROT_WRITE, MAP_PRIVATE, fd), *f = map(PROT_READ, MAP_PRIVATE, fd);
        if (!a || !b || !c || !f)
            return 1;
        anon[r] = touch(a, 1);
        t0 = now_ns();
        if (madvise(b, PAGES * PAGE, MADV_POPULATE_WRITE) < 0)
            return perror("bench-trap: MADV_POPULATE_WRITE"), 1;
        pop[r] = per_page(t0);
        cow[r] = touch(c, 1);
        file[r] = touch(f, 0);
        thr[r] = clone_us();
        munmap(a, PAGES * PAGE), munmap(b, PAGES * PAGE), munmap(c, PAGES * PAGE), munmap(f, PAGES * PAGE);
    }
    size_t n = (size_t) rounds;
    printf("bench-trap: rounds=%d syscall_ns=%.0f anon_fault_ns=%.0f anon_populate_ns=%.0f cow_fault_ns=%.0f file_fault_ns=%.0f "
           "clone_us=%.0f\n",
           rounds, median(sys, n), median(anon, n), median(pop, n), median(cow, n), median(file, n), median(thr, n));
    close(fd);
    return 0;
}
