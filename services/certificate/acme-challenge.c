/* SPDX-License-Identifier: MIT */
/*
 * The authorizations of an order (RFC 8555 §7.5) and their challenges, chosen by
 * certificate.acme.challenges (acme-choice.c, docs/decisions/0033): every authorization's
 * challenge is presented first (a dns-01 record waits for the server to serve it, so the CA
 * never looks too early), then the CA is asked to look at each, then each is polled to its
 * verdict. A type that cannot be presented (the name server refuses the update) falls back to the
 * next configured type the CA offers. Every dns-01 record added is deleted at the end, whatever
 * the outcome, a stop included.
 */
#include <stdio.h>

#include "acme.h"

#define ERROR_PREFIX "urn:ietf:params:acme:error:"

static const keel_config_key challenge_config_keys[] = {
    { .key = "certificate.acme.challenges",
      .type = KEEL_CONFIG_LIST,
      .offset = offsetof(cert_service, config.acme.challenges),
      .def = "[http-01]",
      .help = "provider acme: the challenge types to validate names with, in order (http-01, dns-01, tls-alpn-01): the first the "
              "CA offers, "
              "the next it offers when one cannot be presented" },
};

/* One authorization of the order. */
typedef struct authz {
    const char *url;           /* borrowed from the order */
    json_t *body;              /* owned: the authorization as first read */
    char name[260];            /* for messages: "*.example.test" for a wildcard */
    const char *domain;        /* the identifier's value, borrowed from body */
    acme_challenge_type type;  /* presented, or _ACME_CHALLENGE_TYPE_INVALID (valid already) */
    const char *challenge_url; /* of the challenge presented, borrowed from body */
    char *dns01_record;        /* owned: the key authorization of a dns-01 record to delete, or NULL */
    bool tlsalpn01_added;      /* the tls-alpn-01 responder serves a certificate for domain */
} authz;

typedef struct authz_list {
    acme *a; /* borrowed */
    authz *items;
    size_t n;
} authz_list;

static int present_http01(acme *a, authz *z, const char *token);
static int present_dns01(acme *a, authz *z, const char *token);
static int present_tlsalpn01(acme *a, authz *z, const char *token);

/* The hook of each type. */
static int (*const presenters[_ACME_CHALLENGE_TYPE_MAX])(acme *a, authz *z, const char *token) = {
    [ACME_CHALLENGE_HTTP01] = present_http01,
    [ACME_CHALLENGE_DNS01] = present_dns01,
    [ACME_CHALLENGE_TLSALPN01] = present_tlsalpn01,
};

static const char *const result_table[_ACME_VALIDATION_RESULT_MAX] = {
    [ACME_VALIDATION_VALID] = "valid",
    [ACME_VALIDATION_INVALID] = "invalid",
    [ACME_VALIDATION_ERROR] = "error",
};

int acme_challenge_register_metrics(cert_service *s)
{
    keel_metrics *m = keel_app_metrics(s->app);
    int r = 0;
    for (acme_challenge_type t = 0; t < _ACME_CHALLENGE_TYPE_MAX && r >= 0; t++) {
        if (!presenters[t]) /* no series for a type that cannot be configured yet */
            continue;
        for (size_t i = 0; i < _ACME_VALIDATION_RESULT_MAX && r >= 0; i++)
            r = keel_metrics_counter(
                m, "keel_certificate_acme_validations_total",
                "Challenges presented to the ACME server, by type and result (error: not presented, or no verdict)",
                (const char *const[]){ "type", acme_challenge_type_to_string(t), "result", result_table[i], NULL },
                &s->acme_validations[t][i]);
    }
    return r;
}

static void count_validation(cert_service *s, acme_challenge_type t, acme_validation_result result)
{
    if (t >= 0 && s->acme_validations[t][result])
        keel_counter_add(s->acme_validations[t][result], 1);
}

int acme_challenges_configure(cert_service *s, keel_app *app)
{
    cert_error e = {};
    int r = acme_challenge_types_parse(s->config.acme.challenges, s->challenge_types, &s->n_challenge_types, &e);
    if (r < 0 || s->config.provider != CERT_PROVIDER_ACME)
        return r < 0 ? keel_app_fail(app, r, "%s", e.text) : 0;
    if ((r = acme_challenge_names_check(s->config.dns_names, s->challenge_types, s->n_challenge_types, &e)) < 0)
        return keel_app_fail(app, r, "%s", e.text);
    bool dns01 = false;
    for (size_t i = 0; i < s->n_challenge_types; i++)
        dns01 = dns01 || s->challenge_types[i] == ACME_CHALLENGE_DNS01;
    if (!dns01)
        return 0;
    /* The keys and the secret file now, not at the first issuance: exit 78 with the key named. */
    _cleanup_(dns01_solver_freep) dns01_solver *solver = NULL;
    if ((r = dns01_solver_new(&s->dns01, &solver, &e)) < 0)
        return keel_app_fail(app, r, "%s; certificate.acme.challenges lists dns-01", e.text);
    if (s->dns01.propagation >= s->config.acme.timeout) {
        char p[32], t[32];
        CERT_LOG(KEEL_LOG_WARNING,
                 "certificate.acme.dns01.propagation_timeout (%s) is not below certificate.acme.timeout (%s): a slow name "
                 "server ends the issuance before the propagation wait does",
                 keel_format_duration(s->dns01.propagation, p, sizeof p),
                 keel_format_duration(s->config.acme.timeout, t, sizeof t));
    }
    return 0;
}

