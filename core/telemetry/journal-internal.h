/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

/* One field of a journal record: its name ("MESSAGE") and value, any bytes. */
typedef struct keel_journal_field {
    const char *name;
    const char *value;
    size_t size;
} keel_journal_field;

/* The most fields a record may have. */
#define KEEL_JOURNAL_FIELDS_MAX 32

/* Sends one record to journald over its native protocol. Thread-safe. Returns 0, -ENOTCONN when
 * there is no socket, or the errno of sendmsg(2) (the caller writes the record elsewhere). */
int keel__journal_send(const keel_journal_field *fields, size_t n);

/* The socket the records go to: $KEEL_JOURNAL_SOCKET, or journald's /run/systemd/journal/socket. */
const char *keel__journal_socket(void);
