/* SPDX-License-Identifier: MIT */
/*
 * `keel migrate [--dry-run]`: brings the state directory to the current layout.
 *
 * Layout 1 is the seed agent's flat directory: private.pem, cert.pem, role certificates
 * <domain>_<role>.cert.pem and a ca.pem symbolic link. Layout 2 is Keel's (docs/operations.md): key.pem
 * (0600), cert.pem, ca.pem a regular file, role certificates under roles/, and the file `layout`
 * saying 2. Every step is one rename (or a copy through a temporary file and a rename), and the
 * layout file is written last: a migration cut short is finished by the next run, and a second
 * run finds nothing to do. Anything the migration does not know makes it refuse before it moves
 * a thing.
 *
 * A command through the state machine: the observers are chosen in `command`, the work runs in
 * ready.after (after the PID file is held, so it never runs beside a serving instance), and the
 * app then stops with the command's status.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <keel/keel.h>

#include "layout.h"

#define ROLES_DIR "roles"

typedef enum step_kind {
    STEP_MKDIR,   /* roles/ */
    STEP_RENAME,  /* from -> to, the key made 0600 when @mode */
    STEP_RESOLVE, /* a symbolic link replaced by a copy of what it points to */
    STEP_UNLINK,  /* a dangling symbolic link */
    STEP_LAYOUT,  /* write the layout file */
} step_kind;

typedef struct step {
    step_kind kind;
    char from[NAME_MAX + 1], to[NAME_MAX + sizeof(ROLES_DIR) + 1];
    mode_t mode; /* STEP_RENAME: 0600 for keys, 0 to keep the mode */
} step;

typedef struct plan {
    step *steps; /* owned: as many as the directory needs (one a role certificate) */
    size_t n, allocated;
    int layout; /* found: 0 none, 1, 2 */
} plan;

/* The most a `ca.pem` link's file is copied for: a system's whole CA bundle is ~220 kB. */
#define LINK_COPY_MAX (64u << 20)

static void plan_free(plan *p)
{
    free(p->steps);
    *p = (plan){ 0 };
}

static struct {
    bool dry_run;
} migrate;

/* Files Keel itself keeps in layout 2, next to the ones migrated: a directory serve made whose
 * layout record a crash left empty is finished, not refused. pair.pem is the certificate service's
 * bundle, issuer the record of the issuer of certificate.issuers, acme/ the ACME accounts. */
static bool is_layout2_name(const char *name)
{
    return STR_IN_SET(name, "key.pem", "cert.pem", "ca.pem", "ca.key.pem", "pair.pem", "issuer", "acme", ROLES_DIR,
                      KEEL_LAYOUT_FILE, "last-shutdown") ||
           strneq(name, "key.", 4) || strneq(name, "cert.", 5) || streq(name, "backup") || name[0] == '.';
}

static int add(plan *p, step_kind kind, const char *from, const char *to, mode_t mode)
{
    if (p->n == p->allocated) {
        size_t allocated = p->allocated ? p->allocated * 2 : 16;
        step *steps = reallocarray(p->steps, allocated, sizeof *steps);
        if (!steps)
            return -ENOMEM;
        p->steps = steps, p->allocated = allocated;
    }
    step *s = &p->steps[p->n++];
    *s = (step){ .kind = kind, .mode = mode };
    (void) snprintf(s->from, sizeof s->from, "%s", from ? from : "");
    (void) snprintf(s->to, sizeof s->to, "%s", to ? to : "");
    return 0;
}

/* One directory entry of a layout-1 directory, or of one cut short on its way to 2. */
static int plan_entry(plan *p, int dfd, const char *name, char *error, size_t size)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    if (streq(name, "private.pem")) {
        if (faccessat(dfd, "key.pem", F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
            (void) snprintf(error, size, "both private.pem and key.pem exist: which key is in use is not clear");
            return -EEXIST;
        }
        return add(p, STEP_RENAME, name, "key.pem", 0600);
    }
    if (streq(name, "ca.pem") && S_ISLNK(st.st_mode)) {
        struct stat target;
        if (fstatat(dfd, name, &target, 0) < 0)
            return add(p, STEP_UNLINK, name, name, 0);
        if (!S_ISREG(target.st_mode) || target.st_size > (off_t) LINK_COPY_MAX) {
            (void) snprintf(error, size, "'%s' links to %s; put a copy of the CA bundle in its place and run again", name,
                            S_ISREG(target.st_mode) ? "a file of more than 64 MiB" : "something other than a file");
            return -EBADMSG;
        }
        return add(p, STEP_RESOLVE, name, name, 0);
    }
    if (layout_is_role_cert(name) && S_ISREG(st.st_mode)) {
        char to[sizeof p->steps[0].to];
        (void) snprintf(to, sizeof to, "%s/%s", ROLES_DIR, name);
        return add(p, STEP_RENAME, name, to, 0);
    }
    if (is_layout2_name(name))
        return 0;
    (void) snprintf(error, size, "'%s' is not part of any known layout; move it away and run again", name);
    return -EBADMSG;
}

