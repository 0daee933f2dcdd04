/* SPDX-License-Identifier: MIT */
/* Objects the plugins and services of one app share (keel_app_attach()). */
#include <pthread.h>

#include "app-state-internal.h"
#include "macro-internal.h"

static keel_attachment *find(const keel_app *app, const char *name)
{
    for (size_t i = 0; i < app->registry.n_attachments; i++)
        if (streq(app->registry.attachments[i].name, name))
            return &app->registry.attachments[i];
    return NULL;
}

int keel_app_attach(keel_app *app, const char *name, void *object, keel_free_handler_t free_fn)
{
    keel_assert_return(app && name && *name && object, -EINVAL);
    _cleanup_free_ char *copy = strdup(name);
    if (!copy)
        return -ENOMEM;
    (void) pthread_mutex_lock(&app->registry.attach_lock);
    int r = find(app, name) ? -EEXIST
                            : GROW(app->registry.attachments, app->registry.allocated_attachments, app->registry.n_attachments + 1);
    if (r >= 0)
        app->registry.attachments[app->registry.n_attachments++] =
            (keel_attachment){ .name = TAKE_PTR(copy), .object = object, .free_fn = free_fn };
    (void) pthread_mutex_unlock(&app->registry.attach_lock);
    return r;
}

void *keel_app_attached(const keel_app *app, const char *name)
{
    keel_assert_return(app && name, NULL);
    keel_app *a = (keel_app *) app; /* the lock only */
    (void) pthread_mutex_lock(&a->registry.attach_lock);
    keel_attachment *at = find(app, name);
    void *object = at ? at->object : NULL;
    (void) pthread_mutex_unlock(&a->registry.attach_lock);
    return object;
}

void keel__app_attachments_done(keel_app *app)
{
    for (size_t i = app->registry.n_attachments; i > 0; i--) {
        keel_attachment *at = &app->registry.attachments[i - 1];
        if (at->free_fn)
            at->free_fn(at->object);
        free(at->name);
    }
    free(app->registry.attachments);
    app->registry.attachments = NULL;
    app->registry.n_attachments = app->registry.allocated_attachments = 0;
    (void) pthread_mutex_destroy(&app->registry.attach_lock);
}
