/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

#include <keel/common.h>

/* @usec as Go's time.Duration prints it ("30m0s", "1h0m0s", "1.5s", "250ms", "0s"), the way the
 * seed logs read ("Will refresh tokens after 30m0s"). */
void token_format_duration(keel_usec_t usec, char *buf, size_t size);
