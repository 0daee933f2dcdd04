/* SPDX-License-Identifier: MIT */
/* The server object, its polling thread, and start and stop (see http-internal.h). */
#include <fcntl.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>

#include <keel/point.h>

#include "curl.h"
#include "http-internal.h"

/* ---- setup ----------------------------------------------------------------------------- */

void keel_http_prepare(keel_app *app)
{
    if (keel_app_command_flags(app) & KEEL_COMMAND_CHECKS_SERVE)
        return;
    int r = keel__curl_preload(app);
    if (r < 0)
        keel_log_debug_errno(r, "Failed to start loading libcurl early, the first server will: %m");
}

keel_http_server *keel_http_server_new(keel_app *app, const keel_http_options *o)
{
    keel_assert_return(app && o && o->service && o->label && o->handler, NULL);

    const keel_core_settings *cfg = keel__app_settings(app);
    keel_http_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    *s = (keel_http_server){
        .app = app,
        .address = o->address,
        .connection_limit = o->connection_limit ? o->connection_limit : (unsigned) cfg->http_connection_limit,
        .connection_timeout =
            o->connection_timeout ? o->connection_timeout : (unsigned) (cfg->http_connection_timeout / KEEL_USEC_PER_SEC),
        .header_limit = o->header_limit ? o->header_limit : (size_t) cfg->http_header_limit,
        .header_timeout = cfg->http_request_header_timeout,
        .body_timeout = cfg->http_request_body_timeout,
        .connection_limit_per_client = (unsigned) cfg->http_connection_limit_per_client,
        .deadline_at = KEEL_USEC_INFINITY,
        .handler = o->handler,
        .userdata = o->userdata,
        .wake_fd = -EBADF,
        .epoll_fd = -EBADF,
        .tls = o->tls,
        .tls_userdata = o->tls_userdata,
        .tls_epoll = -EBADF,
        .tls_listen = -EBADF,
        .tls_expire_at = KEEL_USEC_INFINITY,
        .tls_trim_at = KEEL_USEC_INFINITY,
        .lock = PTHREAD_MUTEX_INITIALIZER,
    };
    pthread_condattr_t attr;
    /* CLOCK_MONOTONIC, like every deadline here: a wall-clock step must not stretch a drain. */
    if (pthread_condattr_init(&attr) != 0 || pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&s->changed, &attr) != 0) {
        free(s);
        return NULL;
    }
    (void) pthread_condattr_destroy(&attr);
    s->service = strdup(o->service);
    s->label = strdup(o->label);
    s->point_request = keel_strdup_printf("%s.request", o->service);
    s->point_spawn = keel_strdup_printf("%s.spawn.server", o->service);
    s->work = keel_app_work(app, o->service);
    s->tasks = keel_task_group_new(app, o->service);
    s->mounts = keel__http_mounts(app);
    if (!s->service || !s->label || !s->point_request || !s->point_spawn || !s->work || !s->tasks || !s->mounts)
        return keel_http_server_free(s);
    return s;
}

keel_http_server *keel_http_server_free(keel_http_server *s)
{
    if (!s)
        return NULL;
    (void) keel_http_server_stop(s);
    keel_task_group_free(s->tasks);
    free(s->conns);
    free(s->delayed);
    free(s->service);
    free(s->label);
    free(s->point_request);
    free(s->point_spawn);
    (void) pthread_cond_destroy(&s->changed);
    (void) pthread_mutex_destroy(&s->lock);
    free(s);
    return NULL;
}

/* ---- the polling thread ------------------------------------------------------------------ */

static void drain_now(keel_http_server *s)
{
    atomic_store(&s->draining, true);
    if (s->tls)
        keel__http_tls_drain(s);
    MHD_socket fd = s->tls ? MHD_INVALID_SOCKET : MHD_quiesce_daemon(s->daemon);
    /* External polling: nothing else uses the listener any more, so it can close at once. */
    if (fd != MHD_INVALID_SOCKET)
        safe_close(fd);
    for (size_t i = 0; i < s->n_conns; i++)
        keel__http_close_when_idle(s->conns[i]);
    s->deadline_at = 0; /* the heads' deadlines are shorter now: sweep at once */
}

