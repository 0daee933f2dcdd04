/* SPDX-License-Identifier: MIT */
#pragma once

#include <keel/app.h>

#include "jwt.h"

/* What the token service and the `keel token` command share. */

/* The issuer and expiry tokens are made with, from the configuration. */
token_params token_get_params(void);

/* Declares the `token` command and observes it (command.c). */
int token_command_register(keel_app *app);
