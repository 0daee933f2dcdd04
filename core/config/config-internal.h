/* SPDX-License-Identifier: MIT */
#pragma once

/* Layered YAML configuration (docs/configuration.md). Tables of keys (keel_config_key, public) are
 * registered with the storage their values live in; a load reads every layer into temporaries
 * and only then replaces the values in the storages, so a bad layer changes nothing.
 * Nothing here logs above debug level: failures come back as a negative errno and messages.
 * Not thread-safe: the main thread owns the configuration. */

#include <stdbool.h>
#include <stdio.h>

#include <keel/config.h>

/** The layered configuration: the registered tables, the origin of every value. */
/* As clang's -ferror-limit: past this many errors a load counts the rest, so that a file of
 * garbage cannot flood the log. */
#define KEEL_CONFIG_ERRORS_MAX 100

typedef struct keel_config keel_config;

/**
 * Creates an empty configuration for the program @name ("keel"): its keys are read from the
 * environment as NAME_SECTION_KEY (upper case, '-' and '.' as '_'), its profiles from
 * "<name>.P.yaml". NULL when out of memory or for a name that is not [a-z0-9-]+.
 */
keel_config *keel__config_new(const char *name);
/* The environment variables' prefix: "KEEL_". */
const char *keel__config_env_prefix(const keel_config *c);

/**
 * Frees @c, including the strings and lists it owns inside the registered storages (those
 * fields are left NULL). Accepts NULL; returns NULL.
 */
keel_config *keel__config_free(keel_config *c);

/**
 * Registers @n keys whose values live in @storage, at each row's offset. Both @keys and @storage
 * are borrowed: they must outlive @c (a static table and the app's settings struct).
 * Validates every row (key syntax [a-z0-9_] segments joined by '.', the type, the bounds, the
 * choices of an ENUM, the default parsed by the row's own parser) and writes all the defaults
 * into @storage at once; from then on the STRING, PATH and LIST fields there are owned by @c.
 * All or nothing: on failure nothing is registered and @storage is not touched.
 * Returns -EEXIST when a key is already known (or is a section of another key, or maps to the
 * same environment variable), -EINVAL for a malformed row or default (the reason is logged at
 * debug level), -ESTALE once the configuration has been loaded, -ENOMEM.
 */
int keel__config_add_table(keel_config *c, const keel_config_key *keys, size_t n, void *storage);

/** Where the layers above the built-in defaults come from. Every member may be NULL. */
typedef struct keel_config_sources {
    const char *defaults_file; /* layer 2: optional, a missing file is skipped */
    const char *app_file;      /* layer 3: --config; must exist when given */
    const char *profile;       /* layer 4: --profile P: "<dir of profile_base>/<name>.P.yaml", without a base
                                * "./<name>.P.yaml"; a P containing '/' is the path itself. Must exist when given. */
    const char *profile_base;  /* the application file a profile sits next to, read or not (/etc/NAME/NAME.yaml
                                * without --config: an operator's profiles are beside the operator's file, never
                                * beside the packaged defaults); NULL: app_file */
    char *const *environ;      /* layer 5: "NAME=value" strings; only <PREFIX><KEY> names of known keys are read */
    char *const *sets;         /* layer 6: "key=value" strings from --set, in order; later wins */
} keel_config_sources;

/* Takes the working directory as the base of relative KEEL_CONFIG_PATH values, once; before
 * --daemon leaves it. */
void keel__config_path_base_init(void);
/* @path against that base ("./x" and "x" alike), in a new string; NULL when out of memory. */
char *keel__config_path_absolute(const char *path);

/**
 * Reads every layer of @src in precedence order (built-in defaults < defaults file < app file <
 * profile < environment < --set) and, only when all of them parse, replaces the values in the
 * storages and records their origins. Values that do not change keep their storage untouched.
 * @src may be NULL (defaults only).
 * A bad file, key or value does not stop the load: every layer is read to the end, so that one
 * load finds every error (the first KEEL_CONFIG_ERRORS_MAX, then a line counting the rest).
 * Returns 0, or the errno of the first error: -EINVAL for bad configuration, -ENOENT for a
 * missing --config or profile file, another one when a file cannot be read; -ENOMEM. On failure
 * the storages are untouched and, when @ret_errors is not NULL, *ret_errors receives a strv of
 * messages, each naming what was wrong and where ("FILE:LINE:COL: ...", "env KEEL_X: ...",
 * "--set k=v: ..."), or NULL for -ENOMEM; on success *ret_errors is not written.
 */
