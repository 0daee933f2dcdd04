/* SPDX-License-Identifier: MIT */
/* The tls-alpn-01 validation certificate (RFC 8737 §3, RFC 8738 §6), the server names a CA sends,
 * the responder's list of names and its configuration row (services/certificate/acme-tlsalpn01.c).
 * Handshakes are tests/integration/test_tlsalpn01.py's. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <string.h>

#include <criterion/criterion.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include <keel/app.h>
#include <keel/config.h>

#include "helpers.h"
#include "openssl-util.h"
#include "tlsalpn01.h"

TestSuite(tlsalpn01, .timeout = 30);

/* What a dlopen("libssl.so.3") opens instead; NULL: libssl.so.3 itself (as test-libssl.c does:
 * this dlopen() is found before libc's). Criterion runs each test in a process of its own. */
static const char *libssl_instead;

void *dlopen(const char *file, int mode)
{
    if (file && libssl_instead && strcmp(file, "libssl.so.3") == 0)
        file = libssl_instead;
    return test_real_dlopen(file, mode);
}

#define KEY_AUTHORIZATION "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"

static EVP_PKEY *new_key(void)
{
    EVP_PKEY *key = NULL;
    cr_assert_eq(cert_generate_key(CERT_KEY_EC, 0, &key), 0);
    return key;
}

/* The one extension of @x with the OID of id-pe-acmeIdentifier. */
static X509_EXTENSION *acme_identifier(X509 *x)
{
    _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
    int i = X509_get_ext_by_OBJ(x, oid, -1);
    cr_assert_geq(i, 0, "the certificate has id-pe-acmeIdentifier");
    cr_assert_lt(X509_get_ext_by_OBJ(x, oid, i), 0, "once");
    return X509_get_ext(x, i);
}

Test(tlsalpn01, the_certificate_holds_the_digest_in_a_critical_acme_identifier)
{
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = new_key();
    _cleanup_(X509_freep) X509 *x = NULL;
    cr_assert_eq(tlsalpn01_certificate(key, "example.org", KEY_AUTHORIZATION, &x), 0);

    X509_EXTENSION *ext = acme_identifier(x);
    cr_assert_eq(X509_EXTENSION_get_critical(ext), 1);
    char oid[64];
    OBJ_obj2txt(oid, sizeof oid, X509_EXTENSION_get_object(ext), 1);
    cr_assert_str_eq(oid, "1.3.6.1.5.5.7.1.31");
    /* extnValue is the DER of an OCTET STRING of SHA-256(key authorization): 04 20 <32 bytes>. */
    unsigned char expected[2 + SHA256_DIGEST_LENGTH] = { 0x04, 0x20 };
    SHA256((const unsigned char *) KEY_AUTHORIZATION, strlen(KEY_AUTHORIZATION), expected + 2);
    const ASN1_OCTET_STRING *value = X509_EXTENSION_get_data(ext);
    cr_assert_eq(ASN1_STRING_length(value), (int) sizeof expected);
    cr_assert_arr_eq(ASN1_STRING_get0_data(value), expected, sizeof expected);
    /* As a parser reads it back. */
    const unsigned char *p = ASN1_STRING_get0_data(value);
    _cleanup_(ASN1_OCTET_STRING_freep) ASN1_OCTET_STRING *digest = d2i_ASN1_OCTET_STRING(NULL, &p, ASN1_STRING_length(value));
    cr_assert_not_null(digest);
    cr_assert_arr_eq(ASN1_STRING_get0_data(digest), expected + 2, SHA256_DIGEST_LENGTH);
}

Test(tlsalpn01, the_certificate_names_the_one_dns_name_and_is_self_signed)
{
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = new_key();
    _cleanup_(X509_freep) X509 *x = NULL;
    cr_assert_eq(tlsalpn01_certificate(key, "Www.Example.org", KEY_AUTHORIZATION, &x), 0);
    _cleanup_(GENERAL_NAMES_freep) GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    cr_assert_not_null(names);
    cr_assert_eq(sk_GENERAL_NAME_num(names), 1, "a single name (RFC 8737 §3)");
    GENERAL_NAME *g = sk_GENERAL_NAME_value(names, 0);
    cr_assert_eq(g->type, GEN_DNS);
    cr_assert_str_eq((const char *) ASN1_STRING_get0_data(g->d.dNSName), "Www.Example.org");
    cr_assert_eq(X509_verify(x, key), 1, "signed by its own key");
    cr_assert_eq(X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)), 0);
    cr_assert_eq(X509_cmp_current_time(X509_get0_notBefore(x)), -1, "valid now");
    cr_assert_eq(X509_cmp_current_time(X509_get0_notAfter(x)), 1);
}

Test(tlsalpn01, an_ip_address_is_named_as_an_ip_address)
{
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = new_key();
    _cleanup_(X509_freep) X509 *x = NULL;
    cr_assert_eq(tlsalpn01_certificate(key, "2001:db8::1", KEY_AUTHORIZATION, &x), 0);
    _cleanup_(GENERAL_NAMES_freep) GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    cr_assert_eq(sk_GENERAL_NAME_num(names), 1);
    GENERAL_NAME *g = sk_GENERAL_NAME_value(names, 0);
    cr_assert_eq(g->type, GEN_IPADD);
    unsigned char expected[16];
    cr_assert_eq(inet_pton(AF_INET6, "2001:db8::1", expected), 1);
    cr_assert_eq(ASN1_STRING_length(g->d.iPAddress), 16);
    cr_assert_arr_eq(ASN1_STRING_get0_data(g->d.iPAddress), expected, 16);
    cr_assert_eq(X509_EXTENSION_get_critical(acme_identifier(x)), 1);
}

