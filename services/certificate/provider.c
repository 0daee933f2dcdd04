/* SPDX-License-Identifier: MIT */
/* Where the credential comes from: the local CA (reusing what is on disk while it is valid) or the
 * operator's files; and the backup, written after each issue and read when the provider fails. */
#include <limits.h>
#include <stdio.h>
#include <time.h>

#include <keel/fileio.h>

#include "acme.h"
#include "openssl-util.h"

static const char *const provider_names[] = { "local-ca", "file", "acme" };
static const char *const backup_names[] = { "none", "read", "write", "read+write" };

const char *cert_provider_name(int provider)
{
    return provider >= 0 && provider < _CERT_PROVIDER_MAX ? provider_names[provider] : "?";
}

const char *cert_source_name(const cert_service *s)
{
    return s->chain ? "issuers" : cert_provider_name(s->config.provider);
}

const char *cert_backup_name(int backup)
{
    return backup >= 0 && backup < _CERT_BACKUP_MAX ? backup_names[backup] : "?";
}

static void cert_pair_donep(cert_pair *p)
{
    cert_pair_done(p);
}

static void take_pair(cert_pair *to, cert_pair *from)
{
    *to = *from;
    *from = (cert_pair){};
}

/* ---- the CA ------------------------------------------------------------------------------------ */

static int read_ca(const char *key_path, const char *cert_path, EVP_PKEY **ret_key, X509 **ret_cert, cert_error *e)
{
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
    _cleanup_(X509_freep) X509 *cert = NULL;
    _cleanup_x509_stack_ STACK_OF(X509) *chain = NULL;
    char what[2 * PATH_MAX + 32];
    int r = cert_read_key(key_path, &key, e);
    if (r >= 0)
        r = cert_read_certs(cert_path, &cert, &chain, e);
    if (r < 0)
        return r;
    (void) snprintf(what, sizeof what, "CA key[%s], cert[%s]", key_path, cert_path);
    if ((r = cert_check(key, cert, NULL, NULL, time(NULL), what, e)) < 0)
        return r;
    if (X509_check_ca(cert) == 0)
        return cert_fail(e, -EINVAL, "%s: the certificate is not a CA certificate", what);
    *ret_key = TAKE_PTR(key);
    *ret_cert = TAKE_PTR(cert);
    return 0;
}

/* The files of a local CA just created. On a first start they are written on a task of their own
 * while the first certificate is issued and its pair staged (under temporary names: nothing else
 * is renamed in the state directory then); the pair's rotation runs only once they are written, so
 * names appear on disk in the order they did: the CA's key, its certificate, then the pair
 * (docs/decisions/0012). The task lives inside the start observer that spawns it: it is joined
 * before that observer returns. */
typedef struct ca_files {
    char key_path[PATH_MAX], cert_path[PATH_MAX];
    char *key_pem, *cert_pem; /* owned; the key's cleared when freed */
    size_t key_size, cert_size;
    keel_task_group *writer; /* the task writing them, or NULL: ca_files_finish() writes */
    bool pending;            /* not written yet */
    int result;              /* of the task's write, read after joining it */
} ca_files;

/* The key first: a crash before the certificate is written leaves no CA, which the next start
 * creates again. */
static int ca_files_write(ca_files *f)
{
    int r = keel_file_write_atomic(f->key_path, f->key_pem, f->key_size, 0600);
    return r < 0 ? r : keel_file_write_atomic(f->cert_path, f->cert_pem, f->cert_size, 0644);
}

static void ca_files_task(keel_task *task, void *userdata)
{
    ca_files *f = userdata;
    f->result = ca_files_write(f);
}

/* Starts writing on a task; where none can start (out of memory, a fault injected at
 * certificate.spawn.ca), ca_files_finish() writes. */
static void ca_files_start(cert_service *s, ca_files *f)
{
    f->writer = keel_task_group_new(s->app, "certificate");
    int r = f->writer ? keel_task_group_spawn(f->writer, "certificate.spawn.ca", "ca", ca_files_task, f) : -ENOMEM;
    if (r < 0) {
        CERT_LOG_ERRNO(KEEL_LOG_DEBUG, r, "Writing the local CA without a task of its own: %m");
        f->writer = keel_task_group_free(f->writer);
    }
}

