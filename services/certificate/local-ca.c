/* SPDX-License-Identifier: MIT */
/* The local CA: keys, a self-signed CA certificate, and the certificates it issues. OpenSSL 3's
 * EVP and X509 APIs only. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <keel/strbuf.h>
#include <keel/util.h>

#include "certificate.h"
#include "openssl-util.h"

/* notBefore this far in the past, so that a peer whose clock is a little behind accepts it. */
#define CLOCK_SKEW_S 300

int cert_generate_key(cert_key_type type, unsigned rsa_bits, EVP_PKEY **ret)
{
    EVP_PKEY *key = type == CERT_KEY_RSA ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) rsa_bits)
                                         : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!key) {
        ERR_clear_error();
        return -EIO;
    }
    *ret = key;
    return 0;
}

/* A random positive 128-bit serial (RFC 5280 §4.1.2.2: at most 20 octets, unpredictable). */
static int set_serial(X509 *x)
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1)
        return -EIO;
    b[0] &= 0x7f;
    b[0] |= 0x40; /* a full 16 bytes, positive */
    _cleanup_(BN_freep) BIGNUM *bn = BN_bin2bn(b, sizeof b, NULL);
    if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
        return -ENOMEM;
    return 0;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    _cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext || X509_add_ext(x, ext, -1) != 1) {
        ERR_clear_error();
        return -EINVAL;
    }
    return 0;
}

/* X.509's upper bound for a common name (RFC 5280, ub-common-name): OpenSSL refuses a longer one. */
#define CN_MAX 64

/* Version 3, serial, validity from CLOCK_SKEW_S ago for @lifetime_s, subject CN @cn (none when @cn
 * is longer than a common name may be: the subjectAltName names the holder), public key. */
static int new_cert(EVP_PKEY *key, const char *cn, long lifetime_s, X509 **ret)
{
    _cleanup_(X509_freep) X509 *x = X509_new();
    if (!x)
        return -ENOMEM;
    int r = set_serial(x);
    if (r < 0)
        return r;
    X509_NAME *name = X509_get_subject_name(x);
    if (X509_set_version(x, X509_VERSION_3) != 1 || !X509_gmtime_adj(X509_getm_notBefore(x), -CLOCK_SKEW_S) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), lifetime_s) ||
        (strlen(cn) <= CN_MAX &&
         X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *) cn, -1, -1, 0) != 1) ||
        X509_set_pubkey(x, key) != 1)
        return -ENOMEM;
    *ret = TAKE_PTR(x);
    return 0;
}

static long lifetime_seconds(keel_usec_t lifetime)
{
    return (long) KEEL_MAX(lifetime / KEEL_USEC_PER_SEC, 1);
}

int cert_create_ca(EVP_PKEY *key, keel_usec_t lifetime, X509 **ret)
{
    _cleanup_(X509_freep) X509 *x = NULL;
    int r = new_cert(key, "Keel local CA", lifetime_seconds(lifetime), &x);
    if (r < 0)
        return r;
    if (X509_set_issuer_name(x, X509_get_subject_name(x)) != 1)
        return -ENOMEM;
    if ((r = add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE")) < 0 ||
        (r = add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign")) < 0 ||
        (r = add_ext(x, x, NID_subject_key_identifier, "hash")) < 0 ||
        (r = add_ext(x, x, NID_authority_key_identifier, "keyid:always")) < 0)
        return r;
    if (X509_sign(x, key, EVP_sha256()) <= 0) {
        ERR_clear_error();
        return -EIO;
    }
    *ret = TAKE_PTR(x);
    return 0;
}

bool cert_name_valid(const char *name)
{
    if (cert_name_is_ip(name))
        return true;
    size_t n = strlen(name);
    if (n == 0 || n > 253 || name[0] == '.' || name[0] == '-' || strstr(name, ".."))
        return false;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char) *p) && !strchr("-.", *p) && !(*p == '*' && p == name && p[1] == '.'))
            return false;
    return true;
}

bool cert_name_is_ip(const char *name)
{
    unsigned char addr[16];
    return inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
}

/* "DNS:a,IP:127.0.0.1": the names were checked by cert_name_valid(), so none has a comma. */
int cert_san_text(char *const *names, char *buf, size_t size)
{
    keel_strbuf sb = { .buf = buf, .size = size };
    for (size_t i = 0; names[i]; i++)
        keel_strbuf_printf(&sb, "%s%s:%s", i ? "," : "", cert_name_is_ip(names[i]) ? "IP" : "DNS", names[i]);
    return sb.truncated ? -E2BIG : 0;
}