Test(tlsalpn01, a_wildcard_a_bad_name_or_no_key_authorization_is_refused)
{
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = new_key();
    X509 *x = NULL;
    cr_assert_eq(tlsalpn01_certificate(key, "*.example.org", KEY_AUTHORIZATION, &x), -EINVAL);
    cr_assert_eq(tlsalpn01_certificate(key, "bad name", KEY_AUTHORIZATION, &x), -EINVAL);
    cr_assert_eq(tlsalpn01_certificate(key, "", KEY_AUTHORIZATION, &x), -EINVAL);
    cr_assert_eq(tlsalpn01_certificate(key, "example.org", "", &x), -EINVAL);
    cr_assert_null(x);
}

Test(tlsalpn01, the_server_name_is_the_name_or_the_reverse_name_of_an_address)
{
    char name[TLSALPN01_NAME_MAX + 1];
    cr_assert_eq(tlsalpn01_server_name("Www.Example.ORG", name), 0);
    cr_assert_str_eq(name, "www.example.org");
    cr_assert_eq(tlsalpn01_server_name("192.0.2.7", name), 0);
    cr_assert_str_eq(name, "7.2.0.192.in-addr.arpa");
    cr_assert_eq(tlsalpn01_server_name("2001:db8::1", name), 0);
    cr_assert_str_eq(name, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"); /* RFC 8738 §6 */
    cr_assert_eq(tlsalpn01_server_name("not a name", name), -EINVAL);
}

Test(tlsalpn01, names_are_added_replaced_and_removed)
{
    keel_address loopback = { .host = "127.0.0.1" };
    cert_error e = { .text = "" };
    _cleanup_(tlsalpn01_responder_closep) tlsalpn01_responder *r = NULL;
    cr_assert_eq(tlsalpn01_responder_open(&loopback, &r, &e), 0, "%s", e.text);
    cr_assert_neq(tlsalpn01_responder_port(r), 0, "a free port was picked");
    cr_assert(test_library_mapped("libssl.so.3"), "loaded by the open");
    cr_assert_eq(tlsalpn01_add(r, "example.org", KEY_AUTHORIZATION, &e), 0, "%s", e.text);
    cr_assert_eq(tlsalpn01_add(r, "EXAMPLE.org", "other.key-authorization", &e), 0, "the same name again: replaced");
    cr_assert_eq(tlsalpn01_add(r, "*.example.org", KEY_AUTHORIZATION, &e), -EINVAL);
    cr_assert(strstr(e.text, "*.example.org"), "%s", e.text);
    cr_assert_eq(tlsalpn01_remove(r, "example.org"), 0);
    cr_assert_eq(tlsalpn01_remove(r, "example.org"), -ENOENT, "once only: it was there once");
    cr_assert_eq(tlsalpn01_remove(r, "example.net"), -ENOENT);
}

Test(tlsalpn01, an_address_in_use_is_the_error_of_open)
{
    keel_address loopback = { .host = "127.0.0.1" };
    cert_error e = { .text = "" };
    _cleanup_(tlsalpn01_responder_closep) tlsalpn01_responder *first = NULL;
    tlsalpn01_responder *second = NULL;
    cr_assert_eq(tlsalpn01_responder_open(&loopback, &first, &e), 0, "%s", e.text);
    loopback.port = tlsalpn01_responder_port(first);
    cr_assert_eq(tlsalpn01_responder_open(&loopback, &second, &e), -EADDRINUSE);
    cr_assert_null(second);
    cr_assert(strstr(e.text, "cannot listen for tls-alpn-01 at 127.0.0.1:"), "%s", e.text);
}

Test(tlsalpn01, libssl_is_loaded_when_a_responder_opens_and_its_absence_is_the_error)
{
    keel_address loopback = { .host = "127.0.0.1" };
    cert_error e = { .text = "" };
    tlsalpn01_responder *r = NULL;
    /* The certificate is libcrypto's alone. */
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = new_key();
    _cleanup_(X509_freep) X509 *x = NULL;
    cr_assert_eq(tlsalpn01_certificate(key, "example.org", KEY_AUTHORIZATION, &x), 0);
    cr_assert_not(test_library_mapped("libssl.so.3"), "decision 19: nothing loaded libssl yet");

    libssl_instead = "libkeel-test-absent-libssl.so.3";
    cr_assert_eq(tlsalpn01_responder_open(&loopback, &r, &e), -ENOENT);
    cr_assert_null(r);
    cr_assert(strstr(e.text, "cannot answer tls-alpn-01 challenges: Failed to load libssl.so.3: "), "%s", e.text);
}

Test(tlsalpn01, the_address_row_is_accepted_with_port_443_on_every_address)
{
    keel_app *app = keel_app_new("test");
    tlsalpn01_config c = { .address.port = 1 };
    cr_assert_eq(keel_app_add_config(app, tlsalpn01_config_keys, tlsalpn01_n_config_keys, &c), 0);
    cr_assert_str_eq(c.address.host, "");
    cr_assert_eq(c.address.port, 443);
    keel_app_free(app);
}