static int compare_names(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int make_plan(int dfd, const char *dir, plan *p, char *error, size_t size)
{
    struct dirent **names = NULL;
    int r = layout_read(dfd, error, size, &p->layout);
    if (r < 0 || p->layout == KEEL_LAYOUT_CURRENT)
        return r;
    int n = scandir(dir, &names, NULL, compare_names);
    if (n < 0)
        return -errno;
    bool roles = faccessat(dfd, ROLES_DIR, F_OK, AT_SYMLINK_NOFOLLOW) == 0, need_roles = false;
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        if (r >= 0 && !STR_IN_SET(name, ".", "..")) {
            r = plan_entry(p, dfd, name, error, size);
            need_roles = need_roles || layout_is_role_cert(name);
        }
        free(names[i]);
    }
    free(names);
    if (r >= 0 && need_roles && !roles) {
        /* roles/ first: move the step to the front. */
        r = add(p, STEP_MKDIR, NULL, ROLES_DIR, 0);
        if (r >= 0) {
            step mk = p->steps[p->n - 1];
            memmove(p->steps + 1, p->steps, (p->n - 1) * sizeof *p->steps);
            p->steps[0] = mk;
        }
    }
    return r < 0 ? r : add(p, STEP_LAYOUT, NULL, KEEL_LAYOUT_FILE, 0);
}

static void describe(const step *s, char *buf, size_t size)
{
    switch (s->kind) {
    case STEP_MKDIR:
        (void) snprintf(buf, size, "create directory %s/ (0700)", s->to);
        break;
    case STEP_RENAME:
        (void) snprintf(buf, size, "move %s to %s%s", s->from, s->to, s->mode ? " (mode 0600)" : "");
        break;
    case STEP_RESOLVE:
        (void) snprintf(buf, size, "replace the link %s by a copy of the file it points to", s->from);
        break;
    case STEP_UNLINK:
        (void) snprintf(buf, size, "remove %s, a link to nothing", s->from);
        break;
    case STEP_LAYOUT:
        (void) snprintf(buf, size, "record layout %d in %s", KEEL_LAYOUT_CURRENT, s->to);
        break;
    }
}

/* @name in @dir, into @buf. */
static int path_in(char buf[static PATH_MAX], const char *dir, const char *name)
{
    int n = snprintf(buf, PATH_MAX, "%s/%s", dir, name);
    return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

/* Writes @size bytes as @name in @dir through a temporary file and a rename, synced, with @mode. */
static int write_atomic(const char *dir, const char *name, const void *data, size_t size, mode_t mode)
{
    char path[PATH_MAX];
    int r = path_in(path, dir, name);
    return r < 0 ? r : keel_file_write_atomic(path, data, size, mode);
}

static int resolve_link(int dfd, const char *dir, const char *name)
{
    struct stat st;
    _cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode)) /* it was one when planned */
        return -EBADMSG;
    char *data = NULL;
    size_t size = 0;
    int r = keel_fd_read_all(fd, LINK_COPY_MAX, &data, &size);
    if (r >= 0)
        r = write_atomic(dir, name, data, size, st.st_mode & 0777);
    free(data);
    return r;
}

/* The renames are entries of the state directory and of roles/: both synced before the layout
 * file says the moves are done, or a crash could keep the record and lose the moves. */
