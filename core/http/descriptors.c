/* SPDX-License-Identifier: MIT */
/*
 * Descriptors for connections. systemd starts a service with a soft RLIMIT_NOFILE of 1024 and a
 * hard one of 524288, and asks daemons that need more to raise the soft limit themselves
 * (systemd.exec(5), LimitNOFILE=): each connection is a descriptor, so 1024 would stop a server
 * well before http.connection_limit. Nothing here uses select(2), whose FD_SETSIZE is the reason
 * the soft limit stays low for everyone else.
 */
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/resource.h>

#include "http-internal.h"

/* Descriptors the servers still to start need besides their connections (a listener, two epoll
 * sets and an eventfd each), and a few for the ready check and files being rotated. */
#define SPARE_FDS 16
/* A warning about running out at most this often per server: a burst would log one per accept. */
#define OUT_OF_FDS_EVERY (10 * KEEL_USEC_PER_SEC)

static unsigned long long ceiling(rlim_t limit)
{
    unsigned used = 0;
    (void) keel__fd_count(&used); /* 0 without /proc: the estimate is the limit less the spare */
    used += SPARE_FDS;
    return limit == RLIM_INFINITY ? ULLONG_MAX : limit > used ? (unsigned long long) (limit - used) : 0;
}

void keel__http_raise_fd_limit(void)
{
    static atomic_bool done;
    struct rlimit rl;
    if (atomic_exchange(&done, true))
        return;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        keel_log_warning_errno(-errno, "Failed to read the open file limit: %m, ignoring");
        return;
    }
    rlim_t before = rl.rlim_cur;
    if (rl.rlim_cur != rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            keel_log_warning_errno(-errno, "Failed to raise the open file limit from %llu to %llu: %m, ignoring",
                                   (unsigned long long) before, (unsigned long long) rl.rlim_max);
            rl.rlim_cur = before;
        }
    }
    if (rl.rlim_cur != before)
        keel_log_info("Raised the open file limit from %llu to %llu: room for about %llu connections in all",
                      (unsigned long long) before, (unsigned long long) rl.rlim_cur, ceiling(rl.rlim_cur));
    else
        keel_log_info("Open file limit %llu (the hard limit): room for about %llu connections in all", (unsigned long long) before,
                      ceiling(before));
}

void keel__http_out_of_fds(keel_http_server *s, const char *why)
{
    keel_usec_t now = keel_now();
    struct rlimit rl = { 0 };
    if (s->out_of_fds_logged && now - s->out_of_fds_logged < OUT_OF_FDS_EVERY)
        return;
    s->out_of_fds_logged = now;
    (void) getrlimit(RLIMIT_NOFILE, &rl);
    keel_log_service(s->service, KEEL_LOG_WARNING,
                     "Cannot accept connections on %s[%s] (%s) at %u connections, below http.connection_limit %u (open file "
                     "limit %llu); new connections wait in the listen queue until one closes",
                     s->label, s->bound, why, atomic_load(&s->connections), s->connection_limit, (unsigned long long) rl.rlim_cur);
}
