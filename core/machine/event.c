/* SPDX-License-Identifier: MIT */
#include <keel/event.h>

#include "macro.h"

static const char *const event_names[_KEEL_EVENT_MAX] = {
    [KEEL_EVENT_COMMAND] = "command", [KEEL_EVENT_INIT] = "init",         [KEEL_EVENT_CONFIGURE] = "configure",
    [KEEL_EVENT_START] = "start",     [KEEL_EVENT_READY] = "ready",       [KEEL_EVENT_REFRESH] = "refresh",
    [KEEL_EVENT_STOP] = "stop",       [KEEL_EVENT_FINALIZE] = "finalize",
};

static const char *const phase_names[_KEEL_PHASE_MAX] = {
    [KEEL_PHASE_BEFORE] = "before",
    [KEEL_PHASE_DURING] = "during",
    [KEEL_PHASE_AFTER] = "after",
};

const char *keel_event_to_string(keel_event e)
{
    return e >= 0 && e < _KEEL_EVENT_MAX ? event_names[e] : NULL;
}

keel_event keel_event_from_string(const char *s)
{
    for (int e = 0; s && e < _KEEL_EVENT_MAX; e++)
        if (streq(s, event_names[e]))
            return (keel_event) e;
    return _KEEL_EVENT_INVALID;
}

const char *keel_phase_to_string(keel_phase p)
{
    return p >= 0 && p < _KEEL_PHASE_MAX ? phase_names[p] : NULL;
}

keel_phase keel_phase_from_string(const char *s)
{
    for (int p = 0; s && p < _KEEL_PHASE_MAX; p++)
        if (streq(s, phase_names[p]))
            return (keel_phase) p;
    return _KEEL_PHASE_INVALID;
}
