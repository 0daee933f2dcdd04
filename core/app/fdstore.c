/* SPDX-License-Identifier: MIT */
/*
 * Blobs kept across a restart in systemd's file descriptor store (include/keel/fdstore.h,
 * decision 20). Saving: a memfd sealed against every change, FDSTORE=1 with its FDNAME, then a
 * barrier, so that the process may exit at once. Loading: the descriptors systemd passes at
 * start ($LISTEN_FDS, after the sockets of socket units, names in $LISTEN_FDNAMES), the blob
 * checked in a read-only mapping and its payload copied out, then the memfd released (release())
 * and the entry forgotten (FDSTOREREMOVE=1). Only memfds are looked at: a socket passed under the
 * same name is core/http/listen.c's, which never takes a memfd for a socket.
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <systemd/sd-daemon.h>

#include "fdstore-internal.h"
#include "macro-internal.h"

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U /* Linux 6.3 */
#endif

/* Nothing may change a blob once sealed: not its size, not its bytes, not its seals. */
#define SEALS_CHANGE    (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
#define BARRIER_TIMEOUT (5 * KEEL_USEC_PER_SEC)

/* Releases the passed descriptor @fd, a blob, without freeing its number: /dev/null takes its
 * place. sd_listen_fds() fails on a closed descriptor in its range (it sets FD_CLOEXEC on each at
 * every call), so a server that looks for its socket later would bind instead; and the number,
 * reused by the next socket opened, could be taken for the socket passed under its name. Without
 * /dev/null the blob stays open: memory held, nothing mistaken. */
