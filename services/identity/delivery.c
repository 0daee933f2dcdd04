/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <unistd.h>

#include <keel/fileio.h>
#include <keel/util.h>

#include "delivery.h"

int delivery_parse_mode(const char *text, mode_t *ret)
{
    char *end;
    errno = 0;
    unsigned long m = strtoul(text, &end, 8);
    if (errno || end == text || *end || m > 0777)
        return -EINVAL;
    *ret = (mode_t) m;
    return 0;
}

int delivery_parse_group(const char *text, gid_t *ret)
{
    if (!*text)
        return *ret = (gid_t) -1, 0;
    char *end, buf[4096];
    unsigned long id = strtoul(text, &end, 10);
    if (*end == '\0' && end != text)
        return *ret = (gid_t) id, 0;
    struct group g, *found = NULL;
    if (getgrnam_r(text, &g, buf, sizeof buf, &found) != 0 || !found)
        return -ENOENT;
    *ret = found->gr_gid;
    return 0;
}

int delivery_write(const char *path, const void *data, size_t size, mode_t mode, gid_t gid)
{
    _cleanup_free_ char *tmp = NULL;
    int r = keel_file_stage(path, data, size, mode, &tmp);
    if (r < 0)
        return r;
    if (gid != (gid_t) -1 && chown(tmp, (uid_t) -1, gid) < 0)
        r = -errno;
    if (r >= 0)
        r = keel_file_rename_durable(tmp, path);
    if (r < 0)
        (void) unlink(tmp);
    return r;
}
