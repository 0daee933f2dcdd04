/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <keel/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * State kept across a restart in the service manager's file descriptor store (systemd's
 * FDSTORE=1; the unit sets FileDescriptorStoreMax=): an app saves a named blob as it stops and
 * loads it as it starts again, so that what is expensive to get again survives `systemctl
 * restart`. A blob travels as a sealed memfd holding the program's GNU build id, its name, the
 * payload and an HMAC-SHA256 under a key the caller supplies; one from another build, under
 * another key or name, or cut short is refused. systemd empties the store when the unit stops for
 * good, so `systemctl stop`, a crash and a run without a service manager keep nothing. libcrypto
 * is loaded (dlopen) the first time a blob is sealed or checked. Thread-safe; nothing here logs
 * above debug level.
 */

/** The longest name: systemd's limit for FDNAME=. */
#define KEEL_FDSTORE_NAME_MAX 255
/** The most bytes of payload a blob carries. */
#define KEEL_FDSTORE_SIZE_MAX ((size_t) 64 << 20)
/** The fewest bytes of key a blob is authenticated with. */
#define KEEL_FDSTORE_KEY_MIN 16
/** The most bytes of a refusal's reason, its NUL included: KEEL_ERROR_MAX, as everywhere. */
#define KEEL_FDSTORE_ERROR_MAX KEEL_ERROR_MAX

/**
 * Hands @size bytes of @data (may be NULL when @size is 0) to the service manager's file
 * descriptor store under @name, authenticated with the @key_size bytes of @key, for the next start
 * of the unit to take with keel_fdstore_load(). What was kept under @name before is dropped.
 * Call it as the app stops, once the state is final; it waits (at most 5 s) until the service
 * manager has taken the blob, so the process may exit right after. A unit without room in its
 * store (FileDescriptorStoreMax=) loses the blob, which only the service manager's log tells.
 *
 * Returns 1 once the service manager has the blob; 0 without a service manager ($NOTIFY_SOCKET
 * unset), where nothing is kept; -EINVAL for a name systemd refuses (empty, over
 * KEEL_FDSTORE_NAME_MAX, or holding a control character, a byte over 126 or ':'), a key shorter
 * than KEEL_FDSTORE_KEY_MIN or NULL data with a size; -EFBIG for a payload over
 * KEEL_FDSTORE_SIZE_MAX; -ENOEXEC when the program has no GNU build id to tell builds apart
 * (link with -Wl,--build-id); -ELIBACC when libcrypto.so.3 cannot be loaded; or the errno of
 * memfd_create(2), mmap(2), sealing (fcntl(2)) or sending.
 */
KEEL_API int keel_fdstore_save(const char *name, const void *data, size_t size, const void *key, size_t key_size);

/**
 * Takes the blob kept under @name, which the service manager passes at start in $LISTEN_FDS with
 * $LISTEN_FDNAMES (beside the sockets of socket units, which it leaves alone), and checks it with
 * the @key_size bytes of @key. On success its payload goes to *@ret_data (free() it; a NUL byte
 * follows the payload) and its size to *@ret_size. Accepted or refused, the blob is taken once:
 * its memfd is closed (/dev/null takes its number, so that $LISTEN_FDS stays valid for the sockets
 * passed beside it) and the service manager is told to forget it (FDSTOREREMOVE=1), so a refused
 * blob is not handed back at every start.
 *
 * Returns 0; -ENOENT when nothing is kept under @name (a first start, a start after a crash or
 * `systemctl stop`, no service manager, or a blob already taken); or a refusal, with a one-line
 * reason in @error (KEEL_FDSTORE_ERROR_MAX bytes, may be NULL): -EBADMSG (not a sealed blob of
 * Keel's, or cut short), -EPROTONOSUPPORT (a format version this Keel does not read), -EFBIG
 * (over KEEL_FDSTORE_SIZE_MAX), -ESTALE (saved by another build of the program), -EBADSLT (saved
 * under another name), -EKEYREJECTED (its HMAC does not verify: another key, or altered). Also
 * -EINVAL (bad arguments, as keel_fdstore_save()), -ENOEXEC, -ELIBACC, -ENOMEM.
 */
KEEL_API int keel_fdstore_load(const char *name, const void *key, size_t key_size, void **ret_data, size_t *ret_size, char *error);

/**
 * Whether the service manager passed a blob under @name that keel_fdstore_load() has not taken:
 * cheap (no mapping, no HMAC), so that a start with nothing kept skips deriving the key. False for
 * a bad name.
 */
KEEL_API bool keel_fdstore_passed(const char *name);

/**
 * Tells the service manager to forget what is kept under @name (FDSTOREREMOVE=1), and closes this
 * process's copy of one passed at start and not taken yet (as keel_fdstore_load() does). Returns 1 once told; 0 without a
 * service manager; -EINVAL for a bad name; the errno of sending.
 */
KEEL_API int keel_fdstore_remove(const char *name);

#ifdef __cplusplus
}
#endif
