/* SPDX-License-Identifier: MIT */
/*
 * ACME Renewal Information (RFC 9773): when the CA suggests renewing the current certificate. The
 * refresh task reads the certificate's renewalInfo before it first schedules, again after each
 * renewal and then as the answer's Retry-After says (clamped to a minute..a day; daily without
 * one); a wake (SIGHUP, a step of the clock) reads it again if the last read is a minute old. The
 * renewal falls at a random point of the window, picked once per window so that a fleet spreads
 * over it, and at once when that point is past (a revoked certificate's window is). A CA without
 * renewalInfo, or an answer that cannot be used, leaves the refresh_interval schedule in force.
 * A new order names the certificate it replaces. Both go to the CA that issued the current
 * certificate, and to no other: with certificate.issuers, the issuer that issued it (issuers.c),
 * whose certificate identifier means nothing to another CA.
 */
#include <jansson.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <sys/random.h>
#include <time.h>

#include <keel/fetch.h>

#include "acme.h"
#include "openssl-util.h"

/* After a failed read without a Retry-After: the window already known stays, this long. */
#define ARI_RETRY (3600 * KEEL_USEC_PER_SEC)

/* The certificate identifier (RFC 9773 §4.1): base64url(AKI keyIdentifier) "." base64url(the
 * content octets of the serial's DER encoding, a leading zero octet included). -ENODATA for a
 * certificate without an authority key identifier: ARI cannot name it. */
static int cert_id(X509 *leaf, char **ret)
{
    const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(leaf);
    if (!aki || ASN1_STRING_length(aki) <= 0)
        return -ENODATA;
    unsigned char *der = NULL;
    int n = i2d_ASN1_INTEGER(X509_get0_serialNumber(leaf), &der);
    int head = n >= 2 ? (der[1] < 0x80 ? 2 : 2 + (der[1] & 0x7f)) : n; /* tag, then a short or long length */
    _cleanup_free_ char *key_id = NULL, *serial = NULL;
    int r = n > head ? base64url(ASN1_STRING_get0_data(aki), (size_t) ASN1_STRING_length(aki), &key_id) : -EIO;
    if (r >= 0)
        r = base64url(der + head, (size_t) (n - head), &serial);
    OPENSSL_free(der);
    if (r < 0)
        return r;
    return (*ret = keel_strdup_printf("%s.%s", key_id, serial)) ? 0 : -ENOMEM;
}

/* The directory of the ACME CA that issued @leaf, the current certificate, to read its renewal
 * information from: certificate.acme.directory_url for provider acme; with certificate.issuers,
 * the issuer's that issued it. NULL when renewal_info is off, or no ACME CA (known) issued it. */
static const char *issuing_directory(cert_service *s, X509 *leaf)
{
    if (!s->config.acme.renewal_info || !leaf)
        return NULL;
    if (!s->chain)
        return s->config.provider == CERT_PROVIDER_ACME ? s->config.acme.directory_url : NULL;
    const cert_issuer *i = cert_issuers_of(s, leaf);
    return i && i->kind == CERT_ISSUER_ACME ? i->directory_url : NULL;
}

int acme_replaces(acme *a, char **ret)
{
    _cleanup_(credential_unrefp) credential *c = identity_get(a->s->identity, IDENTITY_CURRENT);
    X509 *leaf = c ? credential_cert(c) : NULL;
    const char *issued_by = issuing_directory(a->s, leaf), *ordering_from = a->directory_url ?: a->s->config.acme.directory_url;
    char *id = NULL;
    /* Only to the CA that issued it: another CA knows nothing of the certificate. */
    if (a->renewal_info_url && issued_by && streq(issued_by, ordering_from)) {
        int r = cert_id(leaf, &id);
        if (r < 0 && r != -ENODATA)
            return r;
    }
    *ret = id;
    return 0;
}

/* ---- reading the window -------------------------------------------------------------------------- */

typedef struct ari_answer {
    keel_usec_t start, end; /* CLOCK_REALTIME µs, start < end */
    keel_usec_t retry_after;
} ari_answer;

