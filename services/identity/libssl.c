/* SPDX-License-Identifier: MIT */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "libssl.h"

#define LIBSSL_DEFINE(name) __typeof__(name) *sym_##name;
LIBSSL_FUNCTIONS(LIBSSL_DEFINE)
#undef LIBSSL_DEFINE

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char load_error[256];

static void load(void)
{
    void *dl = dlopen("libssl.so.3", RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        (void) snprintf(load_error, sizeof load_error, "Failed to load libssl.so.3: %s", dlerror());
        return;
    }
    void *sym;
    /* Object pointer to function pointer through memcpy, as POSIX's dlsym() allows. */
#define LIBSSL_RESOLVE(name)                                                                                                       \
    if (!(sym = dlsym(dl, #name))) {                                                                                               \
        (void) snprintf(load_error, sizeof load_error, "libssl.so.3 has no %s", #name);                                            \
        return; /* kept loaded: some sym_ may be set, and nothing calls one when the load failed */                                \
    }                                                                                                                              \
    memcpy(&sym_##name, &sym, sizeof sym);
    LIBSSL_FUNCTIONS(LIBSSL_RESOLVE)
#undef LIBSSL_RESOLVE
}

int libssl_load(char *error, size_t size)
{
    (void) pthread_once(&once, load);
    if (!load_error[0])
        return 0;
    (void) snprintf(error, size, "%s", load_error);
    return -ENOENT;
}
