/* SPDX-License-Identifier: MIT */
/*
 * More than one issuer (docs/decisions/0035): certificate.issuers lists ACME CAs, the local CA and
 * the operator's files in order. Each issuance starts again from the first; an issuer that fails
 * certificate.issuer_attempts times in a row, with the refresh's backoff between its attempts,
 * hands over to the next. A stop ends the chain, never a fallback. Every attempt and fallback is
 * counted, and the issuer of the current certificate is logged and noted in /readyz?verbose.
 * Which issuer issued the pair in state_dir is recorded beside it (state_dir/issuer), so that
 * renewal information (ARI) is read from, and `replaces` sent to, that CA only, after a restart
 * too (docs/decisions/0035, "Renewal information").
 */
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <keel/fileio.h>

#include "certificate-service.h"

/* state_dir/issuer: the SHA-256 of the certificate's DER in hex, a space, the entry, a newline. */
#define RECORD           "issuer"
#define RECORD_MAX       4096
#define FINGERPRINT_SIZE (2 * 32 + 1)

typedef struct cert_chain {
    cert_issuer *issuers; /* owned; their names and URLs point into the configuration, which outlives them */
    size_t n;
    unsigned attempts;
    keel_counter **ok, **failed, **fallbacks; /* borrowed from the registry: [n], [n], [n - 1] */
    atomic_int current;                       /* the index of the current certificate's issuer, -1 before one */
    /* The fingerprint of the certificate `current` issued: a pair published from elsewhere (the
     * backup) is not taken for it. Written by the thread that issues (start, then the refresh task). */
    char issued[FINGERPRINT_SIZE];
} cert_chain;

void cert_issuers_free(cert_service *s)
{
    cert_chain *c = s->chain;
    if (!c)
        return;
    free(c->issuers);
    free(c->ok);
    free(c->failed);
    free(c->fallbacks);
    free(c);
    s->chain = NULL;
}

static const char *parse_error(int r)
{
    switch (r) {
    case -ENOENT:
        return "acme needs certificate.acme.directory_url (or write acme:URL)";
    case -EPROTONOSUPPORT:
        return "an ACME directory is an https:// URL";
    case -EEXIST:
        return "listed twice";
    default:
        return "not acme, acme:URL, local or file";
    }
}

/* The entries of certificate.issuers read into @c; the position and entry of a bad one into @ret_bad. */
static int parse_all(const certificate_config *cfg, cert_chain *c, size_t *ret_bad)
{
    for (size_t i = 0; i < c->n; i++) {
        int r = cert_issuer_parse(cfg->issuers[i], cfg->acme.directory_url, &c->issuers[i]);
        for (size_t j = 0; r >= 0 && j < i; j++)
            if (streq(c->issuers[j].name, c->issuers[i].name))
                r = -EEXIST; /* it would be tried twice, and its counters are one series */
        if (r < 0) {
            *ret_bad = i;
            return r;
        }
    }
    return 0;
}

static int check_issuers(const certificate_config *cfg, const cert_chain *c, keel_app *app)
{
    bool file = false, acme = false, local = false;
    for (size_t i = 0; i < c->n; i++) {
        file |= c->issuers[i].kind == CERT_ISSUER_FILE;
        acme |= c->issuers[i].kind == CERT_ISSUER_ACME;
        local |= c->issuers[i].kind == CERT_ISSUER_LOCAL;
    }
    /* issuers replaces provider: a provider of its own besides it would say two things. */
    if (cfg->provider != CERT_PROVIDER_LOCAL_CA)
        return keel_app_fail(app, -EINVAL, "certificate.provider is %s and certificate.issuers is set: list it in issuers instead",
                             cert_provider_name(cfg->provider));
    /* Role certificates are the local CA's, and a chain's certificate may be another issuer's. */
    if (*cfg->roles)
        return keel_app_fail(app, -EINVAL, "certificate.roles needs certificate.provider local-ca, without certificate.issuers");
    if (file && (!*cfg->key_file || !*cfg->cert_file))
        return keel_app_fail(app, -EINVAL, "certificate.issuers lists file: set certificate.key_file and certificate.cert_file");
    /* file alone may name ca_cert_file (its anchor); the local CA needs its key too. */
    if (local && !*cfg->ca_key_file != !*cfg->ca_cert_file)
        return keel_app_fail(app, -EINVAL, "Set both certificate.ca_key_file and certificate.ca_cert_file, or neither");
    if (acme && !*cfg->dns_names)
        return keel_app_fail(app, -EINVAL, "certificate.issuers lists an ACME CA: set certificate.dns_names");
    if (acme && !*cfg->acme.eab_kid != !*cfg->acme.eab_hmac_key_file)
        return keel_app_fail(app, -EINVAL, "Set both certificate.acme.eab_kid and certificate.acme.eab_hmac_key_file, or neither");
    return 0;
}

