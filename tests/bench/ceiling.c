/* SPDX-License-Identifier: MIT */
/*
 * The load generator's ceiling (make bench-check): an HTTP server that does nothing but read
 * whatever comes and answer each read with a constant 200, on one epoll thread. No server can be
 * faster under the same client, so its rate ÷ nginx's is the most any ratio against nginx can
 * show on this machine. Usage: ceiling PORT (127.0.0.1); it runs until killed.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static const char ANSWER[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

static int listen_on(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 || bind(fd, (struct sockaddr *) &a, sizeof a) < 0 ||
        listen(fd, SOMAXCONN) < 0)
        return -1;
    return fd;
}

static void take(int ep, int listener)
{
    int fd, on = 1;
    while ((fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &(struct epoll_event){ .events = EPOLLIN, .data.fd = fd }) < 0)
            close(fd);
    }
}

int main(int argc, char **argv)
{
    int listener = argc == 2 ? listen_on(atoi(argv[1])) : -1, ep = epoll_create1(EPOLL_CLOEXEC);
    if (listener < 0 || ep < 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, listener, &(struct epoll_event){ .events = EPOLLIN, .data.fd = listener }) < 0) {
        fprintf(stderr, "usage: ceiling PORT (a free port on 127.0.0.1)\n");
        return 2;
    }
    char buf[16384];
    for (;;) {
        struct epoll_event ev[64];
        int n = epoll_wait(ep, ev, 64, -1);
        for (int i = 0; i < n; i++) {
            int fd = ev[i].data.fd;
            if (fd == listener) {
                take(ep, listener);
                continue;
            }
            if (recv(fd, buf, sizeof buf, 0) <= 0 || send(fd, ANSWER, sizeof ANSWER - 1, MSG_NOSIGNAL) < 0)
                close(fd);
        }
    }
}
