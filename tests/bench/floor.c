/* SPDX-License-Identifier: MIT */
/*
 * The floor keel's start-up is measured against (tests/bench/check.py): the least a daemon of
 * three listeners under systemd must do. It binds three sockets on 127.0.0.1, says READY=1 and
 * waits for SIGTERM; with --version it prints a line and exits, as an empty program linked with
 * libsystemd alone. Other arguments (bench-startup passes keel's) are ignored.
 */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

static int listener(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(fd, SOMAXCONN) < 0)
        return -1;
    return fd;
}

int main(int argc, char **argv)
{
    sigset_t term;
    int sig;
    if (argc > 1 && strcmp(argv[1], "--version") == 0)
        return puts("floor 1") < 0;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_BLOCK, &term, NULL);
    for (int i = 0; i < 3; i++)
        if (listener() < 0)
            return 1;
    if (sd_notify(0, "READY=1") < 0)
        return 1;
    return sigwait(&term, &sig) != 0;
}
