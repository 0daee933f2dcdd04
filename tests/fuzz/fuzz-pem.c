/* SPDX-License-Identifier: MIT */
/* Certificates and keys as an operator's files may hold them (certificate.provider file, the
 * backup, a CA file): cert_parse_certs() on the bytes, and cert_read_key() on them as
 * a 0600 file. A refusal names its reason; certificates that parse come back the same after
 * being written out and read again. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "certificate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip(X509 *leaf, STACK_OF(X509) * chain)
{
    char *pem = NULL;
    size_t n = 0;
    X509 *leaf2 = NULL;
    STACK_OF(X509) *chain2 = NULL;
    cert_error e = { 0 };
    if (cert_certs_pem(leaf, chain, &pem, &n) < 0)
        return;
    if (cert_parse_certs(pem, n, "round trip", &leaf2, &chain2, &e) < 0 || X509_cmp(leaf, leaf2) != 0 ||
        sk_X509_num(chain) != sk_X509_num(chain2))
        abort();
    cert_pem_free(pem, n);
    X509_free(leaf2);
    sk_X509_pop_free(chain2, X509_free);
}

static void read_key(const uint8_t *data, size_t size)
{
    static int fd = -1;
    char path[64];
    if (fd < 0 && ((fd = memfd_create("fuzz-key", MFD_CLOEXEC)) < 0 || fchmod(fd, 0600) < 0))
        abort();
    if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t) size)
        abort();
    (void) snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    EVP_PKEY *key = NULL;
    cert_error e = { 0 };
    int r = cert_read_key(path, &key, &e);
    if ((r < 0) != (key == NULL) || (r < 0 && !e.text[0]))
        abort();
    EVP_PKEY_free(key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    X509 *leaf = NULL;
    STACK_OF(X509) *chain = NULL;
    cert_error e = { 0 };
    int r = cert_parse_certs((const char *) data, size, "fuzz input", &leaf, &chain, &e);
    if (r < 0 && (!e.text[0] || leaf))
        abort();
    if (r >= 0)
        round_trip(leaf, chain);
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    read_key(data, size);
    return 0;
}
