/* SPDX-License-Identifier: MIT */
/* The server object, its polling thread, and start and stop (see http-internal.h). */
#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>

#include <keel/point.h>

#include "curl-internal.h"
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

/* Which required option is missing, or NULL: a programming error, said at error level where a
 * NULL from keel_http_server_new() would otherwise read as "out of memory". */
static const char *missing_option(const keel_http_options *o)
{
    return !o->service ? "service" : !o->label ? "label" : !o->handler ? "handler" : NULL;
}

keel_http_server *keel_http_server_new(keel_app *app, const keel_http_options *o)
{
    keel_assert_return(app && o, NULL);
    const char *missing = missing_option(o);
    if (missing) {
        keel_log_error("keel_http_server_new(): the options have no %s", missing);
        return NULL;
    }

    const keel_core_settings *cfg = keel__app_settings(app);
    keel_http_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    *s = (keel_http_server){
        .app = app,
        .address = o->address,
        .connection_limit = o->connection_limit ? o->connection_limit : (unsigned) cfg->http_connection_limit,
        .send_timeout = o->connection_timeout ? o->connection_timeout * KEEL_USEC_PER_SEC : cfg->http_connection_timeout,
        .header_limit = o->header_limit ? o->header_limit : (size_t) cfg->http_header_limit,
        .header_timeout = cfg->http_request_header_timeout,
        .body_timeout = cfg->http_request_body_timeout,
        .connection_limit_per_client = (unsigned) cfg->http_connection_limit_per_client,
        .deadline_at = KEEL_USEC_INFINITY,
        .handler = o->handler,
        .userdata = o->userdata,
        .listen_fd = -EBADF,
        .wake_fd = -EBADF,
        .epoll_fd = -EBADF,
        .reserve_fd = -EBADF,
        .tls = o->tls,
        .tls_userdata = o->tls_userdata,
        .trim_at = KEEL_USEC_INFINITY,
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
    free(s->again);
    free(s->delayed);
    keel__http_body_routes_free(s);
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

/* Carries out the main thread's command; returns false when the thread must end. */
static bool take_command(keel_http_server *s)
{
    uint64_t v;
    ssize_t _unused_ n = read(s->wake_fd, &v, sizeof v);
    (void) pthread_mutex_lock(&s->lock);
    int command = s->command;
    bool drain = command == COMMAND_DRAIN && !s->quiesced;
    (void) pthread_mutex_unlock(&s->lock);
    if (drain) {
        keel__http_drain_now(s);
        (void) pthread_mutex_lock(&s->lock);
        s->quiesced = true;
        (void) pthread_cond_broadcast(&s->changed);
        (void) pthread_mutex_unlock(&s->lock);
    }
    keel__http_send_answered(s);
    return command != COMMAND_EXIT;
}

static int sooner(int a, int b)
{
    return a < 0 ? b : b < 0 ? a : MIN(a, b);
}

static int ms_until(keel_usec_t at)
{
    keel_usec_t now = keel_now();
    if (at == KEEL_USEC_INFINITY)
        return -1;
    return at <= now ? 0 : (int) MIN((at - now + 999) / 1000, (keel_usec_t) INT32_MAX);
}

/* The epoll timeout: the next delayed request, deadline, memory trim or relisten. */
static int next_timeout(keel_http_server *s, int due)
{
    if (s->n_again > 0)
        return 0;
    int t = sooner(due, keel__http_deadlines_timeout(s));
    t = sooner(t, ms_until(s->trim_at));
    t = sooner(t, keel__http_queue_timeout(s));
    return s->listening || s->listen_fd < 0 ? t : sooner(t, ms_until(s->relisten_at));
}

static void poll_loop(keel_task *task, void *userdata)
{
    keel_http_server *s = userdata;
    for (bool running = true; running;) {
        s->now = keel_now();
        int due = keel__http_resume_due(s);
        keel__http_deadlines_run(s);
        keel__http_trim_when_idle(s);
        keel__http_listen(s, true); /* after a rest for lack of descriptors */
        keel__http_check_queue(s);
        struct epoll_event ev[64];
        int n = epoll_wait(s->epoll_fd, ev, (int) ELEMENTSOF(ev), next_timeout(s, due));
        s->now = keel_now();
        for (int i = 0; i < n; i++) {
            if (ev[i].data.ptr == &s->wake_fd)
                running = take_command(s) && running;
            else if (ev[i].data.ptr == s)
                keel__http_accept(s);
            else
                keel__http_conn_run(ev[i].data.ptr, ev[i].events);
        }
        keel__http_conns_again(s);
        /* Last: a connection the deadlines or the batch closed may still be in the again list. */
        keel__http_conns_reap(s);
    }
}

static int start_loop(keel_http_server *s, int listen_fd)
{
    s->listen_fd = listen_fd; /* ours from here on, whatever happens */
    /* systemd passes a blocking socket: accept() must not wait on an empty queue. */
    int flags = fcntl(listen_fd, F_GETFL);
    if (flags < 0 || fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -errno;
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    s->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    keel__http_take_reserve(s);
    if (s->wake_fd < 0 || s->epoll_fd < 0)
        return -errno;
    if (epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->wake_fd, &(struct epoll_event){ .events = EPOLLIN, .data.ptr = &s->wake_fd }) <
            0 ||
        epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, listen_fd, &(struct epoll_event){ .events = EPOLLIN, .data.ptr = s }) < 0)
        return -errno;
    s->listening = true;
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
    char why[512] = "";
    if (!activated)
        fd = keel__http_address_listen(&s->address, why, sizeof why);
    if (fd < 0) {
        char want[300];
        (void) snprintf(want, sizeof want, "%s:%u", s->address.host, s->address.port);
        return keel_app_fail(s->app, fd, "Failed to bind %s to '%s': %s", s->label, want, why[0] ? why : strerror(-fd));
    }
    bool elsewhere = keel__http_describe_bound(s, fd);
    keel_log_service(s->service, KEEL_LOG_INFO, "Starting %s[%s]%s", s->label, s->bound, activated ? " (socket activation)" : "");
    /* The socket unit's ListenStream= decides where a passed socket listens; an operator who set
     * the address to keep a port off the network must hear that it is not what happens. */
    if (activated && elsewhere)
        keel_log_service(s->service, KEEL_LOG_WARNING,
                         "%s.address is '%s:%u', but the socket systemd passed as '%s' listens on %s: serving there (its "
                         "socket unit's ListenStream= decides)",
                         s->service, s->address.host, s->address.port, s->service, s->bound);
    int r = start_loop(s, fd);
    if (r < 0)
        return keel_app_fail(s->app, r, "Failed to start %s: %s", s->label, strerror(-r));
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

/* After the polling thread: what is still open closes; the reap gives up its deferred answers. */
static void close_everything(keel_http_server *s)
{
    for (size_t i = s->n_conns; i > 0; i--)
        keel__http_conn_close(s->conns[i - 1]);
    s->n_again = 0; /* none of them runs again */
    keel__http_conns_reap(s);
    assert(s->n_pending == 0); /* each was its connection's, and went with it */
    free(s->pending);
    s->pending = NULL;
    s->allocated_pending = 0;
    s->n_delayed = 0;
    keel__http_cache_free(s);
    s->listen_fd = safe_close(s->listen_fd);
    s->epoll_fd = safe_close(s->epoll_fd);
    s->wake_fd = safe_close(s->wake_fd);
    s->reserve_fd = safe_close(s->reserve_fd);
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
    if (s->epoll_fd < 0) {
        s->listen_fd = safe_close(s->listen_fd);
        s->wake_fd = safe_close(s->wake_fd);
        s->reserve_fd = safe_close(s->reserve_fd);
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
    close_everything(s);
    keel_log_service(s->service, KEEL_LOG_INFO, "Stopped %s", s->label);
    return r;
}

int keel_http_server_start_new(keel_app *app, const keel_http_options *options, keel_http_server **ret)
{
    keel_assert_return(app && options && ret, -EINVAL);
    const char *missing = missing_option(options);
    if (missing)
        return keel_app_fail(app, -EINVAL, "The HTTP server's options have no %s", missing);
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
