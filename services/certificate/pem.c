/* SPDX-License-Identifier: MIT */
/* Key and certificate files: reading them with the checks every load makes, writing them
 * atomically. */
#include <stdio.h>
#include <string.h>

#include <openssl/buffer.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>

#include <keel/fileio.h>
#include <keel/util.h>

#include "certificate.h"
#include "credential.h"
#include "openssl-util.h"

int cert_fail(cert_error *e, int r, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        (void) vsnprintf(e->text, sizeof e->text, fmt, ap);
        va_end(ap);
    }
    return r;
}

/* The last OpenSSL error as text, clearing the queue. */
static const char *ssl_reason(char *buf, size_t size)
{
    unsigned long code = ERR_peek_last_error();
    if (code == 0)
        (void) snprintf(buf, size, "no PEM data");
    else
        ERR_error_string_n(code, buf, size);
    ERR_clear_error();
    return buf;
}

/* Frees a memory BIO that held key bytes, wiping its whole buffer first: what was read from it
 * too, which BIO_get_mem_ptr() moves back into the buffer's start. */
static void BIO_erase_free(BIO *bio)
{
    BUF_MEM *bm = NULL;
    if (bio && BIO_get_mem_ptr(bio, &bm) > 0 && bm && bm->data)
        OPENSSL_cleanse(bm->data, bm->max);
    BIO_free(bio);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_erase_free);

static int read_pem(const char *path, bool secret, BIO **ret, cert_error *e)
{
    _cleanup_(pem_text_done) pem_text t = {};
    mode_t mode = 0;
    int r = (secret ? keel_file_read_secret : keel_file_read)(path, CERT_FILE_MAX, &t.data, &t.size, &mode);
    if (r == -EFBIG)
        return cert_fail(e, r, "'%s' is larger than %d bytes", path, CERT_FILE_MAX);
    if (r == -EACCES && mode)
        return cert_fail(e, r, "Permissions %04o for '%s' are too open: " KEEL_SECRET_MODE_RULE, (unsigned) mode, path);
    if (r < 0)
        return cert_fail(e, r, "Cannot read '%s': %s", path, strerror(-r));
    if (t.size == 0)
        return cert_fail(e, -EBADMSG, "'%s' is empty", path);
    _cleanup_(BIO_erase_freep) BIO *bio = BIO_new(BIO_s_mem());
    if (!bio || BIO_write(bio, t.data, (int) t.size) != (int) t.size)
        return -ENOMEM;
    *ret = TAKE_PTR(bio);
    return 0;
}

/* The key type of a PEM block, when the block says it without decoding the key: PKCS#8 (by its
 * algorithm), SEC1 and PKCS#1. 0 for anything else, encrypted keys included. */
static int pem_key_type(const char *name, const char *header, const unsigned char *der, long size)
{
    if (header && *header) /* Proc-Type: 4,ENCRYPTED */
        return 0;
    if (streq(name, "EC PRIVATE KEY"))
        return EVP_PKEY_EC;
    if (streq(name, "RSA PRIVATE KEY"))
        return EVP_PKEY_RSA;
    if (!streq(name, "PRIVATE KEY"))
        return 0;
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &der, size);
    const ASN1_OBJECT *alg = NULL;
    int nid = p8 && PKCS8_pkey_get0(&alg, NULL, NULL, NULL, p8) == 1 ? OBJ_obj2nid(alg) : NID_undef;
    PKCS8_PRIV_KEY_INFO_free(p8);
    return nid == NID_X9_62_id_ecPublicKey ? EVP_PKEY_EC : nid == NID_rsaEncryption ? EVP_PKEY_RSA : 0;
}

/*
 * The private key in the first PEM block of @bio, decoded as its type when the block names it
 * (what Keel writes, PKCS#8, always does). OpenSSL 3.0's generic PEM_read_bio_PrivateKey() tries
 * every decoder it has on every call, about three times the cost of d2i_PrivateKey() for a known
 * type. NULL when the block is anything else; the caller then reads the data the generic way.
 */
static EVP_PKEY *read_typed_key(BIO *bio)
{
    char *name = NULL, *header = NULL;
    unsigned char *der = NULL;
    long size = 0;
    if (PEM_read_bio(bio, &name, &header, &der, &size) != 1) {
        ERR_clear_error();
        return NULL;
    }
    int type = pem_key_type(name, header, der, size);
    const unsigned char *p = der;
    EVP_PKEY *key = type ? d2i_PrivateKey(type, NULL, &p, size) : NULL;
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_clear_free(der, (size_t) size);
    ERR_clear_error();
    return key;
}

