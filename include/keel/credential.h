/* SPDX-License-Identifier: MIT */
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <keel/app.h>

/**
 * The app's identity: a private key and, once issued, its certificate. The certificate service
 * makes and publishes them; the token service signs with them; anyone may read them. A credential
 * is immutable and reference-counted, so a reader keeps the one it took while a rotation publishes
 * the next. Body in core/credential.c.
 */
typedef struct keel_credential keel_credential;

/**
 * Makes a credential of the private key @key (EC P-256 or RSA of at least 2048 bits) and, when
 * already issued, its certificate @cert and the chain above it (@chain, may be NULL). Takes
 * references of its own. The key id is the RFC 7638 JWK thumbprint of the public key
 * (base64url SHA-256), so a key keeps its id whatever certificate it gets. Does not check that
 * @cert matches @key: see keel_credential_check(). Returns 0, -EINVAL (no key, another key
 * type, a short RSA key), -ENOMEM.
 */
KEEL_API int keel_credential_new(EVP_PKEY *key, X509 *cert, STACK_OF(X509) * chain, keel_credential **ret);
KEEL_API keel_credential *keel_credential_ref(keel_credential *c);
/** Drops a reference; accepts NULL; returns NULL. */
KEEL_API keel_credential *keel_credential_unref(keel_credential *c);

/** The private key (borrowed). */
KEEL_API EVP_PKEY *keel_credential_key(const keel_credential *c);
/** The certificate (borrowed), or NULL for a key whose certificate is not issued yet. */
KEEL_API X509 *keel_credential_cert(const keel_credential *c);
/** The chain above the certificate (borrowed), or NULL. */
KEEL_API STACK_OF(X509) * keel_credential_chain(const keel_credential *c);
/** The key id: the RFC 7638 thumbprint, 43 base64url characters. */
KEEL_API const char *keel_credential_kid(const keel_credential *c);
/** The JWS algorithm for the key: "ES256" or "RS256". */
KEEL_API const char *keel_credential_alg(const keel_credential *c);
/** The certificate's notBefore and notAfter in CLOCK_REALTIME µs; 0 and KEEL_USEC_INFINITY without one. */
KEEL_API keel_usec_t keel_credential_not_before(const keel_credential *c);
KEEL_API keel_usec_t keel_credential_not_after(const keel_credential *c);

/**
 * Checks that the credential has a certificate, that it belongs to the key, and that @now (CLOCK_REALTIME µs)
 * is within its validity. Returns 0, or -ENOKEY (no certificate), -EKEYREJECTED (another key's
 * certificate), -EKEYEXPIRED (expired, or not valid yet), with a one-line reason in @reason
 * (@size bytes, may be 0).
 */
KEEL_API int keel_credential_check(const keel_credential *c, keel_usec_t now, char *reason, size_t size);

/**
 * The public key as a JWK object ({"kty","crv","x","y"} or {"kty","n","e"}, plus "kid", "use":"sig"
 * and "alg"), NUL-terminated, into *@ret (freed by the caller). Returns 0 or -ENOMEM.
 */
KEEL_API int keel_credential_public_jwk(const keel_credential *c, char **ret);

/**
 * Signs a JWS in compact serialisation (RFC 7515): the protected header {"alg","typ":"JWT","kid"}
 * and the JSON @payload (@size bytes), with the key (ES256: raw r||s per RFC 7518 §3.4; RS256:
 * PKCS#1 v1.5). The NUL-terminated token goes into *@ret (freed by the caller). Thread-safe.
 * Returns 0, -ENOMEM, -EIO when OpenSSL fails.
 */
KEEL_API int keel_credential_sign_jws(const keel_credential *c, const char *payload, size_t size, char **ret);

/** Base64url without padding (RFC 4648 §5) of @size bytes, NUL-terminated, into *@ret. Returns 0 or -ENOMEM. */
KEEL_API int keel_base64url(const void *data, size_t size, char **ret);

/** The app's credential slots. */
typedef enum keel_credential_slot {
    KEEL_CREDENTIAL_PREVIOUS, /* the one before the last rotation: tokens it signed still verify */
    KEEL_CREDENTIAL_CURRENT,  /* the one in use */
    KEEL_CREDENTIAL_NEXT,     /* a new key made for the next rotation, published before its certificate */
    _KEEL_CREDENTIAL_SLOT_MAX,
    _KEEL_CREDENTIAL_SLOT_INVALID = -EINVAL,
} keel_credential_slot;

/** A new reference to the app's credential in @slot, or NULL when the slot is empty. Thread-safe. */
KEEL_API keel_credential *keel_app_get_credential(keel_app *app, keel_credential_slot slot);

/**
 * Makes @c (which must have a certificate) the current credential: the current one becomes the
 * previous one, and the next slot is emptied when it holds @c's key. Then calls every subscriber.
 * Thread-safe. Returns 0, -EINVAL (NULL, or no certificate), -ENOMEM.
 */
KEEL_API int keel_app_rotate_credential(keel_app *app, keel_credential *c);

/** Publishes @c (a key; its certificate may not exist yet) as the next credential, or empties the
 * slot with NULL, then calls every subscriber. Thread-safe. Returns 0 or -ENOMEM. */
KEEL_API int keel_app_set_next_credential(keel_app *app, keel_credential *c);

/** Called after every change of the slots, on the thread that made it, with no lock held. */
typedef void (*keel_credential_handler_t)(keel_app *app, void *userdata);

/** Subscribes @fn to changes of the slots. Subscribe before `start`. Returns 0 or -ENOMEM. */
KEEL_API int keel_app_subscribe_credential(keel_app *app, keel_credential_handler_t fn, void *userdata);
