/* SPDX-License-Identifier: MIT */
/*
 * The state directory (state_dir): where a program keeps what must outlive a process. One writer
 * at a time: a KEEL_COMMAND_STATE_WRITER command (`serve`) creates it (0700, as systemd's
 * StateDirectory= would) and takes an exclusive flock(2) on the file `.lock` in it at the end of
 * start.before — after every plugin's start.before observer, so that a plugin can refuse a
 * directory before anything is written there — and holds it until the app is freed (finalize
 * writes there last: the shutdown record). A regular file opened for writing, not the directory
 * itself: NFS emulates flock with a write lock. A program that keeps no state
 * (keel_app_set_state_dir(app, NULL)) has state_dir '': nothing is created, locked or written.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/file.h>

#include <keel/fileio.h>

#include "app-state-internal.h"
#include "macro-internal.h"

#define STATE_LOCK ".lock"

const char *keel_app_state_dir(const keel_app *app)
{
    return app && keel__config_loaded(app->config) ? app->settings.state_dir : NULL;
}

bool keel_app_state_dir_locked(const keel_app *app)
{
    return app && app->state_lock >= 0;
}

int keel_app_lock_state_dir(keel_app *app)
{
    keel_assert_return(app, -EINVAL);
    const char *dir = keel_app_state_dir(app);
    char path[PATH_MAX];
    if (!dir || !*dir)
        return -ENOENT;
    if (app->state_lock >= 0)
        return 0;
    if ((size_t) snprintf(path, sizeof path, "%s/%s", dir, STATE_LOCK) >= sizeof path)
        return -ENAMETOOLONG;
    _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0)
        return errno == EWOULDBLOCK ? -EBUSY : -errno;
    app->state_lock = TAKE_FD(fd);
    return 0;
}

static int on_acquire(keel_app *app, void *userdata)
{
    const char *dir = keel_app_state_dir(app);
    if (!dir || !*dir)
        return 0;
    int r = keel_dir_make(dir, 0700);
    if (r < 0)
        return keel_app_fail(app, r, "Cannot create the state directory '%s': %s", dir, strerror(-r));
    r = keel_app_lock_state_dir(app);
    if (r == -EBUSY)
        return keel_app_fail(app, r, "State directory '%s' is in use by another %s process; one process at a time writes it", dir,
                             app->name);
    if (r < 0)
        return keel_app_fail(app, r, "Cannot lock '%s/%s': %s", dir, STATE_LOCK, strerror(-r));
    return 0;
}

int keel__state_dir_register(keel_app *app)
{
    keel_observer *o;
    int r = keel_app_observe(app, KEEL_EVENT_START, KEEL_PHASE_BEFORE, "state-dir.acquire", on_acquire, NULL, &o);
    if (r < 0)
        return r;
    keel__observer_set_command_flags(o, KEEL_COMMAND_STATE_WRITER);
    return 0;
}
