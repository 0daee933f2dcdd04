/* SPDX-License-Identifier: MIT */
/*
 * journald's native protocol, written here rather than through sd_journal_sendv(): fields of any
 * length and content go out as they are (a value with a newline, or binary, in the protocol's
 * length-prefixed form), a record too large for one datagram goes as a sealed memfd, and the
 * socket can be another (KEEL_JOURNAL_SOCKET) for tests and for containers that mount the
 * journal's socket elsewhere. https://systemd.io/JOURNAL_NATIVE_PROTOCOL/
 */
#include <endian.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>

#include <keel/fileio.h>

#include "journal-internal.h"
#include "macro-internal.h"

#define JOURNAL_SOCKET "/run/systemd/journal/socket"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int journal_fd = -EBADF;
static struct sockaddr_un journal_address;
static socklen_t journal_address_len;

const char *keel__journal_socket(void)
{
    const char *e = getenv("KEEL_JOURNAL_SOCKET");
    return e && *e ? e : JOURNAL_SOCKET;
}

static void open_socket(void)
{
    const char *path = keel__journal_socket();
    if (strlen(path) >= sizeof journal_address.sun_path)
        return;
    journal_address.sun_family = AF_UNIX;
    memcpy(journal_address.sun_path, path, strlen(path) + 1);
    journal_address_len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
    journal_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
}

/* The iovecs of one field: NAME=value\n, or NAME\n<le64 length>value\n for a value the plain form
 * cannot carry. */
static size_t field_iov(const keel_journal_field *f, uint64_t *len_le, struct iovec *iov)
{
    bool plain = !memchr(f->value, '\n', f->size);
    iov[0] = (struct iovec){ .iov_base = (void *) f->name, .iov_len = strlen(f->name) };
    if (plain) {
        iov[1] = (struct iovec){ .iov_base = (void *) "=", .iov_len = 1 };
        iov[2] = (struct iovec){ .iov_base = (void *) f->value, .iov_len = f->size };
        iov[3] = (struct iovec){ .iov_base = (void *) "\n", .iov_len = 1 };
        return 4;
    }
    *len_le = htole64((uint64_t) f->size);
    iov[1] = (struct iovec){ .iov_base = (void *) "\n", .iov_len = 1 };
    iov[2] = (struct iovec){ .iov_base = len_le, .iov_len = sizeof *len_le };
    iov[3] = (struct iovec){ .iov_base = (void *) f->value, .iov_len = f->size };
    iov[4] = (struct iovec){ .iov_base = (void *) "\n", .iov_len = 1 };
    return 5;
}

/* Too large for a datagram: the record in a sealed memfd, passed with SCM_RIGHTS. */
static int send_memfd(const struct iovec *iov, size_t n)
{
    _cleanup_close_ int fd = memfd_create("keel-journal", MFD_ALLOW_SEALING | MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    for (size_t i = 0; i < n; i++) {
        int r = keel_fd_write_all(fd, iov[i].iov_base, iov[i].iov_len);
        if (r < 0)
            return r;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
        return -errno;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } control = {};
    struct msghdr mh = {
        .msg_name = &journal_address, .msg_namelen = journal_address_len, .msg_control = &control, .msg_controllen = sizeof control
    };
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    *c = (struct cmsghdr){ .cmsg_level = SOL_SOCKET, .cmsg_type = SCM_RIGHTS, .cmsg_len = CMSG_LEN(sizeof(int)) };
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    return sendmsg(journal_fd, &mh, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

int keel__journal_send(const keel_journal_field *fields, size_t n)
{
    (void) pthread_once(&once, open_socket);
    if (journal_fd < 0)
        return -ENOTCONN;
    if (n > KEEL_JOURNAL_FIELDS_MAX)
        return -E2BIG;
    struct iovec iov[KEEL_JOURNAL_FIELDS_MAX * 5];
    uint64_t lens[KEEL_JOURNAL_FIELDS_MAX];
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += field_iov(&fields[i], &lens[i], iov + k);
    struct msghdr mh = { .msg_name = &journal_address, .msg_namelen = journal_address_len, .msg_iov = iov, .msg_iovlen = k };
    if (sendmsg(journal_fd, &mh, MSG_NOSIGNAL) >= 0)
        return 0;
    if (errno != EMSGSIZE && errno != ENOBUFS)
        return -errno;
    return send_memfd(iov, k);
}