/* Waits for the write (or makes it) and reports it; a CA that could not be written is dropped. */
static int ca_files_finish(cert_service *s, ca_files *f, cert_error *e)
{
    if (!f->pending)
        return 0;
    int r;
    if (f->writer) {
        f->writer = keel_task_group_free(f->writer); /* joins it */
        r = f->result;
    } else
        r = ca_files_write(f);
    f->pending = false;
    if (r < 0) {
        EVP_PKEY_free(s->ca_key);
        X509_free(s->ca_cert);
        s->ca_key = NULL;
        s->ca_cert = NULL;
        return cert_fail(e, r, "Cannot write the local CA to '%s': %s", f->cert_path, strerror(-r));
    }
    CERT_LOG(KEEL_LOG_INFO, "Created the local CA key[%s], cert[%s]", f->key_path, f->cert_path);
    return 0;
}

static void ca_files_done(ca_files *f)
{
    f->writer = keel_task_group_free(f->writer);
    cert_pem_free(f->key_pem, f->key_size);
    cert_pem_free(f->cert_pem, f->cert_size);
    f->key_pem = f->cert_pem = NULL;
}

/* A new CA, in memory: its files are pending in @f until ca_files_finish(). */
static int create_ca(cert_service *s, ca_files *f, cert_error *e)
{
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
    _cleanup_(X509_freep) X509 *cert = NULL;
    int r = cert_generate_key(CERT_KEY_EC, 0, &key);
    if (r >= 0)
        r = cert_create_ca(key, CERT_CA_LIFETIME, &cert);
    if (r < 0)
        return cert_fail(e, r, "Cannot create the local CA: %s", strerror(-r));
    if ((r = cert_key_pem(key, &f->key_pem, &f->key_size)) < 0 || (r = cert_certs_pem(cert, NULL, &f->cert_pem, &f->cert_size)) < 0)
        return cert_fail(e, r, "Cannot write the local CA to '%s': %s", f->cert_path, strerror(-r));
    f->pending = true;
    s->ca_key = TAKE_PTR(key);
    s->ca_cert = TAKE_PTR(cert);
    return 0;
}

/* The CA the operator supplied, or the one in state_dir, created when missing or unusable: then
 * its files are pending in @f (see ca_files_finish()). */
static int ensure_ca(cert_service *s, ca_files *f, cert_error *e)
{
    if (s->ca_key)
        return 0;
    if (*s->config.ca_key_file)
        return read_ca(s->config.ca_key_file, s->config.ca_cert_file, &s->ca_key, &s->ca_cert, e);
    (void) snprintf(f->key_path, sizeof f->key_path, "%s/ca.key.pem", s->state_dir);
    (void) snprintf(f->cert_path, sizeof f->cert_path, "%s/ca.pem", s->state_dir);
    cert_error why = {};
    int r = read_ca(f->key_path, f->cert_path, &s->ca_key, &s->ca_cert, &why);
    if (r >= 0)
        return 0;
    if (r == -EACCES) /* a key others could read is compromised: the operator decides */
        return cert_fail(e, r, "%s", why.text);
    if (r != -ENOENT)
        CERT_LOG(KEEL_LOG_WARNING, "%s; creating a new local CA", why.text);
    return create_ca(s, f, e);
}

/* ensure_ca() with its files written before it returns. */
static int ensure_ca_written(cert_service *s, cert_error *e)
{
    _cleanup_(ca_files_done) ca_files f = {};
    int r = ensure_ca(s, &f, e);
    return r < 0 ? r : ca_files_finish(s, &f, e);
}

/* ---- local-ca ---------------------------------------------------------------------------------- */

/* What a pair of the local CA is served with: nothing when the CA is a root (the reader trusts it
 * already), the CA's own certificate when it is an intermediate, so that a reader who trusts the
 * root can build the path. */
