/* SPDX-License-Identifier: MIT */
/* The certificate service's pure parts: the local CA, the checks at every load, key file modes,
 * atomic writes and the two-slot pair store, including writers killed mid-rotation. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <keel/fileio.h>

#include "certificate.h"
#include "helpers.h"
#include "macro-internal.h"
#include "openssl-util.h"

TestSuite(certificate, .timeout = 60);

#define HOUR (3600ULL * KEEL_USEC_PER_SEC)

static char *const names[] = { "svc.example", "localhost", "127.0.0.1", NULL };

typedef struct ca {
    EVP_PKEY *key;
    X509 *cert;
} ca;

static ca make_ca(void)
{
    ca c = {};
    cr_assert_eq(cert_generate_key(CERT_KEY_EC, 0, &c.key), 0);
    cr_assert_eq(cert_create_ca(c.key, 24 * HOUR, &c.cert), 0);
    return c;
}

static void ca_done(ca *c)
{
    EVP_PKEY_free(c->key);
    X509_free(c->cert);
}

static cert_pair issue(const ca *c, cert_key_type type, keel_usec_t lifetime)
{
    cert_pair p = {};
    cr_assert_eq(cert_generate_key(type, 2048, &p.key), 0);
    cr_assert_eq(cert_issue(c->key, c->cert, p.key, names, lifetime, &p.leaf), 0);
    return p;
}

static char *path_in(const char *dir, const char *name)
{
    char *p = keel_strdup_printf("%s/%s", dir, name);
    cr_assert_not_null(p);
    return p;
}

Test(certificate, ca_is_a_ca_with_key_identifiers)
{
    _cleanup_(ca_done) ca c = make_ca();
    cr_assert_eq(X509_check_ca(c.cert), 1);
    cr_assert(X509_get_key_usage(c.cert) & (KU_KEY_CERT_SIGN | KU_CRL_SIGN));
    cr_assert_not_null(X509_get0_subject_key_id(c.cert));
    cr_assert_not_null(X509_get0_authority_key_id(c.cert));
    cr_assert_eq(X509_check_issued(c.cert, c.cert), X509_V_OK, "self-signed");
}

static void check_issued(cert_key_type type)
{
    _cleanup_(ca_done) ca c = make_ca();
    _cleanup_(cert_pair_done) cert_pair p = issue(&c, type, 2 * HOUR);
    cert_error e = {};
    cr_assert_eq(cert_check(p.key, p.leaf, NULL, c.cert, time(NULL), "t", &e), 0, "%s", e.text);
    cr_assert(cert_has_names(p.leaf, names));
    cr_assert_not(cert_has_names(p.leaf, (char *const[]){ "other.example", NULL }));
    cr_assert_eq(X509_check_ca(p.leaf), 0);
    cr_assert(X509_get_extended_key_usage(p.leaf) & XKU_SSL_SERVER);
    cr_assert(X509_get_extended_key_usage(p.leaf) & XKU_SSL_CLIENT);
    /* A random 128-bit serial, positive. */
    const ASN1_INTEGER *serial = X509_get0_serialNumber(p.leaf);
    cr_assert_eq(ASN1_STRING_length(serial), 16);
    /* Valid from a little in the past (clock skew), for the lifetime. */
    time_t now = time(NULL), past = now - 60, later = now + 2 * 3600 + 60;
    cr_assert_lt(X509_cmp_time(X509_get0_notBefore(p.leaf), &past), 0);
    cr_assert_lt(X509_cmp_time(X509_get0_notAfter(p.leaf), &later), 0);
}

Test(certificate, issues_ec_certificates_that_verify)
{
    check_issued(CERT_KEY_EC);
}

Test(certificate, issues_rsa_certificates_that_verify)
{
    check_issued(CERT_KEY_RSA);
}

Test(certificate, serials_differ)
{
    _cleanup_(ca_done) ca c = make_ca();
    _cleanup_(cert_pair_done) cert_pair a = issue(&c, CERT_KEY_EC, HOUR);
    _cleanup_(cert_pair_done) cert_pair b = issue(&c, CERT_KEY_EC, HOUR);
    cr_assert_neq(ASN1_INTEGER_cmp(X509_get0_serialNumber(a.leaf), X509_get0_serialNumber(b.leaf)), 0);
}

Test(certificate, never_issues_past_the_ca)
{
    _cleanup_(ca_done) ca c = make_ca();
    _cleanup_(cert_pair_done) cert_pair p = issue(&c, CERT_KEY_EC, 100 * HOUR);
    cr_assert_leq(ASN1_TIME_compare(X509_get0_notAfter(p.leaf), X509_get0_notAfter(c.cert)), 0);
}

Test(certificate, check_refuses_another_keys_certificate)
{
    _cleanup_(ca_done) ca c = make_ca();
    _cleanup_(cert_pair_done) cert_pair a = issue(&c, CERT_KEY_EC, HOUR);
    _cleanup_(cert_pair_done) cert_pair b = issue(&c, CERT_KEY_EC, HOUR);
    cert_error e = {};
    cr_assert_eq(cert_check(a.key, b.leaf, NULL, c.cert, time(NULL), "key[k], cert[c]", &e), -EKEYREJECTED);
    cr_assert_str_eq(e.text, "key[k], cert[c]: the certificate does not belong to the key");
}

