/* SPDX-License-Identifier: MIT */
/* One `--set key=value` or KEEL_* value through the parser of each type: durations, sizes,
 * addresses, integers, lists, choices. The first byte picks the key; the rest is the text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config-internal.h"
#include "macro-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const choices[] = { "ec", "rsa", NULL };
static const keel_config_key keys[] = {
    { .key = "a.duration", .type = KEEL_CONFIG_DURATION, .min = 1000, .max = 3600000000 },
    { .key = "a.size", .type = KEEL_CONFIG_SIZE, .min = 1, .max = 1 << 30 },
    { .key = "a.address", .type = KEEL_CONFIG_ADDRESS },
    { .key = "a.int", .type = KEEL_CONFIG_INT, .min = -5, .max = 1000000 },
    { .key = "a.list", .type = KEEL_CONFIG_LIST },
    { .key = "a.enum", .type = KEEL_CONFIG_ENUM, .choices = choices },
    { .key = "a.bool", .type = KEEL_CONFIG_BOOL },
    { .key = "a.path", .type = KEEL_CONFIG_PATH },
    { .key = "a.string", .type = KEEL_CONFIG_STRING },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    const keel_config_key *k = &keys[data[0] % ELEMENTSOF(keys)];
    char *text = strndup((const char *) data + 1, size - 1), *error = NULL;
    keel_config_field field;
    memset(&field, 0, sizeof field);
    if (!text)
        return 0;
    int r = keel__config_parse_value(k, text, &field, &error);
    if (r >= 0)
        keel__config_value_done(k, &field);
    else if (!error && r != -ENOMEM)
        abort(); /* a refused value always says why */
    free(error);
    free(text);
    return 0;
}
