/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <keel/fileio.h>
#include <keel/util.h>

#include "layout.h"

#define ROLE_SUFFIX ".cert.pem"

bool layout_is_role_cert(const char *name)
{
    size_t n = strlen(name), s = strlen(ROLE_SUFFIX);
    return n > s && streq(name + n - s, ROLE_SUFFIX) && strchr(name, '_');
}

/* Empty, or the NULs some file systems leave after a crash: layout_record() does not sync. */
static bool blank(const char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (buf[i] != 0 && buf[i] != '\n' && buf[i] != ' ')
            return false;
    return true;
}

int layout_read(int dfd, char *error, size_t size, int *ret_layout)
{
    char buf[16] = "";
    _cleanup_close_ int fd = openat(dfd, KEEL_LAYOUT_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? (*ret_layout = 0, 0) : -errno;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n < 0)
        return -errno;
    if (blank(buf, (size_t) n))
        return *ret_layout = 0, 0;
    int v = 0;
    if (sscanf(buf, "%d", &v) != 1 || v < 1 || v > KEEL_LAYOUT_CURRENT) {
        buf[strcspn(buf, "\n")] = 0;
        (void) snprintf(error, size, "%s says layout '%s', which this version does not know (it knows 1 to %d)", KEEL_LAYOUT_FILE,
                        buf, KEEL_LAYOUT_CURRENT);
        return -EPROTO;
    }
    *ret_layout = v;
    return 0;
}

/* Not synced: a record lost or left empty by a crash reads as none, and the next start records it
 * again, as the directory then holds nothing of layout 1. That saves a first start two fsyncs. */
int layout_record(const char *dir)
{
    char path[PATH_MAX], layout[8];
    int n = snprintf(layout, sizeof layout, "%d\n", KEEL_LAYOUT_CURRENT);
    if ((size_t) snprintf(path, sizeof path, "%s/%s", dir, KEEL_LAYOUT_FILE) >= sizeof path)
        return -ENAMETOOLONG;
    return keel_file_write_replace(path, layout, (size_t) n, 0644);
}

/* Names in @ret (which holds @size bytes) the first entry of @dfd that only layout 1 has: the
 * seed's key, its ca.pem link, or a role certificate outside roles/. Returns 1 when found, 0 when
 * not, or a negative errno when the directory cannot be read to the end (which must not pass for
 * "nothing of layout 1"). */
static int layout1_mark(int dfd, char *ret, size_t size)
{
    struct stat st;
    if (fstatat(dfd, "private.pem", &st, AT_SYMLINK_NOFOLLOW) == 0)
        return snprintf(ret, size, "private.pem"), 1;
    if (fstatat(dfd, "ca.pem", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
        return snprintf(ret, size, "ca.pem, a symbolic link"), 1;
    int fd = dup(dfd);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d)
        return safe_close(fd), -errno;
    int r = 0;
    struct dirent *de;
    while (r == 0 && (errno = 0, de = readdir(d)))
        if (layout_is_role_cert(de->d_name))
            r = (snprintf(ret, size, "%s", de->d_name), 1);
    if (r == 0 && errno != 0)
        r = -errno;
    (void) closedir(d);
    return r;
}

int layout_check(const char *dir, char *error, size_t size)
{
    char mark[256];
    int layout = 0;
    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        int e = errno;
        (void) snprintf(error, size, "Cannot open the state directory '%s': %s", dir, strerror(e));
        return e == ENOENT ? 0 : -e;
    }
    int r = layout_read(dfd, mark, sizeof mark, &layout);
    if (r < 0) {
        (void) snprintf(error, size, "State directory '%s': %s", dir, r == -EPROTO ? mark : strerror(-r));
        return r;
    }
    if (layout == KEEL_LAYOUT_CURRENT)
        return 1;
    r = layout == 1 ? (snprintf(mark, sizeof mark, "a layout file saying 1"), 1) : layout1_mark(dfd, mark, sizeof mark);
    if (r < 0) {
        (void) snprintf(error, size, "Cannot read the state directory '%s': %s", dir, strerror(-r));
        return r;
    }
    if (r > 0) {
        (void) snprintf(error, size,
                        "State directory '%s' is in the seed agent's layout 1 (it holds %s): run `keel migrate` first; "
                        "nothing was changed",
                        dir, mark);
        return -EMEDIUMTYPE;
    }
    return 0;
}
