/* SPDX-License-Identifier: MIT */
#pragma once

#include <errno.h>

#include <keel/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Log levels; the values are syslog's priorities, which journald stores as PRIORITY=. */
typedef enum keel_log_level {
    KEEL_LOG_ERROR = 3,
    KEEL_LOG_WARNING = 4,
    KEEL_LOG_NOTICE = 5,
    KEEL_LOG_INFO = 6,
    KEEL_LOG_DEBUG = 7,
} keel_log_level;

/** Where and how log records go. AUTO picks JOURNAL when $JOURNAL_STREAM names stderr, else TEXT. */
typedef enum keel_log_format {
    KEEL_LOG_FORMAT_AUTO,
    KEEL_LOG_FORMAT_TEXT,    /* one human line per record on stderr */
    KEEL_LOG_FORMAT_JSON,    /* one JSON object per line on stderr */
    KEEL_LOG_FORMAT_JOURNAL, /* journald's native protocol, with structured fields */
    _KEEL_LOG_FORMAT_MAX,
    _KEEL_LOG_FORMAT_INVALID = -EINVAL,
} keel_log_format;

/**
 * Logs one record, thread-safe, written with a single write so records never interleave.
 * @error, when not 0, is the errno the record is about: %m prints it and the result is -abs(error)
 * (0 when @error is 0), so a caller can `return keel_log_error_errno(r, "...: %m")`.
 * @service, when not NULL, is added as the `service` field. The event, phase and observer that
 * are running on the main thread are added as fields too.
 */
KEEL_API int keel_log_full(keel_log_level level, int error, const char *service, const char *file, int line, const char *func,
                           const char *fmt, ...) KEEL_PRINTF(7, 8);

/** Records below @level are dropped. */
KEEL_API void keel_log_set_level(keel_log_level level);
/** The current maximum level. */
KEEL_API keel_log_level keel_log_get_level(void);
/** Selects the output format. Returns -EINVAL for a value out of range. */
KEEL_API int keel_log_set_format(keel_log_format format);
/** The format in force (never AUTO: AUTO is resolved when set). */
KEEL_API keel_log_format keel_log_get_format(void);
/** "error", "warning", "notice", "info", "debug"; NULL when out of range. */
KEEL_API const char *keel_log_level_to_string(keel_log_level level);
/** The level named @s, or -EINVAL. */
KEEL_API int keel_log_level_from_string(const char *s);
/** "auto", "text", "json", "journal"; NULL when out of range. */
KEEL_API const char *keel_log_format_to_string(keel_log_format format);
/** The format named @s, or _KEEL_LOG_FORMAT_INVALID. */
KEEL_API keel_log_format keel_log_format_from_string(const char *s);

#define keel_log(level, ...)               keel_log_full((level), 0, NULL, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define keel_log_errno(level, error, ...)  keel_log_full((level), (error), NULL, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define keel_log_error(...)                keel_log(KEEL_LOG_ERROR, __VA_ARGS__)
#define keel_log_warning(...)              keel_log(KEEL_LOG_WARNING, __VA_ARGS__)
#define keel_log_notice(...)               keel_log(KEEL_LOG_NOTICE, __VA_ARGS__)
#define keel_log_info(...)                 keel_log(KEEL_LOG_INFO, __VA_ARGS__)
#define keel_log_debug(...)                keel_log(KEEL_LOG_DEBUG, __VA_ARGS__)
#define keel_log_error_errno(error, ...)   keel_log_errno(KEEL_LOG_ERROR, (error), __VA_ARGS__)
#define keel_log_warning_errno(error, ...) keel_log_errno(KEEL_LOG_WARNING, (error), __VA_ARGS__)
#define keel_log_debug_errno(error, ...)   keel_log_errno(KEEL_LOG_DEBUG, (error), __VA_ARGS__)
/** Per-service logging: the record carries service=@svc. */
#define keel_log_service(svc, level, ...) keel_log_full((level), 0, (svc), __FILE__, __LINE__, __func__, __VA_ARGS__)
#define keel_log_service_errno(svc, level, error, ...)                                                                             \
    keel_log_full((level), (error), (svc), __FILE__, __LINE__, __func__, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