static void release(int fd)
{
    _cleanup_close_ int null = open("/dev/null", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (null < 0 || dup3(null, fd, O_CLOEXEC) < 0)
        keel_log_debug_errno(-errno, "Failed to release passed descriptor %d, keeping it open: %m", fd);
}

/* The next descriptor passed under @name from index *@i on that is a memfd (only they take seals:
 * not a socket, not a released blob), or -ENOENT. */
static int next_passed(char **names, int n, const char *name, int *i)
{
    for (; *i < n; (*i)++) {
        int fd = SD_LISTEN_FDS_START + *i;
        if (streq(names[*i], name) && fcntl(fd, F_GET_SEALS) >= 0) {
            (*i)++;
            return fd;
        }
    }
    return -ENOENT;
}

/* The names of the passed descriptors into *@ret (NULL when none); their number. */
static int passed(char ***ret)
{
    int n = sd_listen_fds_with_names(0, ret);
    if (n < 0)
        keel_log_debug_errno(n, "Ignoring $LISTEN_FDS: %m");
    return n > 0 && *ret ? n : 0;
}

static int send_remove(const char *name)
{
    char msg[64 + KEEL_FDSTORE_NAME_MAX];
    (void) snprintf(msg, sizeof msg, "FDSTOREREMOVE=1\nFDNAME=%s", name);
    return sd_notify(0, msg);
}

/* ---- saving --------------------------------------------------------------------------------- */

static int memfd_new(void)
{
    /* MFD_NOEXEC_SEAL spares newer kernels' warning about an executable memfd; older ones refuse it. */
    int fd = memfd_create("keel-fdstore", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
    if (fd < 0 && errno == EINVAL)
        fd = memfd_create("keel-fdstore", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    return fd < 0 ? -errno : fd;
}

/* A sealed memfd holding the blob. */
static int blob_memfd(const char *name, const void *data, size_t size, const void *key, size_t key_size)
{
    keel_build_id build;
    int r = keel__build_id(&build);
    if (r < 0)
        return r;
    size_t total = keel__fdstore_blob_size(&build, name, size);
    _cleanup_close_ int fd = memfd_new();
    if (fd < 0)
        return fd;
    if (ftruncate(fd, (off_t) total) < 0)
        return -errno;
    /* Written through a mapping: the HMAC is computed over the blob in place, with no copy. */
    uint8_t *p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    r = keel__fdstore_pack(&build, name, data, size, key, key_size, p);
    (void) munmap(p, total); /* F_SEAL_WRITE is refused while a writable mapping exists */
    if (r < 0)
        return r;
    if (fcntl(fd, F_ADD_SEALS, SEALS_CHANGE | F_SEAL_SEAL) < 0)
        return -errno;
    return TAKE_FD(fd);
}

int keel_fdstore_save(const char *name, const void *data, size_t size, const void *key, size_t key_size)
{
    keel_assert_return(keel__fdstore_name_valid(name), -EINVAL);
    keel_assert_return(key && key_size >= KEEL_FDSTORE_KEY_MIN, -EINVAL);
    keel_assert_return(data || size == 0, -EINVAL);
    if (size > KEEL_FDSTORE_SIZE_MAX)
        return -EFBIG;
    if (!getenv("NOTIFY_SOCKET")) {
        keel_log_debug("No service manager ($NOTIFY_SOCKET unset): '%s' is not kept across a restart", name);
        return 0;
    }
    _cleanup_close_ int fd = blob_memfd(name, data, size, key, key_size);
    if (fd < 0)
        return fd;
    /* systemd keeps every descriptor stored under a name: one not taken since (a start that did
     * not load it) would stay beside the new one, and be passed at every start after. */
    int r = send_remove(name);
    char msg[64 + KEEL_FDSTORE_NAME_MAX];
    (void) snprintf(msg, sizeof msg, "FDSTORE=1\nFDNAME=%s", name);
    if (r >= 0)
        r = sd_pid_notify_with_fds(0, 0, msg, &fd, 1);
    if (r < 0)
        return r;
    /* The process may exit next. Once the barrier returns, the service manager has read every
     * message before it, while it still knew this process as the unit's main process. */
    r = sd_notify_barrier(0, BARRIER_TIMEOUT);
    if (r < 0)
        keel_log_debug_errno(r, "The service manager did not confirm it read FDSTORE=1 for '%s', ignoring: %m", name);
    keel_log_debug("Kept '%s' (%zu bytes) in the service manager's file descriptor store", name, size);
    return 1;
}

/* ---- loading -------------------------------------------------------------------------------- */

/* The payload of the blob in @fd, checked, into a new buffer. */
static int read_blob(int fd, const char *name, const void *key, size_t key_size, void **ret_data, size_t *ret_size, char *error)
{
    keel_build_id build;
    struct stat st;
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || fstat(fd, &st) < 0)
        return -errno;
    int r = keel__build_id(&build);
    if (r < 0)
        return r;
    if ((seals & SEALS_CHANGE) != SEALS_CHANGE)
        return keel__fdstore_refuse(error, -EBADMSG, "a memfd that is not sealed against changes");
    if ((uint64_t) st.st_size > KEEL_FDSTORE_BLOB_MAX)
        return keel__fdstore_refuse(error, -EFBIG, "%jd bytes, over the %zu a blob may have", (intmax_t) st.st_size,
                                    (size_t) KEEL_FDSTORE_BLOB_MAX);
    size_t size = (size_t) st.st_size;
    const uint8_t *payload = NULL, *blob = size > 0 ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    if (blob == MAP_FAILED)
        return -errno;
    size_t n = 0;
    char *copy = NULL;
    r = keel__fdstore_unpack(&build, name, blob, size, key, key_size, &payload, &n, error);
    if (r >= 0 && (copy = malloc(n + 1))) {
        memcpy(copy, payload, n);
        copy[n] = '\0';
    } else if (r >= 0)
        r = -ENOMEM;
    if (blob)
        (void) munmap((void *) blob, size);
    if (r < 0)
        return r;
    *ret_data = copy;
    *ret_size = n;
    return 0;
}

int keel_fdstore_load(const char *name, const void *key, size_t key_size, void **ret_data, size_t *ret_size, char *error)
{
    keel_assert_return(keel__fdstore_name_valid(name), -EINVAL);
    keel_assert_return(key && key_size >= KEEL_FDSTORE_KEY_MIN, -EINVAL);
    keel_assert_return(ret_data && ret_size, -EINVAL);
    _cleanup_strv_free_ char **names = NULL;
    _cleanup_free_ void *data = NULL;
    size_t size = 0;
    int n = passed(&names), r = -ENOENT;
    bool found = false;
    /* The first blob that passes wins; any other under the name is stale, and released too. */
    for (int i = 0, fd; (fd = next_passed(names, n, name, &i)) >= 0;) {
        if (r < 0)
            r = read_blob(fd, name, key, key_size, &data, &size, error);
        release(fd);
        found = true;
    }
    if (found && send_remove(name) < 0)
        keel_log_debug("Failed to tell the service manager to forget '%s', ignoring", name);
    if (r < 0) {
        keel_log_debug_errno(r, "Loaded nothing kept as '%s': %m", name);
        return r;
    }
    keel_log_debug("Loaded '%s' (%zu bytes) kept by the last stop", name, size);
    *ret_data = TAKE_PTR(data);
    *ret_size = size;
    return 0;
}

bool keel_fdstore_passed(const char *name)
{
    keel_assert_return(keel__fdstore_name_valid(name), false);
    _cleanup_strv_free_ char **names = NULL;
    int n = passed(&names), i = 0;
    return next_passed(names, n, name, &i) >= 0;
}

int keel_fdstore_remove(const char *name)
{
    keel_assert_return(keel__fdstore_name_valid(name), -EINVAL);
    _cleanup_strv_free_ char **names = NULL;
    int n = passed(&names);
    for (int i = 0, fd; (fd = next_passed(names, n, name, &i)) >= 0;)
        release(fd);
    if (!getenv("NOTIFY_SOCKET"))
        return 0;
    int r = send_remove(name);
    return r < 0 ? r : 1;
}