/* GET renewalInfo/@id (RFC 9773 §4.2): the suggestedWindow, and the Retry-After. */
static int read_window(acme *a, const char *id, ari_answer *ret)
{
    const char *base = a->renewal_info_url;
    _cleanup_free_ char *url = keel_strdup_printf("%s%s%s", base, *base && base[strlen(base) - 1] == '/' ? "" : "/", id);
    if (!url)
        return -ENOMEM;
    keel_fetch_response resp = {};
    char why[KEEL_FETCH_ERROR_MAX];
    int r = keel_fetch_request(a->fetch, "GET", url, NULL, NULL, 0, &resp, why);
    if (r < 0)
        return acme_fetch_failed(a, r, "renewalInfo", url, why);
    ari_answer w = { .retry_after = acme_retry_after(&resp) };
    _cleanup_(json_decrefp) json_t *j = NULL;
    if (resp.status != 200)
        r = cert_fail(a->e, -EPROTO, "ACME renewalInfo: %s answered %u", url, resp.status);
    else
        r = acme_parse_object(a, "renewalInfo", url, &resp, &j);
    keel_fetch_response_done(&resp);
    if (r < 0)
        return r;
    json_t *window = json_object_get(j, "suggestedWindow");
    const char *start = acme_json_text(window, "start"), *end = acme_json_text(window, "end");
    /* §4.2: a window that ends before it starts is no answer. */
    if (!start || !end || ari_parse_time(start, &w.start) < 0 || ari_parse_time(end, &w.end) < 0 || w.end <= w.start)
        return cert_fail(a->e, -EBADMSG, "ACME renewalInfo: %s answered no usable suggestedWindow", url);
    *ret = w;
    return 0;
}

/* The window of the certificate @id from the CA at @directory_url: -EOPNOTSUPP when its directory
 * names no renewalInfo. */
static int fetch_window(cert_service *s, const char *directory_url, const char *id, ari_answer *ret, cert_error *e)
{
    _cleanup_(acme_done)
        acme a = { .s = s, .e = e, .directory_url = directory_url, .deadline = keel_now() + s->config.acme.timeout };
    int r = acme_open(&a);
    if (r >= 0)
        r = acme_read_directory(&a);
    if (r < 0)
        return r;
    if (!a.renewal_info_url)
        return -EOPNOTSUPP;
    return read_window(&a, id, ret);
}

/* ---- the refresh task's side --------------------------------------------------------------------- */

static void format_utc(keel_usec_t usec, char *buf, size_t size)
{
    time_t t = (time_t) (usec / KEEL_USEC_PER_SEC);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        (void) snprintf(buf, size, "?");
}

static uint32_t random_u32(void)
{
    uint32_t x;
    /* Spreading a fleet needs no secret; without randomness, the middle of the window. */
    return getrandom(&x, sizeof x, GRND_NONBLOCK) == (ssize_t) sizeof x ? x : UINT32_MAX / 2;
}

static void forget_window(cert_service *s)
{
    atomic_store(&s->ari.start, 0);
    atomic_store(&s->ari.end, 0);
    atomic_store(&s->ari.renew_at, 0);
}

/* A new window gets a new point; the same window keeps its point, or each read would pick again
 * and pull the renewal towards the window's start. */
static void adopt_window(cert_service *s, const ari_answer *w, keel_usec_t not_before, keel_usec_t not_after)
{
    if (atomic_load(&s->ari.start) == w->start && atomic_load(&s->ari.end) == w->end)
        return;
    keel_usec_t at = ari_pick(ari_window_floor(w->start, w->end, not_before, not_after), w->end, random_u32());
    atomic_store(&s->ari.start, w->start);
    atomic_store(&s->ari.end, w->end);
    atomic_store(&s->ari.renew_at, at);
    char a[32], b[32], c[32];
    format_utc(w->start, a, sizeof a);
    format_utc(w->end, b, sizeof b);
    format_utc(at, c, sizeof c);
    CERT_LOG(KEEL_LOG_INFO, "The ACME server suggests renewing the certificate between %s and %s (renewalInfo): renewing at %s%s",
             a, b, c, at <= keel_now_realtime() ? ", which is past: at once" : "");
}

/* What a read tells, and when the next one is. */
static keel_usec_t record_answer(cert_service *s, int r, const ari_answer *w, const credential *c, const cert_error *e)
{
    if (r >= 0) {
        s->ari.offered = true;
        adopt_window(s, w, credential_not_before(c), credential_not_after(c));
        return ari_check_interval(w->retry_after);
    }
    if (r == -EOPNOTSUPP) {
        if (s->ari.offered || !s->ari.told)
            CERT_LOG(KEEL_LOG_INFO, "The ACME server offers no renewal information (RFC 9773): renewing by refresh_interval");
        s->ari.offered = false;
        forget_window(s);
        return ARI_CHECK_MAX;
    }
    char d[64];
    keel_format_duration(ARI_RETRY, d, sizeof d);
    CERT_LOG_ERRNO(KEEL_LOG_WARNING, r,
                   "Failed to read the certificate's renewal information, ignoring (%s; reading again in %s): %s",
                   atomic_load(&s->ari.renew_at) ? "keeping the window known" : "renewing by refresh_interval", d, e->text);
    return ARI_RETRY;
}

