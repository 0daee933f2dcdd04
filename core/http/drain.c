/* SPDX-License-Identifier: MIT */
/* Connections, counted and tracked on the polling thread, and the drain (docs/architecture.md, "Stop") that waits
 * for them on the main thread: zero loss needs every open connection gone, not only the requests. */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "http-internal.h"

/* ---- connections (polling thread) ------------------------------------------------------- */

/* The listener closes, once the clients in its queue are taken (at the connection limit they wait
 * there: its close would reset them; they are served as open connections are, with `Connection:
 * close`; a TLS server's are not, as they would only start a handshake), and handshakes under way
 * close now: they never became requests. A kept-alive connection with nothing sent may be about to
 * get a request its client is sending now: it closes once a second has passed since its last
 * answer with nothing in its socket (deadline.c); the others end after their answer (conn.c),
 * which carries `Connection: close`. */
void keel__http_drain_now(keel_http_server *s)
{
    atomic_store(&s->draining, true);
    s->drain_started = keel_now();
    if (s->listen_fd >= 0) {
        if (!s->tls)
            keel__http_accept_queued(s);
        (void) epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, s->listen_fd, NULL);
        s->listen_fd = safe_close(s->listen_fd);
        s->listening = false;
    }
    for (size_t i = s->n_conns; i > 0; i--) { /* backwards: a close moves the last one into its place */
        connection_state *cs = s->conns[i - 1];
        if (cs->phase == CONN_HANDSHAKE)
            keel__http_conn_close(cs);
    }
    s->deadline_at = 0; /* the heads' deadlines are shorter now: sweep at once */
}

void keel__http_connection_gone(keel_http_server *s)
{
    unsigned before = atomic_fetch_sub(&s->connections, 1);
    keel__http_take_reserve(s); /* if a refusal lost it: a descriptor just came back */
    keel__http_listen(s, true); /* below the limit again */
    if (before == 1 && s->tls)  /* give a burst's memory back once the server has been idle a moment */
        s->trim_at = keel_now() + KEEL_USEC_PER_SEC;
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
    return atomic_load(&s->connections) == 0 && st.in_flight == 0;
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

/* The drain's last steps: stop accepting, then wait until nothing is open. */
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
