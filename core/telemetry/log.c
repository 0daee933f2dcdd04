/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <keel/fileio.h>
#include <keel/strbuf.h>

#include "journal-internal.h"
#include "log-internal.h"
#include "macro-internal.h"

static atomic_int log_level = KEEL_LOG_INFO;
static atomic_int log_format = KEEL_LOG_FORMAT_TEXT;
static atomic_int log_fd = STDERR_FILENO;

static _Thread_local const char *ctx_event, *ctx_phase, *ctx_observer;

static const char *const log_level_table[] = {
    [KEEL_LOG_ERROR] = "error", [KEEL_LOG_WARNING] = "warning", [KEEL_LOG_NOTICE] = "notice",
    [KEEL_LOG_INFO] = "info",   [KEEL_LOG_DEBUG] = "debug",
};
static const char *const level_tags[] = {
    [KEEL_LOG_ERROR] = "ERROR", [KEEL_LOG_WARNING] = "WARN ", [KEEL_LOG_NOTICE] = "NOTE ",
    [KEEL_LOG_INFO] = "INFO ",  [KEEL_LOG_DEBUG] = "DEBUG",
};
static const char *const keel_log_format_table[_KEEL_LOG_FORMAT_MAX] = {
    [KEEL_LOG_FORMAT_AUTO] = "auto",
    [KEEL_LOG_FORMAT_TEXT] = "text",
    [KEEL_LOG_FORMAT_JSON] = "json",
    [KEEL_LOG_FORMAT_JOURNAL] = "journal",
};

DEFINE_PRIVATE_STRING_TABLE_LOOKUP(log_level, keel_log_level)

const char *keel_log_level_to_string(keel_log_level level)
{
    return log_level_to_string(level);
}

int keel_log_level_from_string(const char *s)
{
    if (s && streq(s, "warn")) /* what Go's and journalctl's users type */
        return KEEL_LOG_WARNING;
    return (int) log_level_from_string(s);
}

DEFINE_STRING_TABLE_LOOKUP(keel_log_format, keel_log_format);

void keel_log_set_level(keel_log_level level)
{
    atomic_store(&log_level, level);
}

keel_log_level keel_log_get_level(void)
{
    return (keel_log_level) atomic_load(&log_level);
}

/* systemd sets JOURNAL_STREAM=dev:ino for a unit whose stderr goes to the journal: only then is
 * the native protocol the right choice (a redirected stderr keeps text). */
