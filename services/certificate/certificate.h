/* SPDX-License-Identifier: MIT */
#pragma once

/* The certificate service's parts, shared between its files and its unit tests: PEM files with
 * their checks (pem.c), the two-slot pair store (store.c) and the local CA (local-ca.c). Every
 * function returns 0 or a negative errno and, on failure, a one-line reason naming the file in a
 * cert_error; the service's top-level functions log it. */

#include <limits.h>
#include <stdarg.h>
#include <sys/types.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <keel/util.h>

#include "credential.h"

/* The reason for a failure: "Permissions 0644 for '/x/key.pem' are too open". */
typedef struct cert_error {
    char text[1024];
} cert_error;

/* Writes the reason into @e (may be NULL) and returns @r (negative). */
int cert_fail(cert_error *e, int r, const char *fmt, ...) KEEL_PRINTF(3, 4);

/* Key types the service generates (certificate.key_type). */
typedef enum cert_key_type {
    CERT_KEY_EC,  /* ECDSA P-256 */
    CERT_KEY_RSA, /* RSA of certificate.rsa_bits */
    _CERT_KEY_TYPE_MAX,
} cert_key_type;

/* ---- pem.c: files ------------------------------------------------------------------------------ */

/* The most a key or certificate file may hold: far above any real chain. */
#define CERT_FILE_MAX (1024 * 1024)

/*
 * Reads the private key in @path. Refuses a file readable or writable by group or others (as ssh
 * does: "Permissions 0644 for '@path' are too open", -EACCES), a file that is not a PEM private
 * key (-EBADMSG), a key of a type Keel cannot sign with (-EINVAL), and reports errors of reading.
 */
int cert_read_key(const char *path, EVP_PKEY **ret, cert_error *e);
/* Reads the certificates in @path: the first is the leaf, the others (may be none: NULL) its
 * chain. -EBADMSG when the file holds no certificate or a corrupt one. */
int cert_read_certs(const char *path, X509 **ret_leaf, STACK_OF(X509) * *ret_chain, cert_error *e);
/* cert_read_certs() of @size bytes of PEM text at @pem; @what names them in the reason. */
int cert_parse_certs(const char *pem, size_t size, const char *what, X509 **ret_leaf, STACK_OF(X509) * *ret_chain, cert_error *e);
/* @key as PKCS#8 PEM, or @leaf and @chain as PEM, in a new buffer of *@ret_size bytes (not
 * NUL-terminated) to free with cert_pem_free(), which clears it first. */
int cert_key_pem(EVP_PKEY *key, char **ret, size_t *ret_size);
int cert_certs_pem(X509 *leaf, STACK_OF(X509) * chain, char **ret, size_t *ret_size);
void cert_pem_free(char *pem, size_t size);

/* The bytes of a file read whole, wiped when they go out of scope however the read ends: any of
 * them may be a private key (certificates are wiped too; they are small). */
typedef struct pem_text {
    char *data;
    size_t size;
} pem_text;

static inline void pem_text_done(pem_text *t)
{
    cert_pem_free(t->data, t->size);
}
/* Writes @key (PKCS#8 PEM, mode 0600) or @leaf and @chain (PEM, mode 0644) to @path atomically. */
int cert_write_key(const char *path, EVP_PKEY *key);
int cert_write_certs(const char *path, X509 *leaf, STACK_OF(X509) * chain);

/*
 * The checks at every load: @key belongs to @leaf, @leaf is valid at @now (seconds since the epoch),
 * and, when @ca is not NULL, @leaf verifies through @chain to @ca. @what names the files in the
 * reason ("key[/x/key.pem], cert[/x/cert.pem]"). Returns 0, -EKEYREJECTED (another key's
 * certificate), -EKEYEXPIRED (expired or not yet valid), -EBADE (the chain does not verify).
 */
int cert_check(EVP_PKEY *key, X509 *leaf, STACK_OF(X509) * chain, X509 *ca, time_t now, const char *what, cert_error *e);

/* ---- store.c: a key and certificate pair in a directory, in two slots ------------------------- */

/* A loaded pair. */
typedef struct cert_pair {
    EVP_PKEY *key;
    X509 *leaf;
    STACK_OF(X509) * chain; /* may be NULL */
} cert_pair;

void cert_pair_done(cert_pair *p);

/*
 * Writes @p to @dir as key.pem and cert.pem through the next slot (key.next.pem, cert.next.pem,
 * then renamed into place), so that a crash at any moment leaves a matching pair that
 * cert_store_load() finds. See docs/decisions/0012-certificate-slots.md.
 */
int cert_store_write(const char *dir, const cert_pair *p);

/* cert_store_write() in two halves, so that the slow part of writing a pair (the data of
 * both files, synced) can overlap other work: staging writes key.next.pem and cert.next.pem under
 * temporary names, which nothing reads and a load removes; committing runs the four steps of the
 * rotation (a rename and a directory fsync each). A staged pair that is not committed is aborted,
 * which removes its files. The commit aborts what it could not rename. */
