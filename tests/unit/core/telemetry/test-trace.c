/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "helpers.h"
#include "macro-internal.h"
#include "trace-internal.h"

TestSuite(trace, .fini = keel__trace_close, .timeout = 30);

/*
 * Parses FILE as JSON and checks the trace's shape: every record has the fields its kind needs,
 * the metadata record comes last, and each CAT:N argument matches the number of records of
 * that category. Exit status 0 when all holds.
 */
static const char checker[] = "import json, sys, collections\n"
                              "doc = json.load(open(sys.argv[1], encoding='utf-8'))\n"
                              "ev = doc['traceEvents']\n"
                              "assert ev[-1]['ph'] == 'M' and ev[-1]['name'] == 'process_name', ev[-1]\n"
                              "cats = collections.Counter()\n"
                              "for e in ev[:-1]:\n"
                              "    assert isinstance(e['name'], str) and isinstance(e['ts'], int), e\n"
                              "    assert isinstance(e['pid'], int) and isinstance(e['tid'], int), e\n"
                              "    if e['ph'] == 'X': assert isinstance(e['dur'], int), e\n"
                              "    elif e['ph'] == 'i': assert e['s'] == 'p', e\n"
                              "    else: raise AssertionError(e)\n"
                              "    if e['cat'] == 'observer': assert e['args']['result'] in ('ok', 'error', 'skipped'), e\n"
                              "    cats[e['cat']] += 1\n"
                              "for want in sys.argv[2:]:\n"
                              "    cat, n = want.split(':')\n"
                              "    assert cats[cat] == int(n), (cat, cats[cat], n)\n";

