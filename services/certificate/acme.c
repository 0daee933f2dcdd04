/* SPDX-License-Identifier: MIT */
/*
 * The ACME provider (RFC 8555): an account for a key kept in state_dir/acme, then for each
 * certificate an order for certificate.dns_names, its challenges answered as
 * certificate.acme.challenges says (acme-challenge.c: http-01 by one of the app's own HTTP servers,
 * acme-http01.c; dns-01 by RFC 2136 updates, acme-dns01.c), a CSR, and the download. Every request is a JWS signed
 * with the account key over a fresh Replay-Nonce; a badNonce is retried with the nonce the error
 * brought, every other problem document ends the attempt with its type and detail, counted in
 * keel_certificate_acme_errors_total, and a Retry-After is kept for the refresh's backoff.
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdio.h>

#include <keel/fetch.h>

#include "acme.h"
#include "openssl-util.h"

#define NONCE_RETRIES 10
#define POLL_FIRST    (50 * KEEL_USEC_PER_MSEC)
#define POLL_MAX      (2 * KEEL_USEC_PER_SEC)
#define REQUEST_MAX   (30 * KEEL_USEC_PER_SEC)
#define ERROR_PREFIX  "urn:ietf:params:acme:error:"
#define JOSE_JSON     "Content-Type: application/jose+json"

/* The types counted by name; any other is "other". At most ELEMENTSOF(cert_service.acme_errors). */
static const char *const error_types[] = {
    "badNonce", "rateLimited",    "unauthorized", "rejectedIdentifier", "connection",          "dns", "incorrectResponse",
    "badCSR",   "serverInternal", "malformed",    "orderNotReady",      "accountDoesNotExist", "caa", "tls",
    "other",
};

int acme_register_metrics(cert_service *s)
{
    keel_metrics *m = keel_app_metrics(s->app);
    int r = 0;
    for (size_t i = 0; i < ELEMENTSOF(error_types) && r >= 0; i++)
        r = keel_metrics_counter(m, "keel_certificate_acme_errors_total",
                                 "Problem documents from the ACME server, by type (urn:ietf:params:acme:error:TYPE)",
                                 (const char *const[]){ "type", error_types[i], NULL }, &s->acme_errors[i]);
    return r < 0 ? r : acme_challenge_register_metrics(s);
}

void acme_count_error(cert_service *s, const char *type)
{
    size_t i = 0;
    while (i < ELEMENTSOF(error_types) - 1 && !streq(error_types[i], type))
        i++;
    if (s->acme_errors[i])
        keel_counter_add(s->acme_errors[i], 1);
}

const char *acme_json_text(const json_t *j, const char *key)
{
    return json_string_value(json_object_get(j, key));
}

/* ---- waiting ------------------------------------------------------------------------------------- */

/* cert_stopping(), as a fetch's cancel callback. In start a stop signal stays pending until
 * start.during returns, so keel_app_stop_requested() sees it there. */
bool acme_cancelled(void *userdata)
{
    const acme *a = userdata;
    return cert_stopping(a->s);
}

static int stopped(acme *a, const char *what)
{
    return cert_fail(a->e, -ECANCELED, "ACME: stopped during %s", what);
}

int acme_wait(acme *a, keel_usec_t usec)
{
    int r = a->s->refresh_task ? keel_task_wait(a->s->refresh_task, usec) : keel_app_wait(a->s->app, usec);
    return r == -ECANCELED ? r : KEEL_MIN(r, 0); /* a task woken early (1) has waited enough */
}

/* Sleeps @usec, never past the deadline: -ETIMEDOUT when it is reached, -ECANCELED at a stop. */
static int pause_for(acme *a, keel_usec_t usec, const char *what)
{
    keel_usec_t now = keel_now();
    if (now >= a->deadline)
        return cert_fail(a->e, -ETIMEDOUT, "ACME: %s took longer than certificate.acme.timeout", what);
    usec = KEEL_MIN(usec, a->deadline - now);
    int r = acme_wait(a, usec);
    if (r == -ECANCELED)
        return stopped(a, what);
    if (r < 0)
        return cert_fail(a->e, r, "ACME: cannot wait during %s: %s", what, strerror(-r));
    return 0;
}

keel_usec_t acme_retry_after(const keel_fetch_response *resp)
{
    char v[64];
    if (!keel_fetch_response_header(resp, "Retry-After", v, sizeof v))
        return 0;
    return cert_parse_retry_after(v, keel_now_realtime());
}

/* ---- requests ------------------------------------------------------------------------------------ */

