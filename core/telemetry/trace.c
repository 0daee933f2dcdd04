/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <keel/strbuf.h>

#include "macro-internal.h"
#include "trace-internal.h"

enum {
    TRACE_OFF,
    TRACE_JSON,
    TRACE_LINES,
    TRACE_BUSY, /* being opened or closed, or closed by a fatal signal: nothing is written */
};

/* A record is built on the stack and must fit whole: every string is cut to these lengths
 * first, so even all-control-character input (6 bytes escaped per byte) fits RECORD_MAX. */
#define NAME_MAX_LEN 256
#define TEXT_MAX_LEN 1024
#define RECORD_MAX   (16 * 1024)
_Static_assert(6 * (5 * NAME_MAX_LEN + TEXT_MAX_LEN) + 512 < RECORD_MAX, "a record must always fit");

atomic_bool keel__trace_on;
static atomic_int trace_mode = TRACE_OFF;
static atomic_int trace_fd = -EBADF;
/* Records being written: a closer waits for them, so the final "]}" comes after all of them. */
static atomic_int writers;
static _Thread_local bool in_write; /* this thread is one of `writers` (for a signal handler) */
static pid_t trace_pid;             /* only the process that opened the trace closes it */

/* The closing bytes, formatted at open so that a signal handler only has to write them. */
static char tail[512];
static size_t tail_len;

static const int fatal_signals[] = { SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL };
static struct sigaction saved_actions[ELEMENTSOF(fatal_signals)];
static bool handlers_installed;

static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* a full disk loses the record; the trace goes on */
        buf += n;
        len -= (size_t) n;
    }
}

static void emit(const char *buf, size_t len)
{
    int saved = errno;

    /* seq_cst pairs with the closer's CAS on trace_mode and its load of `writers`: either this
     * writer sees the trace closing, or the closer sees this writer and waits for it. */
    atomic_fetch_add(&writers, 1);
    in_write = true;
    int mode = atomic_load(&trace_mode);
    if (mode == TRACE_JSON || mode == TRACE_LINES)
        write_all(atomic_load_explicit(&trace_fd, memory_order_relaxed), buf, len);
    in_write = false;
    atomic_fetch_sub(&writers, 1);
    errno = saved;
}

/* Waits for records being written, at most @max_msec: a writer blocked on a full stderr pipe,
 * or the very thread a signal interrupted mid-write, must not hang the exit. */
static void wait_for_writers(unsigned max_msec)
{
    const struct timespec ms = { .tv_nsec = 1000000 };
    int self = in_write ? 1 : 0;

    for (unsigned i = 0; atomic_load(&writers) > self && i < max_msec; i++)
        (void) nanosleep(&ms, NULL);
}

static void on_fatal_signal(int sig, siginfo_t *si, void *ucontext);

static void restore_handlers(void)
{
    if (!handlers_installed)
        return;
    for (size_t i = 0; i < ELEMENTSOF(fatal_signals); i++) {
        struct sigaction cur;
        /* A handler installed after ours stays: it is someone else's to remove. */
        if (sigaction(fatal_signals[i], NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_fatal_signal)
            (void) sigaction(fatal_signals[i], &saved_actions[i], NULL);
    }
    handlers_installed = false;
}

/* Async-signal-safe when @from_signal: atomics, getpid(), nanosleep() and write() only. */
static void close_trace(bool from_signal)
{
    int mode = atomic_load(&trace_mode);

    if ((mode != TRACE_JSON && mode != TRACE_LINES) || getpid() != trace_pid)
        return;
    if (!atomic_compare_exchange_strong(&trace_mode, &mode, TRACE_BUSY))
        return; /* another thread or a signal handler is closing it */
    atomic_store_explicit(&keel__trace_on, false, memory_order_relaxed);
    wait_for_writers(from_signal ? 100 : 1000);

    int fd = atomic_load_explicit(&trace_fd, memory_order_relaxed);
    if (mode == TRACE_JSON)
        write_all(fd, tail, tail_len);
    if (from_signal)
        return; /* the process is dying: stay closed */

    restore_handlers();
    if (mode == TRACE_JSON)
        (void) safe_close(fd);
    atomic_store_explicit(&trace_fd, -EBADF, memory_order_relaxed);
    atomic_store(&trace_mode, TRACE_OFF);
}

void keel__trace_close(void)
{
    close_trace(false);
}

void keel__trace_close_from_signal(void)
{
    close_trace(true);
}

static void on_exit_close(void)
{
    close_trace(false);
}

/* Finishes the file, then lets the signal do what it would have done without us. A fault the
 * kernel raised (si_code > 0) comes back when the instruction runs again after we return; a
 * signal that was sent (abort(), kill) is sent again, and stays blocked until we return. */
static void on_fatal_signal(int sig, siginfo_t *si, void *ucontext)
{
    int saved = errno;

    close_trace(true);
    for (size_t i = 0; i < ELEMENTSOF(fatal_signals); i++)
        if (fatal_signals[i] == sig) {
            struct sigaction sa = saved_actions[i];
            if (!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_IGN)
                sa.sa_handler = SIG_DFL; /* a fault must not be ignored into a loop */
            (void) sigaction(sig, &sa, NULL);
        }
    if (!si || si->si_code <= 0)
        (void) raise(sig);
    errno = saved;
}

static int install_handlers(void)
{
    struct sigaction sa = {
        .sa_sigaction = on_fatal_signal,
        .sa_flags = SA_SIGINFO | SA_ONSTACK, /* the alternate stack, where a thread has one (stack overflow) */
    };

    (void) sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < ELEMENTSOF(fatal_signals); i++)
        if (sigaction(fatal_signals[i], &sa, &saved_actions[i]) < 0) {
            int r = -errno;
            while (i-- > 0)
                (void) sigaction(fatal_signals[i], &saved_actions[i], NULL);
            return r;
        }
    handlers_installed = true;
    return 0;
}

