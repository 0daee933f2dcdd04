/* SPDX-License-Identifier: MIT */
/*
 * The file descriptor store protocol (core/app/fdstore.c) against a fake service manager that
 * does what systemd does with it: keeps the descriptors FDSTORE=1 sends (SCM_RIGHTS) under their
 * FDNAME, drops them on FDSTOREREMOVE=1, answers BARRIER=1 by closing its descriptor, and hands
 * what it keeps to the next run — a forked child — at SD_LISTEN_FDS_START with LISTEN_FDS,
 * LISTEN_FDNAMES and LISTEN_PID.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <criterion/criterion.h>
#include <systemd/sd-daemon.h>

#include "apptest.h"
#include "fdstore-internal.h"
#include "helpers.h"
#include "http-internal.h"
#include "macro-internal.h"

static const uint8_t KEY[32] = "0123456789abcdef0123456789abcde";
static const uint8_t OTHER_KEY[32] = "0123456789abcdef0123456789abcdX";
static const char PAYLOAD[] = "three tokens, say";

#define STORE_MAX 8

/* The fake service manager. */
static struct {
    int sock;
    char path[108];
    pthread_t reader;
    pthread_mutex_t lock;
    char messages[8192]; /* every datagram, each followed by '|' */
    struct {
        char name[KEEL_FDSTORE_NAME_MAX + 1];
        int fd;
    } store[STORE_MAX];
    size_t n_store;
} manager;

/* The value of the line "@key=..." of @msg into @buf, or NULL. */
static const char *field(const char *msg, const char *key, char *buf, size_t size)
{
    size_t n = strlen(key);
    for (const char *p = msg; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strneq(p, key, n) && p[n] == '=') {
            (void) snprintf(buf, size, "%.*s", (int) strcspn(p + n + 1, "\n"), p + n + 1);
            return buf;
        }
    return NULL;
}

static bool has_line(const char *msg, const char *key)
{
    char value[4];
    return field(msg, key, value, sizeof value) && streq(value, "1");
}

static void forget(const char *name)
{
    size_t kept = 0;
    for (size_t i = 0; i < manager.n_store; i++)
        if (streq(manager.store[i].name, name))
            close(manager.store[i].fd);
        else
            manager.store[kept++] = manager.store[i];
    manager.n_store = kept;
}

/* One datagram, as systemd's manager_dispatch_notify_fd() and service_notify_message() take it. */
static void take_message(const char *msg, int *fds, size_t n_fds)
{
    char name[KEEL_FDSTORE_NAME_MAX + 1];
    bool has_name = field(msg, "FDNAME", name, sizeof name);
    pthread_mutex_lock(&manager.lock);
    size_t len = strlen(manager.messages);
    snprintf(manager.messages + len, sizeof manager.messages - len, "%s|", msg);
    if (has_line(msg, "FDSTOREREMOVE") && has_name)
        forget(name);
    for (size_t i = 0; i < n_fds; i++) {
        if (has_line(msg, "FDSTORE") && manager.n_store < STORE_MAX) {
            snprintf(manager.store[manager.n_store].name, sizeof manager.store[0].name, "%s", has_name ? name : "stored");
            manager.store[manager.n_store++].fd = fds[i];
        } else
            close(fds[i]); /* a barrier's pipe: closing it is the answer */
    }
    pthread_mutex_unlock(&manager.lock);
}

static void *read_messages(void *userdata)
{
    for (;;) {
        char buf[4096];
        union {
            struct cmsghdr h;
            uint8_t b[CMSG_SPACE(sizeof(int) * STORE_MAX)];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = sizeof buf - 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof control };
        ssize_t n = recvmsg(manager.sock, &mh, MSG_CMSG_CLOEXEC);
        if (n <= 0) /* shut down by the fixture */
            return NULL;
        buf[n] = '\0';
        int fds[STORE_MAX];
        size_t n_fds = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                n_fds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                memcpy(fds, CMSG_DATA(c), n_fds * sizeof(int));
            }
        take_message(buf, fds, n_fds);
    }
}

static apptest t; /* the logs, captured */

static void setup(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(manager.path, sizeof manager.path, "%s/notify-%d", test_tmpdir(), getpid());
    strcpy(sa.sun_path, manager.path);
    manager.sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(manager.sock, 0);
    cr_assert_eq(bind(manager.sock, (struct sockaddr *) &sa, sizeof sa), 0);
    pthread_mutex_init(&manager.lock, NULL);
    cr_assert_eq(pthread_create(&manager.reader, NULL, read_messages, NULL), 0);
    setenv("NOTIFY_SOCKET", manager.path, 1);
    apptest_init(&t);
}