/* Runs the checker on @path with the CAT:N expectations in @expect; its exit status. */
static int check_json(const char *path, const char *expect)
{
    char *script = test_write_file(test_tmpdir(), "check.py", checker);
    char *cmd = NULL;

    cr_assert_geq(asprintf(&cmd, "python3 %s %s %s", script, path, expect ? expect : ""), 0);
    int status = system(cmd);
    free(cmd);
    free(script);
    cr_assert_neq(status, -1);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static char *trace_path(const char *name)
{
    char *p = NULL;
    cr_assert_geq(asprintf(&p, "%s/%s", test_tmpdir(), name), 0);
    return p;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "re");
    cr_assert_not_null(f, "%s: %m", path);
    char *buf = calloc(1, 4 << 20);
    cr_assert_not_null(buf);
    size_t n = fread(buf, 1, (4 << 20) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static const keel_trace_args ok_args = { .event = "start", .phase = "during", .result = "ok" };
static const keel_trace_args error_args = { .event = "start", .phase = "during", .result = "error", .error = "test error" };
static const keel_trace_args skipped_args = { .event = "start", .phase = "during", .result = "skipped" };

/* One of each record kind. */
static void write_some(void)
{
    keel_usec_t t = keel_now();
    keel__trace_complete("event", "start", t, 12345, NULL);
    keel__trace_complete("phase", "start.before", t, 120, NULL);
    keel__trace_complete("observer", "token.start", t, 1234, &ok_args);
    keel__trace_complete("observer", "metrics.start", t, 10, &error_args);
    keel__trace_complete("observer", "healthcheck.start", t, 0, &skipped_args);
    keel__trace_instant("spawn", "token.spawn.refresh", NULL);
    keel__trace_instant("signal", "SIGINT", "during start");
    keel__trace_instant("refresh", "token.refresh", NULL);
}
#define SOME_EXPECT "event:1 phase:1 observer:3 spawn:1 signal:1 refresh:1"

#define THREADS 4
#define ROUNDS  200

static void *writer(void *arg)
{
    char odd[2048];

    /* Strings a record must survive: JSON metacharacters, control characters, bytes that are not
     * UTF-8, a multi-byte character, and more than fits a record field. */
    memset(odd, 'x', sizeof odd - 1);
    odd[sizeof odd - 1] = 0;
    static const char head[] = "q\"b\\n\n\t\x01\xff\xc3\xa9 \xe2\x82";
    memcpy(odd, head, sizeof head - 1);
    odd[1020] = '\xc3', odd[1021] = '\xa9', odd[1022] = '\xc3', odd[1023] = '\xa9', odd[1024] = '\xc3', odd[1025] = '\xa9';
    keel_trace_args weird = { .event = "start", .phase = odd, .result = "error", .error = odd };

    for (int i = 0; i < ROUNDS; i++) {
        write_some();
        keel__trace_complete("observer", odd, keel_now(), 1, &weird);
        keel__trace_instant("point", odd, odd);
    }
    return NULL;
}

Test(trace, json_from_threads_parses)
{
    _cleanup_free_ char *path = trace_path("threads.json");
    pthread_t t[THREADS];

    cr_assert_not(keel__trace_enabled());
    cr_assert_eq(keel__trace_open(path), 0);
    cr_assert(keel__trace_enabled());
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, writer, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_join(t[i], NULL), 0);
    keel__trace_close();
    cr_assert_not(keel__trace_enabled());

    cr_assert_eq(check_json(path, "event:800 phase:800 observer:3200 spawn:800 signal:800 refresh:800 point:800"), 0);

    _cleanup_free_ char *text = read_file(path);
    cr_assert(strncmp(text, "{\"traceEvents\":[\n", 17) == 0);
    cr_assert_not_null(strstr(text, "{\"name\":\"token.start\",\"cat\":\"observer\",\"ph\":\"X\",\"ts\":"));
    cr_assert_not_null(strstr(text, ",\"dur\":1234,\"pid\":"));
    cr_assert_not_null(strstr(text, "\"args\":{\"event\":\"start\",\"phase\":\"during\",\"result\":\"ok\"}},\n"));
    cr_assert_not_null(
        strstr(text, "\"args\":{\"event\":\"start\",\"phase\":\"during\",\"result\":\"error\",\"error\":\"test error\"}},\n"));
    cr_assert_not_null(strstr(text, "{\"name\":\"SIGINT\",\"cat\":\"signal\",\"ph\":\"i\",\"ts\":"));
    cr_assert_not_null(strstr(text, "\"s\":\"p\",\"pid\":"));
    cr_assert_not_null(strstr(text, "\"args\":{\"detail\":\"during start\"}},\n"));
    cr_assert_not_null(strstr(text, "\"q\\\"b\\\\n\\n\\t\\u0001?\xc3\xa9 ??xxx"), "escaped and sanitised");
    cr_assert_not_null(strstr(text, "\"pid\":"));
    cr_assert_not_null(strstr(text, "\"name\":\"process_name\",\"ph\":\"M\""));
    size_t n = strlen(text);
    cr_assert_geq(n, 6);
    cr_assert_str_eq(text + n - 6, "}}\n]}\n");
}

Test(trace, cut_at_character_boundary)
{
    _cleanup_free_ char *path = trace_path("cut.json");
    char error[1100];

    /* "é" (2 bytes) from byte 1 on: the 1024-byte cut falls in the middle of one. */
    error[0] = 'a';
    for (int i = 1; i + 1 < (int) sizeof error - 1; i += 2)
        error[i] = '\xc3', error[i + 1] = '\xa9';
    error[sizeof error - 1] = 0;
    keel_trace_args a = { .event = "start", .phase = "during", .result = "error", .error = error };

    cr_assert_eq(keel__trace_open(path), 0);
    keel__trace_complete("observer", "x", 1, 2, &a);
    keel__trace_close();
    cr_assert_eq(check_json(path, "observer:1"), 0);
}

static void capture_stderr(int *ret_saved, int *ret_read_end)
{
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    *ret_saved = dup(STDERR_FILENO);
    cr_assert_geq(*ret_saved, 0);
    cr_assert_eq(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
    close(p[1]);
    *ret_read_end = p[0];
}

static char *release_stderr(int saved, int read_end)
{
    cr_assert_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    char *buf = calloc(1, 65536);
    size_t len = 0;
    for (ssize_t n; (n = read(read_end, buf + len, 65535 - len)) > 0;)
        len += (size_t) n;
    close(read_end);
    return buf;
}

Test(trace, lines_on_stderr)
{
    int saved, rd;

    capture_stderr(&saved, &rd);
    cr_assert_eq(keel__trace_open("-"), 0);
    cr_assert(keel__trace_enabled());
    write_some();
    keel__trace_close();
    keel__trace_complete("event", "after-close", 0, 1, NULL);
    _cleanup_free_ char *out = release_stderr(saved, rd);

    cr_assert_str_eq(out, "trace: event start 12.345ms\n"
                          "trace: phase start.before 0.120ms\n"
                          "trace: observer start.during token.start ok 1.234ms\n"
                          "trace: observer start.during metrics.start error 0.010ms: test error\n"
                          "trace: observer start.during healthcheck.start skipped 0.000ms\n"
                          "trace: spawn token.spawn.refresh\n"
                          "trace: signal SIGINT: during start\n"
                          "trace: refresh token.refresh\n");
}

Test(trace, open_errors)
{
    _cleanup_free_ char *path = trace_path("busy.json");

    cr_assert_eq(keel__trace_open(NULL), -EINVAL);
    cr_assert_eq(keel__trace_open(""), -EINVAL);
    cr_assert_eq(keel__trace_open("/nonexistent-dir/trace.json"), -ENOENT);
    cr_assert_not(keel__trace_enabled());

    cr_assert_eq(keel__trace_open(path), 0);
    cr_assert_eq(keel__trace_open(path), -EBUSY);
    cr_assert_eq(keel__trace_open("-"), -EBUSY);
    keel__trace_close();
    keel__trace_close(); /* idempotent */
    cr_assert_eq(check_json(path, NULL), 0);

    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0644 & ~umask(022));
}

Test(trace, reopen_truncates_and_nothing_after_close)
{
    _cleanup_free_ char *path = trace_path("again.json");
    struct stat a, b;

    cr_assert_eq(keel__trace_open(path), 0);
    write_some();
    write_some();
    keel__trace_close();
    cr_assert_eq(check_json(path, "observer:6"), 0);

    cr_assert_eq(keel__trace_open(path), 0);
    write_some();
    keel__trace_close();
    cr_assert_eq(stat(path, &a), 0);
    write_some(); /* not tracing: nothing written */
    keel__trace_instant("spawn", "late", NULL);
    cr_assert_eq(stat(path, &b), 0);
    cr_assert_eq(a.st_size, b.st_size);
    cr_assert_eq(check_json(path, SOME_EXPECT), 0);
}

/* Forks a child that opens a trace, writes and then ends by @how; returns its wait status. */
static int run_child(const char *path, void (*how)(void))
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (keel__trace_open(path) < 0)
            _exit(99);
        write_some();
        how();
        _exit(98); /* not reached */
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return status;
}

