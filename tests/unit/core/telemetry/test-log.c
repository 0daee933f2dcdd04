/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "log-internal.h"

static int fd = -1;

static void setup(void)
{
    fd = memfd_create("log", MFD_CLOEXEC);
    keel__log_set_fd(fd);
    keel_log_set_level(KEEL_LOG_INFO);
    keel_log_set_format(KEEL_LOG_FORMAT_TEXT);
    keel__log_context_set(NULL, NULL, NULL);
}

static void teardown(void)
{
    keel__log_set_fd(-1);
    close(fd);
}

TestSuite(log, .init = setup, .fini = teardown, .timeout = 10);

static const char *logged(void)
{
    static char buf[1 << 14];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    return buf;
}

Test(log, records_below_the_level_are_dropped)
{
    keel_log_set_level(KEEL_LOG_WARNING);
    keel_log_info("quiet");
    keel_log_warning("loud");
    cr_assert_null(strstr(logged(), "quiet"));
    cr_assert(strstr(logged(), "WARN  loud\n"), "%s", logged());
    cr_assert_eq(keel_log_get_level(), KEEL_LOG_WARNING);
}

Test(log, text_records_carry_the_machine_context_and_the_service)
{
    keel__log_context_set("start", "during", "token.start");
    keel_log_service("token", KEEL_LOG_INFO, "Starting token provider server[%s]", "127.0.0.1:8880");
    cr_assert(strstr(logged(), "INFO  Starting token provider server[127.0.0.1:8880]  [start.during token.start service=token]\n"),
              "%s", logged());
}

Test(log, a_thread_outside_any_event_shows_only_its_service)
{
    keel__log_context_set(NULL, NULL, NULL);
    keel_log_service("token", KEEL_LOG_INFO, "Refreshed %d tokens", 3);
    cr_assert(strstr(logged(), "INFO  Refreshed 3 tokens  [service=token]\n"), "%s", logged());
}

Test(log, errno_formats_with_percent_m_and_comes_back_negative)
{
    cr_assert_eq(keel_log_error_errno(ENOENT, "Failed to open '%s': %m", "x"), -ENOENT);
    cr_assert_eq(keel_log_error_errno(-EPERM, "again: %m"), -EPERM);
    cr_assert_eq(keel_log_debug_errno(EIO, "dropped: %m"), -EIO); /* below the level, still returns */
    cr_assert_eq(keel_log_info("no error"), 0);
    cr_assert(strstr(logged(), "Failed to open 'x': No such file or directory"), "%s", logged());
    cr_assert(strstr(logged(), "again: Operation not permitted"), "%s", logged());
}

Test(log, json_records_are_one_escaped_object_per_line)
{
    keel_log_set_format(KEEL_LOG_FORMAT_JSON);
    keel__log_context_set("stop", "before", "shutdown.delay");
    keel_log_errno(KEEL_LOG_WARNING, EAGAIN, "quote \" and backslash \\ and\nnewline");
    const char *s = logged();
    cr_assert_eq(s[0], '{');
    cr_assert(strstr(s, "\"level\":\"warning\""), "%s", s);
    cr_assert(strstr(s, "\"message\":\"quote \\\" and backslash \\\\ and\\nnewline\""), "%s", s);
    cr_assert(strstr(s, "\"event\":\"stop\",\"phase\":\"before\",\"observer\":\"shutdown.delay\""), "%s", s);
    cr_assert(strstr(s, "\"errno\":11}\n"), "%s", s);
    cr_assert_eq(strchr(s, '\n'), s + strlen(s) - 1, "one line: %s", s);
}

Test(log, auto_picks_the_journal_only_when_journal_stream_is_stderr)
{
    struct stat st;
    char value[64];
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    cr_assert_eq(fstat(STDERR_FILENO, &st), 0);

    snprintf(value, sizeof value, "%llu:%llu", (unsigned long long) st.st_dev, (unsigned long long) st.st_ino);
    setenv("JOURNAL_STREAM", value, 1);
    cr_assert_eq(keel_log_set_format(KEEL_LOG_FORMAT_AUTO), 0);
    cr_assert_eq(keel_log_get_format(), KEEL_LOG_FORMAT_JOURNAL);

    snprintf(value, sizeof value, "%llu:%llu", (unsigned long long) st.st_dev, (unsigned long long) st.st_ino + 1);
    setenv("JOURNAL_STREAM", value, 1);
    cr_assert_eq(keel_log_set_format(KEEL_LOG_FORMAT_AUTO), 0);
    cr_assert_eq(keel_log_get_format(), KEEL_LOG_FORMAT_TEXT);

    unsetenv("JOURNAL_STREAM");
    cr_assert_eq(keel_log_set_format(KEEL_LOG_FORMAT_AUTO), 0);
    cr_assert_eq(keel_log_get_format(), KEEL_LOG_FORMAT_TEXT);
    dup2(saved, STDERR_FILENO);
    close(saved);
}

Test(log, names)
{
    cr_assert_eq(keel_log_level_from_string("debug"), KEEL_LOG_DEBUG);
    cr_assert_eq(keel_log_level_from_string("warn"), KEEL_LOG_WARNING);
    cr_assert_eq(keel_log_level_from_string("loud"), -EINVAL);
    cr_assert_eq(keel_log_level_from_string(NULL), -EINVAL);
    cr_assert_str_eq(keel_log_level_to_string(KEEL_LOG_NOTICE), "notice");
    cr_assert_null(keel_log_level_to_string(9));
    cr_assert_eq(keel_log_format_from_string("journal"), KEEL_LOG_FORMAT_JOURNAL);
    cr_assert_eq(keel_log_format_from_string("xml"), _KEEL_LOG_FORMAT_INVALID);
    cr_assert_str_eq(keel_log_format_to_string(KEEL_LOG_FORMAT_JSON), "json");
    cr_assert_eq(keel_log_set_format(_KEEL_LOG_FORMAT_MAX), -EINVAL);
}
