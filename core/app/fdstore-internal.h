/* SPDX-License-Identifier: MIT */
#pragma once

/* The format of kept blobs (include/keel/fdstore.h), from fdstore-blob.c to fdstore.c and the tests. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <keel/fdstore.h>

/* The longest build id kept: GNU build ids are 8 (xxhash), 16 (md5, uuid) or 20 (sha1) bytes. */
#define KEEL_BUILD_ID_MAX 64

/* A blob's bytes besides its build id, name and payload: the fixed header and the HMAC. */
#define KEEL_FDSTORE_HEADER_SIZE 20
#define KEEL_FDSTORE_MAC_SIZE    32
/* The largest blob there may be. */
#define KEEL_FDSTORE_BLOB_MAX                                                                                                      \
    (KEEL_FDSTORE_HEADER_SIZE + KEEL_BUILD_ID_MAX + KEEL_FDSTORE_NAME_MAX + KEEL_FDSTORE_SIZE_MAX + KEEL_FDSTORE_MAC_SIZE)

/* Which build of the program wrote a blob. */
typedef struct keel_build_id {
    uint8_t bytes[KEEL_BUILD_ID_MAX];
    size_t size;
} keel_build_id;

/* The GNU build id of the running program (not of libkeel.so: the payload's format is the
 * program's), read from its notes once. Returns 0, or -ENOEXEC when it has none. */
int keel__build_id(keel_build_id *ret);

/* Whether @name may be an FDNAME= (systemd's fdname_is_valid(), not empty). */
bool keel__fdstore_name_valid(const char *name);

/* The bytes of a blob of @size bytes of payload from @build under @name. */
size_t keel__fdstore_blob_size(const keel_build_id *build, const char *name, size_t size);

/* Writes the blob of @data (@size bytes) from @build under @name, authenticated with @key, into
 * @out (keel__fdstore_blob_size() bytes). The arguments are the caller's to check. Returns 0, or
 * -ELIBACC when libcrypto cannot be loaded. */
int keel__fdstore_pack(const keel_build_id *build, const char *name, const void *data, size_t size, const void *key,
                       size_t key_size, uint8_t *out);

/*
 * Checks the @blob_size bytes at @blob as a blob that @build wrote under @name with @key, and on
 * success points *@ret_payload into @blob at its payload of *@ret_size bytes. Returns 0 or the
 * refusals of keel_fdstore_load() (-EBADMSG, -EPROTONOSUPPORT, -EFBIG, -ESTALE, -EBADSLT,
 * -EKEYREJECTED, -ELIBACC), the reason in @error (KEEL_FDSTORE_ERROR_MAX bytes, may be NULL).
 */
int keel__fdstore_unpack(const keel_build_id *build, const char *name, const uint8_t *blob, size_t blob_size, const void *key,
                         size_t key_size, const uint8_t **ret_payload, size_t *ret_size, char *error);

/* Writes a refusal's reason into @error (KEEL_FDSTORE_ERROR_MAX bytes, or NULL) and returns @r. */
int keel__fdstore_refuse(char *error, int r, const char *fmt, ...) KEEL_PRINTF(3, 4);
