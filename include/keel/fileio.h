/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <keel/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Files that must survive a crash (keys, certificates, state records) and files that may hold
 * secrets. Every function returns 0 or a negative errno and logs nothing.
 *
 * One temporary-file convention: a file being written to become @path is ".<name>.tmp-XXXXXX"
 * in the directory of @path, created with mode 0600 (so a key is never readable by others, not
 * even for a moment) and given its mode before it is renamed. A crash may leave one behind;
 * keel_dir_remove_temporaries() removes them.
 */

/** Writes all @size bytes of @data to @fd, retrying on EINTR and short writes. */
KEEL_API int keel_fd_write_all(int fd, const void *data, size_t size);

/**
 * Replaces @path with @size bytes of @data so that after a crash at any moment @path holds
 * either its old content or the new one, never a mix or an empty file: a temporary file is
 * written, synced, given @mode and renamed over @path, and the directory is synced. On failure
 * the temporary file is removed and @path is untouched.
 */
KEEL_API int keel_file_write_atomic(const char *path, const void *data, size_t size, mode_t mode);

/** keel_file_write_atomic() without the syncs: readers never see a mix, but a crash may lose the
 * new content or leave @path empty. For records whose loss is harmless. */
KEEL_API int keel_file_write_replace(const char *path, const void *data, size_t size, mode_t mode);

/**
 * The first half of keel_file_write_atomic(), for a writer that renames several files in an order
 * of its own: writes @data to a new temporary file for @path, syncs it and gives it @mode, and
 * returns its path in *@ret_tmp (free() it). Nothing reads it until the caller renames it
 * (keel_file_rename_durable()); the caller removes it when it does not.
 */
KEEL_API int keel_file_stage(const char *path, const void *data, size_t size, mode_t mode, char **ret_tmp);

/** Renames @from to @to and syncs the directory of @to, so the rename survives a crash. */
KEEL_API int keel_file_rename_durable(const char *from, const char *to);

/**
 * Reads @path whole — a regular file, a pipe such as `<(...)`, or /dev/null, which reads as
 * empty — (at most @max bytes: -EFBIG beyond) into a NUL-terminated buffer (free() it; wipe it
 * first if it may hold a secret), with its mode from the same open file when @ret_mode is not
 * NULL. Every buffer it lets go of on the way (growing, failing) is wiped first. -EISDIR for a
 * directory, -EINVAL for another device or a socket, the errno of open or read.
 */
KEEL_API int keel_file_read(const char *path, size_t max, char **ret_data, size_t *ret_size, mode_t *ret_mode);

/**
 * Whether a file that holds a secret (a private key, a password) with the status @st may be used:
 * 0, or -EACCES when others may access it at all, or its group may do more than read it, or its
 * group may read it although that is not how this process reads it. Group read is the way a
 * non-root process is given a secret it does not own (PostgreSQL allows the same): a Kubernetes
 * secret volume with fsGroup holds root:fsGroup 0440 files. So it is accepted only when root owns
 * the file, the file's group is one of this process's, and this process is not root.
 */
KEEL_API int keel_secret_check(const struct stat *st);

/** What keel_secret_check() wants, for the message of a refusal. */
#define KEEL_SECRET_MODE_RULE "a secret must be readable by its owner only (or, when root owns it, by its group)"

/** keel_file_read() of a secret: -EACCES, with *@ret_mode set, when keel_secret_check() refuses it. */
KEEL_API int keel_file_read_secret(const char *path, size_t max, char **ret_data, size_t *ret_size, mode_t *ret_mode);

/** keel_file_read() of an open descriptor, from its offset to its end. */
KEEL_API int keel_fd_read_all(int fd, size_t max, char **ret_data, size_t *ret_size);

/** Syncs the directory @dir, so that the renames and creations in it survive a crash. */
KEEL_API int keel_dir_fsync(const char *dir);

/** Creates @dir with @mode when it does not exist (not its parents), its entry in its parent
 * synced. -ENOTDIR when it exists as something else. */
KEEL_API int keel_dir_make(const char *dir, mode_t mode);

/** Removes the temporary files a killed writer left in @dir. Returns how many, or the errno of
 * reading @dir (-ENOENT when it does not exist). */
KEEL_API int keel_dir_remove_temporaries(const char *dir);

#ifdef __cplusplus
}
#endif
