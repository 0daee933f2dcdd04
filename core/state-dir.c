/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "state-dir.h"
#include "macro.h"

#define ROLE_SUFFIX ".cert.pem"

bool keel__layout_is_role_cert(const char *name)
{
    size_t n = strlen(name), s = strlen(ROLE_SUFFIX);
    return n > s && streq(name + n - s, ROLE_SUFFIX) && strchr(name, '_');
}

int keel__layout_read(int dfd, int *ret, char *error, size_t size)
{
    char buf[16] = "";
    _cleanup_close_ int fd = openat(dfd, KEEL_LAYOUT_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? (*ret = 0, 0) : -errno;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    int v = 0;
    if (n == 0) /* cut short by a crash: keel__layout_record() does not sync */
        return *ret = 0, 0;
    if (n < 0 || sscanf(buf, "%d", &v) != 1 || v < 1 || v > KEEL_LAYOUT_CURRENT) {
        buf[n > 0 ? strcspn(buf, "\n") : 0] = 0;
        (void) snprintf(error, size, "%s says layout '%s', which this version does not know (it knows 1 to %d)",
                        KEEL_LAYOUT_FILE, buf, KEEL_LAYOUT_CURRENT);
        return -EPROTO;
    }
    *ret = v;
    return 0;
}

/* Not synced: a record lost or left empty by a crash reads as none, and the next start records it
 * again, as the directory then holds nothing of layout 1. That saves a first start two fsyncs. */
int keel__layout_record(const char *dir)
{
    char tmp[PATH_MAX], path[PATH_MAX], layout[8];
    int n = snprintf(layout, sizeof layout, "%d\n", KEEL_LAYOUT_CURRENT);
    if ((size_t) snprintf(path, sizeof path, "%s/%s", dir, KEEL_LAYOUT_FILE) >= sizeof path ||
        (size_t) snprintf(tmp, sizeof tmp, "%s/.%s.tmp-XXXXXX", dir, KEEL_LAYOUT_FILE) >= sizeof tmp)
        return -ENAMETOOLONG;
    _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t w = write(fd, layout, (size_t) n);
    int r = w == n ? 0 : w < 0 ? -errno : -EIO;
    if (r >= 0 && (fchmod(fd, 0644) < 0 || rename(tmp, path) < 0))
        r = -errno;
    if (r < 0)
        (void) unlink(tmp);
    return r;
}

/* The first entry of @dfd that only layout 1 has, or NULL: the seed's key, its ca.pem link, or a
 * role certificate outside roles/. @buf holds the name returned. */
static const char *layout1_mark(int dfd, char *buf, size_t size)
{
    struct stat st;
    if (fstatat(dfd, "private.pem", &st, AT_SYMLINK_NOFOLLOW) == 0)
        return "private.pem";
    if (fstatat(dfd, "ca.pem", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
        return "ca.pem, a symbolic link";
    int fd = dup(dfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            (void) close(fd);
        return NULL;
    }
    const char *found = NULL;
    for (struct dirent *de; !found && (de = readdir(d));)
        if (keel__layout_is_role_cert(de->d_name))
            found = (snprintf(buf, size, "%s", de->d_name), buf);
    (void) closedir(d);
    return found;
}

int keel__layout_check(const char *dir, bool record, char *error, size_t size)
{
    char mark[256];
    int layout = 0;
    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        int e = errno;
        (void) snprintf(error, size, "Cannot open the state directory '%s': %s", dir, strerror(e));
        return e == ENOENT ? 0 : -e;
    }
    int r = keel__layout_read(dfd, &layout, mark, sizeof mark);
    if (r < 0) {
        (void) snprintf(error, size, "State directory '%s': %s", dir, r == -EPROTO ? mark : strerror(-r));
        return r;
    }
    if (layout == KEEL_LAYOUT_CURRENT)
        return 0;
    const char *found = layout == 1 ? "a layout file saying 1" : layout1_mark(dfd, mark, sizeof mark);
    if (found) {
        (void) snprintf(error, size,
                        "State directory '%s' is in the seed agent's layout 1 (it holds %s): run `keel migrate` first; "
                        "nothing was changed",
                        dir, found);
        return -EMEDIUMTYPE;
    }
    if (!record)
        return 0;
    r = keel__layout_record(dir);
    if (r < 0)
        (void) snprintf(error, size, "Cannot record layout %d in '%s/%s': %s", KEEL_LAYOUT_CURRENT, dir, KEEL_LAYOUT_FILE,
                        strerror(-r));
    return r;
}

int keel__state_dir_lock(const char *dir, char *error, size_t size)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        (void) snprintf(error, size, "Cannot open the state directory '%s': %s", dir, strerror(e));
        return -e;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
        return fd;
    int e = errno;
    (void) close(fd);
    if (e == EWOULDBLOCK) {
        (void) snprintf(error, size,
                        "State directory '%s' is in use by another `keel serve` or `keel migrate`; "
                        "one process at a time writes it",
                        dir);
        return -EBUSY;
    }
    (void) snprintf(error, size, "Cannot lock the state directory '%s': %s", dir, strerror(e));
    return -e;
}