static bool stderr_is_journal(void)
{
    const char *e = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
        return false;
    if (fstat(STDERR_FILENO, &st) < 0)
        return false;
    return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

/* A daemon's stderr is /dev/null: "auto" then means the journal, when there is one. */
static atomic_bool detached;

void keel__log_detached(void)
{
    atomic_store(&detached, true);
    (void) keel_log_set_format(KEEL_LOG_FORMAT_AUTO);
}

static bool journal_available(void)
{
    return access(keel__journal_socket(), W_OK) == 0;
}

int keel_log_set_format(keel_log_format format)
{
    if (format < 0 || format >= _KEEL_LOG_FORMAT_MAX)
        return -EINVAL;
    if (format == KEEL_LOG_FORMAT_AUTO)
        format =
            stderr_is_journal() || (atomic_load(&detached) && journal_available()) ? KEEL_LOG_FORMAT_JOURNAL : KEEL_LOG_FORMAT_TEXT;
    atomic_store(&log_format, format);
    return 0;
}

keel_log_format keel_log_get_format(void)
{
    return (keel_log_format) atomic_load(&log_format);
}

void keel__log_context_set(const char *event, const char *phase, const char *observer)
{
    ctx_event = event;
    ctx_phase = phase;
    ctx_observer = observer;
}

void keel__log_set_fd(int fd)
{
    atomic_store(&log_fd, fd >= 0 ? fd : STDERR_FILENO);
}

static void format_time(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    (void) clock_gettime(CLOCK_REALTIME, &ts);
    (void) gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    (void) snprintf(buf + n, size - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

static void write_all(const char *buf, size_t len)
{
    (void) keel_fd_write_all(atomic_load(&log_fd), buf, len); /* nowhere to report a failing log sink */
}

typedef struct record {
    keel_log_level level;
    int error;
    const char *service, *file, *func, *message, *message_id;
    const char *const *fields; /* "NAME=value" beyond the standard ones, NULL-terminated, or NULL */
    int line;
} record;

/* The request whose handler runs on this thread (core/http/request.c), and its id's getter. */
static _Thread_local const void *ctx_request;
static _Thread_local const char *(*ctx_request_id)(const void *request);

void keel__log_context_request(const char *(*id)(const void *request), const void *request)
{
    ctx_request_id = id;
    ctx_request = request;
}

static const char *request_id(void)
{
    return ctx_request ? ctx_request_id(ctx_request) : NULL;
}

static void emit_text(const record *r)
{
    char stack[8192], ts[40];
    keel_strbuf sb = KEEL_STRBUF_INIT_GROWABLE(stack);

    format_time(ts, sizeof ts);
    keel_strbuf_printf(&sb, "%s %s ", ts, level_tags[r->level]);
    keel_strbuf_escaped(&sb, r->message);
    if (ctx_event || r->service || ctx_observer) {
        keel_strbuf_append(&sb, "  [");
        if (ctx_event)
            keel_strbuf_printf(&sb, "%s%s%s", ctx_event, ctx_phase ? "." : "", ctx_phase ? ctx_phase : "");
        if (ctx_observer)
            keel_strbuf_printf(&sb, "%s%s", ctx_event ? " " : "", ctx_observer);
        if (r->service) /* a thread outside any event has only this */
            keel_strbuf_printf(&sb, "%sservice=%s", ctx_event || ctx_observer ? " " : "", r->service);
        keel_strbuf_append(&sb, "]");
    }
    keel_strbuf_append(&sb, "\n");
    if (sb.truncated) /* out of memory: the newline still ends the record */
        sb.buf[sb.len - 1] = '\n';
    write_all(sb.buf, sb.len);
    keel_strbuf_done(&sb);
}

/* "KEEL_CAUSE=signal" as ,"cause":"signal". */
static void json_extra(keel_strbuf *sb, const char *field)
{
    const char *eq = strchr(field, '='), *name = strneq(field, "KEEL_", 5) ? field + 5 : field;
    if (!eq || eq < name)
        return;
    keel_strbuf_append(sb, ",\"");
    for (const char *p = name; p < eq; p++)
        keel_strbuf_printf(sb, "%c", (char) tolower((unsigned char) *p));
    keel_strbuf_append(sb, "\":\"");
    keel_strbuf_json(sb, eq + 1);
    keel_strbuf_append(sb, "\"");
}

static void emit_json(const record *r)
{
    char stack[8192], ts[40];
    keel_strbuf sb = KEEL_STRBUF_INIT_GROWABLE(stack);
    const char *id = request_id();

    format_time(ts, sizeof ts);
    keel_strbuf_append(&sb, "{");
    keel_strbuf_json_field(&sb, "time", ts, true);
    keel_strbuf_json_field(&sb, "level", log_level_table[r->level], false);
    keel_strbuf_json_field(&sb, "message", r->message, false);
    if (r->message_id)
        keel_strbuf_json_field(&sb, "message_id", r->message_id, false);
    if (ctx_event)
        keel_strbuf_json_field(&sb, "event", ctx_event, false);
    if (ctx_phase)
        keel_strbuf_json_field(&sb, "phase", ctx_phase, false);
    if (ctx_observer)
        keel_strbuf_json_field(&sb, "observer", ctx_observer, false);
    if (r->service)
        keel_strbuf_json_field(&sb, "service", r->service, false);
    if (id)
        keel_strbuf_json_field(&sb, "request_id", id, false);
    for (const char *const *f = r->fields; f && *f; f++)
        json_extra(&sb, *f);
    if (r->error)
        keel_strbuf_printf(&sb, ",\"errno\":%d", r->error);
    keel_strbuf_append(&sb, "}\n");
    if (!sb.truncated) /* out of memory: a cut object would not parse */
        write_all(sb.buf, sb.len);
    keel_strbuf_done(&sb);
}

/* A "NAME=value" of the caller as a journal field. */
static keel_journal_field split_field(const char *f)
{
    const char *eq = strchr(f, '=');
    return eq ? (keel_journal_field){ .name = f, .value = eq + 1, .size = strlen(eq + 1) } : (keel_journal_field){ 0 };
}

static void emit_journal(const record *r)
{
    char priority[4], line[16], error[16], names[4][64];
    keel_journal_field f[KEEL_JOURNAL_FIELDS_MAX];
    size_t n = 0;
#define STR(nm, v) (f[n++] = (keel_journal_field){ .name = (nm), .value = (v), .size = strlen(v) })
    (void) snprintf(priority, sizeof priority, "%d", r->level);
    (void) snprintf(line, sizeof line, "%d", r->line);
    STR("MESSAGE", r->message);
    STR("PRIORITY", priority);
    STR("SYSLOG_IDENTIFIER", program_invocation_short_name);
    STR("CODE_FILE", r->file);
    STR("CODE_LINE", line);
    STR("CODE_FUNC", r->func);
    if (r->error) {
        (void) snprintf(error, sizeof error, "%d", r->error);
        STR("ERRNO", error);
    }
    if (r->message_id)
        STR("MESSAGE_ID", r->message_id);
    if (ctx_event)
        STR("KEEL_EVENT", ctx_event);
    if (ctx_phase)
        STR("KEEL_PHASE", ctx_phase);
    if (ctx_observer)
        STR("KEEL_OBSERVER", ctx_observer);
    if (r->service)
        STR("KEEL_SERVICE", r->service);
    const char *id = request_id();
    if (id)
        STR("KEEL_REQUEST_ID", id);
#undef STR
    size_t extras = 0;
    for (const char *const *x = r->fields; x && *x && n < KEEL_JOURNAL_FIELDS_MAX && extras < ELEMENTSOF(names); x++) {
        keel_journal_field e = split_field(*x);
        size_t len = e.name ? (size_t) (e.value - 1 - e.name) : sizeof names[0];
        if (len >= sizeof names[0])
            continue;
        memcpy(names[extras], e.name, len); /* the name without its '=' */
        names[extras][len] = 0;
        e.name = names[extras++];
        f[n++] = e;
    }
    if (keel__journal_send(f, n) < 0)
        emit_text(r); /* the journal went away: stderr still reaches someone */
}

static void emit(const record *r)
{
    switch (atomic_load(&log_format)) {
    case KEEL_LOG_FORMAT_JSON:
        emit_json(r);
        break;
    case KEEL_LOG_FORMAT_JOURNAL:
        emit_journal(r);
        break;
    default:
        emit_text(r);
    }
}

/* Formats the message (on the stack when it fits, else on the heap: no record is cut) and emits it. */
static int vlog(record *r, const char *fmt, va_list ap)
{
    int ret = r->error == 0 ? 0 : -abs(r->error);
    char stack[4096];
    va_list again;

    if ((int) r->level > atomic_load(&log_level) || (int) r->level < KEEL_LOG_ERROR)
        return ret;
    int saved = errno;
    r->error = abs(r->error);
    va_copy(again, ap);
    errno = r->error; /* for %m */
    int n = vsnprintf(stack, sizeof stack, fmt, ap);
    char *heap = NULL;
    if (n >= (int) sizeof stack) {
        errno = r->error;
        if (vasprintf(&heap, fmt, again) < 0)
            heap = NULL;
    }
    va_end(again);
    r->message = heap ? heap : stack;
    emit(r);
    free(heap);
    errno = saved;
    return ret;
}

int keel_log_full(keel_log_level level, int error, const char *service, const char *file, int line, const char *func,
                  const char *fmt, ...)
{
    record r = { .level = level, .error = error, .service = service, .file = file, .line = line, .func = func };
    va_list ap;
    va_start(ap, fmt);
    int ret = vlog(&r, fmt, ap);
    va_end(ap);
    return ret;
}

int keel__log_struct(keel_log_level level, int error, const char *message_id, const char *const *fields, const char *file, int line,
                     const char *func, const char *fmt, ...)
{
    record r = {
        .level = level, .error = error, .message_id = message_id, .fields = fields, .file = file, .line = line, .func = func
    };
    va_list ap;
    va_start(ap, fmt);
    int ret = vlog(&r, fmt, ap);
    va_end(ap);
    return ret;
}
