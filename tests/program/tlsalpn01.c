/* SPDX-License-Identifier: MIT */
/* The tls-alpn-01 responder (services/certificate/acme-tlsalpn01.c) on the command line, for
 * tests/integration/test_tlsalpn01.py:
 *
 *   tlsalpn01 HOST PORT IDENTIFIER KEY_AUTHORIZATION [IDENTIFIER KEY_AUTHORIZATION ...]
 *
 * listens at HOST:PORT (0: a free port), answers for each identifier, prints "ready PORT" and
 * serves until SIGTERM or SIGINT, then exits 0; on a failure it prints the responder's error and
 * exits 1 (2: bad usage). Like tests/program/dns01.c it links the agent's parts: the ACME client
 * does not select tls-alpn-01 yet. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "tlsalpn01.h"

int main(int argc, char **argv)
{
    if (argc < 5 || argc % 2 != 1 || strlen(argv[1]) >= sizeof(((keel_address *) 0)->host)) {
        fprintf(stderr, "usage: tlsalpn01 HOST PORT IDENTIFIER KEY_AUTHORIZATION [IDENTIFIER KEY_AUTHORIZATION ...]\n");
        return 2;
    }
    /* Blocked before the responder's thread exists, so that sigwait() below takes them. */
    sigset_t stop;
    (void) sigemptyset(&stop);
    (void) sigaddset(&stop, SIGTERM);
    (void) sigaddset(&stop, SIGINT);
    (void) pthread_sigmask(SIG_BLOCK, &stop, NULL);

    keel_address address = { .port = (uint16_t) atoi(argv[2]) };
    strcpy(address.host, argv[1]);
    cert_error e = { .text = "" };
    _cleanup_(tlsalpn01_responder_closep) tlsalpn01_responder *r = NULL;
    int ret = tlsalpn01_responder_open(&address, &r, &e);
    for (int i = 3; ret >= 0 && i < argc; i += 2)
        ret = tlsalpn01_add(r, argv[i], argv[i + 1], &e);
    if (ret < 0) {
        fprintf(stderr, "%s\n", e.text);
        return 1;
    }
    printf("ready %u\n", tlsalpn01_responder_port(r));
    (void) fflush(stdout);
    int signal;
    (void) sigwait(&stop, &signal);
    return 0;
}
