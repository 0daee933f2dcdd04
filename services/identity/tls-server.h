/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * OpenSSL as the TLS of a Keel HTTP server (keel_http_options.tls = &tls_server_ops, tls_userdata
 * = a tls_server): the server's certificate is the identity's current credential ("self"), read
 * at each new connection so that a rotation applies to every connection made after it while those
 * made before keep theirs, or the operator's files, read again by tls_server_reload(). With a
 * client CA, clients may present a certificate, which must then verify to it (TLS 1.2 and later).
 */

#include <keel/http.h>

#include "identity.h"

typedef struct tls_server tls_server;

/** The most bytes of an error text, its NUL included. */
#define TLS_SERVER_ERROR_MAX 512

/**
 * A TLS server context for the current credential of @id (@id not NULL: "self"), or for the key
 * and certificate chain in @key_file and @cert_file (PEM). @client_ca_file (may be NULL or "") is
 * the PEM file of the CAs client certificates are verified against; without it none is asked
 * for. Returns 0, or a negative errno with the reason in @error naming the file.
 */
int tls_server_new(identity *id, const char *cert_file, const char *key_file, const char *client_ca_file, tls_server **ret,
                   char error[static TLS_SERVER_ERROR_MAX]);
/** Reads the files again (the operator's pair, the client CA): new connections get them; a bad
 * file leaves the context as it was and says why. Main thread. */
int tls_server_reload(tls_server *t, char error[static TLS_SERVER_ERROR_MAX]);
/** Frees @t, once the server using it is stopped. Accepts NULL; returns NULL. */
tls_server *tls_server_free(tls_server *t);
/** Whether client certificates are verified (a client CA is set). */
bool tls_server_verifies_clients(const tls_server *t);

extern const keel_http_tls_ops tls_server_ops;

/* A server's TLS as its service configures it (SERVICE.tls, SERVICE.tls_cert_file, …). */
typedef enum tls_server_mode {
    TLS_SERVER_OFF,
    TLS_SERVER_SELF,  /* the certificate service's credential, rotating with it */
    TLS_SERVER_FILES, /* cert_file and key_file, read again on refresh */
} tls_server_mode;

typedef struct tls_server_config {
    int mode; /* tls_server_mode */
    char *cert_file, *key_file, *client_ca_file;
} tls_server_config;

/* "off", "self", "files": the choices of SERVICE.tls. */
extern const char *const tls_server_mode_choices[];

/** The context @c asks for into *@ret (NULL when off), logged for @service ("token"); failures
 * are given to keel_app_fail(), naming the keys under @service. */
int tls_server_setup(keel_app *app, identity *id, const char *service, const tls_server_config *c, tls_server **ret);
/** A refresh: files mode reads its files again (a bad one keeps the previous pair, logged); self
 * follows rotations by itself. Accepts NULL. */
void tls_server_refresh(tls_server *t, const char *service, const tls_server_config *c);
