/* SPDX-License-Identifier: MIT */
/* The http-01 responder (RFC 8555 §8.3): GET /.well-known/acme-challenge/TOKEN answers the key
 * authorization, on the app's own HTTP server — mounted on the one certificate.acme.http01_server
 * names, or on one of our own at its address while that one is not up yet. */
#include <stdio.h>

#include "acme.h"

#define PREFIX "/.well-known/acme-challenge/"

static int answer(keel_http_request *req, void *userdata)
{
    acme_responder *r = userdata;
    const char *path = keel_http_request_path(req);
    if (strncmp(path, PREFIX, strlen(PREFIX)) != 0)
        return keel_http_respond_static(req, 404, "text/plain; charset=utf-8",
                                        "not found: this server answers ACME challenges only\n");
    const char *token = path + strlen(PREFIX);
    char *body = NULL;
    (void) pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n_challenges && !body; i++)
        if (streq(r->challenges[i].token, token))
            body = strdup(r->challenges[i].key_authorization);
    (void) pthread_mutex_unlock(&r->lock);
    if (!body)
        return keel_http_respond_static(req, 404, "text/plain; charset=utf-8", "no such ACME challenge\n");
    CERT_LOG(KEEL_LOG_INFO, "Answering the ACME http-01 challenge %s to %s", token, keel_http_request_peer(req));
    int ret = keel_http_respond(req, 200, "application/octet-stream", body, strlen(body), NULL);
    free(body);
    return ret;
}

/* A server of our own where the named one listens, for the issuance in start. */
static int own_server(acme_responder *r, const char *server, cert_error *e)
{
    char key[128];
    (void) snprintf(key, sizeof key, "%s.address", server);
    const keel_address *address = keel_app_config_value(r->app, key, KEEL_CONFIG_ADDRESS);
    if (!address)
        return cert_fail(e, -ENOENT,
                         "certificate.acme.http01_server: '%s' is not serving and there is no key %s to answer http-01 "
                         "challenges at",
                         server, key);
    keel_http_options o = {
        .service = "acme-http01", .label = "ACME http-01 responder", .address = *address, .handler = answer, .userdata = r
    };
    int ret = keel_http_server_start_new(r->app, &o, &r->server);
    if (ret < 0)
        return cert_fail(e, ret, "ACME: cannot answer http-01 challenges at %s's address %s:%u: %s", server, address->host,
                         address->port, strerror(-ret));
    return 0;
}

int acme_responder_open(acme_responder *r, cert_service *s, cert_error *e)
{
    const char *server = s->config.acme.http01_server;
    *r = (acme_responder){ .app = s->app, .open = true };
    (void) pthread_mutex_init(&r->lock, NULL);
    if (keel_http_serving(s->app, server)) {
        int ret = keel_http_mount_add(s->app, server, PREFIX, answer, r, &r->mount);
        return ret < 0 ? cert_fail(e, ret, "ACME: cannot mount the http-01 responder: %s", strerror(-ret)) : 0;
    }
    /* Only start may start a server: later, the named one is down because the app is stopping. */
    if (s->refresh_task || keel_app_event(s->app) != KEEL_EVENT_START)
        return cert_fail(e, -ESHUTDOWN, "ACME: the http-01 server '%s' is not serving", server);
    return own_server(r, server, e);
}

int acme_answer(acme_responder *r, const char *token, const char *thumbprint)
{
    if (!*token || strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != strlen(token))
        return -EINVAL;
    acme_challenge c = { .token = strdup(token), .key_authorization = keel_strdup_printf("%s.%s", token, thumbprint) };
    (void) pthread_mutex_lock(&r->lock);
    acme_challenge *grown = c.token && c.key_authorization ? realloc(r->challenges, (r->n_challenges + 1) * sizeof c) : NULL;
    if (grown) {
        r->challenges = grown;
        r->challenges[r->n_challenges++] = c;
    }
    (void) pthread_mutex_unlock(&r->lock);
    if (grown)
        return 0;
    free(c.token);
    free(c.key_authorization);
    return -ENOMEM;
}

void acme_responder_close(acme_responder *r)
{
    if (!r->open)
        return;
    r->mount = keel_http_mount_remove(r->mount);
    if (r->server)
        (void) keel_http_server_stop_and_free(r->app, &r->server);
    for (size_t i = 0; i < r->n_challenges; i++) {
        free(r->challenges[i].token);
        free(r->challenges[i].key_authorization);
    }
    free(r->challenges);
    (void) pthread_mutex_destroy(&r->lock);
    *r = (acme_responder){};
}
