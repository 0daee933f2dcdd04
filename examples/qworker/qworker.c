/* SPDX-License-Identifier: MIT */
/*
 * qworker: a spool-directory queue worker built on Keel, and an example of what a daemon other
 * than the agent does with the installed headers alone.
 *
 *   qworker serve                  process every job that lands in spool_dir/new, until a signal
 *   qworker enqueue NAME TEXT      put a job in the queue (atomically) and exit
 *
 * A job is a file; its result, spool_dir/done/NAME.result, holds the job's text and a keyed
 * FNV-1a digest of it (queue.key_file, re-read on SIGHUP: a bad file fails the refresh and the old
 * key stays). GET /healthz on queue.address is the probe, GET /status counts the jobs (done, and in flight). Every job
 * runs inside the work tracker "jobs" at the point "queue.job", so a stop waits for the job in
 * flight and KEEL_FAULT=sleep=500@in:queue.job holds one.
 *
 * What it shows: one service declared by a vtable (configuration, private state, hooks); a
 * per-command observer (enqueue) that registers the observers its command needs from inside
 * another observer; a refresh that reloads the service's own key; a task woken by a new interval;
 * a work tracker drained in stop; and an HTTP probe on the framework's server.
 */
#define _GNU_SOURCE /* PATH_MAX, and what a Linux daemon uses beyond ISO C */
#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <keel/keel.h>

#define KEY_MAX (64 * 1024)

typedef struct queue {
    struct {
        char *spool_dir, *key_file;
        keel_address address;
        keel_usec_t poll_interval;
    } config;
    keel_app *app;               /* borrowed: set in configure, before any thread exists */
    keel_http_server *server;    /* owned */
    keel_task_group *tasks;      /* owned: the worker */
    keel_work *work;             /* borrowed from the app: jobs in flight ("jobs") */
    keel_counter *done, *failed; /* borrowed from the app's metrics registry */
    pthread_mutex_t lock;        /* guards key, which a refresh replaces while the worker reads it */
    char *key;
    atomic_uint_fast64_t interval, processed;
} queue;

#define C(field) offsetof(queue, config.field)
static const keel_config_key queue_keys[] = {
    { .key = "queue.spool_dir",
      .type = KEEL_CONFIG_PATH,
      .offset = C(spool_dir),
      .def = "/var/spool/qworker",
      .help = "the queue: jobs arrive in new/, results go to done/" },
    { .key = "queue.address",
      .type = KEEL_CONFIG_ADDRESS,
      .offset = C(address),
      .def = "127.0.0.1:8090",
      .help = "where the probe (/healthz) and /status listen" },
    { .key = "queue.poll_interval",
      .type = KEEL_CONFIG_DURATION,
      .offset = C(poll_interval),
      .def = "1s",
      .min = 1000,
      .max = 3600LL * 1000000,
      .live = true,
      .help = "how often new/ is looked at" },
    { .key = "queue.key_file",
      .type = KEEL_CONFIG_PATH,
      .offset = C(key_file),
      .def = "''",
      .help = "the key results are digested with; empty for none; re-read on SIGHUP" },
};
#undef C

/* ---- jobs: the worker thread ----------------------------------------------------------------- */

/* FNV-1a of the key, then the text: not a MAC, but enough to show the key in use. */
static uint64_t digest(const char *key, const char *text, size_t size)
{
    uint64_t h = 14695981039346656037ULL;
    for (const char *p = key; p && *p; p++)
        h = (h ^ (unsigned char) *p) * 1099511628211ULL;
    for (size_t i = 0; i < size; i++)
        h = (h ^ (unsigned char) text[i]) * 1099511628211ULL;
    return h;
}

static int process(queue *q, const char *name)
{
    char job[PATH_MAX], result[PATH_MAX];
    _cleanup_free_ char *text = NULL, *out = NULL;
    size_t size = 0;
    (void) snprintf(job, sizeof job, "%s/new/%s", q->config.spool_dir, name);
    (void) snprintf(result, sizeof result, "%s/done/%.*s.result", q->config.spool_dir, (int) (strlen(name) - 4), name);
    int r = keel_point_in("queue.job"); /* a fault's sleep here holds the job, as a slow one would */
    if (r >= 0)
        r = keel_file_read(job, 1024 * 1024, &text, &size, NULL);
    if (r < 0)
        return r;
    (void) pthread_mutex_lock(&q->lock);
    uint64_t d = digest(q->key, text, size);
    (void) pthread_mutex_unlock(&q->lock);
    if (!(out = keel_strdup_printf("%s\ndigest %016" PRIx64 "\n", text, d)))
        return -ENOMEM;
    if ((r = keel_file_write_atomic(result, out, strlen(out), 0644)) < 0)
        return r;
    return unlink(job) < 0 ? -errno : 0;
}

