/* SPDX-License-Identifier: MIT */
#pragma once

#include <keel/app.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The types a configuration value can have; one parser each, shared by every key. */
typedef enum keel_config_type {
    KEEL_CONFIG_STRING,   /* char * */
    KEEL_CONFIG_PATH,     /* char *, made absolute against the starting directory; empty only if the default is '' */
    KEEL_CONFIG_BOOL,     /* bool: true/false/yes/no/on/off */
    KEEL_CONFIG_INT,      /* int64_t, within [min, max] */
    KEEL_CONFIG_DURATION, /* keel_usec_t: "250ms", "30s", "1h30m", "24h"; bounds in usec */
    KEEL_CONFIG_SIZE,     /* uint64_t bytes: "512", "64K", "8MiB", "1G"; bounds in bytes */
    KEEL_CONFIG_ADDRESS,  /* keel_address: "host:port", ":port" (every address), "[::1]:port" */
    KEEL_CONFIG_LIST,     /* char ** (NULL-terminated): a YAML sequence of strings */
    KEEL_CONFIG_ENUM,     /* int: the index of the value in .choices */
    _KEEL_CONFIG_TYPE_MAX,
    _KEEL_CONFIG_TYPE_INVALID = -EINVAL,
} keel_config_type;

/** A listening address. An empty host means every address. Port 0 asks for a free port. */
typedef struct keel_address {
    char host[256];
    uint16_t port;
} keel_address;

/**
 * One configuration key: a row of a table. The value lives in the owner's storage struct at
 * @offset; its default is written as YAML text in @def, parsed by the same parser as any other
 * layer, so the table is the only place defaults live.
 */
typedef struct keel_config_key {
    const char *key; /* "shutdown.timeout": dotted, lower case, [a-z0-9_.] */
    keel_config_type type;
    size_t offset;              /* offsetof() the field in the storage struct */
    const char *def;            /* default, as YAML text ("30s", "[]", "127.0.0.1:8880") */
    int64_t min, max;           /* INT, DURATION, SIZE: inclusive bounds; both 0 means none */
    const char *const *choices; /* ENUM: the accepted names, NULL-terminated */
    bool live;                  /* may change on refresh; otherwise a change needs a restart */
    const char *help;           /* one line for `keel config --help` and the docs */
} keel_config_key;

/**
 * Adds a table of @n_keys keys whose values live in @storage, which the app fills with the
 * defaults at once and with the effective configuration in configure.before. Strings and lists
 * in @storage are owned by the app (freed and replaced on reload). Call before the `configure`
 * event (from a plugin's register function or a command or init observer). The rows are
 * borrowed: they must outlive the app. Returns -EEXIST when a key is already known, is another
 * key's section ("a" beside "a.b") or has another key's environment variable ("a.b_c" beside
 * "a_b.c"), -EINVAL for a malformed row or default (a bug: the reason is logged at debug level),
 * -ESTALE once the configuration is loaded, -ENOMEM. A failed call adds no key.
 */
KEEL_API int keel_app_add_config(keel_app *app, const keel_config_key *keys, size_t n_keys, void *storage);

/** Where the effective value of @key came from ("default", "/etc/keel/keel.yaml:3:12",
 * "env KEEL_LOG_LEVEL", "--set"), or NULL for an unknown key. */
KEEL_API const char *keel_app_config_origin(const keel_app *app, const char *key);

/**
 * The effective value of @key, of any table (another service's too: "healthcheck.address"), as
 * the type its row declares — a `const keel_address *` for KEEL_CONFIG_ADDRESS, a `const char *const *`
 * for STRING and PATH, and so on — or NULL when the key is unknown or of another type than @type.
 * Valid on the main thread until the next refresh.
 */
KEEL_API const void *keel_app_config_value(const keel_app *app, const char *key, keel_config_type type);

#ifdef __cplusplus
}
#endif