void cert_ari_update(cert_service *s, bool woken)
{
    _cleanup_(credential_unrefp) credential *c = identity_get(s->identity, IDENTITY_CURRENT);
    _cleanup_free_ char *id = NULL;
    X509 *leaf = c ? credential_cert(c) : NULL;
    const char *directory_url = issuing_directory(s, leaf);
    if (!directory_url || cert_id(leaf, &id) < 0 || strlen(id) >= sizeof s->ari.cert_id) {
        /* No ACME CA to ask (the local CA's or the files' certificate), or a certificate ARI
         * cannot name: refresh_interval's schedule. */
        forget_window(s);
        atomic_store(&s->ari.next_check, 0);
        s->ari.cert_id[0] = '\0';
        return;
    }
    keel_usec_t now = keel_now();
    bool same = streq(id, s->ari.cert_id), rechecked = woken && now - s->ari.checked_at >= ARI_CHECK_MIN;
    if (same && now < atomic_load(&s->ari.next_check) && !rechecked)
        return;
    if (!same) { /* a new certificate: the old one's window is not its own */
        forget_window(s);
        (void) snprintf(s->ari.cert_id, sizeof s->ari.cert_id, "%s", id);
    }
    cert_error e = {};
    ari_answer w = {};
    int r = fetch_window(s, directory_url, id, &w, &e);
    if (r == -ECANCELED)
        return; /* stopping */
    keel_usec_t next = record_answer(s, r, &w, c, &e);
    s->ari.told = true;
    s->ari.checked_at = keel_now();
    atomic_store(&s->ari.next_check, s->ari.checked_at + next);
}

bool cert_ari_delay(cert_service *s, keel_usec_t not_before, keel_usec_t not_after, keel_usec_t *ret)
{
    keel_usec_t at = atomic_load(&s->ari.renew_at);
    if (at == 0)
        return false;
    *ret = ari_renew_delay(keel_now_realtime(), not_before, not_after, at);
    return true;
}

keel_usec_t cert_ari_check_in(cert_service *s)
{
    keel_usec_t next = atomic_load(&s->ari.next_check), now = keel_now();
    if (next == 0)
        return KEEL_USEC_INFINITY;
    return next > now ? next - now : 0;
}

/* ---- what operators see -------------------------------------------------------------------------- */

int cert_ari_note(cert_service *s, char *buf, size_t size)
{
    keel_usec_t start = atomic_load(&s->ari.start), end = atomic_load(&s->ari.end), at = atomic_load(&s->ari.renew_at);
    if (at == 0)
        return 0;
    char a[32], b[32], c[32];
    format_utc(start, a, sizeof a);
    format_utc(end, b, sizeof b);
    format_utc(at, c, sizeof c);
    return snprintf(buf, size, "renewal window (ARI) %s to %s, renewing at %s", a, b, c);
}

static double seconds_of(atomic_uint_fast64_t *usec)
{
    return (double) (atomic_load(usec) / KEEL_USEC_PER_SEC);
}

static double window_start(void *userdata)
{
    return seconds_of(&((cert_service *) userdata)->ari.start);
}

static double window_end(void *userdata)
{
    return seconds_of(&((cert_service *) userdata)->ari.end);
}

/* The next read is on the monotonic clock: seen from the wall clock now, as the renewal's gauge. */
static double next_check(void *userdata)
{
    cert_service *s = userdata;
    keel_usec_t in = cert_ari_check_in(s);
    return in == KEEL_USEC_INFINITY ? 0 : (double) ((keel_now_realtime() + in) / KEEL_USEC_PER_SEC);
}

int cert_ari_register_metrics(cert_service *s)
{
    keel_metrics *m = keel_app_metrics(s->app);
    int r =
        keel_metrics_gauge_fn(m, "keel_certificate_ari_window_start_seconds",
                              "Start of the ACME server's suggested renewal window (RFC 9773), in seconds since the epoch; 0: none",
                              NULL, window_start, s);
    if (r >= 0)
        r = keel_metrics_gauge_fn(
            m, "keel_certificate_ari_window_end_seconds",
            "End of the ACME server's suggested renewal window (RFC 9773), in seconds since the epoch; 0: none", NULL, window_end,
            s);
    if (r >= 0)
        r = keel_metrics_gauge_fn(m, "keel_certificate_ari_next_check_timestamp_seconds",
                                  "When the renewal information is next read, in seconds since the epoch; 0: not read", NULL,
                                  next_check, s);
    return r;
}
