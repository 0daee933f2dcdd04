/* SPDX-License-Identifier: MIT */
/* X-Athenz-Domain / X-Athenz-Role values as any client sends them: accepted only when they are
 * safe to put in a token and a log line, refused with a reason otherwise. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *value = strndup((const char *) data, size), reason[256] = "";
    if (!value)
        return 0;
    int r = token_check_header("X-Athenz-Domain", value, reason, sizeof reason);
    if (r < 0 && !reason[0])
        abort(); /* a 400 always names what was wrong */
    if (r >= 0)
        for (const char *p = value; *p; p++)
            if (*p == '"' || *p == '\\' || (unsigned char) *p < 0x20 || (unsigned char) *p >= 0x7f)
                abort(); /* accepted values go into JSON claims and logs unescaped */
    free(value);
    return 0;
}
