/* SPDX-License-Identifier: MIT */
#pragma once

#include <openssl/ssl.h>

/* libssl, loaded with dlopen() the first time a server is configured for TLS (tls-server.c) or
 * the ACME tls-alpn-01 responder opens (services/certificate/acme-tlsalpn01.c). Linked in, it is
 * mapped in every agent and its relocated data (~240 kB) stays resident in one that serves no
 * TLS: that was over the idle memory budget (docs/performance.md, "Idle memory"). Once loaded it
 * stays: libcrypto, which it runs on, is never unloaded anyway. Each function is called through
 * sym_NAME, typed from OpenSSL's own declaration; the macros of ssl.h that the servers use are
 * spelled out on sym_SSL_CTX_ctrl. */
#define LIBSSL_FUNCTIONS(X)                                                                                                        \
    X(SSL_CTX_check_private_key)                                                                                                   \
    X(SSL_CTX_ctrl)                                                                                                                \
    X(SSL_CTX_free)                                                                                                                \
    X(SSL_CTX_load_verify_locations)                                                                                               \
    X(SSL_CTX_new)                                                                                                                 \
    X(SSL_CTX_set_alpn_select_cb)                                                                                                  \
    X(SSL_CTX_set_client_CA_list)                                                                                                  \
    X(SSL_CTX_set_client_hello_cb)                                                                                                 \
    X(SSL_CTX_set_num_tickets)                                                                                                     \
    X(SSL_CTX_set_options)                                                                                                         \
    X(SSL_CTX_set_session_id_context)                                                                                              \
    X(SSL_CTX_set_verify)                                                                                                          \
    X(SSL_CTX_use_PrivateKey)                                                                                                      \
    X(SSL_CTX_use_PrivateKey_file)                                                                                                 \
    X(SSL_CTX_use_certificate)                                                                                                     \
    X(SSL_CTX_use_certificate_chain_file)                                                                                          \
    X(SSL_client_hello_get0_ext)                                                                                                   \
    X(SSL_do_handshake)                                                                                                            \
    X(SSL_free)                                                                                                                    \
    X(SSL_get0_alpn_selected)                                                                                                      \
    X(SSL_get0_peer_certificate)                                                                                                   \
    X(SSL_get_error)                                                                                                               \
    X(SSL_get_servername)                                                                                                          \
    X(SSL_get_verify_result)                                                                                                       \
    X(SSL_has_pending)                                                                                                             \
    X(SSL_is_init_finished)                                                                                                        \
    X(SSL_load_client_CA_file)                                                                                                     \
    X(SSL_new)                                                                                                                     \
    X(SSL_read)                                                                                                                    \
    X(SSL_select_next_proto)                                                                                                       \
    X(SSL_set_accept_state)                                                                                                        \
    X(SSL_set_fd)                                                                                                                  \
    X(SSL_shutdown)                                                                                                                \
    X(SSL_use_PrivateKey)                                                                                                          \
    X(SSL_use_certificate)                                                                                                         \
    X(SSL_write)                                                                                                                   \
    X(TLS_server_method)

#define LIBSSL_DECLARE(name) extern __typeof__(name) *sym_##name;
LIBSSL_FUNCTIONS(LIBSSL_DECLARE)
#undef LIBSSL_DECLARE

/* Loads libssl.so.3 and resolves every sym_ function, once per process (thread-safe). 0, or
 * -ENOENT with dlerror()'s reason in @error (@size bytes). */
int libssl_load(char *error, size_t size);
