/* SPDX-License-Identifier: MIT */
/* core/fileio.c: reading whole files, whose buffer grows by doubling from 4 KiB (through a copy,
 * so the bytes it held are wiped rather than left behind by realloc()). */
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <keel/fileio.h>

#include "macro-internal.h"

TestSuite(fileio, .timeout = 30);

/* A memfd holding @size bytes of a pattern that differs at every offset of a 251-byte cycle. */
static int pattern_fd(size_t size, char **ret)
{
    char *want = malloc(size + 1);
    cr_assert_not_null(want);
    for (size_t i = 0; i < size; i++)
        want[i] = (char) (i % 251);
    int fd = memfd_create("fileio", MFD_CLOEXEC);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, want, size), (ssize_t) size);
    cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
    *ret = want;
    return fd;
}

Test(fileio, reads_every_size_around_the_growth_boundaries)
{
    /* The buffer keeps a byte for the NUL: it grows when 4095, 8191, 16383… bytes are in. */
    static const size_t sizes[] = {
        0, 1, 4094, 4095, 4096, 4097, 8190, 8191, 8192, 8193, 16383, 16384, 16385, 65535, 65536, 65537
    };
    for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
        size_t n = sizes[i], size = 0;
        _cleanup_free_ char *want = NULL, *data = NULL;
        _cleanup_close_ int fd = pattern_fd(n, &want);
        cr_assert_eq(keel_fd_read_all(fd, n, &data, &size), 0, "%zu bytes", n);
        cr_assert_eq(size, n);
        cr_assert_eq(memcmp(data, want, n), 0, "%zu bytes", n);
        cr_assert_eq(data[n], '\0', "%zu bytes", n);
    }
}

Test(fileio, one_byte_past_the_limit_is_too_big)
{
    static const size_t sizes[] = { 1, 4095, 4096, 4097, 8192, 8193, 65537 };
    for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
        size_t n = sizes[i], size = 99;
        _cleanup_free_ char *want = NULL;
        char *data = NULL;
        _cleanup_close_ int fd = pattern_fd(n, &want);
        cr_assert_eq(keel_fd_read_all(fd, n - 1, &data, &size), -EFBIG, "%zu bytes", n);
        cr_assert_null(data, "nothing returned on failure");
        cr_assert_eq(size, (size_t) 99);
    }
}

Test(fileio, a_read_error_is_returned_and_nothing_else)
{
    _cleanup_free_ char *want = NULL;
    char *data = NULL;
    size_t size = 99;
    _cleanup_close_ int fd = pattern_fd(10, &want);
    (void) fd; /* held open for the test's length; clang sees no read */
    _cleanup_close_ int wronly = open("/dev/null", O_WRONLY | O_CLOEXEC);
    cr_assert_geq(wronly, 0);
    cr_assert_eq(keel_fd_read_all(wronly, 100, &data, &size), -EBADF);
    cr_assert_null(data);
    cr_assert_eq(size, (size_t) 99);
}

/* /dev/null is the "no file" of a command line (keel -c /dev/null); other devices have no end. */
Test(fileio, dev_null_reads_empty_and_other_devices_are_refused)
{
    _cleanup_free_ char *data = NULL;
    char *none = NULL;
    size_t size = 99;
    cr_assert_eq(keel_file_read("/dev/null", 16, &data, &size, NULL), 0);
    cr_assert_eq(size, 0);
    cr_assert_str_eq(data, "");
    cr_assert_eq(keel_file_read("/dev/zero", 16, &none, &size, NULL), -EINVAL);
    cr_assert_null(none);
}

Test(fileio, a_replace_without_sync_leaves_the_new_content_the_mode_and_no_temporary)
{
    char dir[] = "/tmp/keel-fileio-XXXXXX", path[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/layout", dir);
    cr_assert_eq(keel_file_write_replace(path, "1\n", 2, 0600), 0);
    cr_assert_eq(keel_file_write_replace(path, "2\n", 2, 0644), 0);
    _cleanup_free_ char *data = NULL;
    size_t size = 0;
    mode_t mode = 0;
    cr_assert_eq(keel_file_read(path, 16, &data, &size, &mode), 0);
    cr_assert_str_eq(data, "2\n");
    cr_assert_eq(mode, 0644);
    cr_assert_eq(keel_dir_remove_temporaries(dir), 0, "no temporary left behind");
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(rmdir(dir), 0);
}

/* keel_secret_check() of a regular file of @mode owned by @uid:@gid. */
static int check(mode_t mode, uid_t uid, gid_t gid)
{
    struct stat st = { .st_mode = S_IFREG | mode, .st_uid = uid, .st_gid = gid };
    return keel_secret_check(&st);
}

/* Whatever the process: others never, the group never more than read, the owner anything. */
Test(fileio, a_secret_others_may_touch_is_refused)
{
    uid_t me = geteuid();
    cr_assert_eq(check(0600, me, getegid()), 0);
    cr_assert_eq(check(0400, me, getegid()), 0);
    for (mode_t m = 01; m <= 04; m <<= 1)
        cr_assert_eq(check(0600 | m, me, getegid()), -EACCES, "%o", 0600 | m);
    cr_assert_eq(check(0620, 0, getegid()), -EACCES, "group write");
    cr_assert_eq(check(0610, 0, getegid()), -EACCES, "group execute");
}

/* The checks of group read, from a process that is not root: the child of a root test drops to an
 * unprivileged user first. Returns what failed, or NULL. */
static const char *group_read_checks(void)
{
    gid_t mine = getegid();
    if (check(0440, 0, mine) != 0)
        return "root:mine 0440 refused";
    if (check(0640, 0, mine) != 0)
        return "root:mine 0640 refused";
    if (check(0440, 0, mine + 1) != -EACCES)
        return "root:another group 0440 accepted";
    if (check(0440, geteuid(), mine) != -EACCES)
        return "my own file readable by my group accepted";
    return NULL;
}

Test(fileio, a_secret_readable_by_its_group_only_when_root_gave_it_to_that_group)
{
    if (geteuid() != 0) {
        const char *failed = group_read_checks();
        cr_assert_null(failed, "%s", failed);
        return;
    }
    /* Root reads anything: a group bit is never how root reads it. */
    cr_assert_eq(check(0440, 0, getegid()), -EACCES);
    int pipefd[2];
    cr_assert_eq(pipe(pipefd), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        const char *failed =
            setgroups(0, NULL) < 0 || setgid(65532) < 0 || setuid(65532) < 0 ? "dropping root failed" : group_read_checks();
        size_t n = failed ? strlen(failed) : 0;
        _exit(write(pipefd[1], failed ? failed : "", n) == (ssize_t) n ? 0 : 1);
    }
    (void) close(pipefd[1]);
    char buf[128] = "";
    ssize_t n = read(pipefd[0], buf, sizeof buf - 1);
    (void) close(pipefd[0]);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cr_assert_eq(n, 0, "%s", buf);
}
