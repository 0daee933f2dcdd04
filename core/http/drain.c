/* SPDX-License-Identifier: MIT */
/* Connections, counted and tracked on the polling thread, and the drain of DESIGN §3 that waits
 * for them on the main thread: zero loss needs every open connection gone, not only the requests. */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "http-internal.h"

/* ---- connections (polling thread) ------------------------------------------------------- */

void keel__http_close_when_idle(connection_state *cs)
{
    /* MHD has no "close now"; a one-second inactivity timeout closes an idle keep-alive
     * connection on its next run, as Go's Shutdown closes idle connections. */
    if (!cs->busy)
        (void) MHD_set_connection_option(cs->connection, MHD_CONNECTION_OPTION_TIMEOUT, 1U);
}

static int track_connection(keel_http_server *s, connection_state *cs)
{
    int r = GROW(s->conns, s->allocated_conns, s->n_conns + 1);
    if (r < 0)
        return r;
    s->conns[s->n_conns++] = cs;
    return 0;
}

static void untrack_connection(keel_http_server *s, connection_state *cs)
{
    for (size_t i = 0; i < s->n_conns; i++)
        if (s->conns[i] == cs) {
            s->conns[i] = s->conns[--s->n_conns];
            return;
        }
}

void keel__http_on_connection(void *cls, struct MHD_Connection *c, void **socket_context, enum MHD_ConnectionNotificationCode code)
{
    keel_http_server *s = cls;
    connection_state *cs = *socket_context;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&s->connections, 1);
        cs = calloc(1, sizeof *cs);
        if (cs) {
            const char *identity = s->tls ? keel__http_tls_attaching_identity(s) : NULL;
            cs->connection = c;
            cs->tls = s->tls != NULL;
            cs->identity = identity ? strdup(identity) : NULL;
            if ((identity && !cs->identity) || track_connection(s, cs) < 0)
                cs = (free(cs->identity), free(cs), NULL);
        }
        *socket_context = cs;
        if (cs) {
            keel__http_conn_wait(s, cs, CONN_WAIT_HEAD);
            keel__http_make_room(s, cs);
        }
        if (cs && atomic_load(&s->draining))
            keel__http_close_when_idle(cs);
        return;
    }
    if (cs) {
        untrack_connection(s, cs);
        free(cs->identity);
        free(cs);
        *socket_context = NULL;
    }
    unsigned before = atomic_fetch_sub(&s->connections, 1);
    /* At the limit (its own, or out of descriptors) MHD took the listener out of its epoll set;
     * it puts it back at the start of its next run, and only then can a connection waiting in
     * the backlog wake us. */
    if (before >= s->connection_limit || s->out_of_fds) {
        s->relisten = true;
        s->out_of_fds = false;
    }
    if (before == 1) {
        (void) pthread_mutex_lock(&s->lock);
        (void) pthread_cond_broadcast(&s->changed);
        (void) pthread_mutex_unlock(&s->lock);
    }
}

void keel__http_send_command(keel_http_server *s, int command)
{
    uint64_t one = 1;
    (void) pthread_mutex_lock(&s->lock);
    s->command = command;
    (void) pthread_mutex_unlock(&s->lock);
    ssize_t _unused_ n = write(s->wake_fd, &one, sizeof one);
}

static bool drained(keel_http_server *s)
{
    keel_work_stats st;
    keel_work_get_stats(s->work, &st);
    return atomic_load(&s->connections) == 0 && atomic_load(&s->tls_open) == 0 && st.in_flight == 0;
}

static struct timespec abs_time(keel_usec_t usec)
{
    return (struct timespec){ .tv_sec = (time_t) (usec / KEEL_USEC_PER_SEC), .tv_nsec = (long) (usec % KEEL_USEC_PER_SEC) * 1000 };
}

static void report_drain(keel_http_server *s, keel_usec_t deadline)
{
    keel_work_stats st;
    char what[256];
    keel_work_get_stats(s->work, &st);
    (void) snprintf(what, sizeof what, "Waiting for %s: %u connections open, %llu requests in flight, %.1fs left", s->label,
                    atomic_load(&s->connections), (unsigned long long) st.in_flight, (double) (deadline - keel_now()) / 1e6);
    keel_app_stop_progress(s->app, what);
}

static void wait_changed(keel_http_server *s, keel_usec_t until)
{
    struct timespec ts = abs_time(until);
    (void) pthread_cond_timedwait(&s->changed, &s->lock, &ts);
}

/* How long the polling thread gets to carry out "drain" even when the budget is already spent
 * (an earlier server used it up): a server with nothing open still stops cleanly. */
#define DRAIN_ACK_USEC (100 * KEEL_USEC_PER_MSEC)

/* Steps 3 and 4 of DESIGN §3: stop accepting, then wait until nothing is open. */
int keel__http_drain(keel_http_server *s, keel_usec_t deadline)
{
    keel_usec_t tick = keel_now() + KEEL_WORK_PROGRESS_USEC, ack_by = MAX(deadline, keel_now() + DRAIN_ACK_USEC);
    int r = 0;

    keel__http_send_command(s, COMMAND_DRAIN);
    (void) pthread_mutex_lock(&s->lock);
    while (!(s->quiesced && drained(s))) {
        keel_usec_t now = keel_now(), until = s->quiesced ? deadline : ack_by;
        if (now >= until) {
            r = -ETIMEDOUT;
            break;
        }
        if (now >= tick) {
            (void) pthread_mutex_unlock(&s->lock);
            report_drain(s, deadline);
            (void) pthread_mutex_lock(&s->lock);
            tick = now + KEEL_WORK_PROGRESS_USEC;
        } else
            wait_changed(s, MIN(tick, until));
    }
    (void) pthread_mutex_unlock(&s->lock);
    return r;
}