int acme_fetch_failed(acme *a, int r, const char *what, const char *url, const char *why)
{
    if (r == -ECANCELED) /* the fetch's own word would be libcurl's "Callback aborted" */
        return stopped(a, what);
    return cert_fail(a->e, r, "ACME %s: %s: %s", what, url, why);
}

/* A value that fills its buffer may have been cut (keel_fetch_response_header()): never used. */
static bool whole(const char *value, size_t size)
{
    return value && strlen(value) < size - 1;
}

static void keep_nonce(acme *a, const keel_fetch_response *resp)
{
    const char *v = keel_fetch_response_header(resp, "Replay-Nonce", a->nonce, sizeof a->nonce);
    if (!whole(v, sizeof a->nonce)) /* none, or too long to be a nonce: the next request gets a new one */
        a->nonce[0] = '\0';
}

/* The body as a JSON object into *@ret. */
int acme_parse_object(acme *a, const char *what, const char *url, const keel_fetch_response *resp, json_t **ret)
{
    json_error_t err;
    json_t *j = json_loadb(resp->body, resp->size, JSON_REJECT_DUPLICATES, &err);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return cert_fail(a->e, -EBADMSG, "ACME %s: the answer of %s (HTTP %u) is not a JSON object: %s", what, url, resp->status,
                         j ? "another JSON value" : err.text);
    }
    *ret = j;
    return 0;
}

/* A problem document (RFC 7807) as the attempt's error; its type counted, its Retry-After kept. */
static int problem(acme *a, const char *what, const char *url, const keel_fetch_response *resp, char ret_type[static 64])
{
    _cleanup_(json_decrefp) json_t *j = json_loadb(resp->body, resp->size, 0, NULL);
    const char *type = j ? acme_json_text(j, "type") : NULL, *detail = j ? acme_json_text(j, "detail") : NULL;
    const char *short_type = type && strncmp(type, ERROR_PREFIX, strlen(ERROR_PREFIX)) == 0 ? type + strlen(ERROR_PREFIX) : "other";
    acme_count_error(a->s, short_type);
    a->problem_status = resp->status;
    (void) snprintf(ret_type, 64, "%s", short_type); /* a copy: the document goes with this function */
    a->s->retry_after = KEEL_MAX(a->s->retry_after, acme_retry_after(resp));
    int r = streq(short_type, "rateLimited") ? -EAGAIN : streq(short_type, "unauthorized") ? -EACCES : -EPROTO;
    return cert_fail(a->e, r, "ACME %s: %s answered %u %s: %s", what, url, resp->status, type ? type : "(no problem type)",
                     detail ? detail : "(no detail)");
}

static int fresh_nonce(acme *a)
{
    keel_fetch_response resp = {};
    char why[KEEL_FETCH_ERROR_MAX];
    int r = keel_fetch_request(a->fetch, "HEAD", a->new_nonce_url, NULL, NULL, 0, &resp, why);
    if (r < 0)
        return acme_fetch_failed(a, r, "newNonce", a->new_nonce_url, why);
    keep_nonce(a, &resp);
    unsigned status = resp.status;
    keel_fetch_response_done(&resp);
    if (!*a->nonce)
        return cert_fail(a->e, -EPROTO, "ACME newNonce: %s answered %u without a Replay-Nonce", a->new_nonce_url, status);
    return 0;
}

/* The JWS of @payload (NULL: a POST-as-GET) for @url, under the account's kid or, before there is
 * one, its jwk. */
static int sign(acme *a, const char *url, const char *payload, char **ret)
{
    char buf[2048];
    keel_strbuf sb = KEEL_STRBUF_INIT_GROWABLE(buf);
    keel_strbuf_printf(&sb, "{\"alg\":\"%s\",\"nonce\":\"", credential_alg(a->account));
    keel_strbuf_json(&sb, a->nonce);
    keel_strbuf_append(&sb, "\",\"url\":\"");
    keel_strbuf_json(&sb, url);
    if (a->kid) {
        keel_strbuf_append(&sb, "\",\"kid\":\"");
        keel_strbuf_json(&sb, a->kid);
        keel_strbuf_append(&sb, "\"}");
    } else
        keel_strbuf_printf(&sb, "\",\"jwk\":%s}", credential_jwk_members(a->account));
    int r = sb.truncated ? -ENOMEM : credential_sign_jws_flattened(a->account, sb.buf, payload, payload ? strlen(payload) : 0, ret);
    keel_strbuf_done(&sb);
    return r;
}