static bool is_job(const char *name)
{
    size_t n = strlen(name);
    return name[0] != '.' && n > 4 && keel_streq(name + n - 4, ".job");
}

/* One pass over new/. Returns false once the tracker refuses work: the service is stopping. */
static bool run_jobs(queue *q)
{
    char dir[PATH_MAX];
    (void) snprintf(dir, sizeof dir, "%s/new", q->config.spool_dir);
    DIR *d = opendir(dir);
    if (!d) {
        keel_log_service("queue", KEEL_LOG_WARNING, "Cannot read %s: %s, retrying", dir, strerror(errno));
        return true;
    }
    bool open = true;
    for (struct dirent *de; open && (de = readdir(d));) {
        if (!is_job(de->d_name))
            continue;
        if (keel_work_begin(q->work) < 0) {
            open = false;
            break;
        }
        int r = process(q, de->d_name);
        keel_work_end(q->work, r >= 0);
        keel_counter_add(r >= 0 ? q->done : q->failed, 1);
        if (r >= 0)
            atomic_fetch_add(&q->processed, 1);
        else
            keel_log_service_errno("queue", KEEL_LOG_WARNING, r, "Job %s failed: %m", de->d_name);
    }
    (void) closedir(d);
    return open;
}

static void worker(keel_task *task, void *userdata)
{
    queue *q = userdata;
    for (int w = 0; w >= 0; w = keel_task_wait(task, atomic_load(&q->interval)))
        if (w == 0 && !run_jobs(q))
            return;
}

/* ---- the probe ---------------------------------------------------------------------------------- */

static int handle(keel_http_request *req, void *userdata)
{
    queue *q = userdata;
    const char *path = keel_http_request_path(req);
    char body[128];
    if (keel_streq(path, "/healthz"))
        return keel_http_respond_static(req, keel_app_readiness(q->app) == KEEL_READINESS_READY ? 200 : 503, "text/plain", "ok\n");
    if (!keel_streq(path, "/status"))
        return keel_http_respond_static(req, 404, "text/plain", "try /healthz or /status\n");
    keel_work_stats st;
    keel_work_get_stats(q->work, &st);
    (void) snprintf(body, sizeof body, "{\"processed\":%" PRIuFAST64 ",\"in_flight\":%" PRIu64 "}\n", atomic_load(&q->processed),
                    st.in_flight);
    return keel_http_respond_text(req, 200, "application/json", body);
}

/* ---- the service ------------------------------------------------------------------------------ */

/* The key of @path (or none), into *@ret. */
static int read_key(const char *path, char **ret)
{
    char *key = NULL;
    size_t size;
    int r = *path ? keel_file_read(path, KEY_MAX, &key, &size, NULL) : 0;
    if (r < 0)
        return r;
    if (key)
        key[strcspn(key, "\n")] = 0;
    *ret = key;
    return 0;
}

static int load_key(queue *q)
{
    char *key = NULL;
    int r = read_key(q->config.key_file, &key);
    if (r < 0)
        return keel_app_fail(q->app, r, "Cannot read queue.key_file '%s': %s", q->config.key_file, strerror(-r));
    (void) pthread_mutex_lock(&q->lock);
    char *old = q->key;
    q->key = key;
    (void) pthread_mutex_unlock(&q->lock);
    free(old);
    return 0;
}

static int queue_setup(keel_service *s, void *state)
{
    queue *q = state;
    return -pthread_mutex_init(&q->lock, NULL);
}

static int queue_configure(keel_service *s, void *state)
{
    queue *q = state;
    keel_metrics *m = keel_app_metrics(q->app = keel_service_app(s));
    atomic_store(&q->interval, q->config.poll_interval);
    int r = keel_metrics_counter(m, "qworker_jobs_total", "Jobs processed, by result.",
                                 (const char *const[]){ "result", "ok", NULL }, &q->done);
    if (r >= 0)
        r = keel_metrics_counter(m, "qworker_jobs_total", "Jobs processed, by result.",
                                 (const char *const[]){ "result", "error", NULL }, &q->failed);
    if (r < 0)
        return keel_app_fail(q->app, r, "Cannot register the queue's metrics: %s", strerror(-r));
    return load_key(q);
}

static int make_dirs(const char *spool)
{
    char sub[PATH_MAX];
    int r = keel_dir_make(spool, 0755);
    for (const char *const *n = (const char *const[]){ "new", "done", NULL }; r >= 0 && *n; n++) {
        (void) snprintf(sub, sizeof sub, "%s/%s", spool, *n);
        r = keel_dir_make(sub, 0755);
    }
    return r;
}