static void format_tail(void)
{
    keel_strbuf sb = KEEL_STRBUF_INIT(tail);
    char name[NAME_MAX_LEN + 1];

    (void) snprintf(name, sizeof name, "%s", program_invocation_short_name);
    keel_strbuf_printf(&sb, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"args\":{\"name\":\"", (int) trace_pid,
                       (int) trace_pid);
    keel_strbuf_json(&sb, name);
    keel_strbuf_append(&sb, "\"}}\n]}\n");
    assert(!sb.truncated);
    tail_len = sb.len;
}

static int open_json(const char *path, int *ret_fd)
{
    static const char head[] = "{\"traceEvents\":[\n";
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOCTTY, 0644);

    if (fd < 0)
        return -errno;
    if (write(fd, head, sizeof head - 1) != (ssize_t) sizeof head - 1) {
        int r = errno ? -errno : -EIO;
        (void) safe_close(fd);
        return r;
    }
    int r = install_handlers();
    if (r < 0) {
        (void) safe_close(fd);
        return r;
    }
    *ret_fd = fd;
    return 0;
}

int keel__trace_open(const char *path)
{
    static bool atexit_done;
    int expected = TRACE_OFF, fd = STDERR_FILENO, mode = TRACE_LINES;

    keel_assert_return(path && *path, -EINVAL);
    if (!atomic_compare_exchange_strong(&trace_mode, &expected, TRACE_BUSY))
        return -EBUSY;

    trace_pid = getpid();
    if (!streq(path, "-")) {
        errno = 0;
        int r = open_json(path, &fd);
        if (r < 0) {
            atomic_store(&trace_mode, TRACE_OFF);
            return r;
        }
        format_tail();
        mode = TRACE_JSON;
    }
    if (!atexit_done)
        atexit_done = atexit(on_exit_close) == 0;

    atomic_store_explicit(&trace_fd, fd, memory_order_relaxed);
    atomic_store(&trace_mode, mode); /* publishes fd, pid and tail to writers and closers */
    atomic_store_explicit(&keel__trace_on, true, memory_order_relaxed);
    return 0;
}

/* The first bytes of @s, at most @max, cut at a character boundary, with every byte that is not
 * part of well-formed UTF-8 replaced by '?': strict JSON readers reject invalid UTF-8. */
static const char *sanitize(const char *s, char *buf, size_t max)
{
    const unsigned char *p = (const unsigned char *) s;
    size_t o = 0;

    while (*p && o < max) {
        size_t n = *p < 0x80 ? 1 : *p >= 0xC2 && *p <= 0xDF ? 2 : *p >= 0xE0 && *p <= 0xEF ? 3 : *p >= 0xF0 && *p <= 0xF4 ? 4 : 0;
        size_t i = 1;
        while (n > 1 && i < n && (p[i] & 0xC0) == 0x80)
            i++;
        if (n == 0 || i < n) {
            buf[o++] = '?';
            p++;
            continue;
        }
        if (o + n > max)
            break;
        memcpy(buf + o, p, n);
        o += n;
        p += n;
    }
    buf[o] = 0;
    return buf;
}

static void json_field(keel_strbuf *sb, const char *key, const char *value, size_t max, bool first)
{
    char buf[TEXT_MAX_LEN + 1];
    keel_strbuf_json_field(sb, key, sanitize(value, buf, max), first);
}

static void json_head(keel_strbuf *sb, const char *cat, const char *name, const char *ph, keel_usec_t ts)
{
    keel_strbuf_append(sb, "{");
    json_field(sb, "name", name, NAME_MAX_LEN, true);
    json_field(sb, "cat", cat, NAME_MAX_LEN, false);
    json_field(sb, "ph", ph, NAME_MAX_LEN, false);
    keel_strbuf_printf(sb, ",\"ts\":%llu", (unsigned long long) ts);
}

static void json_ids(keel_strbuf *sb)
{
    keel_strbuf_printf(sb, ",\"pid\":%d,\"tid\":%d", (int) getpid(), (int) gettid());
}

