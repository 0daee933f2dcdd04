/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The agent's identity: three slots of credentials that the certificate service fills and the
 * token service (and anyone else) reads, shared through the app (keel_app_attach(), name
 * "identity"), so that no service knows another's state. Thread-safe.
 */

#include <keel/app.h>

#include "credential.h"

typedef struct identity identity;

/** The slots. */
typedef enum identity_slot {
    IDENTITY_PREVIOUS, /* the one before the last rotation: tokens it signed still verify */
    IDENTITY_CURRENT,  /* the one in use */
    IDENTITY_NEXT,     /* a new key made for the next rotation, published before its certificate */
    _IDENTITY_SLOT_MAX,
    _IDENTITY_SLOT_INVALID = -EINVAL,
} identity_slot;

/**
 * The app's identity (borrowed: the app owns it), made empty and attached on first use. Main
 * thread, from a service hook or observer. Returns 0, -ENOMEM.
 */
int identity_of(keel_app *app, identity **ret);

/** A new reference to the credential in @slot, or NULL when the slot is empty. */
credential *identity_get(identity *id, identity_slot slot);

/**
 * Whether the current credential passes credential_check() at @now, read without a lock or a
 * reference (for what runs on every request, such as a health check): true only when it surely
 * does, with its validity in @ret_not_before and @ret_not_after (either may be NULL); false when
 * it does not, there is none, or a rotation was under way: then identity_get() and
 * credential_check() say why.
 */
bool identity_current_valid(identity *id, keel_usec_t now, keel_usec_t *ret_not_before, keel_usec_t *ret_not_after);

/**
 * Makes @c (which must have a certificate) the current credential: the current one becomes the
 * previous one (unless @c has the same key: a renewal), and the next slot is emptied when it
 * holds @c's key. Then calls every subscriber. Returns 0, -EINVAL (NULL, or no certificate).
 */
int identity_rotate(identity *id, credential *c);

/** Publishes @c (a key; its certificate may not exist yet) as the next credential, or empties the
 * slot with NULL, then calls every subscriber. Returns 0, -EINVAL. */
int identity_set_next(identity *id, credential *c);

/** Called after every change of the slots, on the thread that made it, with no lock held. */
typedef void (*identity_handler_t)(identity *id, void *userdata);

/** Subscribes @fn to changes of the slots; before `start` (the list is read without a lock then).
 * Returns 0, -EINVAL, -ENOMEM. */
int identity_subscribe(identity *id, identity_handler_t fn, void *userdata);