static int ca_chain(X509 *ca, STACK_OF(X509) * *ret)
{
    if (X509_check_issued(ca, ca) == X509_V_OK)
        return 0;
    _cleanup_x509_stack_ STACK_OF(X509) *chain = sk_X509_new_null();
    if (!chain || X509_up_ref(ca) != 1)
        return -ENOMEM;
    if (sk_X509_push(chain, ca) <= 0) {
        X509_free(ca);
        return -ENOMEM;
    }
    *ret = TAKE_PTR(chain);
    return 0;
}

/* Issues a certificate for @key and stores the pair, its rotation only once @ca (may be NULL) is
 * written: the pair's files are staged (written and synced under temporary names) meanwhile. */
static int issue_and_store(cert_service *s, EVP_PKEY *key, ca_files *ca, cert_pair *ret, cert_error *e)
{
    _cleanup_(cert_pair_donep) cert_pair p = {};
    cert_staged staged = {};
    int r = cert_issue(s->ca_key, s->ca_cert, key, s->names, s->config.lifetime, &p.leaf);
    if (r >= 0)
        r = ca_chain(s->ca_cert, &p.chain);
    bool ref = r >= 0 && EVP_PKEY_up_ref(key) == 1;
    if (ref)
        p.key = key;
    int stored = ref ? cert_store_stage(s->state_dir, &p, &staged) : 0;
    int w = ca ? ca_files_finish(s, ca, e) : 0; /* first: its failure is the one to report */
    if (w >= 0 && ref && stored >= 0)
        stored = cert_store_commit(&staged);
    else
        cert_store_abort(&staged);
    if (w < 0)
        return w;
    if (r >= 0 && !ref)
        return -ENOMEM;
    if (r < 0)
        return cert_fail(e, r, "Cannot issue a certificate from the local CA: %s", strerror(-r));
    if (stored < 0)
        return cert_fail(e, stored, "Cannot store key[%s], cert[%s]: %s", s->key_path, s->cert_path, strerror(-stored));
    take_pair(ret, &p);
    return 0;
}

static bool key_type_is(EVP_PKEY *key, const certificate_config *c)
{
    if (c->key_type == CERT_KEY_RSA)
        return EVP_PKEY_is_a(key, "RSA") && EVP_PKEY_get_bits(key) == c->rsa_bits;
    return EVP_PKEY_is_a(key, "EC");
}

/* The pair on disk when it is still what the configuration asks for, else -ESTALE with why. */
static int reuse(cert_service *s, cert_pair *ret, cert_error *e)
{
    _cleanup_(cert_pair_donep) cert_pair p = {};
    char what[2 * PATH_MAX + 32];
    int r = cert_store_load(s->state_dir, &p, e);
    if (r < 0)
        return r;
    (void) snprintf(what, sizeof what, "key[%s], cert[%s]", s->key_path, s->cert_path);
    if ((r = cert_check(p.key, p.leaf, p.chain, s->ca_cert, time(NULL), what, e)) < 0)
        return r;
    if (!cert_has_names(p.leaf, s->names))
        return cert_fail(e, -ESTALE, "%s: the certificate does not name every one of certificate.dns_names", what);
    if (!key_type_is(p.key, &s->config))
        return cert_fail(e, -ESTALE, "%s: the key is not of certificate.key_type", what);
    take_pair(ret, &p);
    return 0;
}

/* What reuse()'s result @r means: 1 the pair on disk is used (logged), 0 a new one is to be made
 * (@doing it, the reason logged unless there was no pair), or the error (a key others could read
 * is the operator's to fix, not to replace). */
static int reused(cert_service *s, int r, const cert_error *why, cert_error *e, const char *doing)
{
    if (r >= 0) {
        CERT_LOG(KEEL_LOG_INFO, "Reusing key[%s], cert[%s]", s->key_path, s->cert_path);
        return 1;
    }
    if (r == -EACCES)
        return cert_fail(e, r, "%s", why->text);
    if (r != -ENOENT)
        CERT_LOG(KEEL_LOG_WARNING, "%s; %s a new one", why->text, doing);
    return 0;
}

