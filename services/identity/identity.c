/* SPDX-License-Identifier: MIT */
#include <pthread.h>
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