/* ---- presenting -------------------------------------------------------------------------------- */

static int wait_for_stop(keel_usec_t usec, void *userdata)
{
    return acme_wait(userdata, usec);
}

static int present_http01(acme *a, authz *z, const char *token)
{
    int r = a->responder.open ? 0 : acme_responder_open(&a->responder, a->s, a->e);
    if (r < 0) {
        acme_responder_close(&a->responder); /* half open: the next http-01 challenge tries again */
        return r;
    }
    if ((r = acme_answer(&a->responder, token, credential_kid(a->account))) < 0)
        return cert_fail(a->e, r, "ACME: the http-01 token of %s is not usable: %s", z->name, strerror(-r));
    return 0;
}

static int present_dns01(acme *a, authz *z, const char *token)
{
    int r = 0;
    if (!a->dns01 && (r = dns01_solver_new(&a->s->dns01, &a->dns01, a->e)) >= 0) {
        /* The app's stop descriptor is readable from a stop signal on (pending in start, taken by
         * the loop later): an exchange ends at once. A refresh task's stop for any other reason has
         * no descriptor, and is asked between polls. */
        dns01_solver_set_stop(a->dns01, &(dns01_stop){ .wait = wait_for_stop,
                                                       .cancelled = acme_cancelled,
                                                       .userdata = a,
                                                       .fd = keel_app_stop_fd(a->s->app),
                                                       .deadline = a->deadline });
    }
    _cleanup_free_ char *key_authorization = keel_strdup_printf("%s.%s", token, credential_kid(a->account));
    if (r < 0 || !key_authorization)
        return r < 0 ? r : -ENOMEM;
    r = dns01_present(a->dns01, z->domain, key_authorization, a->e);
    /* The server refused the update: nothing was added. Any other failure may leave the record. */
    if (r != -EPERM && r != -EIO)
        z->dns01_record = TAKE_PTR(key_authorization);
    return r;
}

/* RFC 8737: a certificate for the one name, with the key authorization's digest, on a TLS listener
 * of its own that completes only acme-tls/1 handshakes (decision 34); opened at the first. */
static int present_tlsalpn01(acme *a, authz *z, const char *token)
{
    int r = a->tls_alpn ? 0 : tlsalpn01_responder_open(&a->s->tlsalpn01.address, &a->tls_alpn, a->e);
    _cleanup_free_ char *key_authorization = keel_strdup_printf("%s.%s", token, credential_kid(a->account));
    if (r < 0 || !key_authorization)
        return r < 0 ? r : -ENOMEM;
    if ((r = tlsalpn01_add(a->tls_alpn, z->domain, key_authorization, a->e)) >= 0)
        z->tlsalpn01_added = true;
    return r;
}

static void cleanup_one(acme *a, authz *z)
{
    cert_error e = {};
    if (z->tlsalpn01_added && a->tls_alpn)
        (void) tlsalpn01_remove(a->tls_alpn, z->domain);
    z->tlsalpn01_added = false;
    if (!z->dns01_record)
        return;
    if (a->dns01 && dns01_cleanup(a->dns01, z->domain, z->dns01_record, &e) < 0)
        CERT_LOG(KEEL_LOG_WARNING, "%s, ignoring", e.text);
    free(z->dns01_record);
    z->dns01_record = NULL;
}

static void authz_list_done(authz_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        cleanup_one(l->a, &l->items[i]);
        json_decref(l->items[i].body);
    }
    free(l->items);
}

/* Presents the challenge of the first configured type @z offers; at a failure, the next one's. */
static int present(acme *a, authz *z)
{
    const cert_service *s = a->s;
    const json_t *c = NULL;
    int i = acme_challenge_pick(z->body, s->challenge_types, s->n_challenge_types, 0, &c);
    if (i < 0)
        return cert_fail(a->e, -EPROTO, "ACME: the authorization of %s (%s) offers none of certificate.acme.challenges", z->name,
                         z->url);
    for (;;) {
        acme_challenge_type t = s->challenge_types[i];
        const char *token = json_string_value(json_object_get(c, "token"));
        z->challenge_url = json_string_value(json_object_get(c, "url"));
        int r = !token || !z->challenge_url ? cert_fail(a->e, -EPROTO, "ACME: the %s challenge of %s has no token or URL",
                                                        acme_challenge_type_to_string(t), z->name)
                                            : presenters[t](a, z, token);
        if (r >= 0) {
            z->type = t;
            CERT_LOG(KEEL_LOG_INFO, "Presented the ACME %s challenge of %s", acme_challenge_type_to_string(t), z->name);
            return 0;
        }
        if (r == -ECANCELED)
            return r;
        count_validation(a->s, t, ACME_VALIDATION_ERROR);
        if ((i = acme_challenge_pick(z->body, s->challenge_types, s->n_challenge_types, (size_t) i + 1, &c)) < 0)
            return r;
        CERT_LOG(KEEL_LOG_WARNING, "%s; falling back to %s for %s", a->e->text,
                 acme_challenge_type_to_string(s->challenge_types[i]), z->name);
    }
}