static int local_ca_obtain(cert_service *s, cert_pair *ret, cert_error *e)
{
    _cleanup_(ca_files_done) ca_files ca = {};
    int r = ensure_ca(s, &ca, e);
    if (r < 0)
        return r;
    cert_error why = {};
    r = reuse(s, ret, &why);
    /* reuse() reads the pair, never the CA's files. A new CA and no pair on disk (a first start):
     * the CA's files are written while the first certificate is issued. Otherwise now, before
     * anything is logged about the pair. */
    if (ca.pending && r == -ENOENT)
        ca_files_start(s, &ca);
    else {
        int w = ca_files_finish(s, &ca, e);
        if (w < 0) {
            cert_pair_done(ret);
            return w;
        }
    }
    if ((r = reused(s, r, &why, e, "issuing")) != 0)
        return r < 0 ? r : 0;
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
    if ((r = cert_generate_key(s->config.key_type, (unsigned) s->config.rsa_bits, &key)) < 0) {
        int w = ca_files_finish(s, &ca, e);
        return w < 0 ? w : cert_fail(e, r, "Cannot generate a key: %s", strerror(-r));
    }
    return issue_and_store(s, key, &ca, ret, e);
}

/* ---- acme -------------------------------------------------------------------------------------- */

/* A new pair into the state directory, then to *@ret. */
static int store_and_take(cert_service *s, cert_pair *p, cert_pair *ret, cert_error *e)
{
    int r = cert_store_write(s->state_dir, p);
    if (r < 0)
        return cert_fail(e, r, "Cannot store key[%s], cert[%s]: %s", s->key_path, s->cert_path, strerror(-r));
    take_pair(ret, p);
    return 0;
}

/* Orders a certificate for @key from the CA at @directory_url and stores the pair. */
static int acme_issue_and_store(cert_service *s, const char *directory_url, EVP_PKEY *key, cert_pair *ret, cert_error *e)
{
    _cleanup_(cert_pair_donep) cert_pair p = {};
    int r = acme_issue(s, directory_url, key, &p, e);
    if (r < 0)
        return r;
    return store_and_take(s, &p, ret, e);
}

/* The pair on disk while it is valid for certificate.dns_names, else a new order. */
static int acme_obtain(cert_service *s, cert_pair *ret, cert_error *e)
{
    cert_error why = {};
    int r = reused(s, reuse(s, ret, &why), &why, e, "ordering");
    if (r != 0)
        return r < 0 ? r : 0;
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
    if ((r = cert_generate_key(s->config.key_type, (unsigned) s->config.rsa_bits, &key)) < 0)
        return cert_fail(e, r, "Cannot generate a key: %s", strerror(-r));
    return acme_issue_and_store(s, s->config.acme.directory_url, key, ret, e);
}

/* ---- file -------------------------------------------------------------------------------------- */

/* The pair in @dir_or_null's slots, or in @key_path and @cert_path, checked. A directory another
 * process owns (s->read_only) is only peeked at. */
static int read_checked(cert_service *s, const char *dir_or_null, const char *key_path, const char *cert_path, X509 *ca,
                        cert_pair *ret, cert_error *e)
{
    _cleanup_(cert_pair_donep) cert_pair p = {};
    char what[2 * PATH_MAX + 32];
    int r;
    if (!dir_or_null)
        r = cert_read_key(key_path, &p.key, e);
    else
        r = s->read_only ? cert_store_peek(dir_or_null, &p, e) : cert_store_load(dir_or_null, &p, e);
    if (r >= 0 && !dir_or_null)
        r = cert_read_certs(cert_path, &p.leaf, &p.chain, e);
    if (r < 0)
        return r;
    (void) snprintf(what, sizeof what, "key[%s], cert[%s]", key_path, cert_path);
    if ((r = cert_check(p.key, p.leaf, p.chain, ca, time(NULL), what, e)) < 0)
        return r;
    take_pair(ret, &p);
    return 0;
}

/* `keel token`: the pair the agent keeps, checked against its CA when the CA's certificate is there
 * (the CA's key is not needed to check). */
