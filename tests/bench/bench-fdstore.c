/* SPDX-License-Identifier: MIT */
/*
 * The token cache kept across a restart (docs/decisions/0020), for N cached tokens of 1 KiB (an
 * issuer's JWT access token is about that): the payload and blob sizes, the time the stop spends
 * keeping it (token_kept_encode() and keel_fdstore_save(), to a service manager on this machine
 * that takes the memfd and answers the barrier) and the time the start spends restoring it
 * (keel_fdstore_load() from LISTEN_FDS, then token_kept_decode() into an empty cache). Medians.
 */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <systemd/sd-daemon.h>

#include <keel/fdstore.h>

#include "bench.h"
#include "kept.h"

#define RUNS  9
#define TOKEN 1024
#define KEY   "0123456789abcdef0123456789abcdef"
#define SRC   "oauth2 https://idp.example.com/oauth2/token keel-agent {domain}:role.{role}"

static int manager;          /* the fake service manager's socket */
static atomic_int kept = -1; /* the last blob it took */
static pthread_t reader;     /* takes FDSTORE=1 and answers BARRIER=1, as systemd does */

static void *read_messages(void *userdata)
{
    for (;;) {
        char buf[512];
        union {
            struct cmsghdr h;
            uint8_t b[CMSG_SPACE(sizeof(int))];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = sizeof buf - 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof control };
        ssize_t n = recvmsg(manager, &mh, MSG_CMSG_CLOEXEC);
        if (n <= 0)
            return NULL;
        buf[n] = '\0';
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        int fd = -1;
        if (c && c->cmsg_type == SCM_RIGHTS)
            memcpy(&fd, CMSG_DATA(c), sizeof fd);
        if (fd >= 0 && strstr(buf, "FDSTORE=1")) {
            int old = atomic_exchange(&kept, fd); /* read by the main thread once the barrier is answered */
            if (old >= 0)
                close(old);
        } else if (fd >= 0)
            close(fd);
    }
}

static void start_manager(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    (void) snprintf(sa.sun_path + 1, sizeof sa.sun_path - 1, "keel-bench-fdstore-%d", (int) getpid());
    manager = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    socklen_t len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + strlen(sa.sun_path + 1));
    if (manager < 0 || bind(manager, (struct sockaddr *) &sa, len) < 0 || pthread_create(&reader, NULL, read_messages, NULL) != 0)
        abort();
    char path[sizeof sa.sun_path + 1];
    (void) snprintf(path, sizeof path, "@%s", sa.sun_path + 1);
    setenv("NOTIFY_SOCKET", path, 1);
}

static int no_mint(const char *domain, const char *role, keel_usec_t now, void *userdata, token_minted *ret)
{
    return -EIO;
}

static token_cache *cache_of(size_t n, keel_usec_t now)
{
    token_cache *c = token_cache_new(n, no_mint, NULL);
    char *jwt = malloc(TOKEN + 1);
    if (!c || !jwt)
        abort();
    memset(jwt, 'j', TOKEN);
    jwt[TOKEN] = '\0';
    for (size_t i = 0; i < n; i++) {
        char domain[32];
        (void) snprintf(domain, sizeof domain, "domain-%zu", i);
        if (token_cache_put(c, domain, "reader", &(token_minted){ .jwt = jwt, .expires = now + 3600 * KEEL_USEC_PER_SEC }) < 0)
            abort();
    }
    free(jwt);
    return c;
}

/* One stop: ms. */
static double keep(token_cache *c, keel_usec_t now, size_t *ret_payload)
{
    char buf[4096];
    keel_strbuf sb = KEEL_STRBUF_INIT_GROWABLE(buf);
    size_t count = 0;
    uint64_t t = now_ns();
    if (token_kept_encode(c, SRC, now, KEEL_FDSTORE_SIZE_MAX, &sb, &count) < 0 ||
        keel_fdstore_save(TOKEN_KEPT_NAME, sb.buf, sb.len, KEY, sizeof KEY - 1) != 1)
        abort();
    double ms = (double) (now_ns() - t) / 1e6;
    *ret_payload = sb.len;
    keel_strbuf_done(&sb);
    return ms;
}

/* One start, with the blob passed at SD_LISTEN_FDS_START: ms. */
static double restore(size_t n, keel_usec_t now)
{
    char pid[16];
    if (dup2(atomic_load(&kept), SD_LISTEN_FDS_START) < 0)
        abort();
    (void) snprintf(pid, sizeof pid, "%d", (int) getpid());
    setenv("LISTEN_PID", pid, 1);
    token_cache *c = token_cache_new(n, no_mint, NULL);
    void *payload = NULL;
    size_t size = 0;
    token_kept_stats st;
    uint64_t t = now_ns();
    if (keel_fdstore_load(TOKEN_KEPT_NAME, KEY, sizeof KEY - 1, &payload, &size, NULL) < 0 ||
        token_kept_decode(c, payload, size, SRC, now, &st) < 0 || st.restored != n)
        abort();
    double ms = (double) (now_ns() - t) / 1e6;
    free(payload);
    token_cache_free(c);
    return ms;
}

int main(void)
{
    static const size_t sizes[] = { 1, 100, 1000, 10000 };
    /* fd 3 is where the blob is passed: held until then, so that none of the bench's own lands there. */
    if (open("/dev/null", O_RDONLY) != SD_LISTEN_FDS_START)
        abort();
    start_manager();
    setenv("LISTEN_FDS", "1", 1);
    setenv("LISTEN_FDNAMES", TOKEN_KEPT_NAME, 1);
    keel_usec_t now = keel_now_realtime();
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t n = sizes[i], payload = 0;
        token_cache *c = cache_of(n, now);
        double save[RUNS], load[RUNS];
        struct stat st;
        for (size_t r = 0; r < RUNS; r++) {
            save[r] = keep(c, now, &payload);
            load[r] = restore(n, now);
        }
        if (fstat(atomic_load(&kept), &st) < 0)
            abort();
        printf("bench-fdstore: tokens=%zu token_bytes=%d payload_bytes=%zu blob_bytes=%lld save_ms=%.3f load_ms=%.3f\n", n, TOKEN,
               payload, (long long) st.st_size, median(save, RUNS), median(load, RUNS));
        token_cache_free(c);
    }
    return 0;
}
