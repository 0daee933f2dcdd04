/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Small helpers shared by the unit tests. */

/* Creates a private temporary directory (under $TMPDIR or /tmp) and returns its path (static). */
const char *test_tmpdir(void);
/* Writes @content to @dir/@name and returns the full path (malloc'd). */
char *test_write_file(const char *dir, const char *name, const char *content);
/* Number of threads of this process, from /proc/self/task. */
size_t test_thread_count(void);
/* Number of threads of this process whose name (/proc/self/task/N/comm) is @name. */
size_t test_threads_named(const char *name);
/* Decodes base64url (RFC 4648 §5, no padding) of @len characters into @out, NUL-terminated (so
 * @out needs the decoded size plus one byte); returns the decoded size. Aborts on bad input. */
size_t test_unbase64url(const char *in, size_t len, unsigned char *out);
/* Whether the library @soname is mapped in this process now (asked of the real loader). */
bool test_library_mapped(const char *soname);
/* Whether either build of libcurl (GnuTLS or OpenSSL) is mapped in this process now. */
bool test_curl_mapped(void);
/* The dynamic loader's dlopen(), past the one a test defines to stand in for a machine without
 * some library (the test's own is found first, so the code under test calls it). */
void *test_real_dlopen(const char *file, int mode);
/* Sleeps @ms milliseconds, the whole of them across signals. */
void test_sleep_ms(long ms);
