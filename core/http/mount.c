/* SPDX-License-Identifier: MIT */
/* Handlers one service mounts on another's server (ACME's http-01 answers on the health check
 * listener), and which servers of the app are serving. One table per app, attached to it, under
 * one lock: a mount's handler runs under it, so keel_http_mount_remove() returns only when no
 * request is inside it. */
#include <pthread.h>
#include <stdatomic.h>

#include "http-internal.h"

#define MOUNTS_ATTACHMENT "keel.http.mounts"

struct keel_http_mount {
    keel_http_mounts *table; /* borrowed */
    char *service, *prefix;
    size_t prefix_len;
    keel_http_handler_t handler;
    void *userdata;
};

struct keel_http_mounts {
    pthread_mutex_t lock;
    atomic_size_t n; /* mounts, read without the lock: most requests find none */
    keel_http_mount **mounts;
    size_t allocated;
    char **serving; /* the services whose server is started and not stopped, with repeats */
};

static void mounts_free(void *object)
{
    keel_http_mounts *t = object;
    for (size_t i = 0; i < atomic_load(&t->n); i++) {
        free(t->mounts[i]->service);
        free(t->mounts[i]->prefix);
        free(t->mounts[i]);
    }
    free(t->mounts);
    keel_strv_free(t->serving);
    (void) pthread_mutex_destroy(&t->lock);
    free(t);
}

keel_http_mounts *keel__http_mounts(keel_app *app)
{
    keel_http_mounts *t = keel_app_attached(app, MOUNTS_ATTACHMENT);
    if (t)
        return t;
    if (!(t = calloc(1, sizeof *t)))
        return NULL;
    (void) pthread_mutex_init(&t->lock, NULL);
    int r = keel_app_attach(app, MOUNTS_ATTACHMENT, t, mounts_free);
    if (r == -EEXIST) { /* another thread made it first */
        mounts_free(t);
        return keel_app_attached(app, MOUNTS_ATTACHMENT);
    }
    if (r < 0) {
        mounts_free(t);
        return NULL;
    }
    return t;
}

int keel_http_mount_add(keel_app *app, const char *service, const char *prefix, keel_http_handler_t handler, void *userdata,
                        keel_http_mount **ret)
{
    keel_assert_return(app && service && *service && prefix && prefix[0] == '/' && handler && ret, -EINVAL);
    keel_http_mounts *t = keel__http_mounts(app);
    keel_http_mount *m = calloc(1, sizeof *m);
    if (!t || !m || !(m->service = strdup(service)) || !(m->prefix = strdup(prefix))) {
        if (m) {
            free(m->service);
            free(m);
        }
        return -ENOMEM;
    }
    *m = (keel_http_mount){ .table = t,
                            .service = m->service,
                            .prefix = m->prefix,
                            .prefix_len = strlen(prefix),
                            .handler = handler,
                            .userdata = userdata };
    (void) pthread_mutex_lock(&t->lock);
    size_t n = atomic_load(&t->n);
    int r = GROW(t->mounts, t->allocated, n + 1);
    if (r >= 0) {
        t->mounts[n] = m;
        atomic_store(&t->n, n + 1);
    }
    (void) pthread_mutex_unlock(&t->lock);
    if (r < 0) {
        free(m->service);
        free(m->prefix);
        free(m);
        return r;
    }
    *ret = m;
    return 0;
}

keel_http_mount *keel_http_mount_remove(keel_http_mount *m)
{
    if (!m)
        return NULL;
    keel_http_mounts *t = m->table;
    (void) pthread_mutex_lock(&t->lock);
    size_t n = atomic_load(&t->n);
    for (size_t i = 0; i < n; i++)
        if (t->mounts[i] == m) {
            memmove(&t->mounts[i], &t->mounts[i + 1], (n - i - 1) * sizeof *t->mounts);
            atomic_store(&t->n, n - 1);
            break;
        }
    (void) pthread_mutex_unlock(&t->lock);
    free(m->service);
    free(m->prefix);
    free(m);
    return NULL;
}

bool keel__http_serve_mounted(keel_http_server *s, keel_http_request *req, int *ret)
{
    keel_http_mounts *t = s->mounts;
    if (!t || atomic_load_explicit(&t->n, memory_order_relaxed) == 0)
        return false;
    const char *path = keel_http_request_path(req);
    bool found = false;
    (void) pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < atomic_load(&t->n) && !found; i++) {
        keel_http_mount *m = t->mounts[i];
        if (streq(m->service, s->service) && strncmp(path, m->prefix, m->prefix_len) == 0) {
            found = true;
            *ret = m->handler(req, m->userdata);
        }
    }
    (void) pthread_mutex_unlock(&t->lock);
    return found;
}

void keel__http_set_serving(keel_http_server *s, bool serving)
{
    keel_http_mounts *t = s->mounts;
    if (!t)
        return;
    (void) pthread_mutex_lock(&t->lock);
    if (serving)
        (void) keel_strv_extend(&t->serving, s->service);
    else
        for (char **v = t->serving; v && *v; v++)
            if (streq(*v, s->service)) {
                free(*v);
                memmove(v, v + 1, (keel_strv_length(v + 1) + 1) * sizeof *v);
                break;
            }
    (void) pthread_mutex_unlock(&t->lock);
}

bool keel_http_serving(keel_app *app, const char *service)
{
    keel_assert_return(app && service, false);
    keel_http_mounts *t = keel_app_attached(app, MOUNTS_ATTACHMENT);
    if (!t)
        return false;
    (void) pthread_mutex_lock(&t->lock);
    bool found = keel_strv_contains((const char *const *) t->serving, service);
    (void) pthread_mutex_unlock(&t->lock);
    return found;
}