int cert_issuers_configure(cert_service *s, keel_app *app)
{
    const certificate_config *cfg = &s->config;
    cert_issuers_free(s);
    size_t n = keel_strv_length(cfg->issuers);
    if (n == 0)
        return 0;
    cert_chain *c = calloc(1, sizeof *c);
    if (!c)
        return keel_app_fail(app, -ENOMEM, "Cannot read certificate.issuers: %s", strerror(ENOMEM));
    *c = (cert_chain){ .n = n, .attempts = (unsigned) cfg->issuer_attempts, .current = -1 };
    s->chain = c;
    c->issuers = calloc(n, sizeof *c->issuers);
    c->ok = calloc(n, sizeof *c->ok);
    c->failed = calloc(n, sizeof *c->failed);
    c->fallbacks = calloc(n, sizeof *c->fallbacks);
    if (!c->issuers || !c->ok || !c->failed || !c->fallbacks)
        return keel_app_fail(app, -ENOMEM, "Cannot read certificate.issuers: %s", strerror(ENOMEM));
    size_t bad = 0;
    int r = parse_all(cfg, c, &bad);
    if (r < 0)
        return keel_app_fail(app, -EINVAL, "certificate.issuers[%zu]: '%s': %s", bad, cfg->issuers[bad], parse_error(r));
    return check_issuers(cfg, c, app);
}

int cert_issuers_register_metrics(cert_service *s)
{
    cert_chain *c = s->chain;
    if (!c)
        return 0;
    keel_metrics *m = keel_app_metrics(s->app);
    const char *attempts = "keel_certificate_issuance_attempts_total", *fallbacks = "keel_certificate_issuer_fallbacks_total";
    const char *attempts_help = "Issuance attempts through each issuer of certificate.issuers, by result";
    const char *fallbacks_help = "Issuances handed to the next issuer after one failed certificate.issuer_attempts times";
    bool acme = false;
    int r = 0;
    for (size_t i = 0; i < c->n && r >= 0; i++) {
        const char *name = c->issuers[i].name;
        acme |= c->issuers[i].kind == CERT_ISSUER_ACME;
        r = keel_metrics_counter(m, attempts, attempts_help, (const char *const[]){ "issuer", name, "result", "ok", NULL },
                                 &c->ok[i]);
        if (r >= 0)
            r = keel_metrics_counter(m, attempts, attempts_help, (const char *const[]){ "issuer", name, "result", "error", NULL },
                                     &c->failed[i]);
        if (r >= 0 && i + 1 < c->n)
            r = keel_metrics_counter(m, fallbacks, fallbacks_help,
                                     (const char *const[]){ "from", name, "to", c->issuers[i + 1].name, NULL }, &c->fallbacks[i]);
    }
    /* The provider's own registration (certificate.c) counts ACME's problems, and shows the
     * renewal window, only for provider acme. */
    if (r >= 0 && acme && s->config.provider != CERT_PROVIDER_ACME)
        r = acme_register_metrics(s);
    if (r >= 0 && acme && s->config.provider != CERT_PROVIDER_ACME && s->config.acme.renewal_info)
        r = cert_ari_register_metrics(s);
    return r;
}

/* The pause between two attempts through one issuer; -ECANCELED at a stop. A wake (SIGHUP) ends it
 * early: the operator asked for the certificate now. */
