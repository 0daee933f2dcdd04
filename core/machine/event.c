/* SPDX-License-Identifier: MIT */
#include <keel/event.h>

#include "macro-internal.h"

static const char *const keel_event_table[_KEEL_EVENT_MAX] = {
    [KEEL_EVENT_COMMAND] = "command", [KEEL_EVENT_INIT] = "init",         [KEEL_EVENT_CONFIGURE] = "configure",
    [KEEL_EVENT_START] = "start",     [KEEL_EVENT_READY] = "ready",       [KEEL_EVENT_REFRESH] = "refresh",
    [KEEL_EVENT_STOP] = "stop",       [KEEL_EVENT_FINALIZE] = "finalize",
};
DEFINE_STRING_TABLE_LOOKUP(keel_event, keel_event);

static const char *const keel_phase_table[_KEEL_PHASE_MAX] = {
    [KEEL_PHASE_BEFORE] = "before",
    [KEEL_PHASE_DURING] = "during",
    [KEEL_PHASE_AFTER] = "after",
};
DEFINE_STRING_TABLE_LOOKUP(keel_phase, keel_phase);