static long seconds_until(const ASN1_TIME *t)
{
    int days = 0, secs = 0;
    if (ASN1_TIME_diff(&days, &secs, NULL, t) != 1)
        return 0;
    return (long) days * 86400 + secs;
}

/* A leaf for @key from the CA: subject CN @cn, subjectAltName @san (OpenSSL's text), @eku. */
static int issue_leaf(EVP_PKEY *ca_key, X509 *ca_cert, EVP_PKEY *key, const char *cn, const char *san, const char *eku,
                      keel_usec_t lifetime, X509 **ret)
{
    /* Never past the CA: a verifier would refuse the chain from that moment. */
    long life = KEEL_MIN(lifetime_seconds(lifetime), seconds_until(X509_get0_notAfter(ca_cert)));
    if (life <= 0)
        return -EKEYEXPIRED;
    _cleanup_(X509_freep) X509 *x = NULL;
    int r = new_cert(key, cn, life, &x);
    if (r < 0)
        return r;
    if (X509_set_issuer_name(x, X509_get_subject_name(ca_cert)) != 1)
        return -ENOMEM;
    bool rsa = EVP_PKEY_is_a(key, "RSA");
    /* A certificate with an empty subject must mark its subjectAltName critical (RFC 5280 4.2.1.6). */
    char san_ext[8192 + 16];
    (void) snprintf(san_ext, sizeof san_ext, "%s%s", strlen(cn) > CN_MAX ? "critical," : "", san);
    if ((r = add_ext(x, ca_cert, NID_basic_constraints, "critical,CA:FALSE")) < 0 ||
        (r = add_ext(x, ca_cert, NID_key_usage, rsa ? "critical,digitalSignature,keyEncipherment" : "critical,digitalSignature")) <
            0 ||
        (r = add_ext(x, ca_cert, NID_ext_key_usage, eku)) < 0 || (r = add_ext(x, ca_cert, NID_subject_alt_name, san_ext)) < 0 ||
        (r = add_ext(x, ca_cert, NID_subject_key_identifier, "hash")) < 0 ||
        /* The CA's key identifier, or its name and serial when its certificate has none (an
         * operator's CA made without one: RFC 5280 4.2.1.1 allows either). */
        (r = add_ext(x, ca_cert, NID_authority_key_identifier, "keyid,issuer")) < 0)
        return r;
    if (X509_sign(x, ca_key, EVP_sha256()) <= 0) {
        ERR_clear_error();
        return -EIO;
    }
    *ret = TAKE_PTR(x);
    return 0;
}

int cert_issue(EVP_PKEY *ca_key, X509 *ca_cert, EVP_PKEY *key, char *const *names, keel_usec_t lifetime, X509 **ret)
{
    char san[8192];
    if (!names || !names[0])
        return -EINVAL;
    int r = cert_san_text(names, san, sizeof san);
    if (r < 0)
        return r;
    return issue_leaf(ca_key, ca_cert, key, names[0], san, "serverAuth,clientAuth", lifetime, ret);
}

int cert_issue_role(EVP_PKEY *ca_key, X509 *ca_cert, EVP_PKEY *key, const char *domain, const char *role, keel_usec_t lifetime,
                    X509 **ret)
{
    char cn[512], san[600];
    int n = snprintf(cn, sizeof cn, "%s:role.%s", domain, role),
        m = snprintf(san, sizeof san, "URI:spiffe://%s/ra/%s", domain, role);
    if (n < 0 || (size_t) n >= sizeof cn || m < 0 || (size_t) m >= sizeof san)
        return -E2BIG;
    return issue_leaf(ca_key, ca_cert, key, cn, san, "clientAuth", lifetime, ret);
}

static bool san_has(GENERAL_NAMES *sans, const char *name)
{
    unsigned char addr[16];
    int len = inet_pton(AF_INET, name, addr) == 1 ? 4 : inet_pton(AF_INET6, name, addr) == 1 ? 16 : 0;
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (len == 0 && g->type == GEN_DNS && (size_t) ASN1_STRING_length(g->d.dNSName) == strlen(name) &&
            strncasecmp((const char *) ASN1_STRING_get0_data(g->d.dNSName), name, strlen(name)) == 0)
            return true;
        if (len > 0 && g->type == GEN_IPADD && ASN1_STRING_length(g->d.iPAddress) == len &&
            memcmp(ASN1_STRING_get0_data(g->d.iPAddress), addr, (size_t) len) == 0)
            return true;
    }
    return false;
}

bool cert_has_names(X509 *cert, char *const *names)
{
    _cleanup_(GENERAL_NAMES_freep) GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (!sans)
        return false;
    for (size_t i = 0; names && names[i]; i++)
        if (!san_has(sans, names[i]))
            return false;
    return true;
}