static int pause_between(cert_service *s, keel_usec_t usec)
{
    int r = s->refresh_task ? keel_task_wait(s->refresh_task, usec) : keel_app_wait(s->app, usec);
    return r == -ECANCELED ? -ECANCELED : 0;
}

/* Up to c->attempts attempts through the issuer at @index; the last failure's reason stays in @e. */
static int try_issuer(cert_service *s, size_t index, cert_pair *ret, cert_error *e)
{
    cert_chain *c = s->chain;
    const cert_issuer *i = &c->issuers[index];
    for (unsigned failures = 0;;) {
        if (cert_stopping(s))
            return cert_fail(e, -ECANCELED, "Stopped before issuer[%s] was asked", i->name);
        *e = (cert_error){};
        int r = cert_issue_through(s, i, ret, e);
        if (r == -ECANCELED) /* a stop, not the issuer's failure: not counted */
            return r;
        keel_counter_add(r >= 0 ? c->ok[index] : c->failed[index], 1);
        if (r >= 0 || ++failures >= c->attempts)
            return r;
        keel_usec_t pause = cert_issuer_pause(failures);
        char d[32];
        CERT_LOG(KEEL_LOG_WARNING, "Issuer[%s] failed (attempt %u of %u), trying it again in %s: %s", i->name, failures,
                 c->attempts, keel_format_duration(pause, d, sizeof d), e->text);
        if (pause_between(s, pause) < 0)
            return cert_fail(e, -ECANCELED, "Stopped while waiting to try issuer[%s] again", i->name);
    }
}

/* The SHA-256 of @leaf's DER in hex into @ret. */
static int fingerprint(X509 *leaf, char ret[static FINGERPRINT_SIZE])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (X509_digest(leaf, EVP_sha256(), md, &len) != 1 || len != 32)
        return -EIO;
    for (size_t k = 0; k < len; k++)
        (void) snprintf(ret + 2 * k, 3, "%02x", md[k]);
    return 0;
}

