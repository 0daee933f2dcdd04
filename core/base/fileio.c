/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <keel/fileio.h>

#include "macro-internal.h"

#define TEMP_MARK ".tmp-"

/* The directory part of @path ("." for a bare name), into @buf. */
static int dir_of(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');
    int n = !slash          ? snprintf(buf, size, ".")
            : slash == path ? snprintf(buf, size, "/")
                            : snprintf(buf, size, "%.*s", (int) (slash - path), path);
    return n < 0 || (size_t) n >= size ? -ENAMETOOLONG : 0;
}

int keel_dir_fsync(const char *dir)
{
    _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    return fsync(fd) < 0 ? -errno : 0;
}

int keel_fd_write_all(int fd, const void *data, size_t size)
{
    const char *p = data;
    while (size > 0) {
        ssize_t n = write(fd, p, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        size -= (size_t) n;
    }
    return 0;
}

/* Writes (and, when @durable, syncs) the temporary file; the caller renames or removes it. */
static int write_temporary(int fd, const void *data, size_t size, mode_t mode, bool durable)
{
    int r = keel_fd_write_all(fd, data, size);
    if (r < 0)
        return r;
    if (fchmod(fd, mode) < 0 || (durable && fsync(fd) < 0))
        return -errno;
    return 0;
}

/* A new temporary file for @path, named by the convention, in @ret_tmp; its directory in @ret_dir. */
static int temporary_for(const char *path, char ret_dir[static PATH_MAX], char ret_tmp[static PATH_MAX])
{
    const char *slash = path ? strrchr(path, '/') : NULL, *base = slash ? slash + 1 : path;
    if (!path || !*base)
        return -EINVAL;
    int r = dir_of(path, ret_dir, PATH_MAX);
    if (r < 0)
        return r;
    int n = snprintf(ret_tmp, PATH_MAX, "%s/.%s" TEMP_MARK "XXXXXX", ret_dir, base);
    if (n < 0 || n >= PATH_MAX)
        return -ENAMETOOLONG;
    /* mkostemp() creates the file 0600: a key is never readable by others, not even briefly. */
    int fd = mkostemp(ret_tmp, O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

static int write_file(const char *path, const void *data, size_t size, mode_t mode, bool durable)
{
    char dir[PATH_MAX], tmp[PATH_MAX];
    if (!data && size > 0)
        return -EINVAL;
    _cleanup_close_ int fd = temporary_for(path, dir, tmp);
    if (fd < 0)
        return fd;
    int r = write_temporary(fd, data, size, mode, durable);
    if (r >= 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0) {
        (void) unlink(tmp);
        return r;
    }
    return durable ? keel_dir_fsync(dir) : 0;
}

int keel_file_stage(const char *path, const void *data, size_t size, mode_t mode, char **ret_tmp)
{
    char dir[PATH_MAX], tmp[PATH_MAX];
    if ((!data && size > 0) || !ret_tmp)
        return -EINVAL;
    _cleanup_close_ int fd = temporary_for(path, dir, tmp);
    if (fd < 0)
        return fd;
    int r = write_temporary(fd, data, size, mode, true);
    char *copy = r >= 0 ? strdup(tmp) : NULL;
    if (r >= 0 && !copy)
        r = -ENOMEM;
    if (r < 0) {
        (void) unlink(tmp);
        return r;
    }
    *ret_tmp = copy;
    return 0;
}

int keel_file_write_atomic(const char *path, const void *data, size_t size, mode_t mode)
{
    return write_file(path, data, size, mode, true);
}

int keel_file_write_replace(const char *path, const void *data, size_t size, mode_t mode)
{
    return write_file(path, data, size, mode, false);
}

int keel_file_rename_durable(const char *from, const char *to)
{
    char dir[PATH_MAX];
    int r = dir_of(to, dir, sizeof dir);
    if (r < 0)
        return r;
    if (rename(from, to) < 0)
        return -errno;
    return keel_dir_fsync(dir);
}

int keel_dir_make(const char *dir, mode_t mode)
{
    struct stat st;
    char parent[PATH_MAX];
    /* Its entry synced: a key written in it next must not vanish with it at a crash. */
    if (mkdir(dir, mode) == 0)
        return dir_of(dir, parent, sizeof parent) < 0 ? -ENAMETOOLONG : keel_dir_fsync(parent);
    if (errno != EEXIST)
        return -errno;
    if (stat(dir, &st) < 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int keel_dir_remove_temporaries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int n = 0;
    for (struct dirent *de; (de = readdir(d));)
        if (de->d_name[0] == '.' && strstr(de->d_name, TEMP_MARK) && unlinkat(dirfd(d), de->d_name, 0) == 0)
            n++;
    (void) closedir(d);
    return n;
}

/* A buffer for what a file holds, which may be a private key: every block it lets go of is wiped
 * first, when it grows as on errors. */
typedef struct growbuf {
    char *data;
    size_t size, allocated;
} growbuf;

static void growbuf_erase(growbuf *b)
{
    if (b->data)
        explicit_bzero(b->data, b->allocated);
    free(b->data);
    *b = (growbuf){ 0 };
}

/* Doubles @b (4 KiB to begin with) through a copy: realloc() would free the old block unwiped. */
static int growbuf_grow(growbuf *b)
{
    size_t n = b->allocated ? b->allocated * 2 : 4096;
    growbuf g = { .data = malloc(n), .size = b->size, .allocated = n };
    if (!g.data)
        return -ENOMEM;
    if (b->size > 0)
        memcpy(g.data, b->data, b->size);
    growbuf_erase(b);
    *b = g;
    return 0;
}

int keel_fd_read_all(int fd, size_t max, char **ret_data, size_t *ret_size)
{
    _cleanup_(growbuf_erase) growbuf b = { 0 };
    for (;;) {
        if (b.size + 1 >= b.allocated) {
            if (b.allocated > max + 1)
                return -EFBIG;
            int r = growbuf_grow(&b);
            if (r < 0)
                return r;
        }
        ssize_t n = read(fd, b.data + b.size, b.allocated - b.size - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        b.size += (size_t) n;
    }
    if (b.size > max)
        return -EFBIG;
    b.data[b.size] = '\0';
    *ret_size = b.size;
    *ret_data = TAKE_PTR(b.data);
    return 0;
}

/* The process's own groups include @gid. */
static bool in_my_groups(gid_t gid)
{
    gid_t groups[NGROUPS_MAX];
    if (gid == getegid())
        return true;
    int n = getgroups(NGROUPS_MAX, groups);
    for (int i = 0; i < n; i++)
        if (groups[i] == gid)
            return true;
    return false;
}

int keel_secret_check(const struct stat *st)
{
    if (!st || (st->st_mode & 0037))
        return -EACCES;
    if (!(st->st_mode & 0040))
        return 0;
    return st->st_uid == 0 && geteuid() != 0 && in_my_groups(st->st_gid) ? 0 : -EACCES;
}

/* /dev/null (its device number, whatever names it) reads as an empty file: "no file here", as
 * `ssh -F /dev/null` says it. */
static bool is_dev_null(const struct stat *st)
{
    return S_ISCHR(st->st_mode) && st->st_rdev == makedev(1, 3);
}

static int file_read(const char *path, size_t max, char **ret_data, size_t *ret_size, mode_t *ret_mode, bool secret)
{
    struct stat st;
    if (!path || !ret_data || !ret_size)
        return -EINVAL;
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (S_ISDIR(st.st_mode))
        return -EISDIR;
    if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) && !is_dev_null(&st))
        return -EINVAL; /* a device or socket: no end to read to */
    if (ret_mode)
        *ret_mode = st.st_mode & 07777;
    if (secret && keel_secret_check(&st) < 0)
        return -EACCES;
    char *data = NULL;
    size_t size = 0;
    int r = keel_fd_read_all(fd, max, &data, &size);
    if (r < 0)
        return r;
    *ret_data = data;
    *ret_size = size;
    return 0;
}

int keel_file_read(const char *path, size_t max, char **ret_data, size_t *ret_size, mode_t *ret_mode)
{
    return file_read(path, max, ret_data, ret_size, ret_mode, false);
}

int keel_file_read_secret(const char *path, size_t max, char **ret_data, size_t *ret_size, mode_t *ret_mode)
{
    return file_read(path, max, ret_data, ret_size, ret_mode, true);
}

int keel__fd_count(unsigned *ret)
{
    DIR *d = opendir("/proc/self/fd");
    unsigned n = 0;
    if (!d)
        return -errno;
    for (struct dirent *de; (de = readdir(d));)
        if (de->d_name[0] != '.' && atoi(de->d_name) != dirfd(d))
            n++;
    (void) closedir(d);
    *ret = n;
    return 0;
}