/* Ends a record and writes it; a record that did not fit is dropped rather than written broken. */
static void json_emit(keel_strbuf *sb)
{
    keel_strbuf_append(sb, "},\n");
    if (!sb->truncated)
        emit(sb->buf, sb->len);
}

/* An "args" member: nothing when @value is NULL. */
static void json_arg(keel_strbuf *sb, bool *first, const char *key, const char *value, size_t max)
{
    if (!value)
        return;
    json_field(sb, key, value, max, *first);
    *first = false;
}

static void json_complete(const char *cat, const char *name, keel_usec_t start, keel_usec_t dur, const keel_trace_args *a)
{
    char buf[RECORD_MAX];
    keel_strbuf sb = KEEL_STRBUF_INIT(buf);

    json_head(&sb, cat, name, "X", start);
    keel_strbuf_printf(&sb, ",\"dur\":%llu", (unsigned long long) dur);
    json_ids(&sb);
    if (a && (a->event || a->phase || a->result || a->error)) {
        bool first = true;
        keel_strbuf_append(&sb, ",\"args\":{");
        json_arg(&sb, &first, "event", a->event, NAME_MAX_LEN);
        json_arg(&sb, &first, "phase", a->phase, NAME_MAX_LEN);
        json_arg(&sb, &first, "result", a->result, NAME_MAX_LEN);
        json_arg(&sb, &first, "error", a->error, TEXT_MAX_LEN);
        keel_strbuf_append(&sb, "}");
    }
    json_emit(&sb);
}

static void json_instant(const char *cat, const char *name, const char *detail)
{
    char buf[RECORD_MAX];
    keel_strbuf sb = KEEL_STRBUF_INIT(buf);

    json_head(&sb, cat, name, "i", keel_now());
    keel_strbuf_append(&sb, ",\"s\":\"p\"");
    json_ids(&sb);
    if (detail) {
        keel_strbuf_append(&sb, ",\"args\":{");
        json_field(&sb, "detail", detail, TEXT_MAX_LEN, true);
        keel_strbuf_append(&sb, "}");
    }
    json_emit(&sb);
}

/* Ends a readable line and writes it; a line cut short still ends with its newline. */
static void line_emit(keel_strbuf *sb)
{
    if (sb->len == sb->size - 1)
        sb->len--;
    sb->buf[sb->len++] = '\n';
    emit(sb->buf, sb->len);
}

static void line_complete(const char *cat, const char *name, keel_usec_t dur, const keel_trace_args *a)
{
    char buf[4096];
    keel_strbuf sb = KEEL_STRBUF_INIT(buf);

    keel_strbuf_printf(&sb, "trace: %s ", cat);
    /* An observer's line says where it ran; an event's or a phase's name already does. */
    if (a && a->event && streq(cat, "observer"))
        keel_strbuf_printf(&sb, "%s%s%s ", a->event, a->phase ? "." : "", a->phase ? a->phase : "");
    keel_strbuf_printf(&sb, "%s ", name);
    if (a && a->result)
        keel_strbuf_printf(&sb, "%s ", a->result);
    keel_strbuf_printf(&sb, "%llu.%03llums", (unsigned long long) (dur / 1000), (unsigned long long) (dur % 1000));
    if (a && a->error)
        keel_strbuf_printf(&sb, ": %s", a->error);
    line_emit(&sb);
}

static void line_instant(const char *cat, const char *name, const char *detail)
{
    char buf[4096];
    keel_strbuf sb = KEEL_STRBUF_INIT(buf);

    keel_strbuf_printf(&sb, "trace: %s %s", cat, name);
    if (detail)
        keel_strbuf_printf(&sb, ": %s", detail);
    line_emit(&sb);
}

void keel__trace_complete(const char *cat, const char *name, keel_usec_t start, keel_usec_t dur, const keel_trace_args *args)
{
    assert(cat && name);
    int mode = atomic_load_explicit(&trace_mode, memory_order_relaxed);
    if (mode == TRACE_JSON)
        json_complete(cat, name, start, dur, args);
    else if (mode == TRACE_LINES)
        line_complete(cat, name, dur, args);
}

void keel__trace_thread_name(const char *name)
{
    assert(name);
    if (atomic_load_explicit(&trace_mode, memory_order_relaxed) != TRACE_JSON)
        return;
    char buf[RECORD_MAX];
    keel_strbuf sb = KEEL_STRBUF_INIT(buf);
    keel_strbuf_append(&sb, "{\"name\":\"thread_name\",\"ph\":\"M\"");
    json_ids(&sb);
    keel_strbuf_append(&sb, ",\"args\":{");
    json_field(&sb, "name", name, NAME_MAX_LEN, true);
    keel_strbuf_append(&sb, "}");
    json_emit(&sb);
}

void keel__trace_instant(const char *cat, const char *name, const char *detail)
{
    assert(cat && name);
    int mode = atomic_load_explicit(&trace_mode, memory_order_relaxed);
    if (mode == TRACE_JSON)
        json_instant(cat, name, detail);
    else if (mode == TRACE_LINES)
        line_instant(cat, name, detail);
}