/* POSTs the signed @payload to @url (RFC 8555 §6.2), retrying a badNonce with the nonce it
 * carried. A 4xx or 5xx is the attempt's error. *@ret is the answer, for its headers and body. */
static int post(acme *a, const char *what, const char *url, const char *payload, keel_fetch_response *ret)
{
    for (int attempt = 0;; attempt++) {
        if (acme_cancelled(a)) /* between two requests, where no fetch notices it: a badNonce retry, the next step */
            return stopped(a, what);
        int r = *a->nonce ? 0 : fresh_nonce(a);
        if (r < 0)
            return r;
        _cleanup_free_ char *jws = NULL;
        if ((r = sign(a, url, payload, &jws)) < 0)
            return cert_fail(a->e, r, "ACME %s: cannot sign the request: %s", what, strerror(-r));
        keel_fetch_response resp = {};
        char why[KEEL_FETCH_ERROR_MAX];
        r = keel_fetch_request(a->fetch, "POST", url, (const char *const[]){ JOSE_JSON, NULL }, jws, strlen(jws), &resp, why);
        if (r < 0)
            return acme_fetch_failed(a, r, what, url, why);
        keep_nonce(a, &resp);
        if (resp.status < 400) {
            *ret = resp;
            return 0;
        }
        char type[64];
        r = problem(a, what, url, &resp, type);
        keel_fetch_response_done(&resp);
        if (!streq(type, "badNonce") || attempt >= NONCE_RETRIES)
            return r;
        CERT_LOG(KEEL_LOG_DEBUG, "%s; retrying with a new nonce", a->e->text);
    }
}

/* post() of a JSON answer, parsed into *@ret; the Location header into @location when not NULL. */
int acme_post_json(acme *a, const char *what, const char *url, const char *payload, json_t **ret, char **location)
{
    keel_fetch_response resp = {};
    int r = post(a, what, url, payload, &resp);
    if (r >= 0)
        r = acme_parse_object(a, what, url, &resp, ret);
    if (r >= 0 && location) {
        char buf[2048];
        const char *v = keel_fetch_response_header(&resp, "Location", buf, sizeof buf);
        if (!v)
            r = cert_fail(a->e, -EPROTO, "ACME %s: %s answered %u without a Location", what, url, resp.status);
        else if (!whole(v, sizeof buf))
            r = cert_fail(a->e, -EPROTO, "ACME %s: %s answered a Location of %zu bytes or more", what, url, sizeof buf - 1);
        else if (!(*location = strdup(buf)))
            r = -ENOMEM;
        if (r < 0) {
            json_decref(*ret);
            *ret = NULL;
        }
    }
    keel_fetch_response_done(&resp);
    return r;
}

/* ---- the order ----------------------------------------------------------------------------------------- */

/* The newOrder payload: the identifiers, the profile (draft-ietf-acme-profiles) and, for a renewal,
 * the certificate it replaces (RFC 9773 §5). */
static int order_payload(char *const *names, const char *profile, const char *replaces, char **ret)
{
    char buf[4096];
    keel_strbuf sb = KEEL_STRBUF_INIT_GROWABLE(buf);
    keel_strbuf_append(&sb, "{\"identifiers\":[");
    for (size_t i = 0; names[i]; i++) {
        keel_strbuf_printf(&sb, "%s{\"type\":\"%s\",\"value\":\"", i ? "," : "", cert_name_is_ip(names[i]) ? "ip" : "dns");
        keel_strbuf_json(&sb, names[i]);
        keel_strbuf_append(&sb, "\"}");
    }
    keel_strbuf_append(&sb, "]");
    if (profile && *profile) {
        keel_strbuf_append(&sb, ",\"profile\":\"");
        keel_strbuf_json(&sb, profile);
        keel_strbuf_append(&sb, "\"");
    }
    if (replaces) {
        keel_strbuf_append(&sb, ",\"replaces\":\"");
        keel_strbuf_json(&sb, replaces);
        keel_strbuf_append(&sb, "\"");
    }
    keel_strbuf_append(&sb, "}");
    *ret = sb.truncated ? NULL : strdup(sb.buf);
    keel_strbuf_done(&sb);
    return *ret ? 0 : -ENOMEM;
}

