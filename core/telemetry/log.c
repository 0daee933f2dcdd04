/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#include "log-internal.h"
#include "macro.h"
#include <keel/fileio.h>
#include <keel/strbuf.h>

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
    return access("/run/systemd/journal/socket", W_OK) == 0;
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
    const char *service, *file, *func, *message;
    int line;
} record;

static void emit_text(const record *r)
{
    char buf[8192], ts[40];
    keel_strbuf sb = KEEL_STRBUF_INIT(buf);

    format_time(ts, sizeof ts);
    keel_strbuf_printf(&sb, "%s %s %s", ts, level_tags[r->level], r->message);
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
    if (sb.len == sb.size - 1)
        sb.len--; /* keep room for the newline of a truncated record */
    sb.buf[sb.len++] = '\n';
    write_all(sb.buf, sb.len);
}

static void emit_json(const record *r)
{
    char buf[8192], ts[40];
    keel_strbuf sb = KEEL_STRBUF_INIT(buf);

    format_time(ts, sizeof ts);
    keel_strbuf_append(&sb, "{");
    keel_strbuf_json_field(&sb, "time", ts, true);
    keel_strbuf_json_field(&sb, "level", log_level_table[r->level], false);
    keel_strbuf_json_field(&sb, "message", r->message, false);
    if (ctx_event)
        keel_strbuf_json_field(&sb, "event", ctx_event, false);
    if (ctx_phase)
        keel_strbuf_json_field(&sb, "phase", ctx_phase, false);
    if (ctx_observer)
        keel_strbuf_json_field(&sb, "observer", ctx_observer, false);
    if (r->service)
        keel_strbuf_json_field(&sb, "service", r->service, false);
    if (r->error)
        keel_strbuf_printf(&sb, ",\"errno\":%d", r->error);
    keel_strbuf_append(&sb, "}");
    if (sb.len == sb.size - 1)
        sb.len--;
    sb.buf[sb.len++] = '\n';
    write_all(sb.buf, sb.len);
}

static void emit_journal(const record *r)
{
    char f[12][512];
    struct iovec iov[12];
    size_t n = 0;

#define FIELD(...)                                                                                                                 \
    do {                                                                                                                           \
        int _l = snprintf(f[n], sizeof f[n], __VA_ARGS__);                                                                         \
        iov[n] = (struct iovec){ .iov_base = f[n], .iov_len = (size_t) MIN(_l, (int) sizeof f[n] - 1) };                           \
        n++;                                                                                                                       \
    } while (0)
    FIELD("MESSAGE=%s", r->message);
    FIELD("PRIORITY=%d", r->level);
    FIELD("SYSLOG_IDENTIFIER=%s", program_invocation_short_name);
    FIELD("CODE_FILE=%s", r->file);
    FIELD("CODE_LINE=%d", r->line);
    FIELD("CODE_FUNC=%s", r->func);
    if (r->error)
        FIELD("ERRNO=%d", r->error);
    if (ctx_event)
        FIELD("KEEL_EVENT=%s", ctx_event);
    if (ctx_phase)
        FIELD("KEEL_PHASE=%s", ctx_phase);
    if (ctx_observer)
        FIELD("KEEL_OBSERVER=%s", ctx_observer);
    if (r->service)
        FIELD("KEEL_SERVICE=%s", r->service);
#undef FIELD
    if (sd_journal_sendv(iov, (int) n) < 0)
        emit_text(r); /* the journal went away: stderr still reaches someone */
}

int keel_log_full(keel_log_level level, int error, const char *service, const char *file, int line, const char *func,
                  const char *fmt, ...)
{
    int ret = error == 0 ? 0 : -abs(error);
    char msg[4096];
    va_list ap;

    if ((int) level > atomic_load(&log_level) || (int) level < KEEL_LOG_ERROR)
        return ret;

    int saved = errno;
    errno = abs(error); /* for %m */
    va_start(ap, fmt);
    (void) vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    errno = saved;

    record r = {
        .level = level, .error = abs(error), .service = service, .file = file, .line = line, .func = func, .message = msg
    };
    switch (atomic_load(&log_format)) {
    case KEEL_LOG_FORMAT_JSON:
        emit_json(&r);
        break;
    case KEEL_LOG_FORMAT_JOURNAL:
        emit_journal(&r);
        break;
    default:
        emit_text(&r);
    }
    errno = saved;
    return ret;
}
