/* SPDX-License-Identifier: MIT */
#pragma once

#include <errno.h>

#include <keel/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The events of an app's life, in the order they run (refresh repeats while the app is ready). */
typedef enum keel_event {
    KEEL_EVENT_COMMAND,
    KEEL_EVENT_INIT,
    KEEL_EVENT_CONFIGURE,
    KEEL_EVENT_START,
    KEEL_EVENT_READY,
    KEEL_EVENT_REFRESH,
    KEEL_EVENT_STOP,
    KEEL_EVENT_FINALIZE,
    _KEEL_EVENT_MAX,
    _KEEL_EVENT_INVALID = -EINVAL,
} keel_event;

/** The phases every event but `command` runs through. */
typedef enum keel_phase {
    KEEL_PHASE_BEFORE,
    KEEL_PHASE_DURING,
    KEEL_PHASE_AFTER,
    _KEEL_PHASE_MAX,
    _KEEL_PHASE_INVALID = -EINVAL,
} keel_phase;

/** The name of an event ("start"), or NULL when @e is out of range. */
KEEL_API const char *keel_event_to_string(keel_event e);
/** The event named @s, or _KEEL_EVENT_INVALID. */
KEEL_API keel_event keel_event_from_string(const char *s);
/** The name of a phase ("before"), or NULL when @p is out of range. */
KEEL_API const char *keel_phase_to_string(keel_phase p);
/** The phase named @s, or _KEEL_PHASE_INVALID. */
KEEL_API keel_phase keel_phase_from_string(const char *s);

#ifdef __cplusplus
}
#endif
