/* SPDX-License-Identifier: MIT */
/*
 * What the certificate service's work costs:
 *   ec_keys_per_s        ECDSA P-256 keys generated per second
 *   rsa2048_keys_per_s   RSA 2048 keys generated per second
 *   issue_ec_per_s       certificates issued per second by the local CA (EC CA) for an EC key
 *   issue_rsa_per_s      the same for an RSA 2048 key (key made beforehand)
 *   store_pair_ms        one durable pair write (two files, the next slot, fsyncs) in DIR
 * Usage: bench-certificate [DIR] (default: a new directory under /tmp, removed at the end).
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench.h"
#include "certificate.h"

#define RUNS 5

static char *const names[] = { "svc.example", "localhost", NULL };

/* Per second over at least @min_ns of repeated @fn calls; the median of RUNS. */
#define RATE(expr, min_ns)                                                                                                         \
    ({                                                                                                                             \
        double r_[RUNS];                                                                                                           \
        for (int i_ = 0; i_ < RUNS; i_++) {                                                                                        \
            uint64_t t_ = now_ns(), n_ = 0;                                                                                        \
            do {                                                                                                                   \
                expr;                                                                                                              \
                n_++;                                                                                                              \
            } while (now_ns() - t_ < (min_ns));                                                                                    \
            r_[i_] = (double) n_ * 1e9 / (double) (now_ns() - t_);                                                                 \
        }                                                                                                                          \
        median(r_, RUNS);                                                                                                          \
    })

static void keygen(cert_key_type type)
{
    EVP_PKEY *k = NULL;
    if (cert_generate_key(type, 2048, &k) < 0)
        abort();
    EVP_PKEY_free(k);
}

static void issue(EVP_PKEY *ca_key, X509 *ca, EVP_PKEY *key)
{
    X509 *x = NULL;
    if (cert_issue(ca_key, ca, key, names, 72ULL * 3600 * KEEL_USEC_PER_SEC, &x) < 0)
        abort();
    X509_free(x);
}

int main(int argc, char **argv)
{
    char tmp[] = "/tmp/bench-certificate-XXXXXX";
    const char *dir = argc > 1 ? argv[1] : mkdtemp(tmp);
    EVP_PKEY *ca_key = NULL, *ec = NULL, *rsa = NULL;
    X509 *ca = NULL;
    if (!dir || cert_generate_key(CERT_KEY_EC, 0, &ca_key) < 0 ||
        cert_create_ca(ca_key, 24ULL * 3600 * KEEL_USEC_PER_SEC, &ca) < 0 || cert_generate_key(CERT_KEY_EC, 0, &ec) < 0 ||
        cert_generate_key(CERT_KEY_RSA, 2048, &rsa) < 0)
        return 1;

    double ec_keys = RATE(keygen(CERT_KEY_EC), 200000000ULL);
    double rsa_keys = RATE(keygen(CERT_KEY_RSA), 1000000000ULL);
    double issue_ec = RATE(issue(ca_key, ca, ec), 200000000ULL);
    double issue_rsa = RATE(issue(ca_key, ca, rsa), 200000000ULL);

    cert_pair p = { .key = ec };
    if (cert_issue(ca_key, ca, ec, names, 3600 * KEEL_USEC_PER_SEC, &p.leaf) < 0)
        return 1;
    double stores = RATE(if (cert_store_write(dir, &p) < 0) abort(), 200000000ULL);

    printf("bench-certificate: ec_keys_per_s=%.0f rsa2048_keys_per_s=%.1f issue_ec_per_s=%.0f issue_rsa_per_s=%.0f "
           "store_pair_ms=%.3f (%s)\n",
           ec_keys, rsa_keys, issue_ec, issue_rsa, 1000.0 / stores, dir);
    if (argc <= 1) {
        char path[256];
        const char *const files[] = { "key.pem", "cert.pem" };
        for (size_t i = 0; i < 2; i++) {
            (void) snprintf(path, sizeof path, "%s/%s", dir, files[i]);
            (void) unlink(path);
        }
        (void) rmdir(dir);
    }
    X509_free(p.leaf);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(rsa);
    return 0;
}
