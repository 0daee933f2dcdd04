/* SPDX-License-Identifier: MIT */
#pragma once

/* What config.c (tables, suggestions, origins, the dump) and config-load.c (the layers) share. */

#include <stdbool.h>

#include "config-internal.h"
#include "macro-internal.h"

/* A configuration file is a few KiB; anything this big is a mistake (or /dev/zero). */
#define CONFIG_FILE_MAX (4U * 1024 * 1024)

typedef struct config_entry {
    const keel_config_key *row; /* borrowed: tables are static and outlive the config */
    void *storage;              /* borrowed: the value is at storage + row->offset */
    char *env;                  /* owned: "KEEL_SHUTDOWN_TIMEOUT" */
    char *origin;               /* owned: where the value in storage came from */
    /* What the last reload replaced, until the refresh it was part of ends (config-undo.c). */
    keel_config_field prev;    /* owned when prev_value */
    char *prev_origin;         /* owned */
    bool prev_value, has_prev; /* the value was replaced; the origin was */
} config_entry;

struct keel_config {
    char *name;            /* owned: the program's, for profile file names */
    char *env_prefix;      /* owned: "KEEL_" */
    config_entry *entries; /* owned, sorted by key */
    size_t n_entries;
    bool loaded; /* tables may no longer be added */
};

/* Keeps @e's value (when @value_changes) and origin as they are before a reload replaces them;
 * frees what an earlier reload kept. */
void keel__config_entry_keep_previous(config_entry *e, bool value_changes);
/* Frees what the last reload kept of @e. */
void keel__config_entry_forget_previous(config_entry *e);

/* Where the value of @e lives. */
void *keel__config_field_of(const config_entry *e);
/* The entry of @key, or NULL. */
config_entry *keel__config_find_entry(const keel_config *c, const char *key);
/* Whether @key names a section: some key starts with "@key.". */
bool keel__config_is_section(const keel_config *c, const char *key);
/* "unknown key 'x'; did you mean 'y'?" (malloc'd), or NULL when out of memory. */
char *keel__config_unknown_key_message(const keel_config *c, const char *key);
