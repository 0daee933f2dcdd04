/* SPDX-License-Identifier: MIT */
/*
 * The pair delivered to another program (certificate.out_dir): key.pem and cert.pem (the leaf,
 * then its chain), as nginx, Envoy or a JVM read them. A rotation must never show a reader the new
 * key with the old certificate, so each pair goes into a directory of its own, `.pair-<kid>-<cert>`
 * (the key's kid and the start of the certificate's SHA-256: a certificate renewed for the same
 * key is a new pair too), and the link `current` is swapped to it in one rename; key.pem and cert.pem are links through
 * `current` (Kubernetes' atomic writer does the same for volumes). The previous pair's directory
 * stays until the next rotation, so that a reader that resolved `current` just before a swap still
 * finds both its files; older ones go.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "certificate-service.h"
#include "delivery.h"

#define PAIR_PREFIX ".pair-"

/* @dir/@name into @buf: 0, or -ENAMETOOLONG. */
static int join(char *buf, size_t size, const char *dir, const char *name)
{
    int n = snprintf(buf, size, "%s/%s", dir, name);
    return n < 0 || (size_t) n >= size ? -ENAMETOOLONG : 0;
}

/* @target as the link @dir/@name, replacing what is there in one rename. */
static int link_swap(const char *dir, const char *name, const char *target)
{
    char tmp[PATH_MAX], path[PATH_MAX], tmp_name[64];
    (void) snprintf(tmp_name, sizeof tmp_name, ".%s.tmp", name);
    if (join(tmp, sizeof tmp, dir, tmp_name) < 0 || join(path, sizeof path, dir, name) < 0)
        return -ENAMETOOLONG;
    (void) unlink(tmp);
    if (symlink(target, tmp) < 0 || rename(tmp, path) < 0) {
        int r = -errno;
        (void) unlink(tmp);
        return r;
    }
    return 0;
}

static int write_pair(const cert_service *s, const credential *c, const char *dir)
{
    char path[PATH_MAX];
    char *pem = NULL;
    size_t size = 0;
    int r = join(path, sizeof path, dir, "key.pem");
    if (r >= 0)
        r = cert_key_pem(credential_key(c), &pem, &size);
    if (r >= 0)
        r = delivery_write(path, pem, size, s->out_key_mode, s->out_gid);
    cert_pem_free(pem, size);
    pem = NULL;
    if (r >= 0)
        r = join(path, sizeof path, dir, "cert.pem");
    if (r >= 0)
        r = cert_certs_pem(credential_cert(c), credential_chain(c), &pem, &size);
    if (r >= 0)
        r = delivery_write(path, pem, size, 0444, s->out_gid);
    cert_pem_free(pem, size);
    return r;
}

/* Every `.pair-*` directory but the current one's and the previous one's, with what is in it. */
static void remove_old_pairs(const char *dir, const char *current, const char *previous)
{
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (strncmp(e->d_name, PAIR_PREFIX, strlen(PAIR_PREFIX)) != 0 || streq(e->d_name, current) || streq(e->d_name, previous))
            continue;
        char pair[PATH_MAX], path[PATH_MAX];
        if (join(pair, sizeof pair, dir, e->d_name) < 0)
            continue;
        if (join(path, sizeof path, pair, "key.pem") >= 0)
            (void) unlink(path);
        if (join(path, sizeof path, pair, "cert.pem") >= 0)
            (void) unlink(path);
        (void) rmdir(pair);
    }
    if (d)
        (void) closedir(d);
}

static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = fsync(fd) < 0 ? -errno : 0;
    (void) close(fd);
    return r;
}

/* Whether `current` in @out leads to a pair other than @name: the program reads one already. */
static bool replaces_another(const char *out, const char *name)
{
    char link[PATH_MAX], target[PATH_MAX];
    if (join(link, sizeof link, out, "current") < 0)
        return false;
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0)
        return false;
    target[n] = '\0';
    return !streq(target, name);
}

/* The name of @c's directory in out_dir: 0, or -ENOMEM when the certificate cannot be hashed. */
static int pair_name(const credential *c, char *buf, size_t size)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (X509_digest(credential_cert(c), EVP_sha256(), md, &len) != 1 || len < 8)
        return -ENOMEM;
    (void) snprintf(buf, size, PAIR_PREFIX "%s-%02x%02x%02x%02x%02x%02x%02x%02x", credential_kid(c), md[0], md[1], md[2], md[3],
                    md[4], md[5], md[6], md[7]);
    return 0;
}

