/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* Durable file writes for state that must survive a crash (keys, certificates). Core helpers:
 * they return a negative errno and never log above debug. */

/*
 * Replaces @path with @size bytes of @data so that after a crash at any moment @path holds either
 * its old content or the new one, never a mix or an empty file: the data goes to a temporary file
 * in the same directory (".<name>.tmp-XXXXXX", created with mode 0600 and then given @mode, so a
 * key is never readable by others, not even for a moment), is fsync'ed, renamed over @path, and
 * the directory is fsync'ed. Returns 0 or a negative errno (the temporary file is removed).
 */
int keel__write_file_atomic(const char *path, const void *data, size_t size, mode_t mode);

/* As keel__write_file_atomic(), without the fsyncs: readers never see a mix, but a crash may lose
 * the new content or leave @path empty. For records whose loss is harmless. */
int keel__write_file_replace(const char *path, const void *data, size_t size, mode_t mode);

/* Renames @from to @to (same directory) and fsyncs that directory. Returns 0 or a negative errno. */
int keel__rename_durable(const char *from, const char *to);

/* fsyncs the directory @dir. Returns 0 or a negative errno. */
int keel__fsync_dir(const char *dir);

/* Creates @dir with @mode when it does not exist (not its parents). Returns 0 or a negative errno;
 * -ENOTDIR when @dir exists and is not a directory. */
int keel__mkdir_mode(const char *dir, mode_t mode);

/* Removes the temporary files keel__write_file_atomic() left in @dir when it was killed. Returns
 * the number removed, or a negative errno when @dir cannot be read. */
int keel__remove_stale_temporaries(const char *dir);

/* Reads @fd to its end (at most @max bytes) into a NUL-terminated buffer. The buffers it lets go
 * of (growing, or on failure) are wiped first: what it reads may be a private key, and the caller
 * wipes the one it returns. Returns 0, -EFBIG past @max, -ENOMEM, or a negative errno of read. */
int keel__read_fd(int fd, size_t max, char **ret_data, size_t *ret_size);

/*
 * Reads the whole regular file @path (at most @max bytes) into a NUL-terminated buffer, and its
 * mode (from the same open file, so the mode and the content belong together). Wipes as
 * keel__read_fd() does. Returns 0, -EFBIG past @max, or a negative errno of open/fstat/read.
 */
int keel__read_file(const char *path, size_t max, char **ret_data, size_t *ret_size, mode_t *ret_mode);