/* Carries out the main thread's command; returns false when the thread must end. */
static bool take_command(keel_http_server *s)
{
    uint64_t v;
    ssize_t _unused_ n = read(s->wake_fd, &v, sizeof v);
    (void) pthread_mutex_lock(&s->lock);
    int command = s->command;
    if (command == COMMAND_DRAIN && !s->quiesced) {
        drain_now(s);
        s->quiesced = true;
        (void) pthread_cond_broadcast(&s->changed);
    }
    (void) pthread_mutex_unlock(&s->lock);
    keel__http_resume_answered(s);
    return command != COMMAND_EXIT;
}

/* Milliseconds until the next delayed request falls due, or -1. */
static int next_due(keel_http_server *s)
{
    keel_usec_t now = keel_now(), next = KEEL_USEC_INFINITY;
    for (size_t i = 0; i < s->n_delayed; i++)
        next = MIN(next, s->delayed[i]->resume_at);
    if (next == KEEL_USEC_INFINITY)
        return -1;
    return next <= now ? 0 : (int) ((next - now + 999) / 1000);
}

/* The epoll timeout: MHD's own, or sooner when a delayed request falls due. Asked after
 * MHD_run(), which is where handlers delay new requests. */
static int next_timeout(keel_http_server *s)
{
    MHD_UNSIGNED_LONG_LONG mhd;
    int t = next_due(s);
    if (MHD_get_timeout(s->daemon, &mhd) == MHD_YES && (t < 0 || mhd < (MHD_UNSIGNED_LONG_LONG) t))
        t = mhd > INT32_MAX ? INT32_MAX : (int) mhd;
    int tls = s->tls ? keel__http_tls_timeout(s) : -1;
    if (tls >= 0 && (t < 0 || tls < t))
        t = tls;
    int deadline = keel__http_deadlines_timeout(s);
    if (deadline >= 0 && (t < 0 || deadline < t))
        t = deadline;
    return t;
}

static void poll_loop(keel_task *task, void *userdata)
{
    keel_http_server *s = userdata;
    for (bool running = true; running;) {
        /* The order libmicrohttpd documents for external polling: after MHD_resume_connection(),
         * MHD_run() and then MHD_get_timeout() before waiting again — a resumed connection whose
         * answer is queued must not wait for a readiness edge that already passed. */
        (void) keel__http_resume_due(s, false);
        (void) MHD_run(s->daemon);
        if (s->relisten) {
            s->relisten = false;
            (void) MHD_run(s->daemon);
        }
        if (s->tls) /* what MHD just answered goes out now, not after one more wait */
            keel__http_tls_run(s);
        keel__http_deadlines_run(s);
        struct epoll_event ev[4];
        int n = epoll_wait(s->epoll_fd, ev, (int) ELEMENTSOF(ev), next_timeout(s));
        bool tls_ready = false;
        for (int i = 0; i < n; i++) {
            if (ev[i].data.fd == s->wake_fd)
                running = take_command(s);
            tls_ready = tls_ready || ev[i].data.fd == s->tls_epoll;
        }
        if (s->tls && running && tls_ready)
            keel__http_tls_run(s);
        if (s->tls && running)
            keel__http_tls_expire(s); /* each turn, however busy: a comparison until one is due */
    }
}

/* libmicrohttpd says only in its log that accept() failed: "Error accepting connection: <why>",
 * then, for a lack of descriptors or memory, that it stopped accepting until a connection closes
 * ("Hit process or system resource limit at N connections"). That one is an operator's business. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    static const char accept_error[] = "Error accepting connection: ";
    keel_http_server *s = cls;
    char buf[512];
    (void) vsnprintf(buf, sizeof buf, fmt, ap);
    buf[strcspn(buf, "\n")] = 0;
    keel_log_service(s->service, KEEL_LOG_DEBUG, "libmicrohttpd: %s", buf);
    if (strncmp(buf, accept_error, strlen(accept_error)) == 0)
        (void) snprintf(s->accept_error, sizeof s->accept_error, "%.*s", (int) sizeof s->accept_error - 1,
                        buf + strlen(accept_error));
    else if (strstr(buf, "Hit process or system resource limit")) {
        keel__http_out_of_fds(s, s->accept_error[0] ? s->accept_error : "out of resources");
        s->out_of_fds = true;
        /* libmicrohttpd accepts again once one of this server's connections closes: an idle one
         * gives its descriptor to the next client, so a probe is answered whoever holds the rest. */
        (void) keel__http_make_room_for_fds(s);
    }
}