static void teardown(void)
{
    shutdown(manager.sock, SHUT_RDWR);
    pthread_join(manager.reader, NULL);
    close(manager.sock);
    unlink(manager.path);
    unsetenv("NOTIFY_SOCKET");
    apptest_done(&t);
}

TestSuite(fdstore, .init = setup, .fini = teardown, .timeout = 30);

/* The messages received so far, once @expected of them are in (the reader runs on its own). */
static const char *messages(const char *expected)
{
    static char buf[sizeof manager.messages];
    for (int i = 0; i < 2000; i++) {
        pthread_mutex_lock(&manager.lock);
        memcpy(buf, manager.messages, sizeof buf);
        pthread_mutex_unlock(&manager.lock);
        if (strstr(buf, expected))
            break;
        usleep(1000);
    }
    return buf;
}

static size_t stored(const char *name)
{
    size_t n = 0;
    pthread_mutex_lock(&manager.lock);
    for (size_t i = 0; i < manager.n_store; i++)
        n += streq(manager.store[i].name, name);
    pthread_mutex_unlock(&manager.lock);
    return n;
}

/* ---- the next run ---------------------------------------------------------------------------- */

/* Checks inside the forked run: no Criterion there, a failure is the exit status (its line). */
#define NEXT_RUN_CHECK(x)                                                                                                          \
    do {                                                                                                                           \
        if (!(x)) {                                                                                                                \
            fprintf(stderr, "%s:%d: next run: %s\n", __FILE__, __LINE__, #x);                                                      \
            _exit(__LINE__ % 250 + 1);                                                                                             \
        }                                                                                                                          \
    } while (0)

typedef void (*next_run_t)(void);

/* Runs @fn in a child that finds @n descriptors of @fds under @names as systemd passes them. */
static void next_run(const int *fds, const char *const *names, size_t n, next_run_t fn)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int high[STORE_MAX];
        char joined[STORE_MAX * (KEEL_FDSTORE_NAME_MAX + 1)] = "", count[16], self[16];
        /* Out of the way first: a descriptor to pass may sit where another one goes. */
        for (size_t i = 0; i < n; i++)
            NEXT_RUN_CHECK((high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 100)) >= 0);
        for (size_t i = 0; i < n; i++) {
            NEXT_RUN_CHECK(dup2(high[i], SD_LISTEN_FDS_START + (int) i) >= 0);
            close(high[i]);
            strcat(joined, i ? ":" : "");
            strcat(joined, names[i]);
        }
        snprintf(count, sizeof count, "%zu", n);
        snprintf(self, sizeof self, "%d", (int) getpid());
        setenv("LISTEN_FDS", count, 1);
        setenv("LISTEN_FDNAMES", joined, 1);
        setenv("LISTEN_PID", self, 1);
        fn();
        _exit(0);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the next run failed (status %d, see stderr)", status);
}

/* What the fake manager keeps under @name now (a new descriptor of it: close() it). */
static int kept(const char *name)
{
    int fd = -1;
    pthread_mutex_lock(&manager.lock);
    for (size_t i = 0; i < manager.n_store && fd < 0; i++)
        if (streq(manager.store[i].name, name))
            fd = fcntl(manager.store[i].fd, F_DUPFD_CLOEXEC, 3);
    pthread_mutex_unlock(&manager.lock);
    cr_assert_geq(fd, 0, "nothing kept under '%s'", name);
    return fd;
}

/* A blob taken by a load: closed, /dev/null in its place, so that $LISTEN_FDS stays valid. */
static bool released(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3) && sd_listen_fds(0) > 0;
}

/* ---- saving ---------------------------------------------------------------------------------- */