static int local_ca_peek(cert_service *s, cert_pair *ret, cert_error *e)
{
    char ca[PATH_MAX];
    (void) snprintf(ca, sizeof ca, "%s/ca.pem", s->state_dir);
    const char *ca_path = *s->config.ca_cert_file ? s->config.ca_cert_file : ca;
    _cleanup_x509_stack_ STACK_OF(X509) *rest = NULL;
    int r = cert_read_certs(ca_path, &s->ca_cert, &rest, e);
    if (r < 0 && r != -ENOENT)
        return r;
    r = read_checked(s, s->state_dir, s->key_path, s->cert_path, s->ca_cert, ret, e);
    if (r == -ENOENT)
        return cert_fail(e, r, "No key and certificate in '%s' yet: `%s serve` creates them, this command only reads them",
                         s->state_dir, keel_app_name(s->app));
    return r;
}

/* The anchor is read at each load, as file_store() does: a Kubernetes secret's ca.crt rotates with
 * its tls.crt, and a pair signed by the new CA would not verify against the old one. */
static int file_load(cert_service *s, cert_pair *ret, cert_error *e)
{
    _cleanup_(X509_freep) X509 *ca = NULL;
    if (*s->config.ca_cert_file) {
        _cleanup_x509_stack_ STACK_OF(X509) *rest = NULL;
        int r = cert_read_certs(s->config.ca_cert_file, &ca, &rest, e);
        if (r < 0)
            return r;
    }
    return read_checked(s, NULL, s->key_path, s->cert_path, ca, ret, e);
}

/* ---- certificate.issuers ---------------------------------------------------------------------- */

/* The operator's files as one issuer among others: checked (against ca_cert_file when set), then
 * stored in state_dir like any issued pair, so that every issuer's pair is found in one place. The
 * anchor is read each time, not kept in s->ca_cert: that is the local CA's when it is an issuer too. */
static int file_store(cert_service *s, cert_pair *ret, cert_error *e)
{
    _cleanup_(cert_pair_donep) cert_pair p = {};
    _cleanup_(X509_freep) X509 *anchor = NULL;
    int r = 0;
    if (*s->config.ca_cert_file) {
        _cleanup_x509_stack_ STACK_OF(X509) *rest = NULL;
        r = cert_read_certs(s->config.ca_cert_file, &anchor, &rest, e);
    }
    if (r >= 0)
        r = read_checked(s, NULL, s->config.key_file, s->config.cert_file, anchor, &p, e);
    if (r < 0)
        return r;
    return store_and_take(s, &p, ret, e);
}

int cert_issue_through(cert_service *s, const cert_issuer *i, cert_pair *ret, cert_error *e)
{
    if (i->kind == CERT_ISSUER_FILE)
        return file_store(s, ret, e);
    int r;
    if (i->kind == CERT_ISSUER_LOCAL && (r = ensure_ca_written(s, e)) < 0)
        return r;
    if ((r = cert_prepare_next_key(s)) < 0)
        return cert_fail(e, r, "Cannot generate a key: %s", strerror(-r));
    r = i->kind == CERT_ISSUER_ACME ? acme_issue_and_store(s, i->directory_url, s->next_key, ret, e)
                                    : issue_and_store(s, s->next_key, NULL, ret, e);
    if (r >= 0) {
        EVP_PKEY_free(s->next_key);
        s->next_key = NULL;
    }
    return r;
}

/* At start: the pair on disk while it is valid for certificate.dns_names, whichever issuer issued
 * it (checked against no CA: each has its own), else the chain. */
static int issuers_obtain(cert_service *s, cert_pair *ret, cert_error *e)
{
    if (s->read_only)
        return read_checked(s, s->state_dir, s->key_path, s->cert_path, NULL, ret, e);
    cert_error why = {};
    int r = reused(s, reuse(s, ret, &why), &why, e, "issuing");
    if (r != 0)
        return r < 0 ? r : 0;
    return cert_issuers_run(s, ret, e);
}

/* ---- backup ------------------------------------------------------------------------------------ */

static void backup_write(cert_service *s, const cert_pair *p)
{
    if (!(s->config.backup & CERT_BACKUP_WRITE) || s->read_only)
        return;
    int r = keel_dir_make(s->backup_dir, 0700);
    if (r >= 0)
        r = cert_store_write(s->backup_dir, p);
    if (r < 0)
        CERT_LOG_ERRNO(KEEL_LOG_WARNING, r, "Failed to write the backup to '%s', ignoring: %m", s->backup_dir);
}

