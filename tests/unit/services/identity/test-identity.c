/* SPDX-License-Identifier: MIT */
/* The identity's lock-free read of the current credential's validity (identity_current_valid()),
 * which every health check makes. Runs under ThreadSanitizer too (make test-tsan). */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#include <openssl/x509.h>

#include <keel/app.h>

#include "credential.h"
#include "identity.h"
#include "openssl-util.h"
#include "testing.h"

TestSuite(identity, .timeout = 60);

static keel_usec_t realtime(void)
{
    return keel_now_realtime();
}

static EVP_PKEY *ec_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    cr_assert_not_null(k);
    return k;
}

/* A self-signed certificate of @key valid from now + @from_s for @days days. */
static X509 *self_signed(EVP_PKEY *key, long from_s, long days)
{
    X509 *x = X509_new();
    cr_assert_not_null(x);
    cr_assert(ASN1_INTEGER_set(X509_get_serialNumber(x), 1) == 1 && X509_gmtime_adj(X509_getm_notBefore(x), from_s) &&
              X509_gmtime_adj(X509_getm_notAfter(x), from_s + days * 86400L) && X509_set_pubkey(x, key) == 1);
    cr_assert(X509_sign(x, key, EVP_sha256()) > 0);
    return x;
}

/* The lock-free read every health check makes says what credential_check() says, at every moment
 * the credential's dates set apart, and nothing without a current credential. */
Test(identity, current_valid_agrees_with_the_check)
{
    keel_app *app = keel_app_new("test");
    identity *id = NULL;
    cr_assert_eq(identity_of(app, &id), 0);
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = ec_key(), *other = ec_key();
    _cleanup_(X509_freep) X509 *x = self_signed(key, -60, 1), *foreign = self_signed(other, -60, 1);
    credential *c = NULL, *f = NULL;
    cr_assert_eq(credential_new(key, x, NULL, &c), 0);
    cr_assert_eq(credential_new(key, foreign, NULL, &f), 0);
    keel_usec_t now = realtime(), nb = 0, na = 0;
    cr_assert_not(identity_current_valid(id, now, &nb, &na), "no current credential");

    cr_assert_eq(identity_rotate(id, c), 0);
    keel_usec_t at[] = { credential_not_before(c) - 1, credential_not_before(c), now, credential_not_after(c),
                         credential_not_after(c) + 1 };
    for (size_t i = 0; i < ELEMENTSOF(at); i++)
        cr_assert_eq(identity_current_valid(id, at[i], NULL, NULL), credential_check(c, at[i], NULL, 0) == 0);
    cr_assert(identity_current_valid(id, now, &nb, &na));
    cr_assert(nb == credential_not_before(c) && na == credential_not_after(c));

    cr_assert_eq(identity_rotate(id, f), 0);
    cr_assert_not(identity_current_valid(id, now, NULL, NULL), "a certificate of another key");
    credential_unref(c);
    credential_unref(f);
    keel_app_free(app);
}

#define ROTATIONS 2000

typedef struct reader {
    identity *id;
    atomic_bool started, done;    /* the reader reads; the writer's rotations are over */
    keel_usec_t now, pairs[2][2]; /* the two credentials' [not_before, not_after] */
    unsigned torn, seen;
} reader;

/* Reads for as long as the writer rotates (bounded by attempts too). */
static void *read_validity(void *userdata)
{
    reader *r = userdata;
    atomic_store(&r->started, true);
    for (unsigned i = 0; i < 50000000 && !atomic_load(&r->done); i++) {
        keel_usec_t nb, na;
        if (!identity_current_valid(r->id, r->now, &nb, &na))
            continue;
        r->seen++;
        r->torn += !((nb == r->pairs[0][0] && na == r->pairs[0][1]) || (nb == r->pairs[1][0] && na == r->pairs[1][1]));
    }
    return NULL;
}

/* Read on one thread while another rotates between two credentials: never the dates of neither
 * (a torn read), and no data race (this suite runs under ThreadSanitizer too). */
Test(identity, current_valid_is_never_torn_by_a_rotation)
{
    keel_app *app = keel_app_new("test");
    identity *id = NULL;
    cr_assert_eq(identity_of(app, &id), 0);
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = ec_key();
    _cleanup_(X509_freep) X509 *x1 = self_signed(key, -60, 1), *x2 = self_signed(key, -30, 2);
    credential *c[2] = {};
    cr_assert_eq(credential_new(key, x1, NULL, &c[0]), 0);
    cr_assert_eq(credential_new(key, x2, NULL, &c[1]), 0);
    reader r = { .id = id, .now = realtime() };
    for (int i = 0; i < 2; i++)
        r.pairs[i][0] = credential_not_before(c[i]), r.pairs[i][1] = credential_not_after(c[i]);
    cr_assert_eq(identity_rotate(id, c[0]), 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, read_validity, &r), 0);
    for (unsigned i = 0; i < 100000 && !atomic_load(&r.started); i++)
        (void) sched_yield();
    /* A system call between rotations leaves the reader times when none is under way, as in a
     * served life, where rotations are rare: a writer that never pauses keeps a sequence lock's
     * readers out (under ASan this one did). */
    for (unsigned i = 0; i < ROTATIONS; i++) {
        cr_assert_eq(identity_rotate(id, c[i % 2]), 0);
        (void) sched_yield();
    }
    atomic_store(&r.done, true);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(r.torn, 0);
    cr_assert_lt(0, r.seen);
    credential_unref(c[0]);
    credential_unref(c[1]);
    keel_app_free(app);
}
