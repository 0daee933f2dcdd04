/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The ACME tls-alpn-01 challenge (RFC 8737; RFC 8738 §6 for IP addresses), answered by a TLS
 * listener of its own (acme-tlsalpn01.c; the certificate: acme-tlsalpn01-cert.c;
 * docs/decisions/0034): to a ClientHello that offers the ALPN protocol "acme-tls/1" and names
 * (SNI) an identifier being validated, it presents that identifier's validation certificate,
 * completes the handshake with acme-tls/1 and closes; no application data is ever read or
 * written. Any other ClientHello fails its handshake. libssl is loaded on demand
 * (services/identity/libssl.c, decision 19). Every function returns 0 or a negative errno and,
 * where it takes one, a one-line reason in a cert_error.
 */

#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <keel/config.h>

#include "certificate.h"

/* The ALPN protocol of RFC 8737 §6.2. */
#define TLSALPN01_PROTOCOL "acme-tls/1"
/* An SNI as long as DNS allows, or an IPv6 address's reverse name (72 bytes). */
#define TLSALPN01_NAME_MAX 255

/* ---- configuration: certificate.acme.tls_alpn01.* ------------------------------------------ */

/* The storage of tlsalpn01_config_keys. */
typedef struct tlsalpn01_config {
    keel_address address; /* where the responder listens: port 443 of every name must reach it */
} tlsalpn01_config;

extern const keel_config_key tlsalpn01_config_keys[];
extern const size_t tlsalpn01_n_config_keys;

/* ---- the validation certificate ------------------------------------------------------------ */

/*
 * The validation certificate of RFC 8737 §3 for @identifier (a DNS name, or an IP address: RFC
 * 8738) and @key_authorization ("TOKEN.THUMBPRINT"), self-signed with @key: subjectAltName the
 * one identifier (dNSName or iPAddress), and the critical id-pe-acmeIdentifier extension
 * (1.3.6.1.5.5.7.1.31) whose value is an ASN.1 OCTET STRING of SHA-256(@key_authorization).
 * -EINVAL for a wildcard or a name that is not one, or an empty key authorization.
 */
int tlsalpn01_certificate(EVP_PKEY *key, const char *identifier, const char *key_authorization, X509 **ret);

/* The server name (SNI) a CA sends to validate @identifier: the DNS name in lower case, or for an
 * IP address its reverse name ("1.0.0.127.in-addr.arpa", RFC 8738 §6). -EINVAL for a name that
 * is not one. */
int tlsalpn01_server_name(const char *identifier, char ret[static TLSALPN01_NAME_MAX + 1]);

/* ---- the responder --------------------------------------------------------------------------- */

typedef struct tlsalpn01_responder tlsalpn01_responder;

/* The name of the socket systemd may pass for the responder (conf/keel-acme-tls-alpn.socket): port
 * 443 without CAP_NET_BIND_SERVICE. */
#define TLSALPN01_SOCKET_NAME "acme-tls-alpn"

/*
 * Listens on the socket systemd passed as TLSALPN01_SOCKET_NAME, else at @address (port 0: a free
 * one), and answers on a thread of its own until closed, with a fresh EC P-256 key for its
 * validation certificates. Errors: libssl not loadable (-ENOENT), bind errors (-EADDRINUSE,
 * -EACCES below 1024 without CAP_NET_BIND_SERVICE, ...).
 */
int tlsalpn01_responder_open(const keel_address *address, tlsalpn01_responder **ret, cert_error *e);
/* The port it listens on (the one picked, for port 0). */
uint16_t tlsalpn01_responder_port(const tlsalpn01_responder *r);
/* Answers the validation of @identifier with @key_authorization from now on; an identifier added
 * again gets the new key authorization. Errors as tlsalpn01_certificate(), and -ENOMEM. Any thread. */
int tlsalpn01_add(tlsalpn01_responder *r, const char *identifier, const char *key_authorization, cert_error *e);
/* Stops answering for @identifier: 0, or -ENOENT when it was not added. A handshake already past
 * its ClientHello keeps the certificate it was given. Any thread. */
int tlsalpn01_remove(tlsalpn01_responder *r, const char *identifier);
/* Closes the listener and every connection, joins the thread, frees @r. Accepts NULL; returns NULL. */
tlsalpn01_responder *tlsalpn01_responder_close(tlsalpn01_responder *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(tlsalpn01_responder *, tlsalpn01_responder_close);
