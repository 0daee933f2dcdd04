/* SPDX-License-Identifier: MIT */
/* The dns-01 solver (services/certificate/acme-dns01.c) on the command line, for
 * tests/integration/test_dns01.py, which drives it against a real knotd:
 *
 *   dns01 present|cleanup HOST PORT ZONE KEY ALGORITHM SECRET_FILE TIMEOUT_MS PROPAGATION_MS DOMAIN KEY_AUTHORIZATION
 *
 * prints the TXT value and exits 0, or prints the solver's error and exits 1 (2: bad usage). An
 * empty ZONE asks the server. Unlike the other programs here it links the agent's parts, as the
 * unit tests do: the solver is not wired into a command yet. */
#include <stdio.h>
#include <stdlib.h>

#include "dns01.h"

static int usage(void)
{
    fprintf(stderr, "usage: dns01 present|cleanup HOST PORT ZONE KEY ALGORITHM SECRET_FILE TIMEOUT_MS PROPAGATION_MS DOMAIN "
                    "KEY_AUTHORIZATION\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc != 12 || !STR_IN_SET(argv[1], "present", "cleanup") || strlen(argv[2]) >= sizeof(((keel_address *) 0)->host))
        return usage();
    dns01_config c = {
        .server.port = (uint16_t) atoi(argv[3]),
        .zone = argv[4],
        .tsig_name = argv[5],
        .tsig_algorithm = streq(argv[6], "hmac-sha512") ? DNS01_HMAC_SHA512 : DNS01_HMAC_SHA256,
        .tsig_secret_file = argv[7],
        .timeout = strtoull(argv[8], NULL, 10) * KEEL_USEC_PER_MSEC,
        .propagation = strtoull(argv[9], NULL, 10) * KEEL_USEC_PER_MSEC,
    };
    strcpy(c.server.host, argv[2]);
    cert_error e = { .text = "" };
    _cleanup_(dns01_solver_freep) dns01_solver *s = NULL;
    int r = dns01_solver_new(&c, &s, &e);
    if (r >= 0)
        r = streq(argv[1], "present") ? dns01_present(s, argv[10], argv[11], &e) : dns01_cleanup(s, argv[10], argv[11], &e);
    if (r < 0) {
        fprintf(stderr, "%s\n", e.text);
        return 1;
    }
    char value[44];
    if (dns01_txt_value(argv[11], value) >= 0)
        printf("%s\n", value);
    return 0;
}
