/* SPDX-License-Identifier: MIT */
/* JWT claims and the /token answer written from any strings (an issuer, a domain and a role that
 * passed or bypassed the header checks) read back by a strict JSON parser as exactly what went
 * in: the escaping of token_claims_json() and token_response_json() round-trips every byte. The
 * input is four NUL-separated strings. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The @i-th NUL-separated field of @s (@size bytes, NUL-terminated after them), or "". */
static const char *field(const char *s, size_t size, int i)
{
    const char *p = s, *end = s + size;
    while (i-- > 0 && p < end)
        p += strlen(p) + 1;
    return p < end ? p : "";
}

static void expect(const json_t *o, const char *key, const char *want)
{
    const char *got = json_string_value(json_object_get(o, key));
    if (!got || strcmp(got, want) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    token_claims c = { .iss = field(s, size, 0),
                       .sub = field(s, size, 1),
                       .aud = field(s, size, 2),
                       .scope = field(s, size, 3),
                       .iat = 1796000000,
                       .nbf = 1796000000,
                       .exp = 1796003600,
                       .jti = "AAAAAAAAAAAAAAAAAAAAAA" };
    char *json = NULL, *answer = NULL;
    if (token_claims_json(&c, &json) >= 0) {
        json_error_t err;
        json_t *o = json_loads(json, JSON_REJECT_DUPLICATES, &err);
        if (!o) /* invalid UTF-8 in, escaped out: still JSON */
            abort();
        /* Valid UTF-8 comes back byte for byte; other bytes come back as U+FFFD, never raw. */
        if (json_object_size(o) != 8 || json_integer_value(json_object_get(o, "exp")) != c.exp)
            abort();
        expect(o, "jti", c.jti);
        const char *keys[] = { "iss", "sub", "aud", "scope" }, *values[] = { c.iss, c.sub, c.aud, c.scope };
        for (int i = 0; i < 4; i++) {
            json_t *valid = json_string(values[i]); /* NULL when not UTF-8 */
            if (valid)
                expect(o, keys[i], values[i]);
            json_decref(valid);
        }
        json_decref(o);
    }
    if (token_response_json(field(s, size, 0), 5 * KEEL_USEC_PER_SEC, 0, field(s, size, 3), &answer) >= 0) {
        json_t *o = json_loads(answer, JSON_REJECT_DUPLICATES, NULL);
        if (!o || json_integer_value(json_object_get(o, "expires_in")) != 5)
            abort();
        json_decref(o);
    }
    free(json);
    free(answer);
    free(s);
    return 0;
}
