/* SPDX-License-Identifier: MIT */
#pragma once

#include <keel/service.h>

struct keel_service {
    keel_app *app; /* borrowed: the app owns the service */
    const keel_service_vtable *vtable;
    void *userdata;
};

/* Frees a service; only the app calls it, with itself. */
keel_service *keel__service_free(keel_service *s);
