/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <keel/app.h>

/* The state directory (`state_dir`): who may write it, and its layout.
 *
 * One writer at a time: `keel serve` and `keel migrate` hold an exclusive flock(2) on the file
 * `.lock` in it until the app is freed (finalize writes there last), so a second serve without a
 * PID file cannot rotate the same files. A regular file opened for writing, not the directory:
 * NFS emulates flock with a write lock. `keel token` only reads and takes none.
 *
 * Layout 1 is the seed agent's flat directory (private.pem, a ca.pem link, role certificates
 * beside it); layout 2 is Keel's, recorded in the file `layout`. `keel migrate`
 * (observers/migrate.c) moves from one to the other; everything else only asks which one it finds.
 * Core helpers: negative errno, @error says what was wrong where. */

#define KEEL_LAYOUT_CURRENT 2
#define KEEL_LAYOUT_FILE    "layout"
#define KEEL_STATE_LOCK     ".lock"

/* A role certificate of layout 1, <domain>_<role>.cert.pem, by its name. */
bool keel__layout_is_role_cert(const char *name);

/* The layout recorded in the directory @dfd: 0 when none is (or the record is blank), else 1 or 2.
 * -EPROTO (with @error) for a record this version does not know, or read(2)'s errno. */
int keel__layout_read(int dfd, char *error, size_t size, int *ret_layout);

/* Records KEEL_LAYOUT_CURRENT in @dir, through a temporary file and a rename but not synced: a
 * crash may lose the record or leave it blank, which reads as none (`keel migrate` records it
 * durably, as the last step of a migration). */
int keel__layout_record(const char *dir);

/*
 * Whether the state directory @dir may be used as it is: 1 when it records the current layout,
 * 0 when it records none and holds nothing of layout 1 (or does not exist: nothing in it to
 * lose). -EMEDIUMTYPE (with @error, which names the directory and `keel migrate`) when it must be
 * migrated first. Reads only.
 */
int keel__layout_check(const char *dir, char *error, size_t size);

/* Takes the writer's lock on @dir for @app, which holds it until it is freed. -EBUSY (with
 * @error naming the directory) when another process holds it. */
int keel__state_dir_lock(keel_app *app, const char *dir, char *error, size_t size);

/* For `keel serve`: checks the layout (refusing layout 1 before anything is written), takes the
 * writer's lock, and records the layout when none is. @dir exists. */
int keel__state_dir_acquire(keel_app *app, const char *dir, char *error, size_t size);