static int start_daemon(keel_http_server *s, int listen_fd)
{
    /* With TLS the listener is ours (tls.c): MHD gets connections through MHD_add_connection(). */
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | (s->tls ? MHD_USE_NO_LISTEN_SOCKET : 0);
    if (s->tls)
        s->tls_listen = listen_fd; /* ours from here on, whatever happens */
    /* The logger first, so that MHD's complaints about the options reach it. Without TLS, MHD
     * takes the listener (the last item: left out, with TLS, by ending the array before it). */
    struct MHD_OptionItem options[] = {
        { MHD_OPTION_EXTERNAL_LOGGER, (intptr_t) mhd_log, s },
        { MHD_OPTION_CONNECTION_LIMIT, s->connection_limit, NULL },
        { MHD_OPTION_CONNECTION_TIMEOUT, s->connection_timeout, NULL },
        /* MHD's pool holds the head and what it parses it into and the answer's head: the limit
         * itself is counted on the head alone (request.c), so the pool has room past it. */
        { MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t) (s->header_limit + KEEL_HTTP_POOL_PAST_HEAD), NULL },
        { MHD_OPTION_PER_IP_CONNECTION_LIMIT, s->connection_limit_per_client, NULL },
        { MHD_OPTION_NOTIFY_COMPLETED, (intptr_t) keel__http_on_completed, s },
        { MHD_OPTION_NOTIFY_CONNECTION, (intptr_t) keel__http_on_connection, s },
        { MHD_OPTION_URI_LOG_CALLBACK, (intptr_t) keel__http_on_target, s },
        { MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t) keel__http_unescape, s },
        { s->tls ? MHD_OPTION_END : MHD_OPTION_LISTEN_SOCKET, listen_fd, NULL },
        { MHD_OPTION_END, 0, NULL },
    };
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, keel__http_on_request, s, MHD_OPTION_ARRAY, options, MHD_OPTION_END);
    if (!s->daemon)
        return -EIO;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    s->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (!info)
        return -EIO;
    if (s->wake_fd < 0 || s->epoll_fd < 0)
        return -errno;
    struct epoll_event mhd = { .events = EPOLLIN, .data.fd = info->epoll_fd };
    struct epoll_event wake = { .events = EPOLLIN, .data.fd = s->wake_fd };
    if (epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, info->epoll_fd, &mhd) < 0 ||
        epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->wake_fd, &wake) < 0)
        return -errno;
    if (!s->tls)
        return 0;
    int r = keel__http_tls_setup(s, listen_fd);
    struct epoll_event tls = { .events = EPOLLIN, .data.fd = s->tls_epoll };
    if (r < 0 || epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->tls_epoll, &tls) < 0)
        return r < 0 ? r : -errno;
    return 0;
}

int keel_http_server_start(keel_http_server *s)
{
    keel_assert_return(s, -EINVAL);
    if (!keel__app_in_start(s->app))
        return -EPERM;
    if (s->started)
        return -EALREADY;
    s->started = true;
    keel__http_raise_fd_limit();

    int fd = keel__http_activated_socket(s->service);
    bool activated = fd >= 0;
    if (!activated)
        fd = keel__http_bind_address(&s->address);
    if (fd < 0) {
        char want[300];
        (void) snprintf(want, sizeof want, "%s:%u", s->address.host, s->address.port);
        return keel_app_fail(s->app, fd, "Failed to bind %s to '%s': %s", s->label, want, strerror(-fd));
    }
    keel__http_describe_bound(s, fd);
    keel_log_service(s->service, KEEL_LOG_INFO, "Starting %s[%s]%s", s->label, s->bound, activated ? " (socket activation)" : "");
    int r = start_daemon(s, fd);
    if (r < 0) {
        if (!s->daemon && !s->tls)
            safe_close(fd);
        return keel_app_fail(s->app, r, "Failed to start %s: %s", s->label, strerror(-r));
    }
    r = keel_task_group_spawn(s->tasks, s->point_spawn, "server", poll_loop, s);
    if (r < 0)
        return keel_app_fail(s->app, r, "Failed to spawn the %s thread: %s", s->label, strerror(-r));
    s->thread_running = true;
    r = keel__http_wait_ready(s);
    if (r >= 0) {
        (void) keel__app_add_status_detail(s->app, "%s[%s]", s->label, s->bound);
        keel__http_set_serving(s, s->serving = true);
    }
    return r;
}

