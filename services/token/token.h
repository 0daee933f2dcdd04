/* SPDX-License-Identifier: MIT */
#pragma once

#include <keel/service.h>

#include "jwt.h"
#include "tls-server.h"

/* What the token service and the `keel token` command share. */

/* The issuer and expiry tokens are made with, from the token service @s's configuration as loaded
 * (main thread). */
token_params token_config_params(keel_service *s);

/* Declares the `token` command and observes it (command.c); @token is the token service, whose
 * configuration the command mints with. */
int token_command_register(keel_app *app, keel_service *token);

/* token.tls (tls.c): off, self (the certificate service's credential, rotating with it) or files. */
typedef enum token_tls_mode {
    TOKEN_TLS_OFF,
    TOKEN_TLS_SELF,
    TOKEN_TLS_FILES,
} token_tls_mode;

typedef struct token_tls_config {
    int mode; /* token_tls_mode */
    char *cert_file, *key_file, *client_ca_file;
} token_tls_config;

extern const char *const token_tls_choices[];

/* The TLS context the configuration asks for into *@ret (NULL with TLS off); failures are given to
 * keel_app_fail(). */
int token_tls_setup(keel_app *app, identity *id, const token_tls_config *c, tls_server **ret);
/* SIGHUP: the operator's files are read again; a bad one keeps the previous context (logged). */
void token_tls_reload(tls_server *t, const token_tls_config *c);
