/* SPDX-License-Identifier: MIT */
/*
 * The framework's own configuration keys (state_dir, log.*, shutdown.*, http.*): their table and
 * the struct they are read into. The app holds that struct; its room reads it through
 * keel__app_settings().
 */
#pragma once

#include <keel/config.h>
#include <keel/log.h>

typedef struct keel_core_settings {
    char *state_dir;
    char *pidfile;
    int log_level;  /* index into keel__log_level_choices */
    int log_format; /* keel_log_format */
    keel_usec_t shutdown_timeout;
    keel_usec_t shutdown_delay;
    keel_usec_t start_delay_jitter;
    char **plugins_disabled;
    int64_t http_connection_limit;
    keel_usec_t http_connection_timeout, http_request_header_timeout, http_request_body_timeout;
    int64_t http_connection_limit_per_client;
    uint64_t http_header_limit;
} keel_core_settings;

extern const keel_config_key keel__core_settings_table[];
extern const size_t keel__core_settings_table_size;
extern const char *const keel__log_level_choices[];
/* keel__log_level_choices index -> keel_log_level */
keel_log_level keel__log_level_from_choice(int choice);