int acme_poll_status(acme *a, const char *what, const char *url, const char *const *waiting, json_t **ret)
{
    keel_usec_t interval = POLL_FIRST;
    for (;;) {
        keel_fetch_response resp = {};
        int r = post(a, what, url, NULL, &resp);
        _cleanup_(json_decrefp) json_t *j = NULL;
        if (r >= 0)
            r = acme_parse_object(a, what, url, &resp, &j);
        keel_usec_t after = r >= 0 ? acme_retry_after(&resp) : 0;
        keel_fetch_response_done(&resp);
        if (r < 0)
            return r;
        const char *status = acme_json_text(j, "status");
        if (!status || !keel_strv_contains(waiting, status)) {
            *ret = TAKE_PTR(j);
            return 0;
        }
        if ((r = pause_for(a, after ? after : interval, what)) < 0)
            return r;
        interval = KEEL_MIN(interval * 2, POLL_MAX);
    }
}

/* A CSR for @key and @names: subjectAltName every name, CN the first when it fits (64 bytes). */
static int make_csr(EVP_PKEY *key, char *const *names, char **ret)
{
    char san[8192];
    int r = cert_san_text(names, san, sizeof san);
    if (r < 0)
        return r;
    _cleanup_(X509_REQ_freep) X509_REQ *req = X509_REQ_new();
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    bool ok = req && ext && exts && sk_X509_EXTENSION_push(exts, ext) > 0;
    if (!ok)
        X509_EXTENSION_free(ext);
    ok = ok && X509_REQ_set_version(req, 0) == 1 &&
         (strlen(names[0]) > 64 || X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_UTF8,
                                                              (const unsigned char *) names[0], -1, -1, 0) == 1) &&
         X509_REQ_add_extensions(req, exts) == 1 && X509_REQ_set_pubkey(req, key) == 1 && X509_REQ_sign(req, key, EVP_sha256()) > 0;
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    unsigned char *der = NULL;
    int n = ok ? i2d_X509_REQ(req, &der) : -1;
    if (n <= 0)
        return -EIO;
    r = base64url(der, (size_t) n, ret);
    OPENSSL_free(der);
    return r;
}

static int finalize(acme *a, EVP_PKEY *key, const char *order_url, const json_t *order, char **ret_cert_url)
{
    const char *url = acme_json_text(order, "finalize");
    if (!url)
        return cert_fail(a->e, -EPROTO, "ACME: the order %s has no finalize URL", order_url);
    _cleanup_free_ char *csr = NULL, *payload = NULL;
    int r = make_csr(key, a->s->names, &csr);
    if (r < 0)
        return cert_fail(a->e, r, "ACME: cannot make the CSR: %s", strerror(-r));
    if (!(payload = keel_strdup_printf("{\"csr\":\"%s\"}", csr)))
        return -ENOMEM;
    _cleanup_(json_decrefp) json_t *finalized = NULL, *done = NULL;
    if ((r = acme_post_json(a, "finalize", url, payload, &finalized, NULL)) < 0)
        return r;
    if ((r = acme_poll_status(a, "issuance", order_url, (const char *const[]){ "pending", "ready", "processing", NULL }, &done)) <
        0)
        return r;
    const char *status = acme_json_text(done, "status") ?: "?", *cert = acme_json_text(done, "certificate");
    if (!streq(status, "valid") || !cert) {
        json_t *err = json_object_get(done, "error");
        return cert_fail(a->e, -EPROTO, "ACME: the order %s is %s after finalize: %s", order_url, status,
                         err ? acme_json_text(err, "detail") ?: "?" : "no certificate URL");
    }
    return (*ret_cert_url = strdup(cert)) ? 0 : -ENOMEM;
}

static int download(acme *a, EVP_PKEY *key, const char *url, cert_pair *ret)
{
    keel_fetch_response resp = {};
    int r = post(a, "certificate", url, NULL, &resp);
    if (r < 0)
        return r;
    char what[2200];
    (void) snprintf(what, sizeof what, "the certificate at %s", url);
    cert_pair p = {};
    r = cert_parse_certs(resp.body, resp.size, what, &p.leaf, &p.chain, a->e);
    keel_fetch_response_done(&resp);
    if (r < 0)
        return r;
    if (X509_check_private_key(p.leaf, key) != 1 || EVP_PKEY_up_ref(key) != 1) {
        cert_pair_done(&p);
        return cert_fail(a->e, -EKEYREJECTED, "ACME: %s is not for the key of the CSR", what);
    }
    p.key = key;
    *ret = p;
    return 0;
}

/* newOrder, naming the certificate it replaces. A CA that refuses the order for any reason but a rate
 * limit (the certificate replaced already by an order a crash kept from being stored, one of another
 * CA or account) is asked again without the name, as RFC 9773 §5 advises: the renewal matters more
 * than the hint. */