int keel__config_load(keel_config *c, const keel_config_sources *src, char ***ret_errors);

/**
 * Like keel__config_load(), for a refresh: a key whose row is not .live and whose value would
 * change keeps its current value and origin, and its name is returned in *ret_refused (a strv,
 * sorted, possibly empty; written on success when @ret_refused is not NULL). Live keys whose
 * value changes are replaced; the values and origins replaced are kept until
 * keel__config_reload_undo() puts them back or keel__config_reload_forget() (or the next reload)
 * frees them, so nobody may keep pointers to old strings and lists across a refresh. Fails like
 * keel__config_load(), changing nothing.
 */
int keel__config_reload(keel_config *c, const keel_config_sources *src, char ***ret_refused, char ***ret_errors);
/* Puts back what the last reload replaced (values and origins); returns how many values changed
 * back. Nothing after a reload that failed, or once undone or forgotten. */
size_t keel__config_reload_undo(keel_config *c);
/* Frees what the last reload replaced: the refresh it was part of succeeded. */
void keel__config_reload_forget(keel_config *c);

/** Whether a load succeeded once: the storages hold the effective configuration. */
bool keel__config_loaded(const keel_config *c);

/**
 * Where the effective value of @key came from: "default", "FILE:LINE:COL" (of the value),
 * "env KEEL_X" or "--set". Borrowed, valid until the next load. NULL for an unknown key.
 */
const char *keel__config_origin(const keel_config *c, const char *key);
/** Where the value of @key lives, when it is of @type; NULL otherwise. */
const void *keel__config_value(const keel_config *c, const char *key, keel_config_type type);

/**
 * Prints every key to @f, one line each, sorted, fields separated by tabs: key, type ("duration"),
 * default (as written in its table), "live" or "restart", the environment variable, help. For
 * the manual's test and shell completion (`config --keys`).
 */
int keel__config_describe(const keel_config *c, FILE *f);

/**
 * Prints the effective configuration to @f, one line per key sorted by key:
 * "key: value   # origin", the value as YAML (lists in flow style "[a, b]", strings quoted
 * when YAML would read them differently). The output is itself a valid configuration file.
 * Returns 0, -ENOMEM, or -EIO when writing fails.
 */
int keel__config_dump(const keel_config *c, FILE *f);

/**
 * Parses @text, read as YAML (so "[a, b]" is a list and "'x'" a string), as the value of row
 * @k, bounds included, and writes it to @ret_field (a field of @k's type; strings and lists in
 * it are the caller's, free them with keel__config_value_done()). NULL @text is YAML's null.
 * Returns -EINVAL for a bad value, -ERANGE for one out of bounds or too large, -ENOMEM; on
 * failure *ret_error (when not NULL) receives "invalid duration 'abc' for shutdown.timeout:
 * expected ..." (no origin: the caller prefixes it), or NULL when out of memory.
 */
int keel__config_parse_value(const keel_config_key *k, const char *text, void *ret_field, char **ret_error);

/**
 * Formats a field of row @k's type back to YAML text that keel__config_parse_value() reads as
 * the same value: "30s", "1h30m", "64KiB", "[a, b]", "127.0.0.1:8880", "'a: b'". malloc'd;
 * NULL when out of memory.
 */
char *keel__config_format_value(const keel_config_key *k, const void *field);

/* ---- Internal to core/config*.c ---------------------------------------------------------- */

/* Room for a value of any type, so temporaries need not know the type. */
typedef union keel_config_field {
    char *string; /* STRING, PATH: owned, never NULL once parsed */
    bool boolean;
    int64_t integer;
    keel_usec_t duration;
    uint64_t size;
    keel_address address;
    char **list; /* LIST: owned strv, never NULL once parsed */
    int choice;  /* ENUM */
} keel_config_field;

