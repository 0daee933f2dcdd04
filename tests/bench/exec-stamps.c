/* SPDX-License-Identifier: MIT */
/*
 * An LD_PRELOAD library for tests/bench/exec_split.py: it writes to stderr, on CLOCK_MONOTONIC in
 * ms, when the process's first constructor runs (the dynamic loader done with the executable's
 * libraries) and, in keel, when dlopen() of the agent's module begins and ends, keel_app_new()
 * ends and keel_app_run_with() begins. A program that has none of these (the floor) writes the
 * first line alone.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double) t.tv_sec * 1e3 + (double) t.tv_nsec / 1e6;
}

__attribute__((constructor)) static void first_constructor(void)
{
    fprintf(stderr, "STAMP ctor %.3f\n", now_ms());
}

void *keel_app_new(const char *name);
int keel_app_run_with(void *app, int argc, char **argv, const void *options);

/* Each wrapper finds the next definition once: libc's, libkeel's. */
#define NEXT(type, name)                                                                                                           \
    static type real;                                                                                                              \
    if (!real) {                                                                                                                   \
        void *p = dlsym(RTLD_NEXT, #name);                                                                                         \
        memcpy(&real, &p, sizeof p);                                                                                               \
    }

void *dlopen(const char *file, int mode)
{
    typedef void *(*fn)(const char *, int);
    NEXT(fn, dlopen)
    double t0 = now_ms();
    void *dl = real(file, mode);
    if (file && strstr(file, "keel-agent"))
        fprintf(stderr, "STAMP dlopen %.3f %.3f\n", t0, now_ms());
    return dl;
}

void *keel_app_new(const char *name)
{
    typedef void *(*fn)(const char *);
    NEXT(fn, keel_app_new)
    void *app = real(name);
    fprintf(stderr, "STAMP app_new %.3f\n", now_ms());
    return app;
}

int keel_app_run_with(void *app, int argc, char **argv, const void *options)
{
    typedef int (*fn)(void *, int, char **, const void *);
    NEXT(fn, keel_app_run_with)
    fprintf(stderr, "STAMP run_with %.3f\n", now_ms());
    return real(app, argc, argv, options);
}
