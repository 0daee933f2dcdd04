/* SPDX-License-Identifier: MIT */
#include <dlfcn.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "helpers.h"

const char *test_tmpdir(void)
{
    static char path[256];
    if (!path[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/keel-test-XXXXXX", t ? t : "/tmp");
        if (!mkdtemp(path))
            abort();
    }
    return path;
}

char *test_write_file(const char *dir, const char *name, const char *content)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", dir, name) < 0)
        abort();
    FILE *f = fopen(p, "we");
    if (!f)
        abort();
    fputs(content, f);
    fclose(f);
    return p;
}

size_t test_thread_count(void)
{
    size_t n = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d)
        abort();
    for (struct dirent *de; (de = readdir(d));)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

size_t test_threads_named(const char *name)
{
    size_t n = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d)
        abort();
    for (struct dirent *de; (de = readdir(d));) {
        char path[300], comm[64] = "";
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", de->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue; /* the thread ended meanwhile */
        if (fgets(comm, sizeof comm, f))
            comm[strcspn(comm, "\n")] = 0;
        fclose(f);
        n += strcmp(comm, name) == 0;
    }
    closedir(d);
    return n;
}

size_t test_unbase64url(const char *in, size_t len, unsigned char *out)
{
    char buf[4096] = "";
    size_t n = 0;
    if (len >= sizeof buf - 4)
        abort();
    for (size_t i = 0; i < len; i++)
        buf[n++] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
    while (n % 4)
        buf[n++] = '=';
    int r = EVP_DecodeBlock(out, (const unsigned char *) buf, (int) n);
    if (r < 0)
        abort();
    size_t pad = 0;
    for (size_t i = n; i > 0 && buf[i - 1] == '='; i--)
        pad++;
    out[(size_t) r - pad] = '\0';
    return (size_t) r - pad;
}

void *test_real_dlopen(const char *file, int mode)
{
    static void *(*next)(const char *, int);
    if (!next) {
        void *sym = dlsym(RTLD_NEXT, "dlopen");
        if (!sym)
            abort();
        memcpy(&next, &sym, sizeof sym); /* object to function pointer, as POSIX's dlsym() allows */
    }
    return next(file, mode);
}

bool test_library_mapped(const char *soname)
{
    void *dl = test_real_dlopen(soname, RTLD_LAZY | RTLD_NOLOAD);
    if (dl)
        (void) dlclose(dl);
    return dl != NULL;
}

bool test_curl_mapped(void)
{
    return test_library_mapped("libcurl-gnutls.so.4") || test_library_mapped("libcurl.so.4");
}

void test_sleep_ms(long ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0)
        ;
}