static int record_path(const cert_service *s, char buf[static PATH_MAX])
{
    int n = snprintf(buf, PATH_MAX, "%s/" RECORD, s->state_dir);
    return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

/* Writes that @i issued the certificate of @fingerprint, the pair just stored, into
 * state_dir/issuer. The fingerprint makes a record that a crash left behind the pair it names
 * harmless: it names no pair then. */
static int record_issuer(cert_service *s, const cert_issuer *i, const char *fingerprint)
{
    char path[PATH_MAX];
    _cleanup_free_ char *text = keel_strdup_printf("%s %s\n", fingerprint, i->name);
    int r = record_path(s, path);
    if (r >= 0 && !text)
        r = -ENOMEM;
    return r < 0 ? r : keel_file_write_atomic(path, text, strlen(text), 0644);
}

/* The current certificate is @leaf, issued through the issuer at @index. */
static void remember(cert_service *s, size_t index, X509 *leaf)
{
    cert_chain *c = s->chain;
    int r = fingerprint(leaf, c->issued);
    if (r < 0)
        c->issued[0] = '\0'; /* names no certificate */
    atomic_store(&c->current, (int) index);
    if (r >= 0)
        r = record_issuer(s, &c->issuers[index], c->issued);
    if (r < 0)
        CERT_LOG_ERRNO(KEEL_LOG_WARNING, r,
                       "Failed to record the issuer of the certificate in '%s/" RECORD "', ignoring (after a restart, its "
                       "renewal information is not read before the next issuance): %m",
                       s->state_dir);
}

int cert_issuers_run(cert_service *s, cert_pair *ret, cert_error *e)
{
    cert_chain *c = s->chain;
    int r = -EINVAL;
    for (size_t i = 0; i < c->n; i++) {
        if (i > 0) {
            keel_counter_add(c->fallbacks[i - 1], 1);
            CERT_LOG(KEEL_LOG_WARNING, "Issuer[%s] failed (attempt %u of %u), falling back to issuer[%s]: %s",
                     c->issuers[i - 1].name, c->attempts, c->attempts, c->issuers[i].name, e->text);
        }
        r = try_issuer(s, i, ret, e);
        if (r == -ECANCELED)
            return r;
        if (r >= 0) {
            remember(s, i, ret->leaf);
            CERT_LOG(KEEL_LOG_INFO, "Certificate issued by issuer[%s] (%zu of %zu in certificate.issuers)", c->issuers[i].name,
                     i + 1, c->n);
            return 0;
        }
    }
    size_t n = strlen(e->text);
    (void) snprintf(e->text + n, sizeof e->text - n, " (every issuer of certificate.issuers failed)");
    return r;
}

/* The index of the entry a record's @text names when it is of the certificate of @fingerprint:
 * -ESTALE for another certificate's record, -ENOENT for an entry no longer listed. */
static int parse_record(const cert_chain *c, const char *text, const char *fingerprint, size_t *ret)
{
    size_t n = strlen(fingerprint);
    if (strncmp(text, fingerprint, n) != 0 || text[n] != ' ')
        return -ESTALE;
    const char *name = text + n + 1;
    size_t len = strcspn(name, "\n");
    for (size_t i = 0; i < c->n; i++)
        if (strlen(c->issuers[i].name) == len && strncmp(c->issuers[i].name, name, len) == 0) {
            *ret = i;
            return 0;
        }
    return -ENOENT;
}

/* Whether a certificate's unknown issuer costs anything: the renewal information of an ACME CA. */
static bool ari_wanted(const cert_service *s)
{
    for (size_t i = 0; s->config.acme.renewal_info && i < s->chain->n; i++)
        if (s->chain->issuers[i].kind == CERT_ISSUER_ACME)
            return true;
    return false;
}

void cert_issuers_recall(cert_service *s)
{
    cert_chain *c = s->chain;
    if (!c)
        return;
    _cleanup_(credential_unrefp) credential *current = identity_get(s->identity, IDENTITY_CURRENT);
    X509 *leaf = current ? credential_cert(current) : NULL;
    char issued[FINGERPRINT_SIZE], path[PATH_MAX] = "";
    if (!leaf || fingerprint(leaf, issued) < 0 || (atomic_load(&c->current) >= 0 && streq(issued, c->issued)))
        return; /* nothing to name, or issued in this life */
    _cleanup_free_ char *text = NULL;
    size_t index = 0, size = 0;
    int r = record_path(s, path);
    if (r >= 0)
        r = keel_file_read(path, RECORD_MAX, &text, &size, NULL);
    if (r >= 0)
        r = parse_record(c, text, issued, &index);
    if (r < 0) {
        CERT_LOG_ERRNO(ari_wanted(s) ? KEEL_LOG_INFO : KEEL_LOG_DEBUG, r,
                       "Which issuer of certificate.issuers issued the certificate is not recorded in '%s/" RECORD
                       "' (%s): its renewal information is not read, renewing by refresh_interval until the next issuance",
                       s->state_dir,
                       r == -ESTALE   ? "the record names another certificate"
                       : r == -ENOENT ? "no record of a listed issuer"
                                      : strerror(-r));
        return;
    }
    memcpy(c->issued, issued, sizeof issued);
    atomic_store(&c->current, (int) index);
    CERT_LOG(KEEL_LOG_INFO, "The certificate was issued by issuer[%s] (%zu of %zu in certificate.issuers), as '%s' records",
             c->issuers[index].name, index + 1, c->n, path);
}

const cert_issuer *cert_issuers_of(cert_service *s, X509 *leaf)
{
    cert_chain *c = s->chain;
    int i = c ? atomic_load(&c->current) : -1;
    char issued[FINGERPRINT_SIZE];
    if (i < 0 || !leaf || fingerprint(leaf, issued) < 0 || !streq(issued, c->issued))
        return NULL;
    return &c->issuers[i];
}

int cert_issuers_note(cert_service *s, char *buf, size_t size)
{
    cert_chain *c = s->chain;
    int i = c ? atomic_load(&c->current) : -1;
    if (i < 0)
        return 0;
    (void) snprintf(buf, size, "issued by %s (%d of %zu in certificate.issuers)", c->issuers[i].name, i + 1, c->n);
    return 1;
}
