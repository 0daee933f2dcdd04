/* SPDX-License-Identifier: MIT */
/* The tls-alpn-01 validation certificate (RFC 8737 §3; RFC 8738 for IP addresses) and the server
 * name a CA sends for an identifier (tlsalpn01.h). libcrypto only: it is linked, and a unit test
 * reads the certificate without a handshake. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "openssl-util.h"
#include "tlsalpn01.h"

/* notBefore this far back, for a CA whose clock is a little behind; a validation lasts minutes. */
#define CLOCK_SKEW_S 300
#define LIFETIME_S   (7 * 24 * 3600)
/* id-pe-acmeIdentifier (RFC 8737 §6.1). */
#define OID_ACME_IDENTIFIER "1.3.6.1.5.5.7.1.31"

static int set_random_serial(X509 *x)
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1)
        return -EIO;
    b[0] = (unsigned char) ((b[0] & 0x7f) | 0x40); /* positive, a full 16 bytes (RFC 5280 §4.1.2.2) */
    _cleanup_(BN_freep) BIGNUM *bn = BN_bin2bn(b, sizeof b, NULL);
    return bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ? 0 : -ENOMEM;
}

/* The subject is a fixed CN, not the identifier: a DNS name may be longer than CN's 64 bytes,
 * and the CA reads the subjectAltName only (RFC 8737 §3). */
static int set_basics(X509 *x, EVP_PKEY *key)
{
    X509_NAME *name = X509_get_subject_name(x);
    if (X509_set_version(x, X509_VERSION_3) != 1 || !X509_gmtime_adj(X509_getm_notBefore(x), -CLOCK_SKEW_S) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), LIFETIME_S) ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *) "ACME tls-alpn-01 challenge", -1, -1, 0) !=
            1 ||
        X509_set_issuer_name(x, name) != 1 || X509_set_pubkey(x, key) != 1)
        return -ENOMEM;
    return set_random_serial(x);
}

static int add_san(X509 *x, const char *identifier)
{
    char value[TLSALPN01_NAME_MAX + 8];
    (void) snprintf(value, sizeof value, "%s:%s", cert_name_is_ip(identifier) ? "IP" : "DNS", identifier);
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    _cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, value);
    return ext && X509_add_ext(x, ext, -1) == 1 ? 0 : -EINVAL;
}

/* extnValue holds the DER of an OCTET STRING of the digest (RFC 8737 §3): tag 4, length 32. */
static int add_acme_identifier(X509 *x, const char *key_authorization)
{
    unsigned char der[2 + SHA256_DIGEST_LENGTH] = { V_ASN1_OCTET_STRING, SHA256_DIGEST_LENGTH };
    if (EVP_Digest(key_authorization, strlen(key_authorization), der + 2, NULL, EVP_sha256(), NULL) != 1)
        return -EIO;
    _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *oid = OBJ_txt2obj(OID_ACME_IDENTIFIER, 1);
    _cleanup_(ASN1_OCTET_STRING_freep) ASN1_OCTET_STRING *value = ASN1_OCTET_STRING_new();
    if (!oid || !value || ASN1_OCTET_STRING_set(value, der, sizeof der) != 1)
        return -ENOMEM;
    _cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ext = X509_EXTENSION_create_by_OBJ(NULL, oid, 1, value);
    return ext && X509_add_ext(x, ext, -1) == 1 ? 0 : -ENOMEM;
}

int tlsalpn01_certificate(EVP_PKEY *key, const char *identifier, const char *key_authorization, X509 **ret)
{
    /* No wildcard: RFC 8737 §3 forbids this challenge for one. */
    if (!cert_name_valid(identifier) || strchr(identifier, '*') || strlen(identifier) > TLSALPN01_NAME_MAX || !*key_authorization)
        return -EINVAL;
    _cleanup_(X509_freep) X509 *x = X509_new();
    if (!x)
        return -ENOMEM;
    int r;
    if ((r = set_basics(x, key)) < 0 || (r = add_san(x, identifier)) < 0 || (r = add_acme_identifier(x, key_authorization)) < 0 ||
        (r = X509_sign(x, key, EVP_sha256()) > 0 ? 0 : -EIO) < 0) {
        ERR_clear_error();
        return r;
    }
    *ret = TAKE_PTR(x);
    return 0;
}

/* "4.3.2.1.in-addr.arpa", or the 32 nibbles of an IPv6 address backwards then "ip6.arpa". */
static void reverse_name(const char *ip, char *ret)
{
    unsigned char a[16];
    size_t n = 0;
    if (inet_pton(AF_INET, ip, a) == 1) {
        (void) sprintf(ret, "%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1], a[0]);
        return;
    }
    (void) inet_pton(AF_INET6, ip, a);
    for (int i = 15; i >= 0; i--)
        n += (size_t) sprintf(ret + n, "%x.%x.", a[i] & 0xf, a[i] >> 4);
    strcpy(ret + n, "ip6.arpa");
}

int tlsalpn01_server_name(const char *identifier, char ret[static TLSALPN01_NAME_MAX + 1])
{
    if (!cert_name_valid(identifier) || strlen(identifier) > TLSALPN01_NAME_MAX)
        return -EINVAL;
    if (cert_name_is_ip(identifier)) {
        reverse_name(identifier, ret);
        return 0;
    }
    size_t i = 0;
    for (; identifier[i]; i++)
        ret[i] = (char) tolower((unsigned char) identifier[i]);
    ret[i] = '\0';
    return 0;
}