/* ---- the authorizations -------------------------------------------------------------------------- */

/* Reads the authorization at @z->url; valid already (reused for this account), it needs nothing. */
static int read_authz(acme *a, authz *z)
{
    int r = acme_post_json(a, "authorization", z->url, NULL, &z->body, NULL);
    if (r < 0)
        return r;
    const json_t *id = json_object_get(z->body, "identifier");
    z->domain = json_string_value(json_object_get(id, "value")) ?: "?";
    (void) snprintf(z->name, sizeof z->name, "%s%s", json_is_true(json_object_get(z->body, "wildcard")) ? "*." : "", z->domain);
    return 0;
}

/* The first problem of a failed challenge, for the message; its short type counted. */
static void challenge_problem(cert_service *s, const json_t *body, char *buf, size_t size)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(body, "challenges"), i, c)
    {
        json_t *err = json_object_get(c, "error");
        const char *type = err ? acme_json_text(err, "type") : NULL;
        if (!err)
            continue;
        bool ours = type && strncmp(type, ERROR_PREFIX, strlen(ERROR_PREFIX)) == 0;
        acme_count_error(s, ours ? type + strlen(ERROR_PREFIX) : "other");
        (void) snprintf(buf, size, "%s: %s", type ? type : "?", acme_json_text(err, "detail") ?: "(no detail)");
        return;
    }
    (void) snprintf(buf, size, "no challenge says why");
}

/* Polls @z to its verdict, counted. */
static int verdict(acme *a, authz *z)
{
    _cleanup_(json_decrefp) json_t *done = NULL;
    int r = acme_poll_status(a, "validation", z->url, (const char *const[]){ "pending", NULL }, &done);
    if (r < 0) {
        if (r != -ECANCELED)
            count_validation(a->s, z->type, ACME_VALIDATION_ERROR);
        return r;
    }
    const char *status = acme_json_text(done, "status") ?: "?";
    bool valid = streq(status, "valid");
    count_validation(a->s, z->type, valid ? ACME_VALIDATION_VALID : ACME_VALIDATION_INVALID);
    if (valid)
        return 0;
    char why[512];
    challenge_problem(a->s, done, why, sizeof why);
    return cert_fail(a->e, -EKEYREJECTED, "ACME: the %s validation of %s failed (authorization %s): %s",
                     acme_challenge_type_to_string(z->type), z->name, status, why);
}

int acme_authorize(acme *a, const json_t *order, const char *order_url)
{
    const json_t *urls = json_object_get(order, "authorizations");
    _cleanup_(authz_list_done) authz_list l = { .a = a, .items = calloc(json_array_size(urls) + 1, sizeof(authz)) };
    if (!l.items)
        return -ENOMEM;
    int r = 0;
    for (; l.n < json_array_size(urls) && r >= 0; l.n++) {
        authz *z = &l.items[l.n];
        z->type = _ACME_CHALLENGE_TYPE_INVALID; /* nothing presented (yet) */
        if (!(z->url = json_string_value(json_array_get(urls, l.n))))
            return cert_fail(a->e, -EPROTO, "ACME: the order %s lists an authorization that is not a URL", order_url);
        r = read_authz(a, z);
        if (r >= 0 && !streq(acme_json_text(z->body, "status") ?: "", "valid"))
            r = present(a, z);
    }
    for (size_t i = 0; i < l.n && r >= 0; i++) {
        _cleanup_(json_decrefp) json_t *answered = NULL;
        if (l.items[i].type >= 0)
            r = acme_post_json(a, "challenge", l.items[i].challenge_url, "{}", &answered, NULL);
    }
    for (size_t i = 0; i < l.n && r >= 0; i++)
        if (l.items[i].type >= 0)
            r = verdict(a, &l.items[i]);
    return r;
}

/* The rows of acme-dns01.c and of this file, which the service's own table cannot hold: their
 * storage is the service's state too. */
int acme_challenge_add_config(keel_app *app, cert_service *s)
{
    int r = keel_app_add_config(app, challenge_config_keys, ELEMENTSOF(challenge_config_keys), s);
    if (r >= 0)
        r = keel_app_add_config(app, dns01_config_keys, dns01_n_config_keys, &s->dns01);
    return r < 0 ? r : keel_app_add_config(app, tlsalpn01_config_keys, tlsalpn01_n_config_keys, &s->tlsalpn01);
}