static int queue_start(keel_service *s, void *state)
{
    queue *q = state;
    int r = make_dirs(q->config.spool_dir);
    if (r < 0)
        return keel_app_fail(q->app, r, "Cannot create the spool '%s': %s", q->config.spool_dir, strerror(-r));
    /* Before the server starts: its handler reads it. The probe's requests have the tracker "queue". */
    q->work = keel_app_work(q->app, "jobs");
    keel_http_options o = {
        .service = "queue", .label = "queue probe", .address = q->config.address, .handler = handle, .userdata = q
    };
    if ((r = keel_http_server_start_new(q->app, &o, &q->server)) < 0)
        return r;
    if (!(q->tasks = keel_task_group_new(q->app, "queue")))
        return keel_app_fail(q->app, -ENOMEM, "Cannot allocate the worker's task group");
    if ((r = keel_task_group_spawn(q->tasks, "queue.spawn.worker", "worker", worker, q)) < 0)
        return keel_app_fail(q->app, r, "Cannot start the worker: %s", strerror(-r));
    return 0;
}

/* SIGHUP: a new interval wakes the worker at once; the key is read again. */
static int queue_refresh(keel_service *s, void *state)
{
    queue *q = state;
    if (atomic_exchange(&q->interval, q->config.poll_interval) != q->config.poll_interval)
        keel_task_group_wake(q->tasks);
    return load_key(q);
}

/* The job in flight finishes (the tracker refuses the next one), then the probe drains. */
static int queue_stop(keel_service *s, void *state)
{
    queue *q = state;
    int r = q->work ? keel_work_drain(q->work, keel_app_stop_deadline(q->app), keel_app_drain_progress, q->app) : 0;
    q->tasks = keel_task_group_free(q->tasks);
    int h = keel_http_server_stop_and_free(q->app, &q->server);
    if (r < 0)
        return keel_app_fail(q->app, r, "A job was still running at the shutdown timeout");
    return h;
}

static void queue_free(keel_service *s, void *state)
{
    queue *q = state;
    free(q->key);
    (void) pthread_mutex_destroy(&q->lock);
}

static const keel_service_vtable queue_vtable = {
    .name = "queue",
    .label = "queue worker",
    .state_size = sizeof(queue),
    .config = queue_keys,
    .n_config = KEEL_ELEMENTSOF(queue_keys),
    .setup = queue_setup,
    .configure = queue_configure,
    .start = queue_start,
    .refresh = queue_refresh,
    .stop = queue_stop,
    .free = queue_free,
};

/* ---- `qworker enqueue NAME TEXT` ------------------------------------------------------------------ */

/* Once the configuration is loaded (it names the spool), the job is written and the command ends. */
static int enqueue(keel_app *app, void *userdata)
{
    queue *q = userdata;
    int argc;
    char **argv = keel_app_args(app, &argc), path[PATH_MAX];
    int r = make_dirs(q->config.spool_dir);
    (void) snprintf(path, sizeof path, "%s/new/%s.job", q->config.spool_dir, argv[1]);
    if (r >= 0)
        r = keel_file_write_atomic(path, argv[2], strlen(argv[2]), 0644);
    if (r < 0)
        return keel_app_fail(app, r, "Cannot enqueue '%s': %s", path, strerror(-r));
    printf("%s\n", path);
    (void) keel_app_cancel(app, KEEL_CAUSE_COMMAND_DONE, "job enqueued");
    return 0;
}

static int on_enqueue(keel_app *app, void *userdata)
{
    int argc;
    char **argv = keel_app_args(app, &argc);
    if (argc != 3 || !*argv[1] || strchr(argv[1], '/'))
        return keel_app_fail(app, -EINVAL, "usage: enqueue NAME TEXT (NAME without '/')");
    return keel_app_observe(app, KEEL_EVENT_CONFIGURE, KEEL_PHASE_AFTER, "queue.enqueue", enqueue, userdata, NULL);
}

static int qworker_register(keel_app *app)
{
    keel_service *s = NULL;
    int r = keel_app_add_service(app, &queue_vtable, &s);
    if (r >= 0)
        r = keel_app_add_command(app, "enqueue", "put a job in the queue: enqueue NAME TEXT", 0);
    if (r >= 0)
        r = keel_app_observe_command(app, "enqueue", "queue.command.enqueue", on_enqueue, keel_service_state(s));
    return r;
}

KEEL_PLUGIN(qworker, qworker_register);

int main(int argc, char **argv)
{
    keel_app *app = keel_app_new("qworker");
    if (!app)
        return KEEL_EXIT_SOFTWARE;
    int r = keel_app_run(app, argc, argv);
    keel_app_free(app);
    return r < 0 ? KEEL_EXIT_SOFTWARE : r;
}
