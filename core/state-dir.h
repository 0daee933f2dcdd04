/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* The state directory: who may write it, and its layout.
 *
 * One writer at a time: `keel serve` and `keel migrate` hold an exclusive flock(2) on the
 * directory itself while they use it (released at exit whatever ends the process), so a second
 * serve without a PID file cannot rotate the same files. `keel token` only reads and takes none.
 *
 * The layout of the state directory. Layout 1 is the seed agent's flat directory (private.pem,
 * a ca.pem link, role certificates beside it); layout 2 is Keel's, recorded in the file `layout`.
 * `keel migrate` (observers/migrate.c) moves from one to the other; everything else only asks
 * which one it finds. Core helpers: negative errno, @error says what was wrong where. */

#define KEEL_LAYOUT_CURRENT 2
#define KEEL_LAYOUT_FILE    "layout"

/* A role certificate of layout 1, <domain>_<role>.cert.pem, by its name. */
bool keel__layout_is_role_cert(const char *name);

/* The layout recorded in the directory @dfd: 0 when none is (or the file is empty), else 1 or 2.
 * -EPROTO (with @error) for a record this version does not know. */
int keel__layout_read(int dfd, int *ret, char *error, size_t size);

/* Records KEEL_LAYOUT_CURRENT in @dir, through a temporary file and a rename but not synced: a
 * crash may lose the record or leave it empty, which reads as none (`keel migrate` records it
 * durably, as the last step of a migration). */
int keel__layout_record(const char *dir);

/*
 * Whether `keel serve` or `keel token` may use the state directory @dir: it records the current
 * layout, or records none and holds nothing of layout 1. A directory that does not exist passes
 * (there is nothing in it to lose). With @record, a directory that passes without a record gets
 * one, so that a later `keel migrate` knows it has nothing to do. -EMEDIUMTYPE (with @error,
 * which names the directory and `keel migrate`) when it must be migrated first; nothing is changed
 * then.
 */
int keel__layout_check(const char *dir, bool record, char *error, size_t size);

/* Takes the writer's lock on @dir: returns the descriptor that holds it (close it to let go), or
 * -EBUSY (with @error naming the directory) when another process holds it, or a negative errno. */
int keel__state_dir_lock(const char *dir, char *error, size_t size);
