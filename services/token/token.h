/* SPDX-License-Identifier: MIT */
#pragma once

#include <keel/service.h>

#include "jwt.h"
#include "tls-server.h"

/* What the token service and the `keel token` command share. */

/* The issuer and expiry tokens are made with, from the token service @s's configuration as loaded
 * (main thread). */
token_params token_config_params(keel_service *s);

/* Declares the `token` command and observes it (command.c); @token is the token service, whose
 * configuration the command mints with. */
int token_command_register(keel_app *app, keel_service *token);