static int sync_dirs(int dfd)
{
    if (fsync(dfd) < 0)
        return -errno;
    _cleanup_close_ int roles = openat(dfd, ROLES_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (roles < 0)
        return errno == ENOENT ? 0 : -errno; /* no role certificates: nothing moved there */
    return fsync(roles) < 0 ? -errno : 0;
}

/* The last step: the moves made durable, then the layout file written and its entry synced. */
static int record_layout(int dfd, const char *dir, const char *name)
{
    char layout[8];
    int n = snprintf(layout, sizeof layout, "%d\n", KEEL_LAYOUT_CURRENT);
    int r = sync_dirs(dfd);
    if (r >= 0)
        r = write_atomic(dir, name, layout, (size_t) n, 0644);
    return r < 0 ? r : (fsync(dfd) < 0 ? -errno : 0);
}

static int apply(int dfd, const char *dir, const step *s)
{
    switch (s->kind) {
    case STEP_MKDIR:
        return mkdirat(dfd, s->to, 0700) < 0 && errno != EEXIST ? -errno : 0;
    case STEP_RENAME:
        if (s->mode) {
            _cleanup_close_ int fd = openat(dfd, s->from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
            if (fd < 0 || fchmod(fd, s->mode) < 0 || fsync(fd) < 0)
                return -errno;
        }
        /* RENAME_NOREPLACE: never overwrite what a serving instance may have written meanwhile. */
        return renameat2(dfd, s->from, dfd, s->to, RENAME_NOREPLACE) < 0 ? -errno : 0;
    case STEP_RESOLVE:
        return resolve_link(dfd, dir, s->from);
    case STEP_UNLINK:
        return unlinkat(dfd, s->from, 0) < 0 ? -errno : 0;
    case STEP_LAYOUT:
        return record_layout(dfd, dir, s->to);
    }
    return -EINVAL;
}

static int run_plan(keel_app *app, int dfd, const char *dir, const plan *p)
{
    char what[NAME_MAX * 2 + 64];
    printf("%s state directory %s, layout %d to %d:\n", migrate.dry_run ? "Would migrate" : "Migrating", dir,
           p->layout ? p->layout : 1, KEEL_LAYOUT_CURRENT);
    for (size_t i = 0; i < p->n; i++) {
        describe(&p->steps[i], what, sizeof what);
        printf("  %s\n", what);
        int r = migrate.dry_run ? 0 : apply(dfd, dir, &p->steps[i]);
        if (r < 0) {
            (void) fflush(stdout);
            return keel_app_cancel(app, KEEL_CAUSE_COMMAND_FAILED, "Failed to %s in %s: %s (the next run goes on from here)", what,
                                   dir, strerror(-r));
        }
    }
    (void) fflush(stdout);
    return keel_app_cancel(app, KEEL_CAUSE_COMMAND_DONE,
                           migrate.dry_run ? "migration planned, nothing changed" : "state directory migrated");
}

static int on_run(keel_app *app, void *userdata)
{
    const char *dir = keel_app_state_dir(app);
    char error[512] = "";
    plan p = { 0 };

    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 && errno == ENOENT) {
        printf("State directory %s does not exist: nothing to migrate\n", dir);
        return keel_app_cancel(app, KEEL_CAUSE_COMMAND_DONE, "nothing to migrate");
    }
    if (dfd < 0)
        return keel_app_cancel(app, KEEL_CAUSE_COMMAND_FAILED, "Failed to open state directory %s: %m", dir);
    /* Planned without the lock, so that a refusal, a dry run or nothing to do changes nothing, not
     * even the lock file. A migration takes the writer's lock (held until the app is freed: never
     * beside a serving instance, even one without a PID file) and plans again under it, as another
     * migration may have run meanwhile. */
    int r = make_plan(dfd, dir, &p, error, sizeof error);
    if (r >= 0 && p.layout != KEEL_LAYOUT_CURRENT && !migrate.dry_run) {
        plan_free(&p);
        if ((r = keel_app_lock_state_dir(app)) == -EBUSY)
            return keel_app_cancel(app, KEEL_CAUSE_COMMAND_FAILED,
                                   "Refusing to migrate: State directory '%s' is in use by another keel process; one process at a "
                                   "time writes it",
                                   dir);
        if (r < 0)
            return keel_app_cancel(app, KEEL_CAUSE_COMMAND_FAILED, "Refusing to migrate: cannot lock '%s/.lock': %s", dir,
                                   strerror(-r));
        r = make_plan(dfd, dir, &p, error, sizeof error);
    }
    if (r < 0)
        r = keel_app_cancel(app, KEEL_CAUSE_COMMAND_FAILED, "Refusing to migrate %s: %s", dir, error[0] ? error : strerror(-r));
    else if (p.layout == KEEL_LAYOUT_CURRENT) {
        printf("State directory %s is at layout %d already: nothing to do\n", dir, KEEL_LAYOUT_CURRENT);
        r = keel_app_cancel(app, KEEL_CAUSE_COMMAND_DONE, "nothing to migrate");
    } else
        r = run_plan(app, dfd, dir, &p);
    plan_free(&p);
    return r;
}

static int on_migrate(keel_app *app, void *userdata)
{
    int argc;
    char **argv = keel_app_args(app, &argc);
    for (int i = 1; i < argc; i++) {
        if (!streq(argv[i], "--dry-run"))
            return keel_app_fail(app, -EINVAL, "migrate: unknown argument '%s' (expected --dry-run)", argv[i]);
        migrate.dry_run = true;
    }
    return keel_app_observe(app, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "migrate.run", on_run, NULL, NULL);
}

/* One at a time (the PID file); the writer's lock only once there is work, so a dry run or a
 * directory at the current layout is never written. */
static int migrate_register(keel_app *app)
{
    int r =
        keel_app_add_command(app, "migrate", "bring the state directory to the current layout ([--dry-run])", KEEL_COMMAND_SINGLE);
    if (r < 0)
        return r;
    return keel_app_observe_command(app, "migrate", "migrate.command", on_migrate, NULL);
}

KEEL_PLUGIN(migrate, migrate_register);
