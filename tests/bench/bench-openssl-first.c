/* SPDX-License-Identifier: MIT */
/*
 * What OpenSSL 3's first use costs a process, step by step in the order the certificate service
 * takes them on a first run, each in a new process (a child per run), in microseconds:
 *   init_us      OPENSSL_init_crypto() with the system's openssl.cnf
 *   keygen_us    the first P-256 key (provider, key management, random generator)
 *   keygen2_us   the second
 *   encoder_us   the first encoder (X509_set_pubkey(), as a certificate is made)
 *   sign_us      the first signature (X509_sign() of that certificate)
 *   pem_us       the key's PEM once the encoders are set up
 * Usage: bench-openssl-first [RUNS] (default 20); medians (docs/performance.md, start-up).
 */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

enum { INIT, KEYGEN, KEYGEN2, ENCODER, SIGN, PEM, STEPS };
static const char *const step_names[STEPS] = { "init_us", "keygen_us", "keygen2_us", "encoder_us", "sign_us", "pem_us" };

/* One process's steps, in µs, into @us; 0, or -1 when a step failed. */
static int first_use(double us[STEPS])
{
    uint64_t t[STEPS + 1];
    EVP_PKEY *key = NULL, *key2 = NULL;
    X509 *x = X509_new();
    BIO *b = BIO_new(BIO_s_mem());
    bool ok = x && b;
    t[0] = now_ns();
    ok = ok && OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL) == 1;
    t[1] = now_ns();
    ok = ok && (key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"));
    t[2] = now_ns();
    ok = ok && (key2 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"));
    t[3] = now_ns();
    ok = ok && X509_set_pubkey(x, key) == 1;
    t[4] = now_ns();
    ok = ok && X509_set_version(x, 2) == 1 && X509_gmtime_adj(X509_getm_notBefore(x), 0) &&
         X509_gmtime_adj(X509_getm_notAfter(x), 3600) && X509_sign(x, key, EVP_sha256()) > 0;
    t[5] = now_ns();
    ok = ok && PEM_write_bio_PrivateKey(b, key2, NULL, NULL, 0, NULL, NULL) == 1;
    t[6] = now_ns();
    for (int i = 0; i < STEPS; i++)
        us[i] = (double) (t[i + 1] - t[i]) / 1000;
    EVP_PKEY_free(key);
    EVP_PKEY_free(key2);
    X509_free(x);
    BIO_free(b);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 20;
    if (runs < 1 || runs > 1000) {
        fprintf(stderr, "usage: bench-openssl-first [RUNS 1..1000]\n");
        return 64;
    }
    double *all = calloc((size_t) runs * STEPS, sizeof *all), col[1000];
    for (int r = 0; all && r < runs; r++) {
        int fd[2], status;
        if (pipe(fd) < 0)
            return 1;
        pid_t pid = fork();
        if (pid == 0) {
            double us[STEPS];
            int rc = first_use(us);
            _exit(rc == 0 && write(fd[1], us, sizeof us) == (ssize_t) sizeof us ? 0 : 1);
        }
        close(fd[1]);
        ssize_t n = read(fd[0], all + (size_t) r * STEPS, STEPS * sizeof *all);
        close(fd[0]);
        if (pid < 0 || waitpid(pid, &status, 0) < 0 || status != 0 || n != (ssize_t) (STEPS * sizeof *all)) {
            fprintf(stderr, "bench-openssl-first: run %d failed\n", r);
            return 1;
        }
    }
    if (!all)
        return 1;
    printf("bench-openssl-first: runs=%d", runs);
    for (int i = 0; i < STEPS; i++) {
        for (int r = 0; r < runs; r++)
            col[r] = all[(size_t) r * STEPS + (size_t) i];
        printf(" %s=%.0f", step_names[i], median(col, (size_t) runs));
    }
    printf("\n");
    free(all);
    return 0;
}
