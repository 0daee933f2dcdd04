/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/*
 * The layout of the agent's state directory. Layout 1 is the seed agent's flat directory
 * (private.pem, a ca.pem link, role certificates beside it); layout 2 is Keel's, recorded in the
 * file `layout`. `keel migrate` (migrate.c) moves from one to the other; `serve` and `token`
 * refuse layout 1 before anything is written there (check.c). Negative errno, @error says what
 * was wrong where.
 */

#define KEEL_LAYOUT_CURRENT 2
#define KEEL_LAYOUT_FILE    "layout"

/* A role certificate of layout 1, <domain>_<role>.cert.pem, by its name. */
bool layout_is_role_cert(const char *name);

/* The layout recorded in the directory @dfd: 0 when none is (or the record is blank), else 1 or 2.
 * -EPROTO (with @error) for a record this version does not know, or read(2)'s errno. */
int layout_read(int dfd, char *error, size_t size, int *ret_layout);

/* Records KEEL_LAYOUT_CURRENT in @dir, through a temporary file and a rename but not synced: a
 * crash may lose the record or leave it blank, which reads as none (`keel migrate` records it
 * durably, as the last step of a migration). */
int layout_record(const char *dir);

/*
 * Whether the state directory @dir may be used as it is: 1 when it records the current layout,
 * 0 when it records none and holds nothing of layout 1 (or does not exist: nothing in it to
 * lose). -EMEDIUMTYPE (with @error, which names the directory and `keel migrate`) when it must be
 * migrated first. Reads only.
 */
int layout_check(const char *dir, char *error, size_t size);
