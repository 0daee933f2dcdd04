/* SPDX-License-Identifier: MIT */
/*
 * Why the machine stops: the cause a first keel_app_cancel() sets (later ones are logged and
 * ignored), the exit status it maps to, and the message of the observer failing now.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keel/config.h>

#include "app-internal.h"
#include "log-internal.h"
#include "machine-internal.h"
#include "macro-internal.h"

static const char *const keel_cause_table[_KEEL_CAUSE_MAX] = {
    [KEEL_CAUSE_NONE] = "none",
    [KEEL_CAUSE_SIGNAL] = "signal",
    [KEEL_CAUSE_COMMAND_DONE] = "command done",
    [KEEL_CAUSE_COMMAND_FAILED] = "command failed",
    [KEEL_CAUSE_START_FAILED] = "start failed",
    [KEEL_CAUSE_INIT_FAILED] = "init failed",
    [KEEL_CAUSE_CONFIG_INVALID] = "bad configuration",
    [KEEL_CAUSE_USAGE] = "bad usage",
};

static const int cause_exit_status[_KEEL_CAUSE_MAX] = {
    [KEEL_CAUSE_NONE] = KEEL_EXIT_OK,
    [KEEL_CAUSE_SIGNAL] = KEEL_EXIT_OK,
    [KEEL_CAUSE_COMMAND_DONE] = KEEL_EXIT_OK,
    [KEEL_CAUSE_COMMAND_FAILED] = KEEL_EXIT_FAILURE,
    [KEEL_CAUSE_START_FAILED] = KEEL_EXIT_FAILURE,
    [KEEL_CAUSE_INIT_FAILED] = KEEL_EXIT_FAILURE,
    [KEEL_CAUSE_CONFIG_INVALID] = KEEL_EXIT_CONFIG,
    [KEEL_CAUSE_USAGE] = KEEL_EXIT_USAGE,
};

DEFINE_STRING_TABLE_LOOKUP_TO_STRING(keel_cause, keel_cause, )

int keel_cause_exit_status(keel_cause c)
{
    return c >= 0 && c < _KEEL_CAUSE_MAX ? cause_exit_status[c] : -EINVAL;
}

/* A failure that begins with a configuration key ("certificate.dns_names: '~' is not a DNS
 * name", "shutdown.delay (40s) must be shorter than ...") is prefixed with where that key's value
 * came from, as the loader's own errors are (keel(1): a bad configuration names file, line and
 * column, or the variable or --set): with six layers, the key alone does not say which to mend. */
static char *with_origin(const keel_app *app, char *msg)
{
    char key[128];
    size_t n = msg ? strspn(msg, "abcdefghijklmnopqrstuvwxyz0123456789_.") : 0;
    if (n == 0 || n >= sizeof key || !strchr(":[ ", msg[n]))
        return msg;
    memcpy(key, msg, n);
    key[n] = '\0';
    const char *origin = keel_app_config_origin(app, key);
    char *with = NULL;
    if (!origin || streq(origin, "default") || asprintf(&with, "%s: %s", origin, msg) < 0)
        return msg;
    free(msg);
    return with;
}

int keel_app_fail(keel_app *app, int error, const char *fmt, ...)
{
    int r = error == 0 ? -EIO : -abs(error);
    if (!app || !fmt)
        return r;

    va_list ap;
    char *msg = NULL;
    int saved = errno;
    errno = -r; /* for %m */
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    errno = saved;
    keel_machine *m = keel__app_machine(app);
    free(m->fail_message);
    m->fail_message = with_origin(app, msg);
    return r;
}

/* @error (an errno, or 0) goes with the cause to the journal's ERRNO= of the stopping and exit
 * records, so a failure that names an errno carries it to its last line. */
static int cancel_v(keel_app *app, keel_cause cause, int error, bool logged, const char *fmt, va_list ap)
{
    keel_assert_return(app, -EINVAL);
    keel_assert_return(cause > KEEL_CAUSE_NONE && cause < _KEEL_CAUSE_MAX, -EINVAL);

    keel_machine *m = keel__app_machine(app);
    char *msg = NULL;
    if (fmt && vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    if (m->cause != KEEL_CAUSE_NONE) {
        keel_log_info("Already shutting down (%s), ignoring: %s", keel__app_cause_text(app),
                      msg && !logged ? msg : keel_cause_table[cause]);
        free(msg);
        return 0;
    }
    m->cause = cause;
    m->cause_message = msg;
    m->cause_logged = logged;
    m->cause_error = error;
    char field[64];
    (void) snprintf(field, sizeof field, "KEEL_CAUSE=%s", keel_cause_table[cause]);
    const char *const fields[] = { field, NULL };
    keel__log_struct(KEEL_LOG_INFO, error, KEEL_MESSAGE_STOPPING, fields, __FILE__, __LINE__, __func__,
                     "Initiating shutdown, cause: %s", keel__app_cause_text(app));
    return 1;
}

const char *keel__app_cause_text(const keel_app *app)
{
    const keel_machine *m = keel__app_machine_const(app);
    keel_cause c = m->cause;
    if (c <= KEEL_CAUSE_NONE || c >= _KEEL_CAUSE_MAX)
        return NULL;
    return m->cause_message && !m->cause_logged ? m->cause_message : keel_cause_table[c];
}

/* Through cancel_v()'s va_list, which takes its message from the format. */
static int cancel_logged(keel_app *app, keel_cause cause, int error, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = cancel_v(app, cause, error, true, fmt, ap);
    va_end(ap);
    return r;
}

int keel__app_cancel_failed(keel_app *app, keel_cause cause, int error, const char *message)
{
    return cancel_logged(app, cause, error, "%s: %s", keel_cause_to_string(cause), message ? message : "error");
}

int keel_app_cancel(keel_app *app, keel_cause cause, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = cancel_v(app, cause, 0, false, fmt, ap);
    va_end(ap);
    return r;
}

int keel__app_cancel_errno(keel_app *app, keel_cause cause, int error, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = cancel_v(app, cause, error, false, fmt, ap);
    va_end(ap);
    return r;
}

keel_cause keel_app_cause(const keel_app *app)
{
    return app ? keel__app_machine_const(app)->cause : KEEL_CAUSE_NONE;
}

bool keel_app_cancelled(const keel_app *app)
{
    return keel_app_cause(app) != KEEL_CAUSE_NONE;
}
