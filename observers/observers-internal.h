/* SPDX-License-Identifier: MIT */
/* The standard observers: each file of observers/ registers its own, called by
 * keel__app_register_plugins() unless the program runs bare. */
#pragma once

#include <keel/app.h>

int keel__observers_commands_register(keel_app *app);
int keel__observers_config_register(keel_app *app);
int keel__observers_pidfile_register(keel_app *app);
int keel__observers_readiness_register(keel_app *app);
int keel__observers_systemd_register(keel_app *app);
