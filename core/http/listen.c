/* SPDX-License-Identifier: MIT */
/* Where a server listens: the socket systemd passed under the service's name, or one bound here.
 * The list systemd passes also holds the blobs of its file descriptor store (core/app/fdstore.c):
 * memfds, or /dev/null once taken, which sd_is_socket_inet() turns down whatever their name. */
#include <fcntl.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <systemd/sd-daemon.h>

#include "http-internal.h"

int keel__http_activated_socket(const char *name)
{
    char **names = NULL;
    int n = sd_listen_fds_with_names(0, &names), fd = -ENOENT;
    for (int i = 0; i < n; i++) {
        if (fd < 0 && names && streq(names[i], name) && sd_is_socket_inet(SD_LISTEN_FDS_START + i, 0, SOCK_STREAM, 1, 0) > 0)
            fd = SD_LISTEN_FDS_START + i;
        free(names ? names[i] : NULL);
    }
    free(names);
    return fd;
}

static int bind_one(const struct sockaddr *sa, socklen_t len)
{
    _cleanup_close_ int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int on = 1, off = 0;
    if (fd < 0)
        return -errno;
    (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (sa->sa_family == AF_INET6) /* "[::]" takes IPv4 too */
        (void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    if (bind(fd, sa, len) < 0 || listen(fd, SOMAXCONN) < 0)
        return -errno;
    return TAKE_FD(fd);
}

int keel__http_address_listen(const keel_address *a, char *why, size_t why_size)
{
    keel_assert_return(a, -EINVAL);
    char port[8];
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *ai = NULL;
    (void) snprintf(port, sizeof port, "%u", a->port);
    if (!a->host[0]) { /* every address: IPv6 dual-stack where there is IPv6 */
        struct sockaddr_in6 any6 = { .sin6_family = AF_INET6, .sin6_port = htons(a->port), .sin6_addr = IN6ADDR_ANY_INIT };
        int fd = bind_one((struct sockaddr *) &any6, sizeof any6);
        if (fd != -EAFNOSUPPORT)
            return fd;
        hints.ai_family = AF_INET;
    }
    int r = getaddrinfo(a->host[0] ? a->host : NULL, port, &hints, &ai);
    if (r != 0) {
        int error = r == EAI_SYSTEM ? -errno : r == EAI_MEMORY ? -ENOMEM : -EADDRNOTAVAIL;
        if (why) /* EADDRNOTAVAIL alone reads "Cannot assign requested address", as if the host were not this one */
            (void) snprintf(why, why_size, "cannot resolve '%s': %s", a->host, gai_strerror(r));
        return error;
    }
    /* The first address that binds: "localhost" may be [::1] alone. */
    int fd = -EADDRNOTAVAIL;
    for (struct addrinfo *i = ai; i && fd < 0; i = i->ai_next)
        fd = bind_one(i->ai_addr, i->ai_addrlen);
    freeaddrinfo(ai);
    return fd;
}

int keel_address_listen(const keel_address *a)
{
    return keel__http_address_listen(a, NULL, 0);
}

int keel_address_listen_named(const keel_address *address, const char *name, bool *ret_activated)
{
    keel_assert_return(address && name, -EINVAL);
    int passed = keel__http_activated_socket(name);
    if (ret_activated)
        *ret_activated = passed >= 0;
    if (passed < 0)
        return keel_address_listen(address);
    /* A copy: systemd's stays open for the next listener that takes it (the agent's tls-alpn-01
     * responder listens only while an order is validated). */
    int fd = fcntl(passed, F_DUPFD_CLOEXEC, 3);
    if (fd < 0)
        return -errno;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        int r = -errno;
        (void) close(fd);
        return r;
    }
    return fd;
}

/* Whether the numeric @host is the address @ss is bound to; a name (localhost) is not compared. */
static bool host_differs(const char *host, const struct sockaddr_storage *ss)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (ss->ss_family == AF_INET && inet_pton(AF_INET, host, &a4) == 1)
        return a4.s_addr != ((const struct sockaddr_in *) ss)->sin_addr.s_addr;
    if (ss->ss_family == AF_INET6 && inet_pton(AF_INET6, host, &a6) == 1)
        return !IN6_ARE_ADDR_EQUAL(&a6, &((const struct sockaddr_in6 *) ss)->sin6_addr);
    if (ss->ss_family == AF_INET6 && inet_pton(AF_INET, host, &a4) == 1) { /* v4 in a dual-stack socket */
        const struct in6_addr *b = &((const struct sockaddr_in6 *) ss)->sin6_addr;
        return !IN6_IS_ADDR_V4MAPPED(b) || memcmp(&b->s6_addr[12], &a4, 4) != 0;
    }
    return false;
}

bool keel__http_describe_bound(keel_http_server *s, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *) &ss, &len) < 0)
        return false;
    keel__http_format_peer((struct sockaddr *) &ss, s->bound, sizeof s->bound);
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &ss;
        s->port = ntohs(in6->sin6_port);
        s->wildcard = IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
    } else {
        const struct sockaddr_in *in = (const struct sockaddr_in *) &ss;
        s->port = ntohs(in->sin_port);
        s->wildcard = in->sin_addr.s_addr == htonl(INADDR_ANY);
    }
    return (s->address.port != 0 && s->address.port != s->port) || (s->address.host[0] && host_differs(s->address.host, &ss));
}