Test(fdstore, save_sends_a_sealed_memfd_under_its_name_then_a_barrier)
{
    cr_assert_eq(keel_fdstore_save("cache", PAYLOAD, sizeof PAYLOAD, KEY, sizeof KEY), 1);
    /* The barrier returned, so everything before it was read. */
    cr_assert_str_eq(messages("BARRIER=1"), "FDSTOREREMOVE=1\nFDNAME=cache|FDSTORE=1\nFDNAME=cache|BARRIER=1|");
    cr_assert_eq(stored("cache"), 1);
    int fd = kept("cache");
    int seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;
    cr_assert_eq(fcntl(fd, F_GET_SEALS) & seals, seals);
    cr_assert_eq(write(fd, "x", 1), -1, "sealed against writes");
    cr_assert_eq(errno, EPERM);
    char head[8];
    cr_assert_eq(pread(fd, head, sizeof head, 0), (ssize_t) sizeof head);
    cr_assert_eq(memcmp(head, "KEELBLOB", 8), 0);
    close(fd);
}

Test(fdstore, a_second_save_replaces_the_first)
{
    cr_assert_eq(keel_fdstore_save("cache", "old", 3, KEY, sizeof KEY), 1);
    cr_assert_eq(keel_fdstore_save("cache", PAYLOAD, sizeof PAYLOAD, KEY, sizeof KEY), 1);
    cr_assert_eq(stored("cache"), 1, "systemd would keep both without FDSTOREREMOVE=1 first");
    struct stat st;
    int fd = kept("cache");
    cr_assert_eq(fstat(fd, &st), 0);
    close(fd);
    keel_build_id build;
    cr_assert_eq(keel__build_id(&build), 0);
    cr_assert_eq((size_t) st.st_size, keel__fdstore_blob_size(&build, "cache", sizeof PAYLOAD), "the second one");
}

Test(fdstore, without_a_service_manager_saving_keeps_nothing_and_says_so)
{
    unsetenv("NOTIFY_SOCKET");
    cr_assert_eq(keel_fdstore_save("cache", PAYLOAD, sizeof PAYLOAD, KEY, sizeof KEY), 0);
    cr_assert(strstr(apptest_logs(&t), "No service manager ($NOTIFY_SOCKET unset): 'cache' is not kept across a restart"), "%s",
              apptest_logs(&t));
    cr_assert_eq(keel_fdstore_remove("cache"), 0);
    cr_assert_not(keel_fdstore_passed("cache"));
    void *data = NULL;
    size_t size = 0;
    cr_assert_eq(keel_fdstore_load("cache", KEY, sizeof KEY, &data, &size, NULL), -ENOENT);
    cr_assert_null(data, "written only on success");
}

/* ---- the next run ---------------------------------------------------------------------------- */

/* What the last load() in the next run gave. */
static struct {
    void *data;
    size_t size;
    char error[KEEL_FDSTORE_ERROR_MAX];
} loaded;

static int load(const char *name, const uint8_t *key)
{
    free(loaded.data);
    loaded.data = NULL;
    loaded.size = 0;
    loaded.error[0] = '\0';
    return keel_fdstore_load(name, key, sizeof KEY, &loaded.data, &loaded.size, loaded.error);
}

/* Saves PAYLOAD as "cache", runs @next_fn as the next start, and checks the manager forgot it. */
static void save_then_restart(next_run_t next_fn)
{
    cr_assert_eq(keel_fdstore_save("cache", PAYLOAD, sizeof PAYLOAD, KEY, sizeof KEY), 1);
    int fd = kept("cache");
    next_run(&fd, (const char *const[]){ "cache" }, 1, next_fn);
    close(fd);
    cr_assert(strstr(messages("BARRIER=1|FDSTOREREMOVE=1\nFDNAME=cache|"), "BARRIER=1|FDSTOREREMOVE=1\nFDNAME=cache|"));
    cr_assert_eq(stored("cache"), 0, "not handed back at the start after");
}

static void load_once(void)
{
    NEXT_RUN_CHECK(keel_fdstore_passed("cache") && !keel_fdstore_passed("other"));
    NEXT_RUN_CHECK(load("cache", KEY) == 0);
    NEXT_RUN_CHECK(!keel_fdstore_passed("cache"));
    NEXT_RUN_CHECK(loaded.size == sizeof PAYLOAD && memcmp(loaded.data, PAYLOAD, loaded.size) == 0);
    NEXT_RUN_CHECK(((char *) loaded.data)[loaded.size] == '\0');
    NEXT_RUN_CHECK(released(SD_LISTEN_FDS_START));
    NEXT_RUN_CHECK(load("cache", KEY) == -ENOENT);
}

Test(fdstore, the_next_run_loads_it_once_and_the_manager_forgets_it)
{
    save_then_restart(load_once);
}

