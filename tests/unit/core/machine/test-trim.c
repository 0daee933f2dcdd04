/* SPDX-License-Identifier: MIT */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <openssl/crypto.h>

#include "app-internal.h"
#include "machine-internal.h"
#include "macro-internal.h"

TestSuite(trim, .timeout = 30);

/* Resident kB of @lib's mappings that are read-only and not executable: its ELF tables, the
 * relocation tables among them. */
static long read_only_rss(const char *lib)
{
    FILE *f = fopen("/proc/self/smaps", "re");
    cr_assert_not_null(f);
    char line[512];
    bool counting = false;
    long total = 0, kb;
    while (fgets(line, sizeof line, f)) {
        char perms[8];
        if (sscanf(line, "%*x-%*x %7s", perms) == 1 && strchr(line, '/'))
            counting = strstr(line, lib) && streq(perms, "r--p");
        else if (counting && sscanf(line, "Rss: %ld kB", &kb) == 1)
            total += kb;
        else if (sscanf(line, "%*x-%*x %7s", perms) == 1)
            counting = false;
    }
    fclose(f);
    return total;
}

/* libcrypto's relocation tables, read before main() and never again (~0.5 MB), leave the
 * resident set; whatever reads them later (a lazily bound call, a dlopen()) finds the file's
 * bytes again. */
Test(trim, relocation_tables_leave_and_come_back_on_use)
{
    long before = read_only_rss("libcrypto.so");
    cr_assert_gt(before, 0, "libcrypto is mapped");
    keel__trim_memory();
    long after = read_only_rss("libcrypto.so");
    cr_assert_lt(after, before - 100, "read-only libcrypto pages: %ld kB before, %ld kB after", before, after);

    /* Never called in this process before: bound now, through this binary's .rela.plt. */
    cr_assert_gt(OpenSSL_version_num(), 0);
    void *z = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);
    if (z) {
        const char *(*version)(void) = (const char *(*) (void) ) dlsym(z, "zlibVersion");
        cr_assert_not_null(version);
        cr_assert_not_null(version());
        dlclose(z);
    }
    keel__trim_memory(); /* again: nothing left to drop, nothing breaks */
    cr_assert_gt(OpenSSL_version_num(), 0);
}
