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
 * Readers of their own (nginx, a sidecar, a Kubernetes volume) cannot see which step a rotation is
 * at, so the pair is also published as one file, pair.pem (the key, then the certificate and its
 * chain), replaced by one rename after step 4: whoever reads it sees the previous pair or the new
 * one. A crash before that rename leaves the previous pair there, and loading writes it anew.
 * A first pair, with no key.pem nor cert.pem to keep, skips the next slot (commit_first()).
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>

#include <keel/fileio.h>
#include <keel/util.h>

#include "certificate.h"
#include "openssl-util.h"

#define KEY       "key.pem"
#define CERT      "cert.pem"
#define KEY_NEXT  "key.next.pem"
#define CERT_NEXT "cert.next.pem"
#define BUNDLE    "pair.pem"

void cert_pair_done(cert_pair *p)
{
    EVP_PKEY_free(p->key);
    X509_free(p->leaf);
    if (p->chain)
        sk_X509_pop_free(p->chain, X509_free);
    *p = (cert_pair){};
}

static void cert_pair_donep(cert_pair *p)
{
    cert_pair_done(p);
}

static int path_in(char buf[static PATH_MAX], const char *dir, const char *name)
{
    int n = snprintf(buf, PATH_MAX, "%s/%s", dir, name);
    return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

/* @data staged for @dir/@name (see keel_file_stage()), its temporary path in *@ret_tmp. */
static int stage_file(const char *dir, const char *name, const char *data, size_t size, mode_t mode, char **ret_tmp)
{
    char path[PATH_MAX];
    int r = path_in(path, dir, name);
    return r < 0 ? r : keel_file_stage(path, data, size, mode, ret_tmp);
}

void cert_store_abort(cert_staged *st)
{
    char **tmps[] = { &st->key, &st->cert, &st->bundle };
    for (size_t i = 0; i < ELEMENTSOF(tmps); i++) {
        if (*tmps[i])
            (void) unlink(*tmps[i]);
        *tmps[i] = (free(*tmps[i]), NULL);
    }
}

/* The key's PEM and the certificates' PEM, one after the other, into a buffer to free with
 * cert_pem_free() (it holds the key). */
static int bundle_pem(const char *key, size_t key_size, const char *cert, size_t cert_size, char **ret, size_t *ret_size)
{
    char *b = malloc(key_size + cert_size + 1);
    if (!b)
        return -ENOMEM;
    memcpy(b, key, key_size);
    memcpy(b + key_size, cert, cert_size);
    b[key_size + cert_size] = '\0';
    *ret = b;
    *ret_size = key_size + cert_size;
    return 0;
}

int cert_store_stage(const char *dir, const cert_pair *p, cert_staged *ret)
{
    char *key = NULL, *cert = NULL, *bundle = NULL;
    size_t key_size = 0, cert_size = 0, bundle_size = 0;
    cert_staged st = {};
    int n = snprintf(st.dir, sizeof st.dir, "%s", dir);
    int r = n < 0 || (size_t) n >= sizeof st.dir ? -ENAMETOOLONG : 0;
    if (r >= 0)
        r = cert_key_pem(p->key, &key, &key_size);
    if (r >= 0)
        r = cert_certs_pem(p->leaf, p->chain, &cert, &cert_size);
    if (r >= 0)
        r = stage_file(dir, KEY_NEXT, key, key_size, 0600, &st.key);
    if (r >= 0)
        r = stage_file(dir, CERT_NEXT, cert, cert_size, 0644, &st.cert);
    if (r >= 0)
        r = bundle_pem(key, key_size, cert, cert_size, &bundle, &bundle_size);
    if (r >= 0)
        r = stage_file(dir, BUNDLE, bundle, bundle_size, 0600, &st.bundle);
    cert_pem_free(key, key_size);
    cert_pem_free(cert, cert_size);
    cert_pem_free(bundle, bundle_size);
    if (r < 0) {
        cert_store_abort(&st);
        return r;
    }
    *ret = st;
    return 0;
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
        return cert_fail(e, r, "The path of '%s/%s' is too long", dir, key_name);
    if ((r = cert_read_key(key, &p.key, e)) < 0 || (r = cert_read_certs(cert, &p.leaf, &p.chain, e)) < 0)
        return r;
    if (X509_check_private_key(p.leaf, p.key) != 1) {
        ERR_clear_error();
        return cert_fail(e, -EKEYREJECTED, "key[%s], cert[%s]: the certificate does not belong to the key", key, cert);
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
    return r < 0 ? r : keel_file_rename_durable(a, b);
}

static void unlink_in(const char *dir, const char *name)
{
    char p[PATH_MAX];
    if (path_in(p, dir, name) >= 0)
        (void) unlink(p); /* a leftover: harmless if it stays */
}

/* Whether a slot that failed to load never received a complete pair (a file missing, cut short or
 * of another key), so that dropping it loses nothing. Other failures (permissions, I/O, memory)
 * say nothing about the files: they are reported and the slot stays. */
static bool slot_incomplete(int r)
{
    return r == -ENOENT || r == -EBADMSG || r == -EKEYREJECTED;
}

/* Finishes a rotation that a crash or a failed write interrupted. Returns 1 when the next slot held
 * the pair; @e says why when the next slot could not be read. */
static int recover(const char *dir, cert_error *e)
{
    _cleanup_(cert_pair_donep) cert_pair p = {};
    char cert_next[PATH_MAX];
    /* Without a next certificate there is nothing to finish (the usual case: no parsing then). */
    if (path_in(cert_next, dir, CERT_NEXT) >= 0 && access(cert_next, F_OK) < 0 && errno == ENOENT) {
        unlink_in(dir, KEY_NEXT);
        return 0;
    }
    int r = read_pair(dir, KEY_NEXT, CERT_NEXT, &p, e);
    if (r >= 0) {
        r = rename_in(dir, KEY_NEXT, KEY);
        if (r >= 0)
            r = rename_in(dir, CERT_NEXT, CERT);
        return r < 0 ? r : 1;
    }
    cert_pair_done(&p);
    if (slot_incomplete(r) && (r = read_pair(dir, KEY, CERT_NEXT, &p, e)) >= 0)
        return rename_in(dir, CERT_NEXT, CERT);
    if (!slot_incomplete(r))
        return r;
    unlink_in(dir, KEY_NEXT);
    unlink_in(dir, CERT_NEXT);
    return 0;
}

/* Renames the staged @*tmp to @to (not durable yet), forgetting the temporary name. */
static int rename_staged(char **tmp, const char *to)
{
    if (rename(*tmp, to) < 0)
        return -errno;
    *tmp = (free(*tmp), NULL);
    return 0;
}

/* Neither file of the pair exists: a first write, which no crash can tear (below). */
static bool no_pair(const char *key, const char *cert)
{
    return access(key, F_OK) < 0 && errno == ENOENT && access(cert, F_OK) < 0 && errno == ENOENT;
}

/* A first pair goes straight to key.pem, cert.pem and pair.pem, made durable by one directory
 * fsync: a crash before it leaves both files (a pair) or one without the other, which loads as no
 * pair at all (-ENOENT) and is written again; pair.pem alone is rewritten by the next load. */
static int commit_first(cert_staged *st, const char *key, const char *cert, const char *bundle)
{
    int r = rename_staged(&st->key, key);
    if (r >= 0)
        r = rename_staged(&st->cert, cert);
    if (r >= 0)
        r = rename_staged(&st->bundle, bundle);
    return r < 0 ? r : keel_dir_fsync(st->dir);
}

/* Steps 1 and 2 durable together before 3 (a crash between them leaves one of the next files,
 * which recover() drops: the key alone has no certificate, the certificate alone does not match
 * key.pem), then 3, 4 and 5, each durable before the next. */
static int commit_rotation(cert_staged *st, const char *key, const char *cert, const char *bundle)
{
    char key_next[PATH_MAX], cert_next[PATH_MAX];
    int r = path_in(key_next, st->dir, KEY_NEXT);
    if (r >= 0)
        r = path_in(cert_next, st->dir, CERT_NEXT);
    if (r >= 0)
        r = rename_staged(&st->key, key_next);
    if (r >= 0)
        r = rename_staged(&st->cert, cert_next);
    if (r >= 0)
        r = keel_dir_fsync(st->dir);
    if (r >= 0)
        r = keel_file_rename_durable(key_next, key);
    if (r >= 0)
        r = keel_file_rename_durable(cert_next, cert);
    if (r >= 0)
        r = keel_file_rename_durable(st->bundle, bundle);
    if (r >= 0)
        st->bundle = (free(st->bundle), NULL);
    return r;
}

int cert_store_commit(cert_staged *st)
{
    char key[PATH_MAX], cert[PATH_MAX], bundle[PATH_MAX];
    int r = path_in(key, st->dir, KEY);
    if (r >= 0)
        r = path_in(cert, st->dir, CERT);
    if (r >= 0)
        r = path_in(bundle, st->dir, BUNDLE);
    if (r < 0 || !st->key || !st->cert || !st->bundle) {
        cert_store_abort(st);
        return r < 0 ? r : -EINVAL;
    }
    /* A rotation a failed write left halfway is finished first, and a certificate left in the
     * next slot without its key is dropped: it must not meet this key. */
    r = recover(st->dir, NULL);
    if (r >= 0)
        r = no_pair(key, cert) ? commit_first(st, key, cert, bundle) : commit_rotation(st, key, cert, bundle);
    if (r < 0)
        cert_store_abort(st);
    return r < 0 ? r : 0;
}

/* A file of @dir read whole into @t (wiped when freed: it may hold a key). */
static int read_in(const char *dir, const char *name, pem_text *t)
{
    char path[PATH_MAX];
    int r = path_in(path, dir, name);
    return r < 0 ? r : keel_file_read(path, CERT_FILE_MAX, &t->data, &t->size, NULL);
}

/* Whether pair.pem is key.pem then cert.pem byte for byte, as step 5 leaves it: the files are read
 * again rather than the pair encoded, because encoding a key is the only use of OpenSSL's encoders
 * in a start that reuses its pair, and their first use costs ~0.7 ms and ~40 kB that stay. */
static bool bundle_is_files(const char *dir)
{
    _cleanup_(pem_text_done) pem_text key = {}, cert = {}, bundle = {};
    if (read_in(dir, KEY, &key) < 0 || read_in(dir, CERT, &cert) < 0 || read_in(dir, BUNDLE, &bundle) < 0)
        return false;
    return bundle.size == key.size + cert.size && memcmp(bundle.data, key.data, key.size) == 0 &&
           memcmp(bundle.data + key.size, cert.data, cert.size) == 0;
}

/* pair.pem as the pair @p of key.pem and cert.pem would write it, unless it is already: after a
 * crash before step 5 it still holds the previous pair (or is missing, in a directory written
 * before it existed). */
static int sync_bundle(const char *dir, const cert_pair *p)
{
    if (bundle_is_files(dir))
        return 0;
    char *key = NULL, *cert = NULL, *want = NULL, *have = NULL, path[PATH_MAX];
    size_t key_size = 0, cert_size = 0, want_size = 0, have_size = 0;
    int r = path_in(path, dir, BUNDLE);
    if (r >= 0)
        r = cert_key_pem(p->key, &key, &key_size);
    if (r >= 0)
        r = cert_certs_pem(p->leaf, p->chain, &cert, &cert_size);
    if (r >= 0)
        r = bundle_pem(key, key_size, cert, cert_size, &want, &want_size);
    if (r >= 0 && (keel_file_read(path, want_size + 1, &have, &have_size, NULL) < 0 || have_size != want_size ||
                   memcmp(have, want, want_size) != 0))
        r = keel_file_write_atomic(path, want, want_size, 0600);
    cert_pem_free(key, key_size);
    cert_pem_free(cert, cert_size);
    cert_pem_free(want, want_size);
    cert_pem_free(have, have_size);
    return r;
}

int cert_store_write(const char *dir, const cert_pair *p)
{
    cert_staged st;
    int r = cert_store_stage(dir, p, &st);
    return r < 0 ? r : cert_store_commit(&st);
}

int cert_store_load(const char *dir, cert_pair *ret, cert_error *e)
{
    cert_error why = {};
    int r = keel_dir_remove_temporaries(dir);
    if (r == -ENOENT)
        return cert_fail(e, r, "'%s' does not exist", dir);
    if (r < 0)
        return cert_fail(e, r, "Cannot read the directory '%s': %s", dir, strerror(-r));
    r = recover(dir, &why);
    if (r < 0)
        return cert_fail(e, r, "Cannot finish the rotation interrupted in '%s': %s", dir, why.text[0] ? why.text : strerror(-r));
    _cleanup_(cert_pair_donep) cert_pair p = {};
    if ((r = read_pair(dir, KEY, CERT, &p, e)) < 0)
        return r;
    if ((r = sync_bundle(dir, &p)) < 0)
        return cert_fail(e, r, "Cannot write '%s/" BUNDLE "': %s", dir, strerror(-r));
    *ret = p;
    p = (cert_pair){};
    return 0;
}

/* Nothing is renamed or removed: @dir belongs to another process. Between steps 3 and 4 of its
 * rotation the new key is in key.pem and its certificate still in cert.next.pem; a whole rotation
 * between our reads of the two files shows as a mismatch, and the pair is read again. */
int cert_store_peek(const char *dir, cert_pair *ret, cert_error *e)
{
    int r = -EKEYREJECTED;
    for (int attempt = 0; attempt < 3 && r == -EKEYREJECTED; attempt++) {
        r = read_pair(dir, KEY, CERT, ret, e);
        if (r == -EKEYREJECTED && read_pair(dir, KEY, CERT_NEXT, ret, NULL) >= 0)
            return 0;
    }
    return r;
}
