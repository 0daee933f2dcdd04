/* SPDX-License-Identifier: MIT */
/* Replies from a DNS server, which the dns-01 solver reads from the network
 * (services/certificate/dns-message.c): the header and TSIG record checked against a key and a
 * request's MAC, a TXT answer, an SOA owner. None may read past the reply; a name that comes
 * back is lower case, ends in one dot and fits DNS01_NAME_MAX. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns01.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > DNS01_NAME_MAX || name[n - 1] != '.')
        abort();
    for (size_t i = 0; i < n; i++)
        if (isupper((unsigned char) name[i]))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly @size bytes, so that a read past the end is one past a heap block. */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    dns01_key k = { .name = "keel-test.", .algorithm = size % 2 ? DNS01_HMAC_SHA512 : DNS01_HMAC_SHA256, .secret_size = 32 };
    uint8_t request_mac[64] = { 1, 2, 3 };
    dns01_reply reply;
    if (dns01_parse_reply(copy, size, &k, request_mac, 32, &reply) == 0 && reply.tsig_verified && !reply.tsig)
        abort();
    (void) dns01_parse_reply(copy, size, NULL, NULL, 0, &reply);
    (void) dns01_reply_has_txt(copy, size, "_acme-challenge.example.test", "61rBZ_4knHblO0MNoxFsXZ_eTFUHum0B6IVRbhvUn5I");
    char zone[DNS01_NAME_MAX + 1];
    if (dns01_reply_soa_owner(copy, size, zone) == 0)
        check_name(zone);
    free(copy);
    return 0;
}
