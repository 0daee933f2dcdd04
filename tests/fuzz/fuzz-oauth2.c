/* SPDX-License-Identifier: MIT */
/* An OAuth2 issuer's answer to the client credentials grant, as any server may send it: the
 * first byte picks the HTTP status, the rest is the body. A token comes out only of a 200 with an
 * access_token and an expiry in range; every refusal names why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oauth2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned statuses[] = { 200, 200, 200, 400, 401, 500 };
    if (size == 0)
        return 0;
    char *body = malloc(size);
    if (!body)
        return 0;
    memcpy(body, data + 1, size - 1);
    body[size - 1] = '\0';
    keel_fetch_response resp = { .status = statuses[data[0] % 6], .body = body, .size = size - 1, .headers = (char *) "" };
    token_minted t = { 0 };
    char why[512] = "";
    keel_usec_t now = 1000 * KEEL_USEC_PER_SEC;
    int r = oauth2_parse_answer(&resp, now, &t, why, sizeof why);
    if (r < 0 && (!why[0] || t.jwt))
        abort(); /* a refusal names its reason and hands out nothing */
    if (r >= 0 && (resp.status != 200 || !t.jwt || !t.jwt[0] || t.expires <= now))
        abort();
    for (const char *p = r >= 0 ? t.jwt : ""; *p; p++)
        if ((unsigned char) *p < 0x20 || (unsigned char) *p > 0x7e)
            abort(); /* it goes into a response header: VSCHAR only */
    token_minted_done(&t);
    free(body);
    return 0;
}