int cert_read_key(const char *path, EVP_PKEY **ret, cert_error *e)
{
    char why[256];
    _cleanup_(BIO_erase_freep) BIO *bio = NULL;
    int r = read_pem(path, true, &bio, e);
    if (r < 0)
        return r;
    ERR_clear_error();
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = read_typed_key(bio);
    if (!key) {
        /* From the start of the data again: BIO_reset() of a memory BIO would empty it. */
        if (BIO_seek(bio, 0) < 0)
            return -EIO;
        key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    }
    if (!key)
        return cert_fail(e, -EBADMSG, "'%s' is not a PEM private key: %s", path, ssl_reason(why, sizeof why));
    _cleanup_(credential_unrefp) credential *probe = NULL;
    if (credential_new(key, NULL, NULL, &probe) == -EINVAL)
        return cert_fail(e, -EINVAL, "The key in '%s' is neither EC P-256 nor RSA of 2048 bits or more", path);
    *ret = TAKE_PTR(key);
    return 0;
}

/* The certificates in @bio; @what names where they come from in the reason. */
static int parse_certs(BIO *bio, const char *what, X509 **ret_leaf, STACK_OF(X509) * *ret_chain, cert_error *e)
{
    char why[256];
    ERR_clear_error();
    _cleanup_(X509_freep) X509 *leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (!leaf)
        return cert_fail(e, -EBADMSG, "%s is not a PEM certificate: %s", what, ssl_reason(why, sizeof why));
    _cleanup_x509_stack_ STACK_OF(X509) *chain = NULL;
    for (X509 *x; (x = PEM_read_bio_X509(bio, NULL, NULL, NULL));) {
        if (!chain && !(chain = sk_X509_new_null())) {
            X509_free(x);
            return -ENOMEM;
        }
        if (!sk_X509_push(chain, x)) {
            X509_free(x);
            return -ENOMEM;
        }
    }
    /* The loop ends at the end of the data (PEM_R_NO_START_LINE) or at a corrupt block. */
    unsigned long code = ERR_peek_last_error();
    if (code != 0 && !(ERR_GET_LIB(code) == ERR_LIB_PEM && ERR_GET_REASON(code) == PEM_R_NO_START_LINE))
        return cert_fail(e, -EBADMSG, "%s holds a corrupt certificate after the first: %s", what, ssl_reason(why, sizeof why));
    ERR_clear_error();
    *ret_leaf = TAKE_PTR(leaf);
    *ret_chain = TAKE_PTR(chain);
    return 0;
}

int cert_read_certs(const char *path, X509 **ret_leaf, STACK_OF(X509) * *ret_chain, cert_error *e)
{
    _cleanup_(BIO_freep) BIO *bio = NULL;
    int r = read_pem(path, false, &bio, e);
    if (r < 0)
        return r;
    char what[PATH_MAX + 2];
    (void) snprintf(what, sizeof what, "'%s'", path);
    return parse_certs(bio, what, ret_leaf, ret_chain, e);
}

int cert_parse_certs(const char *pem, size_t size, const char *what, X509 **ret_leaf, STACK_OF(X509) * *ret_chain, cert_error *e)
{
    if (size > CERT_FILE_MAX || size > INT_MAX)
        return cert_fail(e, -EFBIG, "%s is larger than %d bytes", what, CERT_FILE_MAX);
    _cleanup_(BIO_freep) BIO *bio = BIO_new_mem_buf(pem, (int) size);
    if (!bio)
        return -ENOMEM;
    return parse_certs(bio, what, ret_leaf, ret_chain, e);
}

/* A copy of the PEM text @bio holds. */
static int bio_text(BIO *bio, char **ret, size_t *ret_size)
{
    char *data = NULL;
    long size = BIO_get_mem_data(bio, &data);
    if (size <= 0)
        return -EIO;
    char *copy = malloc((size_t) size);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, data, (size_t) size);
    *ret = copy;
    *ret_size = (size_t) size;
    return 0;
}

