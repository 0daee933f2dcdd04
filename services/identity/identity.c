/* SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <keel/util.h>

#include "identity.h"

#define ATTACHED_AS "identity"

typedef struct subscriber {
    identity_handler_t fn;
    void *userdata;
} subscriber;

struct identity {
    pthread_mutex_t lock; /* guards slots */
    credential *slots[_IDENTITY_SLOT_MAX];
    subscriber *subscribers; /* added before start, never removed: read without the lock */
    size_t n_subscribers;
    /* The current credential's validity, for the checks every probe runs: read without the lock
     * and a reference, whose four atomic read-modify-writes were most of a health check's cost
     * (issue 24). A sequence lock: seq is odd while identity_rotate() writes the rest. */
    atomic_uint seq;
    atomic_bool usable; /* credential_check() passes within [not_before, not_after] */
    _Atomic keel_usec_t not_before, not_after;
};

static void identity_free(void *p)
{
    identity *id = p;
    for (size_t i = 0; i < ELEMENTSOF(id->slots); i++)
        (void) credential_unref(id->slots[i]);
    free(id->subscribers);
    (void) pthread_mutex_destroy(&id->lock);
    free(id);
}

int identity_of(keel_app *app, identity **ret)
{
    identity *id = keel_app_attached(app, ATTACHED_AS);
    if (id)
        return *ret = id, 0;
    if (!(id = calloc(1, sizeof *id)))
        return -ENOMEM;
    *id = (identity){ .lock = PTHREAD_MUTEX_INITIALIZER };
    int r = keel_app_attach(app, ATTACHED_AS, id, identity_free);
    if (r < 0) {
        identity_free(id);
        return r;
    }
    *ret = id;
    return 0;
}

credential *identity_get(identity *id, identity_slot slot)
{
    if (!id || slot < 0 || slot >= _IDENTITY_SLOT_MAX)
        return NULL;
    (void) pthread_mutex_lock(&id->lock);
    credential *c = credential_ref(id->slots[slot]);
    (void) pthread_mutex_unlock(&id->lock);
    return c;
}

static void notify_subscribers(identity *id)
{
    for (size_t i = 0; i < id->n_subscribers; i++)
        id->subscribers[i].fn(id, id->subscribers[i].userdata);
}

static bool same_key(const credential *a, const credential *b)
{
    return a && b && streq(credential_kid(a), credential_kid(b));
}

/* Under the lock, after the current slot changed. */
static void store_validity(identity *id, const credential *c)
{
    unsigned seq = atomic_load_explicit(&id->seq, memory_order_relaxed);
    keel_usec_t nb = credential_not_before(c);
    atomic_store_explicit(&id->seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&id->usable, credential_check(c, nb, NULL, 0) == 0, memory_order_relaxed);
    atomic_store_explicit(&id->not_before, nb, memory_order_relaxed);
    atomic_store_explicit(&id->not_after, credential_not_after(c), memory_order_relaxed);
    atomic_store_explicit(&id->seq, seq + 2, memory_order_release);
}

bool identity_current_valid(identity *id, keel_usec_t now, keel_usec_t *ret_not_before, keel_usec_t *ret_not_after)
{
    if (!id)
        return false;
    unsigned seq = atomic_load_explicit(&id->seq, memory_order_acquire);
    bool usable = atomic_load_explicit(&id->usable, memory_order_relaxed);
    keel_usec_t nb = atomic_load_explicit(&id->not_before, memory_order_relaxed);
    keel_usec_t na = atomic_load_explicit(&id->not_after, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    /* A rotation under way: the caller reads the credential itself, as it would for a reason. */
    if ((seq & 1) || atomic_load_explicit(&id->seq, memory_order_relaxed) != seq || !usable || now < nb || now > na)
        return false;
    if (ret_not_before)
        *ret_not_before = nb;
    if (ret_not_after)
        *ret_not_after = na;
    return true;
}

int identity_rotate(identity *id, credential *c)
{
    if (!id || !c || !credential_cert(c))
        return -EINVAL;
    credential *dropped[2] = { NULL, NULL };

    (void) pthread_mutex_lock(&id->lock);
    credential **slots = id->slots;
    if (!same_key(slots[IDENTITY_CURRENT], c)) {
        /* A renewal of the same key keeps the previous slot: it still holds the last other key. */
        dropped[0] = slots[IDENTITY_PREVIOUS];
        slots[IDENTITY_PREVIOUS] = slots[IDENTITY_CURRENT];
    } else
        dropped[0] = slots[IDENTITY_CURRENT];
    slots[IDENTITY_CURRENT] = credential_ref(c);
    store_validity(id, c);
    if (same_key(slots[IDENTITY_NEXT], c)) {
        dropped[1] = slots[IDENTITY_NEXT];
        slots[IDENTITY_NEXT] = NULL;
    }
    (void) pthread_mutex_unlock(&id->lock);

    (void) credential_unref(dropped[0]);
    (void) credential_unref(dropped[1]);
    notify_subscribers(id);
    return 0;
}

int identity_set_next(identity *id, credential *c)
{
    if (!id)
        return -EINVAL;
    (void) pthread_mutex_lock(&id->lock);
    credential *old = id->slots[IDENTITY_NEXT];
    id->slots[IDENTITY_NEXT] = credential_ref(c);
    (void) pthread_mutex_unlock(&id->lock);
    (void) credential_unref(old);
    notify_subscribers(id);
    return 0;
}

int identity_subscribe(identity *id, identity_handler_t fn, void *userdata)
{
    if (!id || !fn)
        return -EINVAL;
    subscriber *l = reallocarray(id->subscribers, id->n_subscribers + 1, sizeof *l);
    if (!l)
        return -ENOMEM;
    id->subscribers = l;
    l[id->n_subscribers++] = (subscriber){ fn, userdata };
    return 0;
}
