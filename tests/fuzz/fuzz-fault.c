/* SPDX-License-Identifier: MIT */
/* KEEL_FAULT specs: parsed or refused with a message naming the bad part. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fault-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *spec = strndup((const char *) data, size), *error = NULL;
    if (!spec)
        return 0;
    int r = keel__faults_parse(spec, &error);
    if (r < 0 && !error && r != -ENOMEM)
        abort();
    keel__faults_clear();
    free(error);
    free(spec);
    return 0;
}