static int deliver(cert_service *s, const credential *c, const char *name, bool *ret_replaced, char *why, size_t size)
{
    const char *out = s->config.out_dir;
    char dir[PATH_MAX];
    int r = join(dir, sizeof dir, out, name);
    if (r >= 0 && mkdir(dir, 0750) < 0 && errno != EEXIST)
        r = -errno;
    if (r >= 0 && s->out_gid != (gid_t) -1 && chown(dir, (uid_t) -1, s->out_gid) < 0)
        r = -errno;
    /* The mode itself, past the umask: the shipped unit's UMask=0077 would close the group's way
     * in to the key, which is what out_group is for. */
    if (r >= 0 && chmod(dir, 0750) < 0)
        r = -errno;
    if (r < 0)
        return snprintf(why, size, "cannot make '%s': %s", dir, strerror(-r)), r;
    if ((r = write_pair(s, c, dir)) < 0)
        return snprintf(why, size, "cannot write the pair in '%s': %s", dir, strerror(-r)), r;
    *ret_replaced = replaces_another(out, name);
    r = link_swap(out, "current", name);
    if (r >= 0)
        r = link_swap(out, "key.pem", "current/key.pem");
    if (r >= 0)
        r = link_swap(out, "cert.pem", "current/cert.pem");
    if (r >= 0)
        r = sync_dir(out);
    if (r < 0)
        return snprintf(why, size, "cannot link the pair into '%s': %s", out, strerror(-r)), r;
    remove_old_pairs(out, name, s->out_pair);
    return 0;
}

/* The pair of @c into out_dir, as @name: whether it is there. */
static bool deliver_pair(cert_service *s, const credential *c, const char *name, bool *ret_replaced)
{
    char why[PATH_MAX + 128];
    s->out_error = deliver(s, c, name, ret_replaced, why, sizeof why);
    keel_counter_add(s->out_error < 0 ? s->out_failures : s->out_written, 1);
    if (s->out_error < 0) {
        CERT_LOG_ERRNO(KEEL_LOG_WARNING, s->out_error, "Failed to deliver key[%s] to certificate.out_dir: %s", credential_kid(c),
                       why);
        return false;
    }
    CERT_LOG(KEEL_LOG_INFO, "Delivered key[%s] and its certificate to '%s'", credential_kid(c), s->config.out_dir);
    return true;
}

/* After each change of the credential slots, under the service's lock (every publication holds it):
 * a new current pair, a new key or a certificate renewed for the same one, is delivered. */
static void on_change(identity *id, void *userdata)
{
    cert_service *s = userdata;
    _cleanup_(credential_unrefp) credential *c = identity_get(id, IDENTITY_CURRENT);
    char name[sizeof s->out_pair];
    if (!c || s->read_only)
        return;
    if (pair_name(c, name, sizeof name) < 0) {
        s->out_error = -ENOMEM;
        keel_counter_add(s->out_failures, 1);
        CERT_LOG(KEEL_LOG_WARNING, "Failed to deliver key[%s]: cannot hash its certificate", credential_kid(c));
        return;
    }
    if (streq(s->out_pair, name))
        return;
    bool replaced = false;
    if (*s->config.out_dir && !deliver_pair(s, c, name, &replaced))
        return;
    cert_roles_deliver(s, c); /* a failure is tried again with the next pair */
    (void) snprintf(s->out_pair, sizeof s->out_pair, "%s", name);
    /* The first pair a directory gets is read when its program starts: nothing to tell. */
    if (replaced)
        hooks_notify(s->hooks);
}

static int hooks_configure(cert_service *s, keel_app *app)
{
    const hook_config *h = &s->config.out_hooks;
    bool wanted = (h->exec && h->exec[0]) || *h->signal || *h->pidfile;
    if (wanted && !*s->config.out_dir)
        return keel_app_fail(app, -EINVAL,
                             "certificate.out_exec or out_signal is set: set certificate.out_dir too, whose changes they tell");
    char why[256];
    int r = hooks_new(app, "certificate", "certificate.out", h, &s->hooks, why, sizeof why);
    return r < 0 ? keel_app_fail(app, r, "%s", r == -EINVAL ? why : strerror(-r)) : 0;
}

int cert_out_configure(cert_service *s, keel_app *app)
{
    int r = hooks_configure(s, app);
    if (r >= 0)
        r = cert_roles_configure(s, app);
    if (r < 0)
        return r;
    if (delivery_parse_group(s->config.out_group, &s->out_gid) < 0)
        return keel_app_fail(app, -EINVAL, "certificate.out_group '%s' is no group of this system", s->config.out_group);
    bool roles = s->config.roles && s->config.roles[0];
    if (!*s->config.out_dir && !roles)
        return 0;
    if (*s->config.out_dir && delivery_parse_mode(s->config.out_key_mode, &s->out_key_mode) < 0)
        return keel_app_fail(app, -EINVAL, "certificate.out_key_mode '%s' is not an octal mode such as 0440",
                             s->config.out_key_mode);
    if (*s->config.out_dir && s->out_key_mode & 0007)
        return keel_app_fail(app, -EINVAL,
                             "certificate.out_key_mode %04o lets others read or write the private key: give the reader the group "
                             "(certificate.out_group)",
                             (unsigned) s->out_key_mode);
    r = identity_subscribe(s->identity, on_change, s);
    return r < 0 ? keel_app_fail(app, r, "Cannot watch the credential: %s", strerror(-r)) : 0;
}