/* A YAML leaf before it is typed: one scalar or a sequence of scalars. */
typedef struct keel_config_raw {
    char *text;  /* the scalar, owned; NULL for a sequence */
    char **list; /* the sequence's scalars, owned strv; NULL for a scalar */
    bool null;   /* a plain scalar YAML reads as null: empty, "~", "null" */
} keel_config_raw;

void keel__config_raw_done(keel_config_raw *v);

/* The name of a type in messages ("duration"), NULL when out of range. */
const char *keel__config_type_to_string(keel_config_type t);
/* Bytes the field of @t occupies in a storage struct; 0 when out of range. */
size_t keel__config_type_size(keel_config_type t);
/* Checks the parts of a row the type cares about: type in range, bounds only on INT, DURATION
 * and SIZE (min <= max, not negative for the unsigned ones), choices on ENUM (and only there).
 * -EINVAL with *ret_reason (static text) when not. */
int keel__config_check_row(const keel_config_key *k, const char **ret_reason);
/* Types @v as the value of row @k: keel__config_parse_value() without the YAML step. */
int keel__config_parse_raw(const keel_config_key *k, const keel_config_raw *v, void *ret_field, char **ret_error);
/* Frees what a field of @k's type owns and leaves the pointers NULL. */
void keel__config_value_done(const keel_config_key *k, void *field);
/* Whether two fields of @k's type hold the same value. */
bool keel__config_value_equal(const keel_config_key *k, const void *a, const void *b);
/* @s as a YAML scalar: unchanged when plain YAML reads it back as the same string, quoted
 * otherwise. @flow: it goes inside a flow sequence, where ",[]{}" matter too. NULL on OOM. */
char *keel__config_yaml_quote(const char *s, bool flow);

/* One node of a configuration file, flattened: a leaf or the mapping that opens a section. */
typedef struct keel_config_item {
    char *key;                                   /* dotted: "shutdown.timeout" */
    bool section;                                /* a mapping: its keys follow as their own items; @value is empty */
    keel_config_raw value;                       /* a leaf's value */
    unsigned key_line, key_column, line, column; /* 1-based marks of the key and the value */
} keel_config_item;

void keel__config_items_free(keel_config_item *items, size_t n);
/* Parses the YAML document @data (@size bytes, read from @path, which only names it in
 * messages) into the flat list of its items, in document order. An empty document has no items.
 * -EINVAL with "PATH:LINE:COL: problem" in *ret_error, -ENOMEM. */
int keel__config_yaml_parse_file(const char *path, const char *data, size_t size, keel_config_item **ret_items, size_t *ret_n,
                                 char **ret_error);
/* Parses @text as one YAML value (a scalar or a sequence; empty or NULL is null).
 * -EINVAL with "invalid YAML '...': problem" or "... a mapping ..." in *ret_error, -ENOMEM. */
int keel__config_yaml_parse_value(const char *text, keel_config_raw *ret, char **ret_error);

/* Shared by the parsers of config-parse.c and config-units.c. */
/* Sets *ret_error to the formatted message and returns @r; -ENOMEM when the message cannot be
 * allocated, so a caller never sees a failure without either a message or -ENOMEM. */
int keel__config_fail(char **ret_error, int r, const char *fmt, ...) KEEL_PRINTF(3, 4);
/* Whether the row's min/max apply. */
bool keel__config_has_bounds(const keel_config_key *k);
/* The text a scalar parser sees: YAML's null reads as the empty string. */
const char *keel__config_scalar_text(const keel_config_raw *v);
/* The decimal digits at *p into *ret, *p moved past them: -EINVAL for none, -ERANGE on overflow. */
int keel__config_parse_digits(const char **p, uint64_t *ret);
/* The parser and formatter of DURATION and SIZE (config-units.c). */
int keel__config_parse_duration(const keel_config_key *k, const keel_config_raw *v, keel_config_field *ret, char **ret_error);
char *keel__config_format_duration(const keel_config_key *k, const keel_config_field *f);
int keel__config_parse_size(const keel_config_key *k, const keel_config_raw *v, keel_config_field *ret, char **ret_error);
char *keel__config_format_size(const keel_config_key *k, const keel_config_field *f);
