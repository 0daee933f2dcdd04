/* SPDX-License-Identifier: MIT */
/* Single instance through a PID file held with flock for the life of the process (seed 002), for
 * the KEEL_COMMAND_SINGLE commands (`serve`, `keel migrate`; not `keel token`, which runs beside a
 * serving agent): a second instance fails to start; a file left by a killed process holds no lock
 * and is taken over; the file is removed at finalize. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <keel/keel.h>

#include "app-internal.h"
#include "macro-internal.h"
#include "observer-internal.h"
#include "observers-internal.h"

/* Static: the lock must outlive any allocation failure, and one process holds one PID file. */
static struct {
    int fd;
    char path[PATH_MAX];
} pidfile = { .fd = -EBADF };

static void read_holder(int fd, char *buf, size_t size)
{
    ssize_t n = pread(fd, buf, size - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    buf[strcspn(buf, "\n")] = 0;
    if (!buf[0])
        (void) snprintf(buf, size, "unknown");
}

/* Whether @fd is still the file at @path: another instance may have removed it between our
 * open and our lock, and a lock on an unlinked file guards nothing. */
static bool still_linked(int fd, const char *path)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static int lock_file(keel_app *app, const char *path)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
            return keel_app_fail(app, -errno, "Failed to open PID file %s: %m", path);
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            char holder[32];
            if (errno != EWOULDBLOCK)
                return keel_app_fail(app, -errno, "Failed to lock PID file %s: %m", path);
            read_holder(fd, holder, sizeof holder);
            return keel_app_fail(app, -EBUSY, "another instance is already running (PID %s)", holder);
        }
        if (still_linked(fd, path))
            return TAKE_FD(fd);
    }
    return keel_app_fail(app, -EBUSY, "PID file %s keeps changing under us", path);
}

static int on_acquire(keel_app *app, void *userdata)
{
    const char *path = keel__app_settings(app)->pidfile;
    char buf[32];

    if (!path || !*path)
        return 0;
    int fd = lock_file(app, path);
    if (fd < 0)
        return fd;
    int n = snprintf(buf, sizeof buf, "%d\n", (int) getpid());
    ssize_t w = ftruncate(fd, 0) < 0 ? -1 : pwrite(fd, buf, (size_t) n, 0);
    if (w != n) {
        int r = w < 0 ? -errno : -EIO; /* a short write sets no errno */
        (void) unlink(path);
        safe_close(fd);
        return keel_app_fail(app, r, "Failed to write PID file %s: %m", path);
    }
    pidfile.fd = fd;
    (void) snprintf(pidfile.path, sizeof pidfile.path, "%s", path);
    keel_log_debug("Holding PID file %s", path);
    return 0;
}

static int on_release(keel_app *app, void *userdata)
{
    if (pidfile.fd < 0)
        return 0;
    /* Unlink while still holding the lock, so no new instance locks a file about to vanish. */
    if (unlink(pidfile.path) < 0 && errno != ENOENT)
        keel_log_warning_errno(errno, "Failed to remove PID file %s, ignoring: %m", pidfile.path);
    pidfile.fd = safe_close(pidfile.fd);
    return 0;
}

int keel__observers_pidfile_register(keel_app *app)
{
    /* After the configuration is loaded (it names the file), before any service starts; only for
     * the commands that hold it, so that `plan` shows none for the others. */
    keel_observer *acquire, *release;
    int r = keel_app_observe(app, KEEL_EVENT_START, KEEL_PHASE_BEFORE, "pidfile.acquire", on_acquire, NULL, &acquire);
    if (r < 0)
        return r;
    r = keel_app_observe(app, KEEL_EVENT_FINALIZE, KEEL_PHASE_AFTER, "pidfile.release", on_release, NULL, &release);
    if (r < 0)
        return r;
    keel__observer_set_command_flags(acquire, KEEL_COMMAND_SINGLE);
    keel__observer_set_command_flags(release, KEEL_COMMAND_SINGLE);
    return 0;
}
