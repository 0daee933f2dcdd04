/* SPDX-License-Identifier: MIT */
/*
 * Tokens minted per second, as the token service mints them on a cache miss (token_sign():
 * claims JSON, a random jti, the subject from the certificate, credential_sign_jws()), for
 * an ES256 (P-256) and an RS256 (RSA 2048) key, on one thread. Median of several runs each.
 */
#include <stdio.h>
#include <stdlib.h>

#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "bench.h"
#include "credential.h"
#include "jwt.h"
#include "openssl-util.h"

#define RUNS 7

static credential *make_credential(EVP_PKEY *key)
{
    _cleanup_(X509_freep) X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *) "agent.example", -1, -1, 0);
    X509_set_issuer_name(x, n);
    credential *c = NULL;
    if (X509_sign(x, key, EVP_sha256()) <= 0 || credential_new(key, x, NULL, &c) < 0)
        abort();
    return c;
}

static double mints_per_sec(const credential *c, unsigned n)
{
    token_params p = { .issuer = "keel", .expiry = 3600 * KEEL_USEC_PER_SEC };
    keel_usec_t now = keel_now_realtime(), expires;
    uint64_t t = now_ns();
    for (unsigned i = 0; i < n; i++) {
        char *jwt = NULL;
        if (token_sign(c, &p, "sports", "reader", now, &jwt, &expires) < 0)
            abort();
        free(jwt);
    }
    return (double) n / ((double) (now_ns() - t) / 1e9);
}

static double median_rate(EVP_PKEY *key, unsigned n)
{
    credential *c = make_credential(key);
    double runs[RUNS];
    for (size_t i = 0; i < RUNS; i++)
        runs[i] = mints_per_sec(c, n);
    credential_unref(c);
    return median(runs, RUNS);
}

int main(void)
{
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *ec = EVP_EC_gen("P-256"), *rsa = EVP_RSA_gen(2048);
    if (!ec || !rsa)
        return 1;
    double es = median_rate(ec, 4000), rs = median_rate(rsa, 400);
    printf("bench-token: es256_mints_per_sec=%.0f es256_us_per_mint=%.1f rs256_mints_per_sec=%.0f rs256_us_per_mint=%.1f\n", es,
           1e6 / es, rs, 1e6 / rs);
    return 0;
}
