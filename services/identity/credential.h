/* SPDX-License-Identifier: MIT */
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <keel/common.h>
#include <keel/util.h>

/*
 * The agent's identity layer (a library its services share, not part of Keel): a credential is a
 * private key and, once issued, its certificate. The certificate service makes and publishes
 * them (identity.h); the token service signs with them; anyone may read them. A credential is
 * immutable and reference-counted, so a reader keeps the one it took while a rotation publishes
 * the next. JOSE lives here too (JWK, thumbprint, compact JWS) because a key id is defined by the
 * JWK of the key: the certificate service, the token service and JWKS must agree on it byte for
 * byte.
 */
typedef struct credential credential;

/**
 * Makes a credential of the private key @key (EC P-256 or RSA of at least 2048 bits) and, when
 * already issued, its certificate @cert and the chain above it (@chain, may be NULL). Takes
 * references of its own. The key id is the RFC 7638 JWK thumbprint of the public key
 * (base64url SHA-256), so a key keeps its id whatever certificate it gets. Does not check that
 * @cert matches @key: see credential_check(). Returns 0, -EINVAL (no key, another key
 * type, a short RSA key), -ENOMEM.
 */
int credential_new(EVP_PKEY *key, X509 *cert, STACK_OF(X509) * chain, credential **ret);
credential *credential_ref(credential *c);
/** Drops a reference; accepts NULL; returns NULL. */
credential *credential_unref(credential *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(credential *, credential_unref);

/** The private key (borrowed). */
EVP_PKEY *credential_key(const credential *c);
/** The certificate (borrowed), or NULL for a key whose certificate is not issued yet. */
X509 *credential_cert(const credential *c);
/** The chain above the certificate (borrowed), or NULL. */
STACK_OF(X509) * credential_chain(const credential *c);
/** The key id: the RFC 7638 thumbprint, 43 base64url characters. */
const char *credential_kid(const credential *c);
/** The JWS algorithm for the key: "ES256" or "RS256". */
const char *credential_alg(const credential *c);
/** The certificate's notBefore and notAfter in CLOCK_REALTIME µs; 0 and KEEL_USEC_INFINITY without one. */
keel_usec_t credential_not_before(const credential *c);
keel_usec_t credential_not_after(const credential *c);

/**
 * Checks that the credential has a certificate, that it belongs to the key, and that @now (CLOCK_REALTIME µs)
 * is within its validity. Returns 0, or -ENOKEY (no certificate), -EKEYREJECTED (another key's
 * certificate), -EKEYEXPIRED (expired, or not valid yet), with a one-line reason in @reason
 * (@size bytes, may be 0).
 */
int credential_check(const credential *c, keel_usec_t now, char *reason, size_t size);

/**
 * The public key as a JWK object ({"kty","crv","x","y"} or {"kty","n","e"}, plus "kid", "use":"sig"
 * and "alg"), NUL-terminated, into *@ret (freed by the caller). Returns 0 or -ENOMEM.
 */
int credential_public_jwk(const credential *c, char **ret);

/**
 * Signs a JWS in compact serialisation (RFC 7515): the protected header {"alg","typ":"JWT","kid"}
 * and the JSON @payload (@size bytes), with the key (ES256: raw r||s per RFC 7518 §3.4; RS256:
 * PKCS#1 v1.5). The NUL-terminated token goes into *@ret (freed by the caller). Thread-safe.
 * Returns 0, -ENOMEM, -EIO when OpenSSL fails.
 */
int credential_sign_jws(const credential *c, const char *payload, size_t size, char **ret);

/**
 * Signs @payload (@size bytes; 0 for an ACME POST-as-GET, whose payload is empty) under the
 * protected header @protected_header — a JSON object the caller writes, for ACME (RFC 8555 §6.2)
 * {"alg","nonce","url","jwk"} or {"alg","nonce","url","kid"} — as a JWS in flattened JSON
 * serialisation (RFC 7515 §7.2.2): {"protected","payload","signature"}, each base64url, into
 * *@ret (freed by the caller). Thread-safe. Returns 0, -EINVAL, -ENOMEM, -EIO.
 */
int credential_sign_jws_flattened(const credential *c, const char *protected_header, const char *payload, size_t size, char **ret);

/** The public key as a JWK of its RFC 7638 members only, in their order ({"crv","kty","x","y"} or
 * {"e","kty","n"}): the "jwk" of an ACME request, and what the key id is the thumbprint of. */
const char *credential_jwk_members(const credential *c);

/** Base64url without padding (RFC 4648 §5) of @size bytes, NUL-terminated, into *@ret. Returns 0 or -ENOMEM. */
int base64url(const void *data, size_t size, char **ret);