Test(certificate, check_refuses_an_expired_certificate)
{
    _cleanup_(ca_done) ca c = make_ca();
    _cleanup_(cert_pair_done) cert_pair p = issue(&c, CERT_KEY_EC, KEEL_USEC_PER_SEC);
    cert_error e = {};
    cr_assert_eq(cert_check(p.key, p.leaf, NULL, c.cert, time(NULL) + 10, "w", &e), -EKEYEXPIRED);
    cr_assert(strstr(e.text, "w: the certificate expired at "), "%s", e.text);
    cr_assert_eq(cert_check(p.key, p.leaf, NULL, c.cert, time(NULL) - 3600, "w", &e), -EKEYEXPIRED);
    cr_assert(strstr(e.text, "is not valid before"), "%s", e.text);
}

Test(certificate, check_refuses_a_chain_to_another_ca)
{
    _cleanup_(ca_done) ca c = make_ca();
    _cleanup_(ca_done) ca other = make_ca();
    _cleanup_(cert_pair_done) cert_pair p = issue(&c, CERT_KEY_EC, HOUR);
    cert_error e = {};
    cr_assert_eq(cert_check(p.key, p.leaf, NULL, other.cert, time(NULL), "w", &e), -EBADE);
    cr_assert(strstr(e.text, "w: the certificate does not verify to the CA: "), "%s", e.text);
}

Test(certificate, names)
{
    cr_assert(cert_name_valid("a.example"));
    cr_assert(cert_name_valid("*.example.org"));
    cr_assert(cert_name_valid("::1"));
    cr_assert(cert_name_valid("10.0.0.1"));
    cr_assert_not(cert_name_valid(""));
    cr_assert_not(cert_name_valid("a,DNS:evil"));
    cr_assert_not(cert_name_valid("a..b"));
    cr_assert_not(cert_name_valid("a b"));
    cr_assert_not(cert_name_valid("a.*.b"));
}

/* ---- files ---------------------------------------------------------------------------------------- */

Test(certificate, key_readable_by_others_is_refused_naming_file_and_mode)
{
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL, *back = NULL;
    _cleanup_free_ char *path = path_in(test_tmpdir(), "key.pem");
    cr_assert_eq(cert_generate_key(CERT_KEY_EC, 0, &key), 0);
    cr_assert_eq(cert_write_key(path, key), 0);
    cert_error e = {};
    cr_assert_eq(cert_read_key(path, &back, &e), 0, "%s", e.text);
    cr_assert_eq(EVP_PKEY_eq(key, back), 1);
    for (mode_t m = 0604; m <= 0640; m += 036) {
        cr_assert_eq(chmod(path, m), 0);
        EVP_PKEY *none = NULL;
        cr_assert_eq(cert_read_key(path, &none, &e), -EACCES);
        cr_assert_null(none);
        char want[512];
        snprintf(want, sizeof want, "Permissions %04o for '%s' are too open", (unsigned) m, path);
        cr_assert(strstr(e.text, want), "%s", e.text);
    }
}

/* Writes @pem (and @key in its traditional form after it, when not NULL) to @path with mode 0600. */
static void write_key_file(const char *path, const char *pem, EVP_PKEY *key)
{
    _cleanup_(BIO_freep) BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    cr_assert_not_null(bio);
    if (pem)
        cr_assert_eq(BIO_puts(bio, pem), (int) strlen(pem));
    if (key)
        cr_assert_eq(PEM_write_bio_PrivateKey_traditional(bio, key, NULL, NULL, 0, NULL, NULL), 1);
    long n = BIO_get_mem_data(bio, &data);
    cr_assert_eq(keel_file_write_atomic(path, data, (size_t) n, 0600), 0);
}

static void expect_same_key(const char *path, EVP_PKEY *want)
{
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *back = NULL;
    cert_error e = {};
    cr_assert_eq(cert_read_key(path, &back, &e), 0, "%s", e.text);
    cr_assert_eq(EVP_PKEY_eq(want, back), 1);
}

/* Keys are decoded as their type when the PEM block names it (PKCS#8 by its algorithm, SEC1,
 * PKCS#1), and the generic way otherwise: every form reads as the same key, and what Keel cannot
 * sign with is refused as before. */
