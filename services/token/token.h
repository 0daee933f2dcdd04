/* SPDX-License-Identifier: MIT */
#pragma once

#include <keel/config.h>

#include "jwt.h"

/* What the token service and the `keel token` command share: the token.* configuration. */
typedef struct token_config {
    keel_address address;
    keel_usec_t refresh_interval, expiry, memory_report_interval;
    int64_t cache_size;
    char *issuer;
} token_config;

/* The effective token.* configuration (valid once the configure event has run). */
const token_config *token_get_config(void);
/* The issuer and expiry tokens are made with, from the configuration. */
token_params token_get_params(void);

/* Declares the `token` command and observes it (command.c). */
int token_command_register(keel_app *app);