typedef struct cert_staged {
    char dir[PATH_MAX];
    char *key, *cert, *bundle; /* the temporary files (owned), NULL when none */
} cert_staged;
int cert_store_stage(const char *dir, const cert_pair *p, cert_staged *ret);
int cert_store_commit(cert_staged *st);
void cert_store_abort(cert_staged *st);

/*
 * Loads the pair in @dir, first finishing a rotation a crash interrupted, and removes leftovers.
 * The pair is only parsed and matched (key to certificate); dates and chain are the caller's
 * checks. Returns 0, -ENOENT when @dir holds no pair, or the errors of the pem.c readers for the
 * pair it settled on (a key file with a too-open mode among them).
 */
int cert_store_load(const char *dir, cert_pair *ret, cert_error *e);
/* Reads the pair in @dir without changing anything there, for a process beside the one that owns
 * the directory (`keel token`): a rotation in progress is read through. Same results as
 * cert_store_load(). */
int cert_store_peek(const char *dir, cert_pair *ret, cert_error *e);

/* ---- local-ca.c -------------------------------------------------------------------------------- */

/* Generates a key: EC P-256, or RSA of @rsa_bits. */
int cert_generate_key(cert_key_type type, unsigned rsa_bits, EVP_PKEY **ret);
/* A self-signed CA certificate for @key: CA:TRUE (critical), keyCertSign and cRLSign, SKI/AKI, valid
 * from a few minutes ago for @lifetime. */
int cert_create_ca(EVP_PKEY *key, keel_usec_t lifetime, X509 **ret);
/*
 * Issues a certificate for @key from the CA (@ca_key, @ca_cert): subject CN the first of @names,
 * subjectAltName every name (DNS, or IP for an address), serverAuth and clientAuth, a random
 * 128-bit serial, valid from a few minutes ago (clock skew) for @lifetime, never past the CA.
 */
int cert_issue(EVP_PKEY *ca_key, X509 *ca_cert, EVP_PKEY *key, char *const *names, keel_usec_t lifetime, X509 **ret);
/*
 * A role certificate for @key (Athenz's form): subject CN "@domain:role.@role", subjectAltName
 * URI spiffe://@domain/ra/@role, clientAuth only, otherwise as cert_issue(). -E2BIG for
 * names too long.
 */
int cert_issue_role(EVP_PKEY *ca_key, X509 *ca_cert, EVP_PKEY *key, const char *domain, const char *role, keel_usec_t lifetime,
                    X509 **ret);
/* @names as the text of a subjectAltName extension: "DNS:a,IP:127.0.0.1". -E2BIG past @size. */
int cert_san_text(char *const *names, char *buf, size_t size);
/* Whether @name is an IPv4 or IPv6 address (else a DNS name). */
bool cert_name_is_ip(const char *name);
/* Whether @name is a DNS name or IP address the service can put in a certificate. */
bool cert_name_valid(const char *name);
/* Whether every one of @names is in @cert's subjectAltName. */
bool cert_has_names(X509 *cert, char *const *names);

/* ---- schedule.c ---------------------------------------------------------------------------------- */

#define CERT_BACKOFF_MIN (1 * KEEL_USEC_PER_SEC)
#define CERT_BACKOFF_MAX (300 * KEEL_USEC_PER_SEC)

/* Whether a certificate valid from @not_before to @not_after needs renewing at once at @now: expired,
 * or in the last tenth of its lifetime, where /readyz calls it unhealthy. One not valid yet is not
 * due: the clock is behind it, and another certificate would be early by the same clock. All in
 * CLOCK_REALTIME µs, so that a step of the wall clock is seen at the next look. */
bool cert_due(keel_usec_t now, keel_usec_t not_before, keel_usec_t not_after);
/* Until the next renewal: 0 when due, else @interval or half of what is left until @not_after,
 * the sooner. */
keel_usec_t cert_renew_delay(keel_usec_t now, keel_usec_t not_before, keel_usec_t not_after, keel_usec_t interval);
/* The wait after a failed attempt: CERT_BACKOFF_MIN after the first, then doubling up to CERT_BACKOFF_MAX. */
keel_usec_t cert_backoff_next(keel_usec_t previous);
/* @wait, the wait after a failed attempt, cut to half of what is left until @not_after but never
 * below CERT_BACKOFF_MIN: a CA that is back before the expiry is asked again before it, and the
 * attempts stay spaced. An expired certificate has nothing left to keep: @wait as it is. */
keel_usec_t cert_retry_cap(keel_usec_t now, keel_usec_t not_after, keel_usec_t wait);
/* @usec ±10 %, so a fleet started together does not renew in step; @random spreads it uniformly. */
keel_usec_t cert_jitter_by(keel_usec_t usec, uint32_t random);
/* cert_jitter_by() with a random number from OpenSSL. */
keel_usec_t cert_jitter(keel_usec_t usec);

