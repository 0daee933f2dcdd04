/* SPDX-License-Identifier: MIT */
/* libssl.so.3 loaded on demand (decision 19): what a machine with it, without it, or with a
 * library of that name that lacks a function gets. The test's own dlopen() stands in for the
 * dynamic loader's search: it is found before libc's, so libssl.c's call comes here. */
#include <dlfcn.h>
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "helpers.h"
#include "libssl.h"
#include "tls-server.h"

TestSuite(libssl, .timeout = 30);

/* What a dlopen("libssl.so.3") opens instead; NULL: libssl.so.3 itself. Criterion runs each test
 * in a process of its own, so libssl_load()'s once-per-process load happens in each. */
static const char *libssl_instead;

void *dlopen(const char *file, int mode)
{
    if (file && libssl_instead && strcmp(file, "libssl.so.3") == 0)
        file = libssl_instead;
    return test_real_dlopen(file, mode);
}

Test(libssl, is_mapped_only_once_loaded_and_then_resolves_every_function)
{
    char error[256] = "";
    cr_assert_not(test_library_mapped("libssl.so.3"), "nothing of the agent links libssl");
    cr_assert_eq(libssl_load(error, sizeof error), 0, "%s", error);
    cr_assert(test_library_mapped("libssl.so.3"));
#define CHECK_RESOLVED(name) cr_assert_not_null(sym_##name, #name);
    LIBSSL_FUNCTIONS(CHECK_RESOLVED)
#undef CHECK_RESOLVED
    cr_assert_eq(libssl_load(error, sizeof error), 0, "a second load is the first one's result");
}

Test(libssl, a_machine_without_it_gets_the_loaders_reason)
{
    libssl_instead = "libkeel-test-absent-libssl.so.3";
    char error[256] = "";
    cr_assert_eq(libssl_load(error, sizeof error), -ENOENT);
    cr_assert(strncmp(error, "Failed to load libssl.so.3: ", 28) == 0, "%s", error);
    cr_assert(strstr(error, "cannot open shared object file"), "%s", error);
    cr_assert_not(test_library_mapped("libssl.so.3"));

    /* A TLS server then fails to be made, with the same reason. */
    tls_server *t = NULL;
    char why[TLS_SERVER_ERROR_MAX] = "";
    cr_assert_eq(tls_server_new(NULL, "/nonexistent/cert.pem", "/nonexistent/key.pem", NULL, &t, why), -ENOENT);
    cr_assert_null(t);
    cr_assert_str_eq(why, error);
}

Test(libssl, a_library_of_that_name_without_a_function_is_named_by_it)
{
    libssl_instead = "libcrypto.so.3"; /* loaded already, and has none of libssl's functions */
    char error[256] = "";
    cr_assert_eq(libssl_load(error, sizeof error), -ENOENT);
    cr_assert_str_eq(error, "libssl.so.3 has no SSL_CTX_check_private_key");
    cr_assert_eq(libssl_load(error, sizeof error), -ENOENT, "the failure stays");
}