Test(certificate, keys_read_the_same_in_every_form)
{
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *ec = NULL, *rsa = NULL, *ed = NULL;
    _cleanup_free_ char *path = path_in(test_tmpdir(), "key.pem");
    cr_assert_eq(cert_generate_key(CERT_KEY_EC, 0, &ec), 0);
    cr_assert_eq(cert_generate_key(CERT_KEY_RSA, 2048, &rsa), 0);
    cr_assert_not_null(ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"));

    cr_assert_eq(cert_write_key(path, ec), 0); /* PKCS#8 */
    expect_same_key(path, ec);
    cr_assert_eq(cert_write_key(path, rsa), 0);
    expect_same_key(path, rsa);
    write_key_file(path, NULL, ec); /* SEC1: EC PRIVATE KEY */
    expect_same_key(path, ec);
    write_key_file(path, NULL, rsa); /* PKCS#1: RSA PRIVATE KEY */
    expect_same_key(path, rsa);
    /* As `openssl ecparam -genkey` writes it: the parameters first. */
    write_key_file(path, "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n", ec);
    expect_same_key(path, ec);

    cert_error e = {};
    EVP_PKEY *none = NULL;
    cr_assert_eq(cert_write_key(path, ed), 0); /* PKCS#8 of another algorithm */
    cr_assert_eq(cert_read_key(path, &none, &e), -EINVAL);
    cr_assert(strstr(e.text, "neither EC P-256 nor RSA"), "%s", e.text);
    write_key_file(
        path, "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n", NULL);
    cr_assert_eq(cert_read_key(path, &none, &e), -EBADMSG);
    cr_assert(strstr(e.text, "is not a PEM private key"), "%s", e.text);
    cr_assert_null(none);
}

Test(certificate, written_files_have_their_modes_and_no_temporaries)
{
    _cleanup_(ca_done) ca c = make_ca();
    const char *dir = test_tmpdir();
    _cleanup_free_ char *k = path_in(dir, "k.pem"), *x = path_in(dir, "x.pem");
    struct stat st;
    cr_assert_eq(cert_write_key(k, c.key), 0);
    cr_assert_eq(cert_write_certs(x, c.cert, NULL), 0);
    cr_assert_eq(stat(k, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0600);
    cr_assert_eq(stat(x, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0644);
    cr_assert_eq(keel_dir_remove_temporaries(dir), 0);
}

Test(certificate, pem_buffers_are_what_the_files_hold)
{
    _cleanup_(ca_done) ca c = make_ca();
    cert_pair p = issue(&c, CERT_KEY_EC, 2 * HOUR);
    _cleanup_x509_stack_ STACK_OF(X509) *chain = sk_X509_new_null();
    cr_assert(chain && sk_X509_push(chain, c.cert) && X509_up_ref(c.cert));
    const char *dir = test_tmpdir();
    _cleanup_free_ char *k = path_in(dir, "k.pem"), *x = path_in(dir, "x.pem");
    char *key_pem = NULL, *certs_pem = NULL, *data = NULL;
    size_t key_size = 0, certs_size = 0, size = 0;
    mode_t mode;
    cr_assert_eq(cert_key_pem(p.key, &key_pem, &key_size), 0);
    cr_assert_eq(cert_certs_pem(p.leaf, chain, &certs_pem, &certs_size), 0);
    cr_assert_eq(cert_write_key(k, p.key), 0);
    cr_assert_eq(cert_write_certs(x, p.leaf, chain), 0);
    cr_assert_eq(keel_file_read(x, CERT_FILE_MAX, &data, &size, &mode), 0);
    cr_assert_eq(size, certs_size);
    cr_assert_eq(memcmp(data, certs_pem, size), 0, "the certificates are written as encoded");
    free(data);
    /* A key's encoding is deterministic too: the same bytes, read back as the same key. */
    cr_assert_eq(keel_file_read(k, CERT_FILE_MAX, &data, &size, &mode), 0);
    cr_assert_eq(size, key_size);
    cr_assert_eq(memcmp(data, key_pem, size), 0);
    free(data);
    cr_assert_eq(memcmp(certs_pem, "-----BEGIN CERTIFICATE-----", 27), 0);
    cert_pem_free(key_pem, key_size);
    cert_pem_free(certs_pem, certs_size);
    cert_pem_free(NULL, 0);
    cert_pair_done(&p);
}

static void expect_bad_file(const char *content, int error, const char *reason)
{
    _cleanup_free_ char *path = test_write_file(test_tmpdir(), "bad.pem", content);
    X509 *leaf = NULL;
    STACK_OF(X509) *chain = NULL;
    cert_error e = {};
    cr_assert_eq(cert_read_certs(path, &leaf, &chain, &e), error, "%s", e.text);
    cr_assert_null(leaf);
    cr_assert(strstr(e.text, path), "%s", e.text);
    cr_assert(strstr(e.text, reason), "%s", e.text);
}

Test(certificate, corrupt_or_empty_certificate_files_are_named)
{
    expect_bad_file("", -EBADMSG, "is empty");
    expect_bad_file("hello\n", -EBADMSG, "is not a PEM certificate");
    expect_bad_file("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", -EBADMSG, "is not a PEM certificate");
    X509 *leaf = NULL;
    STACK_OF(X509) *chain = NULL;
    cert_error e = {};
    cr_assert_eq(cert_read_certs("/nonexistent/cert.pem", &leaf, &chain, &e), -ENOENT);
    cr_assert(strstr(e.text, "Cannot read '/nonexistent/cert.pem'"), "%s", e.text);
}

Test(certificate, corrupt_key_is_named)
{
    _cleanup_free_ char *path =
        test_write_file(test_tmpdir(), "key.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    cr_assert_eq(chmod(path, 0600), 0);
    EVP_PKEY *key = NULL;
    cert_error e = {};
    cr_assert_eq(cert_read_key(path, &key, &e), -EBADMSG);
    cr_assert(strstr(e.text, "is not a PEM private key"), "%s", e.text);
    cr_assert(strstr(e.text, path), "%s", e.text);
}

Test(certificate, chain_after_the_leaf_is_read)
{
    _cleanup_(ca_done) ca c = make_ca();
    _cleanup_(cert_pair_done) cert_pair p = issue(&c, CERT_KEY_EC, HOUR);
    _cleanup_x509_stack_ STACK_OF(X509) *chain = sk_X509_new_null();
    cr_assert(sk_X509_push(chain, c.cert));
    X509_up_ref(c.cert);
    _cleanup_free_ char *path = path_in(test_tmpdir(), "chain.pem");
    cr_assert_eq(cert_write_certs(path, p.leaf, chain), 0);
    _cleanup_(cert_pair_done) cert_pair back = {};
    cert_error e = {};
    cr_assert_eq(cert_read_certs(path, &back.leaf, &back.chain, &e), 0, "%s", e.text);
    cr_assert_eq(X509_cmp(back.leaf, p.leaf), 0);
    cr_assert_eq(sk_X509_num(back.chain), 1);
    cr_assert_eq(X509_cmp(sk_X509_value(back.chain, 0), c.cert), 0);
}

/* ---- the pair store ---------------------------------------------------------------------------------- */

/* pair.pem as a reader of its own takes it: one read, then the key and the certificate from those
 * bytes with OpenSSL. 1 when they match (and, with @p, are @p's), 0 when not, -1 when unreadable. */
static int read_bundle(const char *dir, const cert_pair *p)
{
    _cleanup_free_ char *path = path_in(dir, "pair.pem"), *text = NULL;
    size_t size = 0;
    if (keel_file_read(path, 1 << 20, &text, &size, NULL) < 0)
        return -1;
    BIO *bio = BIO_new_mem_buf(text, (int) size);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    X509 *leaf = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    int is = key && leaf && X509_check_private_key(leaf, key) == 1 &&
             (!p || (EVP_PKEY_eq(key, p->key) == 1 && X509_cmp(leaf, p->leaf) == 0));
    ERR_clear_error();
    EVP_PKEY_free(key);
    X509_free(leaf);
    BIO_free(bio);
    return is;
}

static bool bundle_is(const char *dir, const cert_pair *p)
{
    return read_bundle(dir, p) == 1;
}

static void assert_loads(const char *dir, const cert_pair *want)
{
    _cleanup_(cert_pair_done) cert_pair got = {};
    cert_error e = {};
    cr_assert_eq(cert_store_load(dir, &got, &e), 0, "%s", e.text);
    cr_assert_eq(X509_check_private_key(got.leaf, got.key), 1);
    if (want)
        cr_assert_eq(X509_cmp(got.leaf, want->leaf), 0);
}

static void write_file_pair(const char *dir, const char *key_name, const char *cert_name, const cert_pair *p)
{
    _cleanup_free_ char *k = path_in(dir, key_name), *x = path_in(dir, cert_name);
    if (key_name)
        cr_assert_eq(cert_write_key(k, p->key), 0);
    if (cert_name)
        cr_assert_eq(cert_write_certs(x, p->leaf, NULL), 0);
}

static bool exists_in(const char *dir, const char *name)
{
    _cleanup_free_ char *p = path_in(dir, name);
    return access(p, F_OK) == 0;
}

Test(certificate, store_round_trip_and_missing_pair)
{
    _cleanup_(ca_done) ca c = make_ca();
    _cleanup_(cert_pair_done) cert_pair p = issue(&c, CERT_KEY_EC, HOUR);
    const char *dir = test_tmpdir();
    cert_pair none = {};
    cert_error e = {};
    cr_assert_eq(cert_store_load(dir, &none, &e), -ENOENT);
    cr_assert_eq(cert_store_write(dir, &p), 0);
    assert_loads(dir, &p);
    cr_assert_not(exists_in(dir, "key.next.pem"));
    cr_assert_not(exists_in(dir, "cert.next.pem"));
}

/* A first write goes straight to key.pem and cert.pem, durable only once both are renamed: a crash
 * may leave either without the other. That is no pair (-ENOENT, as before any write), never a
 * mismatch, and the next write lands whole. */
Test(certificate, first_write_torn_by_a_crash_is_no_pair)
{
    _cleanup_(ca_done) ca c = make_ca();
    _cleanup_(cert_pair_done) cert_pair a = issue(&c, CERT_KEY_EC, HOUR);
    _cleanup_(cert_pair_done) cert_pair b = issue(&c, CERT_KEY_EC, HOUR);
    const char *alone[][2] = { { "key.pem", NULL }, { NULL, "cert.pem" } };
    for (size_t i = 0; i < ELEMENTSOF(alone); i++) {
        const char *dir = test_tmpdir();
        _cleanup_free_ char *k = path_in(dir, "key.pem"), *x = path_in(dir, "cert.pem"), *bundle = path_in(dir, "pair.pem");
        (void) unlink(k);
        (void) unlink(x);
        (void) unlink(bundle);
        write_file_pair(dir, alone[i][0], alone[i][1], &a);
        cert_pair none = {};
        cert_error e = {};
        cr_assert_eq(cert_store_load(dir, &none, &e), -ENOENT, "%s alone: %s", alone[i][0] ?: alone[i][1], e.text);
        cr_assert_eq(cert_store_write(dir, &b), 0);
        assert_loads(dir, &b);
        cr_assert(bundle_is(dir, &b));
    }
}

/* A staged pair is invisible until committed: aborted or left behind by a crash, the previous
 * pair loads and the temporary files go; committed, it is the pair. */
Test(certificate, staged_pair_counts_only_once_committed)
{
    _cleanup_(ca_done) ca c = make_ca();
    _cleanup_(cert_pair_done) cert_pair old = issue(&c, CERT_KEY_EC, HOUR);
    _cleanup_(cert_pair_done) cert_pair new = issue(&c, CERT_KEY_EC, HOUR);
    const char *dir = test_tmpdir();
    struct stat st;
    cert_staged staged;
    cr_assert_eq(cert_store_write(dir, &old), 0);

    cr_assert_eq(cert_store_stage(dir, &new, &staged), 0);
    cr_assert_eq(stat(staged.key, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0600);
    cr_assert_eq(stat(staged.cert, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0644);
    cr_assert_not(exists_in(dir, "key.next.pem"));
    cert_store_abort(&staged);
    cr_assert_eq(keel_dir_remove_temporaries(dir), 0, "abort removes the staged files");
    assert_loads(dir, &old);

    /* A crash after staging: the load removes the staged files and keeps the pair. */
    cr_assert_eq(cert_store_stage(dir, &new, &staged), 0);
    assert_loads(dir, &old);
    cr_assert_eq(access(staged.key, F_OK), -1);
    cr_assert_eq(access(staged.cert, F_OK), -1);
    cert_store_abort(&staged); /* frees the names; the files are gone already */

    /* A certificate left in the next slot never meets the staged key. */
    write_file_pair(dir, NULL, "cert.next.pem", &old);
    cr_assert_eq(cert_store_stage(dir, &new, &staged), 0);
    cr_assert_eq(cert_store_commit(&staged), 0);
    assert_loads(dir, &new);
    cr_assert_not(exists_in(dir, "key.next.pem"));
    cr_assert_not(exists_in(dir, "cert.next.pem"));
    cr_assert_eq(keel_dir_remove_temporaries(dir), 0);
}

/* Each state a crash can leave, built by hand: the loader lands on a matching pair. */
Test(certificate, store_recovers_every_interrupted_rotation)
{
    _cleanup_(ca_done) ca c = make_ca();
    _cleanup_(cert_pair_done) cert_pair old = issue(&c, CERT_KEY_EC, HOUR);
    _cleanup_(cert_pair_done) cert_pair new = issue(&c, CERT_KEY_EC, HOUR);
    const char *dir = test_tmpdir();

    /* After step 1: a next key alone. */
    cr_assert_eq(cert_store_write(dir, &old), 0);
    write_file_pair(dir, "key.next.pem", NULL, &new);
    assert_loads(dir, &old);
    cr_assert_not(exists_in(dir, "key.next.pem"));

    /* After step 2: the whole next pair. */
    write_file_pair(dir, "key.next.pem", "cert.next.pem", &new);
    assert_loads(dir, &new);
    cr_assert_not(exists_in(dir, "cert.next.pem"));

    /* After step 3: the new key in place, its certificate still in the next slot. */
    cr_assert_eq(cert_store_write(dir, &old), 0);
    write_file_pair(dir, "key.pem", "cert.next.pem", &new);
    assert_loads(dir, &new);

    /* A temporary file left by a killed write is removed. */
    _cleanup_free_ char *tmp = test_write_file(dir, ".cert.pem.tmp-abcdef", "partial");
    (void) tmp;
    assert_loads(dir, &new);
    cr_assert_not(exists_in(dir, ".cert.pem.tmp-abcdef"));
}

/* A commit after a write that stopped between steps 3 and 4 (the new key in place, its certificate
 * still in the next slot) finishes that rotation first: dropping the next certificate would leave
 * the key with another key's certificate if this commit failed in turn. */
Test(certificate, commit_finishes_a_half_rotation_before_its_own)
{
    _cleanup_(ca_done) ca c = make_ca();
    _cleanup_(cert_pair_done) cert_pair old = issue(&c, CERT_KEY_EC, HOUR);
    _cleanup_(cert_pair_done) cert_pair mid = issue(&c, CERT_KEY_EC, HOUR);
    _cleanup_(cert_pair_done) cert_pair new = issue(&c, CERT_KEY_EC, HOUR);
    const char *dir = test_tmpdir();
    cert_staged staged;
    cr_assert_eq(cert_store_write(dir, &old), 0);
    write_file_pair(dir, "key.pem", "cert.next.pem", &mid);
    cr_assert_eq(cert_store_stage(dir, &new, &staged), 0);
    /* The staged files are made unrenamable, so the commit stops after its recovery. */
    _cleanup_free_ char *key = strdup(staged.key);
    cr_assert_eq(unlink(key), 0);
    cr_assert_lt(cert_store_commit(&staged), 0);
    cert_store_abort(&staged);
    assert_loads(dir, &mid);
}

/* A next slot that cannot be read for another reason than being incomplete (here a key others may
 * read) is reported, and stays for the operator to look at. */
Test(certificate, store_reports_an_unreadable_next_slot_and_keeps_it)
{
    _cleanup_(ca_done) ca c = make_ca();
    _cleanup_(cert_pair_done) cert_pair old = issue(&c, CERT_KEY_EC, HOUR);
    _cleanup_(cert_pair_done) cert_pair new = issue(&c, CERT_KEY_EC, HOUR);
    const char *dir = test_tmpdir();
    cert_pair got = {};
    cert_error e = {};
    cr_assert_eq(cert_store_write(dir, &old), 0);
    write_file_pair(dir, "key.next.pem", "cert.next.pem", &new);
    _cleanup_free_ char *key_next = path_in(dir, "key.next.pem");
    cr_assert_eq(chmod(key_next, 0644), 0);
    cr_assert_eq(cert_store_load(dir, &got, &e), -EACCES);
    cr_assert(strstr(e.text, "key.next.pem"), "%s", e.text);
    cr_assert(exists_in(dir, "key.next.pem"));
    cr_assert(exists_in(dir, "cert.next.pem"));
}

static void assert_peeks(const char *dir, const cert_pair *want)
{
    _cleanup_(cert_pair_done) cert_pair got = {};
    cert_error e = {};
    cr_assert_eq(cert_store_peek(dir, &got, &e), 0, "%s", e.text);
    cr_assert_eq(X509_cmp(got.leaf, want->leaf), 0);
}

/* `keel token` beside the agent: every state of a rotation reads as a matching pair, and nothing in
 * the directory is renamed or removed, not even a temporary file. */
Test(certificate, peek_reads_through_a_rotation_and_changes_nothing)
{
    _cleanup_(ca_done) ca c = make_ca();
    _cleanup_(cert_pair_done) cert_pair old = issue(&c, CERT_KEY_EC, HOUR);
    _cleanup_(cert_pair_done) cert_pair new = issue(&c, CERT_KEY_EC, HOUR);
    const char *dir = test_tmpdir();
    cert_pair none = {};
    cert_error e = {};
    cr_assert_eq(cert_store_peek(dir, &none, &e), -ENOENT);

    cr_assert_eq(cert_store_write(dir, &old), 0);
    _cleanup_free_ char *tmp = test_write_file(dir, ".key.next.pem.tmp-abcdef", "being written");
    (void) tmp;
    write_file_pair(dir, "key.next.pem", "cert.next.pem", &new); /* after step 2 */
    assert_peeks(dir, &old);
    cr_assert(exists_in(dir, "key.next.pem"));
    cr_assert(exists_in(dir, ".key.next.pem.tmp-abcdef"));

    _cleanup_free_ char *key_next = path_in(dir, "key.next.pem");
    cr_assert_eq(unlink(key_next), 0); /* after step 3 */
    write_file_pair(dir, "key.pem", NULL, &new);
    assert_peeks(dir, &new);
    cr_assert(exists_in(dir, "cert.next.pem"), "the agent finishes its rotation, not the reader");
}

static atomic_bool stop_reading;
static atomic_uint mismatches;

static char *read_in(const char *dir, const char *name)
{
    _cleanup_free_ char *p = path_in(dir, name);
    char *text = NULL;
    size_t size = 0;
    cr_assert_eq(keel_file_read(p, 1 << 20, &text, &size, NULL), 0, "%s", name);
    return text;
}

/* pair.pem is key.pem then cert.pem. A load leaves it alone when it is (the same inode: nothing
 * was written) and writes it when it is not: missing, or another pair's after a crash before step 5. */
Test(certificate, load_writes_pair_pem_only_when_it_is_not_the_pair)
{
    _cleanup_(ca_done) ca c = make_ca();
    _cleanup_(cert_pair_done) cert_pair p = issue(&c, CERT_KEY_EC, HOUR);
    _cleanup_(cert_pair_done) cert_pair other = issue(&c, CERT_KEY_EC, HOUR);
    const char *dir = test_tmpdir();
    _cleanup_free_ char *bundle = path_in(dir, "pair.pem");
    struct stat before, after;
    cr_assert_eq(cert_store_write(dir, &p), 0);
    cr_assert_eq(stat(bundle, &before), 0);
    assert_loads(dir, &p);
    cr_assert_eq(stat(bundle, &after), 0);
    cr_assert_eq(after.st_ino, before.st_ino, "pair.pem was rewritten though it was the pair");

    _cleanup_free_ char *key = read_in(dir, "key.pem"), *cert = read_in(dir, "cert.pem");
    _cleanup_free_ char *want = keel_strdup_printf("%s%s", key, cert);
    cr_assert_eq(unlink(bundle), 0);
    assert_loads(dir, &p);
    _cleanup_free_ char *rewritten = read_in(dir, "pair.pem");
    cr_assert_str_eq(rewritten, want);

    cr_assert_eq(cert_store_write(dir, &other), 0);
    write_file_pair(dir, "key.pem", "cert.pem", &p); /* steps 3 and 4 of a rotation back to p, not 5 */
    assert_loads(dir, &p);
    cr_assert(bundle_is(dir, &p), "pair.pem still holds the other pair");
}

/* A reader of its own (nginx, a sidecar) reads pair.pem in a loop while 1,000 rotations go by:
 * every read is a whole pair, the key with its own certificate. */
static void *read_bundles(void *userdata)
{
    uintptr_t reads = 0;
    while (!atomic_load(&stop_reading)) {
        if (read_bundle(userdata, NULL) != 1)
            atomic_fetch_add(&mismatches, 1);
        reads++;
    }
    return (void *) reads;
}

Test(certificate, a_reader_of_pair_pem_never_sees_a_mismatch_through_a_thousand_rotations)
{
    _cleanup_(ca_done) ca c = make_ca();
    _cleanup_(cert_pair_done) cert_pair a = issue(&c, CERT_KEY_EC, HOUR);
    _cleanup_(cert_pair_done) cert_pair b = issue(&c, CERT_KEY_EC, HOUR);
    const char *dir = test_tmpdir();
    cr_assert_eq(cert_store_write(dir, &a), 0);
    pthread_t reader;
    atomic_store(&stop_reading, false);
    atomic_store(&mismatches, 0);
    cr_assert_eq(pthread_create(&reader, NULL, read_bundles, (void *) dir), 0);
    for (unsigned i = 0; i < 1000; i++)
        cr_assert_eq(cert_store_write(dir, i % 2 ? &a : &b), 0);
    atomic_store(&stop_reading, true);
    void *reads = NULL;
    cr_assert_eq(pthread_join(reader, &reads), 0);
    cr_assert_gt((uintptr_t) reads, 100, "the reader read along");
    cr_assert_eq(atomic_load(&mismatches), 0, "%u of %zu reads saw a mismatched pair", atomic_load(&mismatches), (size_t) reads);
    cr_assert(bundle_is(dir, &a));
}

static unsigned random_below(unsigned n)
{
    unsigned x = 0;
    cr_assert_eq(RAND_bytes((unsigned char *) &x, sizeof x), 1);
    return x % n;
}

/* A child rewrites the pair in a loop, alternating two credentials, and is killed at a random
 * moment; whatever it leaves must load as one of the two, matching. 200 rounds, well under 30 s.
 * The child reports each write it finished through a pipe, and the kill comes a random time after
 * its first or second: both credentials are landed on however long an fsync takes on a busy
 * machine (a bare random delay missed every write on one). */
Test(certificate, writer_killed_at_random_moments_never_leaves_a_torn_pair, .timeout = 60)
{
    _cleanup_(ca_done) ca c = make_ca();
    _cleanup_(cert_pair_done) cert_pair a = issue(&c, CERT_KEY_EC, HOUR);
    _cleanup_(cert_pair_done) cert_pair b = issue(&c, CERT_KEY_EC, HOUR);
    const char *dir = test_tmpdir();
    cr_assert_eq(cert_store_write(dir, &a), 0);

    unsigned landed_on_b = 0;
    for (unsigned round = 0; round < 200; round++) {
        int done[2];
        cr_assert_eq(pipe2(done, O_CLOEXEC), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            (void) close(done[0]);
            for (unsigned i = 0;; i++)
                if (cert_store_write(dir, i % 2 ? &a : &b) < 0 || write(done[1], "w", 1) != 1)
                    _exit(1);
        }
        (void) close(done[1]);
        char w;
        for (unsigned want = 1 + random_below(2); want > 0; want--) /* b finished, or a after it */
            cr_assert_eq(read(done[0], &w, 1), 1, "round %u: the writer stopped writing", round);
        usleep(random_below(1000));
        cr_assert_eq(kill(pid, SIGKILL), 0);
        (void) close(done[0]);
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFSIGNALED(status), "the writer failed on its own (status %d)", status);

        /* What a reader of its own sees before anyone recovers anything: pair.pem, one of the two. */
        cr_assert(bundle_is(dir, &a) || bundle_is(dir, &b), "round %u: pair.pem is not a pair that was written", round);
        _cleanup_(cert_pair_done) cert_pair got = {};
        cert_error e = {};
        cr_assert_eq(cert_store_load(dir, &got, &e), 0, "round %u: %s", round, e.text);
        cr_assert(bundle_is(dir, &got), "round %u: loading leaves pair.pem the pair it loaded", round);
        cr_assert_eq(X509_check_private_key(got.leaf, got.key), 1, "round %u: mismatched pair", round);
        bool is_a = X509_cmp(got.leaf, a.leaf) == 0, is_b = X509_cmp(got.leaf, b.leaf) == 0;
        cr_assert(is_a || is_b, "round %u: a certificate that was never written", round);
        landed_on_b += is_b;
    }
    /* The kills landed at different points of the rotation. */
    cr_assert_gt(landed_on_b, 0);
    cr_assert_lt(landed_on_b, 200);
}

/* ---- atomic writes -------------------------------------------------------------------------------- */

Test(certificate, atomic_write_replaces_and_keeps_mode)
{
    _cleanup_free_ char *p = path_in(test_tmpdir(), "f");
    _cleanup_free_ char *data = NULL;
    size_t size = 0;
    mode_t mode = 0;
    cr_assert_eq(keel_file_write_atomic(p, "one", 3, 0600), 0);
    cr_assert_eq(keel_file_write_atomic(p, "second", 6, 0640), 0);
    cr_assert_eq(keel_file_read(p, 100, &data, &size, &mode), 0);
    cr_assert_str_eq(data, "second");
    cr_assert_eq(mode, 0640);
    cr_assert_eq(keel_file_write_atomic("/nonexistent/dir/f", "x", 1, 0600), -ENOENT);
    free(data);
    data = NULL;
    cr_assert_eq(keel_file_read(p, 3, &data, &size, &mode), -EFBIG);
}

/* ---- schedule ---------------------------------------------------------------------------------------- */

Test(certificate, renews_at_the_interval_or_half_the_remaining_lifetime)
{
    keel_usec_t now = 1000 * HOUR, nb = now - HOUR;
    cr_assert_eq(cert_renew_delay(now, nb, now + 72 * HOUR, 24 * HOUR), 24 * HOUR);
    cr_assert_eq(cert_renew_delay(now, nb, now + 10 * HOUR, 24 * HOUR), 5 * HOUR);
    cr_assert_eq(cert_renew_delay(now, nb, now - 1, 24 * HOUR), 0, "expired: at once");
}

/* What /readyz calls unhealthy is due at once, however the clock came there (a step forward). */
Test(certificate, renews_at_once_within_the_last_tenth_of_the_lifetime)
{
    keel_usec_t nb = 1000 * HOUR, na = nb + 100 * HOUR;
    cr_assert(!cert_due(nb + 89 * HOUR, nb, na));
    cr_assert(cert_due(nb + 91 * HOUR, nb, na));
    cr_assert(cert_due(na + 1, nb, na), "expired");
    cr_assert_eq(cert_renew_delay(nb + 91 * HOUR, nb, na, 24 * HOUR), 0);
    cr_assert_eq(cert_renew_delay(nb + 80 * HOUR, nb, na, 24 * HOUR), 10 * HOUR);
}

/* A clock behind the certificate (a step back) is not the certificate's fault: renewing would
 * make another that the same clock calls early, in a loop. It waits for the clock. */
Test(certificate, a_certificate_not_valid_yet_is_not_due)
{
    keel_usec_t nb = 1000 * HOUR, na = nb + 72 * HOUR;
    cr_assert(!cert_due(nb - 60 * HOUR, nb, na));
    cr_assert_eq(cert_renew_delay(nb - 60 * HOUR, nb, na, 24 * HOUR), 24 * HOUR);
}

Test(certificate, backoff_doubles_from_one_second_to_five_minutes)
{
    keel_usec_t b = 0, seen[12];
    for (size_t i = 0; i < ELEMENTSOF(seen); i++)
        seen[i] = b = cert_backoff_next(b);
    cr_assert_eq(seen[0], KEEL_USEC_PER_SEC);
    cr_assert_eq(seen[1], 2 * KEEL_USEC_PER_SEC);
    cr_assert_eq(seen[8], 256 * KEEL_USEC_PER_SEC);
    cr_assert_eq(seen[9], 300 * KEEL_USEC_PER_SEC);
    cr_assert_eq(seen[11], 300 * KEEL_USEC_PER_SEC);
}

Test(certificate, a_retry_never_waits_past_half_of_what_is_left)
{
    keel_usec_t now = 1000 * HOUR, sec = KEEL_USEC_PER_SEC;
    cr_assert_eq(cert_retry_cap(now, now + 100 * sec, 16 * sec), 16 * sec);
    cr_assert_eq(cert_retry_cap(now, now + 10 * sec, 16 * sec), 5 * sec);
    cr_assert_eq(cert_retry_cap(now, now + sec, 16 * sec), CERT_BACKOFF_MIN, "spaced still");
    cr_assert_eq(cert_retry_cap(now, now + sec, 0), 0);
    cr_assert_eq(cert_retry_cap(now, now - 1, 300 * sec), 300 * sec, "expired: nothing left to keep");
}

/* A CA down from a short certificate's first renewal on (half its lifetime, or a day later), each
 * backoff at its longest jitter: the last attempt before the expiry comes in its last 2 s, so a CA
 * back before then renews in time (doubling alone: 20 s, 21, 23, 28, 36, then 54, past the end of
 * a 40 s one); and the attempts stay spaced and few, the halvings of the last minutes added to the
 * backoff's own. */
Test(certificate, backoff_under_a_short_lifetime_retries_up_to_the_expiry_without_a_storm)
{
    static const keel_usec_t lifetimes[] = { 40 * KEEL_USEC_PER_SEC, HOUR, 6 * 24 * HOUR };
    for (size_t i = 0; i < ELEMENTSOF(lifetimes); i++) {
        keel_usec_t nb = 1000 * HOUR, na = nb + lifetimes[i], t = nb + cert_renew_delay(nb, nb, na, 24 * HOUR);
        keel_usec_t backoff = 0, first = t, last = t;
        unsigned attempts = 0, late = 0;
        for (; t < na; attempts++) {
            last = t;
            late += na - t <= 10 * 60 * KEEL_USEC_PER_SEC;
            backoff = cert_backoff_next(backoff);
            keel_usec_t wait = cert_retry_cap(t, na, cert_jitter_by(backoff, UINT32_MAX));
            cr_assert_geq(wait, CERT_BACKOFF_MIN);
            cr_assert_leq(wait, KEEL_MAX((na - t) / 2, CERT_BACKOFF_MIN));
            t += wait;
        }
        cr_assert_geq(last, na - 2 * KEEL_USEC_PER_SEC, "lifetime %zu: the last attempt %llu us before the expiry", i,
                      (unsigned long long) (na - last));
        cr_assert_leq(late, 20, "lifetime %zu: %u attempts in the last ten minutes", i, late);
        cr_assert_leq(attempts, (na - first) / CERT_BACKOFF_MAX + 30, "lifetime %zu: %u attempts", i, attempts);
    }
}

Test(certificate, jitter_stays_within_ten_percent_and_spreads)
{
    cr_assert_eq(cert_jitter_by(1000000, 0), 900000);
    cr_assert_eq(cert_jitter_by(1000000, UINT32_MAX), 1100000);
    keel_usec_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 1000; i++) {
        keel_usec_t j = cert_jitter(1000000);
        lo = MIN(lo, j);
        hi = MAX(hi, j);
    }
    cr_assert_geq(lo, 900000);
    cr_assert_leq(hi, 1100000);
    cr_assert_gt(hi - lo, 100000, "1000 draws cover more than half the range");
}
