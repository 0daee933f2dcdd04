/* SPDX-License-Identifier: MIT */
/* Configuration files as an operator (or an attacker with write access to a profile) writes them:
 * the YAML parser must return items or an error naming file, line and column, never crash, leak
 * or read out of bounds, whatever the bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    keel_config_item *items = NULL;
    size_t n = 0;
    char *error = NULL;
    int r = keel__config_yaml_parse_file("fuzz.yaml", (const char *) data, size, &items, &n, &error);
    if (r < 0 && (!error || strncmp(error, "fuzz.yaml", 9) != 0) && r != -ENOMEM)
        abort(); /* every failure names the file */
    keel__config_items_free(items, n);
    free(error);
    return 0;
}
