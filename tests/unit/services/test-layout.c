/* SPDX-License-Identifier: MIT */
/* core/state-dir.c: which layout a state directory is in, and its writer's lock. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <criterion/criterion.h>

#include <keel/util.h>

#include "helpers.h"
#include "layout.h"

TestSuite(layout, .timeout = 30);

/* A directory of its own for each test. */
static char *fresh_dir(void)
{
    char *dir = NULL;
    cr_assert_geq(asprintf(&dir, "%s/state-XXXXXX", test_tmpdir()), 0);
    cr_assert_not_null(mkdtemp(dir));
    return dir;
}

static void put(const char *dir, const char *name, const void *data, size_t size)
{
    _cleanup_free_ char *p = NULL;
    cr_assert_geq(asprintf(&p, "%s/%s", dir, name), 0);
    _cleanup_close_ int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, data, size), (ssize_t) size);
}

static int layout_of(const char *dir)
{
    char error[256] = "";
    int layout = -1;
    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int r = layout_read(dfd, error, sizeof error, &layout);
    return r < 0 ? r : layout;
}

Test(layout, a_record_is_read_and_a_blank_one_is_none)
{
    _cleanup_free_ char *dir = fresh_dir();
    cr_assert_eq(layout_of(dir), 0, "no record");
    put(dir, KEEL_LAYOUT_FILE, "2\n", 2);
    cr_assert_eq(layout_of(dir), 2);
    put(dir, KEEL_LAYOUT_FILE, "1\n", 2);
    cr_assert_eq(layout_of(dir), 1);
    put(dir, KEEL_LAYOUT_FILE, "", 0);
    cr_assert_eq(layout_of(dir), 0, "empty: cut short by a crash");
    put(dir, KEEL_LAYOUT_FILE, "\0\0", 2);
    cr_assert_eq(layout_of(dir), 0, "NULs a file system left");
    put(dir, KEEL_LAYOUT_FILE, "7\n", 2);
    cr_assert_eq(layout_of(dir), -EPROTO);
}

Test(layout, a_record_that_cannot_be_read_keeps_its_errno)
{
    _cleanup_free_ char *dir = fresh_dir(), *layout = NULL;
    cr_assert_geq(asprintf(&layout, "%s/%s", dir, KEEL_LAYOUT_FILE), 0);
    cr_assert_eq(mkdir(layout, 0700), 0);
    cr_assert_eq(layout_of(dir), -EISDIR);
}

Test(layout, layout_1_is_refused_and_nothing_is_written)
{
    static const char *const marks[] = { "private.pem", "sports_reader.cert.pem" };
    for (size_t i = 0; i < ELEMENTSOF(marks); i++) {
        _cleanup_free_ char *dir = fresh_dir();
        char error[512] = "";
        put(dir, marks[i], "x", 1);
        cr_assert_eq(layout_check(dir, error, sizeof error), -EMEDIUMTYPE, "%s", marks[i]);
        cr_assert(strstr(error, "run `keel migrate` first"), "%s", error);
        cr_assert(strstr(error, marks[i]), "%s", error);
        cr_assert_eq(layout_of(dir), 0, "no record written");
    }
}

Test(layout, a_directory_with_nothing_of_layout_1_passes_and_is_recorded)
{
    _cleanup_free_ char *dir = fresh_dir(), *missing = NULL;
    char error[512] = "";
    put(dir, "key.pem", "x", 1);
    cr_assert_eq(layout_check(dir, error, sizeof error), 0, "passes, nothing recorded");
    cr_assert_eq(layout_of(dir), 0, "the check only reads");
    cr_assert_eq(layout_record(dir), 0);
    cr_assert_eq(layout_of(dir), KEEL_LAYOUT_CURRENT);
    cr_assert_eq(layout_check(dir, error, sizeof error), 1, "recorded");
    cr_assert_geq(asprintf(&missing, "%s/none", dir), 0);
    cr_assert_eq(layout_check(missing, error, sizeof error), 0, "nothing there to lose");
}
