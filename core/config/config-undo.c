/* SPDX-License-Identifier: MIT */
/* A reload's undo: what it replaced, kept until the refresh it was part of ends. A refresh that
 * fails after the reload committed puts the previous values back (DESIGN: the old configuration
 * stays in force); one that succeeds frees them. */
#include <string.h>

#include "config-load-internal.h"

void keel__config_entry_forget_previous(config_entry *e)
{
    if (e->prev_value)
        keel__config_value_done(e->row, &e->prev);
    e->prev = (keel_config_field){};
    e->prev_origin = (free(e->prev_origin), NULL);
    e->prev_value = e->has_prev = false;
}

void keel__config_entry_keep_previous(config_entry *e, bool value_changes)
{
    keel__config_entry_forget_previous(e);
    if (value_changes)
        memcpy(&e->prev, keel__config_field_of(e), keel__config_type_size(e->row->type));
    e->prev_value = value_changes;
    e->prev_origin = TAKE_PTR(e->origin);
    e->has_prev = true;
}

size_t keel__config_reload_undo(keel_config *c)
{
    size_t undone = 0;
    for (size_t i = 0; c && i < c->n_entries; i++) {
        config_entry *e = &c->entries[i];
        if (!e->has_prev)
            continue;
        if (e->prev_value) {
            keel__config_value_done(e->row, keel__config_field_of(e));
            memcpy(keel__config_field_of(e), &e->prev, keel__config_type_size(e->row->type));
            e->prev = (keel_config_field){};
            e->prev_value = false;
            undone++;
        }
        free(e->origin);
        e->origin = TAKE_PTR(e->prev_origin);
        e->has_prev = false;
    }
    return undone;
}

void keel__config_reload_forget(keel_config *c)
{
    for (size_t i = 0; c && i < c->n_entries; i++)
        keel__config_entry_forget_previous(&c->entries[i]);
}