int cert_key_pem(EVP_PKEY *key, char **ret, size_t *ret_size)
{
    _cleanup_(BIO_erase_freep) BIO *bio = BIO_new(BIO_s_mem());
    if (!bio)
        return -ENOMEM;
    if (PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1)
        return -EIO;
    return bio_text(bio, ret, ret_size);
}

int cert_certs_pem(X509 *leaf, STACK_OF(X509) * chain, char **ret, size_t *ret_size)
{
    _cleanup_(BIO_freep) BIO *bio = BIO_new(BIO_s_mem());
    if (!bio)
        return -ENOMEM;
    if (PEM_write_bio_X509(bio, leaf) != 1)
        return -EIO;
    for (int i = 0; chain && i < sk_X509_num(chain); i++)
        if (PEM_write_bio_X509(bio, sk_X509_value(chain, i)) != 1)
            return -EIO;
    return bio_text(bio, ret, ret_size);
}

void cert_pem_free(char *pem, size_t size)
{
    if (pem)
        OPENSSL_cleanse(pem, size);
    free(pem);
}

int cert_write_key(const char *path, EVP_PKEY *key)
{
    char *pem = NULL;
    size_t size = 0;
    int r = cert_key_pem(key, &pem, &size);
    if (r >= 0)
        r = keel_file_write_atomic(path, pem, size, 0600);
    cert_pem_free(pem, size);
    return r;
}

int cert_write_certs(const char *path, X509 *leaf, STACK_OF(X509) * chain)
{
    char *pem = NULL;
    size_t size = 0;
    int r = cert_certs_pem(leaf, chain, &pem, &size);
    if (r >= 0)
        r = keel_file_write_atomic(path, pem, size, 0644);
    cert_pem_free(pem, size);
    return r;
}

static int check_dates(X509 *leaf, time_t now, const char *what, cert_error *e)
{
    time_t t = now;
    char when[64];
    const ASN1_TIME *nb = X509_get0_notBefore(leaf), *na = X509_get0_notAfter(leaf);
    int from = X509_cmp_time(nb, &t), until = X509_cmp_time(na, &t); /* 0: a date that cannot be read */
    if (from == 0 || until == 0)
        return cert_fail(e, -EBADMSG, "%s: the certificate's validity dates cannot be read", what);
    bool early = from > 0;
    if (!early && until > 0)
        return 0;
    BIO *b = BIO_new(BIO_s_mem());
    int n = b && ASN1_TIME_print(b, early ? nb : na) == 1 ? BIO_read(b, when, sizeof when - 1) : -1;
    when[n > 0 ? n : 0] = '\0';
    BIO_free(b);
    return cert_fail(e, -EKEYEXPIRED, "%s: the certificate %s %s", what, early ? "is not valid before" : "expired at", when);
}

static int verify_chain(X509 *leaf, STACK_OF(X509) * chain, X509 *ca, time_t now, const char *what, cert_error *e)
{
    _cleanup_(X509_STORE_freep) X509_STORE *store = X509_STORE_new();
    _cleanup_(X509_STORE_CTX_freep) X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    if (!store || !ctx || X509_STORE_add_cert(store, ca) != 1 || X509_STORE_CTX_init(ctx, store, leaf, chain) != 1)
        return -ENOMEM;
    X509_STORE_CTX_set_time(ctx, 0, now);
    /* The CA the operator names is trusted as such, a root or an intermediate (openssl verify
     * -partial_chain): an intermediate is not self-signed, and would be refused as an anchor. */
    X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_PARTIAL_CHAIN);
    if (X509_verify_cert(ctx) == 1)
        return 0;
    int err = X509_STORE_CTX_get_error(ctx);
    ERR_clear_error();
    return cert_fail(e, -EBADE, "%s: the certificate does not verify to the CA: %s", what, X509_verify_cert_error_string(err));
}

int cert_check(EVP_PKEY *key, X509 *leaf, STACK_OF(X509) * chain, X509 *ca, time_t now, const char *what, cert_error *e)
{
    if (X509_check_private_key(leaf, key) != 1) {
        ERR_clear_error();
        return cert_fail(e, -EKEYREJECTED, "%s: the certificate does not belong to the key", what);
    }
    int r = check_dates(leaf, now, what, e);
    if (r < 0 || !ca)
        return r;
    return verify_chain(leaf, chain, ca, now, what, e);
}
