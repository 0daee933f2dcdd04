/* SPDX-License-Identifier: MIT */
#include <stddef.h>

#include "settings-internal.h"
#include "macro-internal.h"

/* The same names keel_log_level_from_string() accepts, in keel_log_level order from "error". */
const char *const keel__log_level_choices[] = { "error", "warning", "notice", "info", "debug", NULL };

keel_log_level keel__log_level_from_choice(int choice)
{
    return (keel_log_level) (KEEL_LOG_ERROR + choice);
}

static const char *const log_format_choices[] = { "auto", "text", "json", "journal", NULL };

#define S(field) offsetof(keel_core_settings, field)
/* The framework's own keys; the single place their defaults live. */
const keel_config_key keel__core_settings_table[] = {
    { .key = "state_dir",
      .type = KEEL_CONFIG_PATH,
      .offset = S(state_dir),
      .def = "/var/lib/keel",
      .help = "directory for the program's state, one writer at a time (systemd's StateDirectory=)" },
    { .key = "pidfile",
      .type = KEEL_CONFIG_PATH,
      .offset = S(pidfile),
      .def = "''",
      .help = "PID file held with flock while running; empty for none" },
    { .key = "log.level",
      .type = KEEL_CONFIG_ENUM,
      .offset = S(log_level),
      .def = "info",
      .choices = keel__log_level_choices,
      .live = true,
      .help = "lowest level logged" },
    { .key = "log.format",
      .type = KEEL_CONFIG_ENUM,
      .offset = S(log_format),
      .def = "auto",
      .choices = log_format_choices,
      .live = true,
      .help = "auto (journal under systemd, else text), text, json or journal" },
    { .key = "shutdown.timeout",
      .type = KEEL_CONFIG_DURATION,
      .offset = S(shutdown_timeout),
      .def = "30s",
      .min = 1000,
      .max = 3600LL * 1000000,
      .live = true,
      .help = "budget for the whole stop; past it the process exits 2" },
    { .key = "start_delay_jitter",
      .type = KEEL_CONFIG_DURATION,
      .offset = S(start_delay_jitter),
      .def = "0s",
      .min = 0,
      .max = 3600LL * 1000000,
      .help = "serve and init first wait a random time below this, so that agents restarted together do not reach their issuers at "
              "once" },
    { .key = "shutdown.delay",
      .type = KEEL_CONFIG_DURATION,
      .offset = S(shutdown_delay),
      .def = "0s",
      .min = 0,
      .max = 600LL * 1000000,
      .live = true,
      .help = "wait after readiness turns 503, before servers close (Kubernetes: a few seconds)" },
    { .key = "plugins.disabled",
      .type = KEEL_CONFIG_LIST,
      .offset = S(plugins_disabled),
      .def = "[]",
      .help = "compiled-in plugins whose observers are removed once the configuration is loaded" },
    { .key = "http.connection_limit",
      .type = KEEL_CONFIG_INT,
      .offset = S(http_connection_limit),
      .def = "1024",
      .min = 1,
      .max = 65536,
      .help = "concurrent connections per HTTP server; more wait in the listen queue" },
    { .key = "http.connection_timeout",
      .type = KEEL_CONFIG_DURATION,
      .offset = S(http_connection_timeout),
      .def = "30s",
      .min = 1000000,
      .max = 3600LL * 1000000,
      .help = "a connection silent this long, in any phase but a request waiting for its handler, is closed" },
    { .key = "http.request_header_timeout",
      .type = KEEL_CONFIG_DURATION,
      .offset = S(http_request_header_timeout),
      .def = "10s",
      .min = 100000,
      .max = 3600LL * 1000000,
      .help = "a request's head must arrive this soon after the connection opened or the previous answer; else it is closed" },
    { .key = "http.request_body_timeout",
      .type = KEEL_CONFIG_DURATION,
      .offset = S(http_request_body_timeout),
      .def = "30s",
      .min = 100000,
      .max = 3600LL * 1000000,
      .help = "a request's body must arrive this soon after its head; else the connection is closed" },
    { .key = "http.connection_limit_per_client",
      .type = KEEL_CONFIG_INT,
      .offset = S(http_connection_limit_per_client),
      .def = "0",
      .min = 0,
      .max = 65536,
      .help = "concurrent connections per client address and server, more are closed at once; 0: no limit" },
    { .key = "http.header_limit",
      .type = KEEL_CONFIG_SIZE,
      .offset = S(http_header_limit),
      .def = "8KiB",
      .min = 4096,
      .max = 1048576,
      .help = "request line and headers per connection; larger requests get 431" },
};
#undef S
const size_t keel__core_settings_table_size = ELEMENTSOF(keel__core_settings_table);
