/* SPDX-License-Identifier: MIT */
/*
 * tests/bench/ceiling.c with io_uring instead of epoll: the same do-nothing server (read whatever
 * comes, answer each read with a constant 200), but every receive and answer of a turn of the loop
 * goes to the kernel in one io_uring_enter(). It measures what batching system calls would be worth
 * on this machine, where a system call costs ~1.2 µs before it does anything (performance.md):
 * epoll needs a recv() and a send() per request, this one call per turn. A measuring stick for
 * issue 24's CPU floor, not a server. Usage: ceiling-uring PORT (127.0.0.1); it runs until killed.
 */
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONNS 1024
#define BUF   4096

static const char ANSWER[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/* What a completion was for: the operation in the low bits, the descriptor above them. */
enum { OP_ACCEPT, OP_RECV, OP_SEND };
static char bufs[CONNS][BUF];

static int listen_on(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 || bind(fd, (struct sockaddr *) &a, sizeof a) < 0 ||
        listen(fd, SOMAXCONN) < 0)
        return -1;
    return fd;
}

static struct io_uring_sqe *sqe(struct io_uring *ring)
{
    struct io_uring_sqe *s = io_uring_get_sqe(ring);
    if (!s) { /* the queue is full: hand what is in it to the kernel first */
        (void) io_uring_submit(ring);
        s = io_uring_get_sqe(ring);
    }
    return s;
}

static void arm(struct io_uring *ring, int op, int fd)
{
    struct io_uring_sqe *s = sqe(ring);
    if (op == OP_ACCEPT)
        io_uring_prep_multishot_accept(s, fd, NULL, NULL, SOCK_CLOEXEC);
    else if (op == OP_RECV)
        io_uring_prep_recv(s, fd, bufs[fd], BUF, 0);
    else
        io_uring_prep_send(s, fd, ANSWER, sizeof ANSWER - 1, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(s, (uint64_t) fd << 2 | (uint64_t) op);
}

static void complete(struct io_uring *ring, int listener, const struct io_uring_cqe *c)
{
    int op = (int) (c->user_data & 3), fd = (int) (c->user_data >> 2), on = 1;
    if (op == OP_ACCEPT) {
        if (c->res >= 0 && c->res < CONNS) {
            (void) setsockopt(c->res, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
            arm(ring, OP_RECV, c->res);
        } else if (c->res >= 0)
            close(c->res);
        if (!(c->flags & IORING_CQE_F_MORE))
            arm(ring, OP_ACCEPT, listener);
    } else if (op == OP_RECV) {
        if (c->res <= 0) {
            close(fd);
            return;
        }
        arm(ring, OP_SEND, fd);
        arm(ring, OP_RECV, fd);
    }
}

int main(int argc, char **argv)
{
    int listener = argc == 2 ? listen_on(atoi(argv[1])) : -1;
    struct io_uring ring;
    struct io_uring_params p = { .flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN };
    if (listener < 0 || io_uring_queue_init_params(4096, &ring, &p) < 0) {
        fprintf(stderr, "usage: ceiling-uring PORT (a free port on 127.0.0.1; needs io_uring)\n");
        return 2;
    }
    arm(&ring, OP_ACCEPT, listener);
    for (;;) {
        struct io_uring_cqe *c;
        unsigned head, n = 0;
        if (io_uring_submit_and_wait(&ring, 1) < 0)
            return 1;
        io_uring_for_each_cqe(&ring, head, c)
        {
            complete(&ring, listener, c);
            n++;
        }
        io_uring_cq_advance(&ring, n);
    }
}