static void end_exit(void)
{
    exit(0);
}

static void end_abort(void)
{
    abort();
}

static void end_segv(void)
{
    /* A real fault (si_code SEGV_ACCERR): the handler returns, the store runs again and the
     * signal's previous action (ASan's report, or the default) takes over. */
    volatile int *page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        _exit(97);
    *page = 1;
}

Test(trace, closed_by_exit)
{
    _cleanup_free_ char *path = trace_path("exit.json");
    int status = run_child(path, end_exit);

    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    cr_assert_eq(check_json(path, SOME_EXPECT), 0);
}

Test(trace, closed_by_abort)
{
    _cleanup_free_ char *path = trace_path("abort.json");
    int status = run_child(path, end_abort);

    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %d", status);
    cr_assert_eq(check_json(path, SOME_EXPECT), 0);
}

Test(trace, closed_by_segfault)
{
    _cleanup_free_ char *path = trace_path("segv.json");
    int status = run_child(path, end_segv);

    /* Killed by SIGSEGV, or (under ASan) reported and exited non-zero. */
    cr_assert(WIFSIGNALED(status) ? WTERMSIG(status) == SIGSEGV : WEXITSTATUS(status) != 0 && WEXITSTATUS(status) < 97, "status %d",
              status);
    cr_assert_eq(check_json(path, SOME_EXPECT), 0);
}

/* A child forked from a tracing process that exits must not end the parent's document. */
Test(trace, forked_child_exit_leaves_trace_open)
{
    _cleanup_free_ char *path = trace_path("fork.json");

    cr_assert_eq(keel__trace_open(path), 0);
    write_some();
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        exit(0);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    write_some();
    keel__trace_close();
    cr_assert_eq(check_json(path, "observer:6 spawn:2"), 0);
}

Test(trace, close_restores_signal_handlers)
{
    _cleanup_free_ char *path = trace_path("handlers.json");
    struct sigaction before, during, after;

    cr_assert_eq(sigaction(SIGABRT, NULL, &before), 0);
    cr_assert_eq(keel__trace_open(path), 0);
    cr_assert_eq(sigaction(SIGABRT, NULL, &during), 0);
    cr_assert_neq((void *) during.sa_sigaction, (void *) before.sa_sigaction);
    keel__trace_close();
    cr_assert_eq(sigaction(SIGABRT, NULL, &after), 0);
    cr_assert_eq((void *) after.sa_sigaction, (void *) before.sa_sigaction);
}