static void load_refused(void)
{
    NEXT_RUN_CHECK(load("cache", OTHER_KEY) == -EKEYREJECTED);
    NEXT_RUN_CHECK(streq(loaded.error, "its HMAC does not verify: saved under another key, or altered"));
    NEXT_RUN_CHECK(!loaded.data && loaded.size == 0);
    NEXT_RUN_CHECK(released(SD_LISTEN_FDS_START));
    NEXT_RUN_CHECK(load("cache", KEY) == -ENOENT);
}

Test(fdstore, a_refused_blob_is_taken_and_forgotten_too)
{
    save_then_restart(load_refused);
}

static int listener(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(fd, 1) < 0)
        return -1;
    return fd;
}

static void sockets_beside_blobs(void)
{
    /* fd 3: the blob "token"; 4: the socket unit's socket "token"; 5: the blob "other". */
    NEXT_RUN_CHECK(load("token", KEY) == 0);
    NEXT_RUN_CHECK(released(3));
    NEXT_RUN_CHECK(!keel_fdstore_passed("token")); /* the socket is no blob */
    /* A socket opened now does not get number 3, and the server named "token" finds its socket. */
    int other = listener();
    NEXT_RUN_CHECK(other > 5);
    NEXT_RUN_CHECK(sd_listen_fds(0) == 3);
    NEXT_RUN_CHECK(keel__http_activated_socket("token") == 4);
    NEXT_RUN_CHECK(load("token", KEY) == -ENOENT);
    /* A socket is never a blob, and a blob never a server's socket. */
    NEXT_RUN_CHECK(keel__http_activated_socket("other") == -ENOENT);
    NEXT_RUN_CHECK(keel_fdstore_remove("other") == 1);
    NEXT_RUN_CHECK(released(5) && keel__http_activated_socket("token") == 4);
    close(other);
}

Test(fdstore, sockets_of_socket_units_and_blobs_share_the_list)
{
    cr_assert_eq(keel_fdstore_save("token", PAYLOAD, sizeof PAYLOAD, KEY, sizeof KEY), 1);
    cr_assert_eq(keel_fdstore_save("other", PAYLOAD, sizeof PAYLOAD, KEY, sizeof KEY), 1);
    int sock = listener();
    cr_assert_geq(sock, 0);
    int fds[] = { kept("token"), sock, kept("other") };
    next_run(fds, (const char *const[]){ "token", "token", "other" }, 3, sockets_beside_blobs);
    for (size_t i = 0; i < ELEMENTSOF(fds); i++)
        close(fds[i]);
    /* The next run's removals are datagrams the reader takes on its own; waiting for the text of
     * one is no use, as each save sent the same before its FDSTORE=1 (1 run in 10 read "token"
     * still kept). */
    for (int i = 0; i < 10000 && stored("token") + stored("other") > 0; i++)
        usleep(1000);
    cr_assert_eq(stored("token") + stored("other"), 0);
}

static void not_ours(void)
{
    /* fd 3: a pipe, 4: a memfd never sealed, 5: a sealed memfd over the largest blob. */
    NEXT_RUN_CHECK(!keel_fdstore_passed("pipe") && keel_fdstore_passed("unsealed") && keel_fdstore_passed("huge"));
    NEXT_RUN_CHECK(load("pipe", KEY) == -ENOENT);
    NEXT_RUN_CHECK(fcntl(3, F_GETFD) >= 0 && !released(3));
    NEXT_RUN_CHECK(load("unsealed", KEY) == -EBADMSG);
    NEXT_RUN_CHECK(streq(loaded.error, "a memfd that is not sealed against changes"));
    NEXT_RUN_CHECK(load("huge", KEY) == -EFBIG);
    NEXT_RUN_CHECK(strstr(loaded.error, "over the"));
    NEXT_RUN_CHECK(released(4) && released(5));
}

Test(fdstore, what_is_not_a_sealed_blob_is_refused_or_left_alone)
{
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    int unsealed = memfd_create("unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    int huge = memfd_create("huge", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    cr_assert_eq(ftruncate(huge, (off_t) KEEL_FDSTORE_BLOB_MAX + 1), 0); /* sparse: nothing is written */
    cr_assert_eq(fcntl(huge, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE), 0);
    int fds[] = { p[0], unsealed, huge };
    next_run(fds, (const char *const[]){ "pipe", "unsealed", "huge" }, 3, not_ours);
    for (size_t i = 0; i < ELEMENTSOF(fds); i++)
        close(fds[i]);
    close(p[1]);
}