int keel_http_server_stop(keel_http_server *s)
{
    if (!s || s->stopped || !s->started)
        return 0;
    s->stopped = true;
    if (s->serving) {
        keel__http_set_serving(s, s->serving = false);
        char detail[512];
        (void) snprintf(detail, sizeof detail, "%s[%s]", s->label, s->bound);
        keel__app_remove_status_detail(s->app, detail);
    }
    if (!s->daemon) {
        if (s->tls)
            keel__http_tls_close_all(s);
        return 0; /* the bind failed: nothing runs */
    }

    int r = 0;
    if (s->thread_running) {
        keel_usec_t deadline = keel_app_stop_deadline(s->app);
        if (deadline == KEEL_USEC_INFINITY) /* stopped outside `stop`: the same budget from now */
            deadline = keel_now() + keel__app_settings(s->app)->shutdown_timeout;
        r = keel__http_drain(s, deadline);
        if (r < 0) {
            keel_work_stats st;
            keel_work_get_stats(s->work, &st);
            keel_log_service(s->service, KEEL_LOG_ERROR,
                             "Stopping %s past the shutdown timeout: %u connections and %llu requests still open; cutting them",
                             s->label, atomic_load(&s->connections), (unsigned long long) st.in_flight);
        }
        keel__http_send_command(s, COMMAND_EXIT);
        (void) keel_task_group_join(s->tasks);
        s->thread_running = false;
    }
    keel__http_abandon_deferred(s);
    (void) keel__http_resume_due(s, true); /* MHD must not be stopped with suspended connections */
    if (s->tls)
        keel__http_tls_close_all(s);
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    for (size_t i = 0; i < s->n_cache; i++)
        MHD_destroy_response(s->cache[i].response);
    s->n_cache = 0;
    s->epoll_fd = safe_close(s->epoll_fd);
    s->wake_fd = safe_close(s->wake_fd);
    keel_log_service(s->service, KEEL_LOG_INFO, "Stopped %s", s->label);
    return r;
}

int keel_http_server_start_new(keel_app *app, const keel_http_options *options, keel_http_server **ret)
{
    keel_assert_return(app && options && ret, -EINVAL);
    *ret = keel_http_server_new(app, options);
    if (!*ret)
        return keel_app_fail(app, -ENOMEM, "Failed to create the %s: %m", options->label ? options->label : "HTTP server");
    return keel_http_server_start(*ret);
}

int keel_http_server_stop_and_free(keel_app *app, keel_http_server **s)
{
    keel_assert_return(app && s, -EINVAL);
    if (!*s)
        return 0;
    int r = keel_http_server_stop(*s);
    char label[128];
    (void) snprintf(label, sizeof label, "%s", (*s)->label);
    *s = keel_http_server_free(*s);
    return r < 0 ? keel_app_fail(app, r, "%s drained past the shutdown timeout", label) : 0;
}

const char *keel_http_server_address(const keel_http_server *s)
{
    return s && s->bound[0] ? s->bound : NULL;
}

uint16_t keel_http_server_port(const keel_http_server *s)
{
    return s ? s->port : 0;
}

keel_work *keel_http_server_work(keel_http_server *s)
{
    return s ? s->work : NULL;
}

unsigned keel_http_server_connections(const keel_http_server *s)
{
    return s ? atomic_load(&s->connections) : 0;
}