static int new_order(acme *a, json_t **ret, char **ret_url)
{
    _cleanup_free_ char *replaces = NULL, *payload = NULL;
    int r = acme_replaces(a, &replaces);
    if (r >= 0)
        r = order_payload(a->s->names, a->s->config.acme.profile, replaces, &payload);
    if (r < 0)
        return cert_fail(a->e, r, "ACME: cannot write the order: %s", strerror(-r));
    a->problem_status = 0;
    r = acme_post_json(a, "newOrder", a->new_order_url, payload, ret, ret_url);
    if (r >= 0 || r == -ECANCELED || !replaces || a->problem_status < 400 || a->problem_status == 429)
        return r;
    CERT_LOG(KEEL_LOG_WARNING, "%s; ordering again without replaces", a->e->text);
    _cleanup_free_ char *plain = NULL;
    if ((r = order_payload(a->s->names, a->s->config.acme.profile, NULL, &plain)) < 0)
        return r;
    return acme_post_json(a, "newOrder", a->new_order_url, plain, ret, ret_url);
}

static int order_certificate(acme *a, EVP_PKEY *key, cert_pair *ret)
{
    _cleanup_free_ char *order_url = NULL, *cert_url = NULL;
    _cleanup_(json_decrefp) json_t *order = NULL, *ready = NULL;
    int r = new_order(a, &order, &order_url);
    if (r < 0)
        return r;
    if ((r = acme_authorize(a, order, order_url)) < 0)
        return r;
    if ((r = acme_poll_status(a, "order", order_url, (const char *const[]){ "pending", NULL }, &ready)) < 0)
        return r;
    const char *status = acme_json_text(ready, "status") ?: "", *issued = acme_json_text(ready, "certificate");
    /* Finalized already (an order the CA kept from an attempt cut short): a second finalize would be
     * refused (orderNotReady); its certificate is taken if it is for this key (download()). */
    if (streq(status, "valid") && issued)
        return download(a, key, issued, ret);
    if (!streq(status, "ready"))
        return cert_fail(a->e, -EPROTO, "ACME: the order %s is %s, not ready", order_url, *status ? status : "?");
    if ((r = finalize(a, key, order_url, ready, &cert_url)) < 0)
        return r;
    return download(a, key, cert_url, ret);
}

/* ---- one issuance ---------------------------------------------------------------------------------------- */

void acme_done(acme *a)
{
    acme_responder_close(&a->responder);
    a->dns01 = dns01_solver_free(a->dns01);
    a->tls_alpn = tlsalpn01_responder_close(a->tls_alpn);
    a->fetch = keel_fetch_free(a->fetch);
    a->account = credential_unref(a->account);
    free(a->kid);
    free(a->new_nonce_url);
    free(a->new_account_url);
    free(a->new_order_url);
    free(a->renewal_info_url);
}

int acme_open(acme *a)
{
    const certificate_config *c = &a->s->config;
    char why[KEEL_FETCH_ERROR_MAX];
    keel_fetch_options o = { .ca_file = *c->acme.ca_file ? c->acme.ca_file : NULL,
                             .timeout = KEEL_MIN(c->acme.timeout, REQUEST_MAX),
                             .cancelled = acme_cancelled,
                             .userdata = a };
    int r = keel_fetch_new(&o, &a->fetch, why);
    if (r < 0)
        return cert_fail(a->e, r, "ACME: %s", why);
    if (!a->s->refresh_task) /* in start: a request wakes at a stop signal (a refresh task's stop has no descriptor) */
        (void) keel_fetch_set_cancel_fd(a->fetch, keel_app_stop_fd(a->s->app));
    return 0;
}

int acme_issue(cert_service *s, const char *directory_url, EVP_PKEY *key, cert_pair *ret, cert_error *e)
{
    const certificate_config *c = &s->config;
    _cleanup_(acme_done) acme a = { .s = s, .e = e, .directory_url = directory_url, .deadline = keel_now() + c->acme.timeout };
    keel_usec_t t0 = keel_now();
    s->retry_after = 0;
    int r = acme_open(&a);
    if (r < 0)
        return r;
    if ((r = acme_account_key(&a)) < 0 || (r = acme_read_directory(&a)) < 0 || (r = acme_find_or_create_account(&a)) < 0)
        return r;
    if ((r = order_certificate(&a, key, ret)) < 0)
        return r;
    char d[64];
    keel_format_duration(keel_now() - t0, d, sizeof d);
    CERT_LOG(KEEL_LOG_INFO, "Issued a certificate for %s by ACME (%s, account %s) in %s", s->names[0], directory_url, a.kid, d);
    return 0;
}
