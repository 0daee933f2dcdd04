/* SPDX-License-Identifier: MIT */
/* The token server's TLS (token.tls): the choices, and the context they make (tls-server.h). */
#include <stdio.h>

#include <keel/log.h>

#include "token.h"

const char *const token_tls_choices[] = { "off", "self", "files", NULL };

int token_tls_setup(keel_app *app, identity *id, const token_tls_config *c, tls_server **ret)
{
    char error[TLS_SERVER_ERROR_MAX];
    *ret = NULL;
    if (c->mode == TOKEN_TLS_OFF)
        return 0;
    if (c->mode == TOKEN_TLS_FILES && (!*c->cert_file || !*c->key_file))
        return keel_app_fail(app, -EINVAL, "token.tls is files: set token.tls_cert_file and token.tls_key_file");
    int r = tls_server_new(c->mode == TOKEN_TLS_SELF ? id : NULL, c->cert_file, c->key_file, c->client_ca_file, ret, error);
    if (r < 0)
        return keel_app_fail(app, r, "Cannot serve tokens over TLS: %s", error);
    keel_log_service("token", KEEL_LOG_INFO, "Serving over TLS with %s%s%s",
                     c->mode == TOKEN_TLS_SELF ? "the certificate service's credential" : c->cert_file,
                     *c->client_ca_file ? ", client certificates verified by " : "", c->client_ca_file);
    return 0;
}

void token_tls_reload(tls_server *t, const token_tls_config *c)
{
    char error[TLS_SERVER_ERROR_MAX];
    if (!t || c->mode != TOKEN_TLS_FILES)
        return; /* self follows the rotations by itself */
    if (tls_server_reload(t, error) < 0)
        keel_log_service("token", KEEL_LOG_WARNING, "Keeping the previous TLS certificate: %s", error);
    else
        keel_log_service("token", KEEL_LOG_INFO, "Reloaded the TLS certificate %s", c->cert_file);
}
