/* SPDX-License-Identifier: MIT */
/*
 * Where the machine is, as the rest of the framework asks: the event and phase running, the
 * observer being called, the stop's deadline. Only the machine's room writes these.
 */
#include <stdlib.h>

#include "app-internal.h"
#include "machine-internal.h"
#include "macro-internal.h"

keel_event keel_app_event(const keel_app *app)
{
    const keel_machine *m = app ? keel__app_machine_const(app) : NULL;
    return m && m->dispatching ? m->event_now : _KEEL_EVENT_INVALID;
}

keel_phase keel_app_phase(const keel_app *app)
{
    const keel_machine *m = app ? keel__app_machine_const(app) : NULL;
    return m && m->dispatching ? m->phase_now : _KEEL_PHASE_INVALID;
}

keel_usec_t keel_app_stop_deadline(const keel_app *app)
{
    return app ? keel__app_machine_const(app)->stop_deadline : KEEL_USEC_INFINITY;
}

bool keel__app_in_start(const keel_app *app)
{
    return keel_app_event(app) == KEEL_EVENT_START;
}

keel_event keel__machine_event_now(const keel_app *app)
{
    return keel__app_machine_const(app)->event_now;
}

keel_phase keel__machine_phase_now(const keel_app *app)
{
    return keel__app_machine_const(app)->phase_now;
}

bool keel__machine_reverting(const keel_app *app)
{
    return keel__app_machine_const(app)->reverting;
}

keel_observer *keel__machine_observer_now(const keel_app *app)
{
    return keel__app_machine_const(app)->observer_now;
}

bool keel__machine_started(const keel_app *app)
{
    return keel__app_machine_const(app)->state != _KEEL_STATE_INVALID;
}

bool keel__machine_was_ready(const keel_app *app)
{
    return keel__app_machine_const(app)->was_ready;
}

void keel__machine_done(keel_app *app)
{
    keel_machine *m = keel__app_machine(app);
    keel__signals_done(app);
    m->daemon_fd = safe_close(m->daemon_fd);
    m->fail_message = (free(m->fail_message), NULL);
    m->cause_message = (free(m->cause_message), NULL);
}
