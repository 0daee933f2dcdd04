/* SPDX-License-Identifier: MIT */
/* A response head as any ACME or OAuth2 server may send it, read by keel_fetch_response_header()
 * for Retry-After, Replay-Nonce and Location: what comes out fits the buffer, is NUL-terminated,
 * and holds no line break (a value never runs into the next field). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <keel/fetch.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = { "Retry-After", "Replay-Nonce", "Location", "Link" };
    char *head = malloc(size + 1);
    if (!head)
        return 0;
    memcpy(head, data, size);
    head[size] = '\0';
    keel_fetch_response resp = { .status = 200, .body = (char *) "", .headers = head };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        for (size_t cap = 1; cap <= 65; cap += 32) {
            char buf[65];
            memset(buf, 'x', sizeof buf);
            const char *v = keel_fetch_response_header(&resp, names[i], buf, cap);
            if (v && (v != buf || memchr(buf, '\0', cap) == NULL || strpbrk(buf, "\r\n")))
                abort();
        }
    }
    free(head);
    return 0;
}
