/* SPDX-License-Identifier: MIT */
#pragma once

/* Credentials delivered as files to another program (token.targets, certificate.out_dir): the
 * permissions the operator gives them and their atomic writes. */

#include <sys/types.h>

/* An octal mode of at most 0777 ("0440") into *@ret: 0, or -EINVAL. */
int delivery_parse_mode(const char *text, mode_t *ret);
/* A group by name or number into *@ret; "" is (gid_t) -1, keel's own: 0, or -ENOENT. */
int delivery_parse_group(const char *text, gid_t *ret);
/* Writes @size bytes at @data to @path as keel_file_write_atomic() does, the temporary file given
 * @mode and, unless (gid_t) -1, @gid before it is renamed: no reader ever sees the file with other
 * permissions, or a part of it. 0, or a negative errno (nothing is left behind). */
int delivery_write(const char *path, const void *data, size_t size, mode_t mode, gid_t gid);
