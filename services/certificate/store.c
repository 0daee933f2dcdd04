/* SPDX-License-Identifier: MIT */
/*
 * A key and its certificate in a directory, written so that a crash at any moment leaves a
 * matching pair (docs/decisions/0012-certificate-slots.md). Each file is replaced atomically; the
 * pair as a whole goes through the next slot:
 *   1. key.next.pem   2. cert.next.pem   3. key.next.pem -> key.pem   4. cert.next.pem -> cert.pem
 * Loading finds where a crash stopped and finishes or forgets the rotation:
 *   key.next + cert.next match         -> crashed after 2: finish 3 and 4
 *   key + cert.next match              -> crashed after 3: finish 4
 *   otherwise                          -> crashed before 2 ended: drop the next slot, keep key + cert
 */
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

#include <openssl/err.h>

#include "certificate-internal.h"
#include "cleanup.h"
#include "fileio.h"
#include "macro.h"

#define KEY       "key.pem"
#define CERT      "cert.pem"
#define KEY_NEXT  "key.next.pem"
#define CERT_NEXT "cert.next.pem"

void keel__cert_pair_done(cert_pair *p)
{
    EVP_PKEY_free(p->key);
    X509_free(p->leaf);
    if (p->chain)
        sk_X509_pop_free(p->chain, X509_free);
    *p = (cert_pair){};
}

static void cert_pair_donep(cert_pair *p)
{
    keel__cert_pair_done(p);
}

static int path_in(char buf[static PATH_MAX], const char *dir, const char *name)
{
    int n = snprintf(buf, PATH_MAX, "%s/%s", dir, name);
    return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

int keel__cert_store_write(const char *dir, const cert_pair *p)
{
    char key[PATH_MAX], cert[PATH_MAX], key_next[PATH_MAX], cert_next[PATH_MAX];
    int r = path_in(key, dir, KEY);
    if (r >= 0)
        r = path_in(cert, dir, CERT);
    if (r >= 0)
        r = path_in(key_next, dir, KEY_NEXT);
    if (r >= 0)
        r = path_in(cert_next, dir, CERT_NEXT);
    if (r < 0)
        return r;

    /* A certificate left in the next slot by a failed write must not meet this key. */
    if (unlink(cert_next) < 0 && errno != ENOENT)
        return -errno;
    if ((r = keel__cert_write_key(key_next, p->key)) < 0 || (r = keel__cert_write_certs(cert_next, p->leaf, p->chain)) < 0)
        return r;
    if ((r = keel__rename_durable(key_next, key)) < 0)
        return r;
    return keel__rename_durable(cert_next, cert);
}

/* Reads the pair @key_name + @cert_name of @dir and checks that they match. */
static int read_pair(const char *dir, const char *key_name, const char *cert_name, cert_pair *ret, cert_error *e)
{
    char key[PATH_MAX], cert[PATH_MAX];
    _cleanup_(cert_pair_donep) cert_pair p = {};
    int r = path_in(key, dir, key_name);
    if (r >= 0)
        r = path_in(cert, dir, cert_name);
    if (r < 0)
        return keel__cert_fail(e, r, "The path of '%s/%s' is too long", dir, key_name);
    if ((r = keel__cert_read_key(key, &p.key, e)) < 0 || (r = keel__cert_read_certs(cert, &p.leaf, &p.chain, e)) < 0)
        return r;
    if (X509_check_private_key(p.leaf, p.key) != 1) {
        ERR_clear_error();
        return keel__cert_fail(e, -EKEYREJECTED, "key[%s], cert[%s]: the certificate does not belong to the key", key, cert);
    }
    *ret = p;
    p = (cert_pair){};
    return 0;
}

static int rename_in(const char *dir, const char *from, const char *to)
{
    char a[PATH_MAX], b[PATH_MAX];
    int r = path_in(a, dir, from);
    if (r >= 0)
        r = path_in(b, dir, to);
    return r < 0 ? r : keel__rename_durable(a, b);
}

static void unlink_in(const char *dir, const char *name)
{
    char p[PATH_MAX];
    if (path_in(p, dir, name) >= 0)
        (void) unlink(p); /* a leftover: harmless if it stays */
}

/* Finishes a rotation that a crash interrupted. Returns 1 when the next slot held the pair. */
static int recover(const char *dir)
{
    _cleanup_(cert_pair_donep) cert_pair p = {};
    char cert_next[PATH_MAX];
    /* Without a next certificate there is nothing to finish (the usual case: no parsing then). */
    if (path_in(cert_next, dir, CERT_NEXT) >= 0 && access(cert_next, F_OK) < 0 && errno == ENOENT) {
        unlink_in(dir, KEY_NEXT);
        return 0;
    }
    if (read_pair(dir, KEY_NEXT, CERT_NEXT, &p, NULL) >= 0) {
        int r = rename_in(dir, KEY_NEXT, KEY);
        return r < 0 ? r : rename_in(dir, CERT_NEXT, CERT);
    }
    keel__cert_pair_done(&p);
    if (read_pair(dir, KEY, CERT_NEXT, &p, NULL) >= 0)
        return rename_in(dir, CERT_NEXT, CERT);
    unlink_in(dir, KEY_NEXT);
    unlink_in(dir, CERT_NEXT);
    return 0;
}

int keel__cert_store_load(const char *dir, cert_pair *ret, cert_error *e)
{
    int r = keel__remove_stale_temporaries(dir);
    if (r == -ENOENT)
        return keel__cert_fail(e, r, "'%s' does not exist", dir);
    if (r < 0)
        return keel__cert_fail(e, r, "Cannot read the directory '%s': %s", dir, strerror(-r));
    r = recover(dir);
    if (r < 0)
        return keel__cert_fail(e, r, "Cannot finish the rotation interrupted in '%s': %s", dir, strerror(-r));
    return read_pair(dir, KEY, CERT, ret, e);
}