/* ARI (RFC 9773): an ACME server's suggested renewal window. The renewalInfo resource is read at
 * most every ARI_CHECK_MIN and at least every ARI_CHECK_MAX (its Retry-After, clamped). */
#define ARI_CHECK_MIN (60 * KEEL_USEC_PER_SEC)
#define ARI_CHECK_MAX (24 * 3600 * KEEL_USEC_PER_SEC)

/* The point of the window [@start, @end) that @random (uniform over uint32_t) picks, as RFC 9773
 * §4.2 asks: a fleet spreads over the window. @start when the window is empty. */
keel_usec_t ari_pick(keel_usec_t start, keel_usec_t end, uint32_t random);
/* Where the pick over the window [@start, @end) begins for a certificate valid from @not_before to
 * @not_after: never before a third of its life, unless the whole window is (the CA asks for an
 * early renewal, as after a revocation). A window that opens before the certificate itself
 * (pebble's, 2 days wide, for a 40 s certificate) would otherwise renew each new certificate at
 * once half of the time: a storm. */
keel_usec_t ari_window_floor(keel_usec_t start, keel_usec_t end, keel_usec_t not_before, keel_usec_t not_after);
/* Until the renewal at @renew_at (the picked point): 0 when it is past or the certificate is due
 * (cert_due()), and never later than the start of the certificate's last tenth. */
keel_usec_t ari_renew_delay(keel_usec_t now, keel_usec_t not_before, keel_usec_t not_after, keel_usec_t renew_at);
/* Until the next renewalInfo check: @retry_after clamped to [ARI_CHECK_MIN, ARI_CHECK_MAX], or
 * ARI_CHECK_MAX without one (0). */
keel_usec_t ari_check_interval(keel_usec_t retry_after);
/* An RFC 3339 date-time ("2026-12-06T07:47:59.123Z", "…+01:00") as CLOCK_REALTIME µs. -EINVAL for
 * anything else, -ERANGE before the epoch. */
int ari_parse_time(const char *text, keel_usec_t *ret);
/* The longest wait a Retry-After is taken for: a CA's rate limits reach a week, and a renewal's own
 * wait is cut to half of what is left of the certificate anyway. */
#define RETRY_AFTER_MAX (30 * 24 * 3600 * KEEL_USEC_PER_SEC)
/* A Retry-After field's value (RFC 9110 10.2.3: delay-seconds, or an IMF-fixdate) as a wait in µs
 * from @now (CLOCK_REALTIME µs), at most RETRY_AFTER_MAX; 0 for a date past or anything else. */
keel_usec_t cert_parse_retry_after(const char *value, keel_usec_t now);

/* ---- issuer-list.c: certificate.issuers ------------------------------------------------------- */

/* What an entry of certificate.issuers names (docs/decisions/0035). */
typedef enum cert_issuer_kind {
    CERT_ISSUER_ACME,  /* "acme" (certificate.acme.directory_url) or "acme:URL" */
    CERT_ISSUER_LOCAL, /* "local": the local CA */
    CERT_ISSUER_FILE,  /* "file": certificate.key_file and cert_file */
    _CERT_ISSUER_KIND_MAX,
    _CERT_ISSUER_KIND_INVALID = -EINVAL,
} cert_issuer_kind;

typedef struct cert_issuer {
    cert_issuer_kind kind;
    const char *name;          /* borrowed: the entry as written, in logs and metric labels */
    const char *directory_url; /* borrowed: acme, the CA's directory; else NULL */
} cert_issuer;

/* Reads one entry; "acme" takes @default_url (certificate.acme.directory_url). -EINVAL for an
 * unknown entry, -ENOENT for "acme" without a default URL, -EPROTONOSUPPORT for a URL (either)
 * that is not https://. */
int cert_issuer_parse(const char *entry, const char *default_url, cert_issuer *ret);

/* The wait after the @failures-th failed attempt through one issuer, before its next attempt:
 * the refresh's backoff (CERT_BACKOFF_MIN, doubling). */
keel_usec_t cert_issuer_pause(unsigned failures);
/* The most the chain waits on one issuer given @attempts attempts (the pauses between them, not
 * the attempts' own time) before it falls back to the next. */
keel_usec_t cert_issuer_budget(unsigned attempts);

/* The file name, in state_dir/acme, of the account key for the CA at @directory_url: the one of
 * old, "account.key.pem", for @first_url (certificate.acme.directory_url), so that existing state
 * stays valid; "account-HASH.key.pem" for any other (HASH: 16 hex digits of its SHA-256), one
 * account per CA. -ENAMETOOLONG past @size. */
int cert_acme_account_file(const char *directory_url, const char *first_url, char *buf, size_t size);