static int backup_read(cert_service *s, cert_pair *ret, cert_error *e)
{
    char key[PATH_MAX], cert[PATH_MAX];
    (void) snprintf(key, sizeof key, "%s/key.pem", s->backup_dir);
    (void) snprintf(cert, sizeof cert, "%s/cert.pem", s->backup_dir);
    /* The CA is checked only when the local CA is at hand: the backup is for when it is not. */
    bool local_ca = s->config.provider == CERT_PROVIDER_LOCAL_CA && !s->chain;
    return read_checked(s, s->backup_dir, key, cert, local_ca ? s->ca_cert : NULL, ret, e);
}

int cert_obtain(cert_service *s, cert_pair *ret, cert_error *e)
{
    int r;
    if (s->chain)
        r = issuers_obtain(s, ret, e);
    else if (s->config.provider == CERT_PROVIDER_FILE)
        r = file_load(s, ret, e);
    else if (s->read_only)
        r = local_ca_peek(s, ret, e);
    else
        r = s->config.provider == CERT_PROVIDER_ACME ? acme_obtain(s, ret, e) : local_ca_obtain(s, ret, e);
    if (r >= 0) {
        backup_write(s, ret);
        return 0;
    }
    /* A stop that ended the issuance (-ECANCELED) is no failure of the provider's. */
    if (!(s->config.backup & CERT_BACKUP_READ) || r == -ECANCELED)
        return r;
    cert_error why = {};
    if (backup_read(s, ret, &why) < 0) {
        size_t n = strlen(e->text);
        (void) snprintf(e->text + n, sizeof e->text - n, "; the backup is unusable too: %s", why.text);
        return r;
    }
    CERT_LOG(KEEL_LOG_WARNING, "Provider %s failed (%s); starting from the backup in '%s'", cert_source_name(s), e->text,
             s->backup_dir);
    return 0;
}

int cert_renew(cert_service *s, cert_pair *ret, cert_error *e)
{
    int r;
    if (s->chain)
        r = cert_issuers_run(s, ret, e);
    else if (s->config.provider == CERT_PROVIDER_FILE)
        r = file_load(s, ret, e);
    else {
        if (s->config.provider == CERT_PROVIDER_LOCAL_CA && (r = ensure_ca_written(s, e)) < 0)
            return r;
        /* Made ahead by the refresh task as a rule; here when that failed. */
        if ((r = cert_prepare_next_key(s)) < 0)
            return cert_fail(e, r, "Cannot generate a key: %s", strerror(-r));
        r = s->config.provider == CERT_PROVIDER_ACME ? acme_issue_and_store(s, s->config.acme.directory_url, s->next_key, ret, e)
                                                     : issue_and_store(s, s->next_key, NULL, ret, e);
        if (r >= 0) {
            EVP_PKEY_free(s->next_key);
            s->next_key = NULL;
        }
    }
    if (r >= 0)
        backup_write(s, ret);
    return r;
}

/* The next key is made (and published) once per rotation, whatever the attempts it takes. */
int cert_prepare_next_key(cert_service *s)
{
    if (s->next_key || s->config.provider == CERT_PROVIDER_FILE)
        return 0;
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
    _cleanup_(credential_unrefp) credential *next = NULL;
    int r = cert_generate_key(s->config.key_type, (unsigned) s->config.rsa_bits, &key);
    if (r >= 0)
        r = credential_new(key, NULL, NULL, &next);
    if (r >= 0)
        r = identity_set_next(s->identity, next);
    if (r < 0) /* a key not announced is not kept: it would sign before verifiers know it */
        return r;
    s->next_key = TAKE_PTR(key);
    return 0;
}

int cert_publish(cert_service *s, const cert_pair *p)
{
    _cleanup_(credential_unrefp) credential *c = NULL;
    int r = credential_new(p->key, p->leaf, p->chain, &c);
    if (r < 0)
        return r;
    return identity_rotate(s->identity, c);
}
