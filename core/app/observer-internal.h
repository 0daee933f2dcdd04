/* SPDX-License-Identifier: MIT */
/*
 * Observers as the app registers them (observer.c) and the machine runs them: the lists per event
 * and phase live in the app's registry; the machine walks one with keel__observer_list_hold() and
 * keel__observer_list_release() around the walk and writes nothing else of it.
 */
#pragma once

#include <keel/app.h>
#include <keel/plugin.h>

/* Observers of one event and phase. Dispatch walks a snapshot of the count, so observers added
 * during dispatch wait for the next run; removal during dispatch only marks, and the list is
 * compacted when no dispatch is under way. */
typedef struct observer_list {
    keel_observer **items;
    size_t n, allocated;
    unsigned depth; /* dispatches under way */
    bool dirty;     /* has removed entries to compact */
} observer_list;

struct keel_observer {
    keel_app *app;       /* borrowed */
    observer_list *list; /* borrowed: the list that holds it */
    char *name;          /* the point */
    char *label;         /* "token provider start" for "Skipped …", or NULL */
    char *failing;       /* "starting token provider" for "Error …: msg", or NULL */
    char *command;       /* for command observers */
    keel_event event;
    keel_phase phase;
    keel_observer_handler_t handler;
    void *userdata;
    const keel_plugin *plugin;          /* borrowed: the plugin that registered it, or NULL */
    const struct keel_service *service; /* borrowed: the service whose hook it is, or NULL */
    char *registered_by;                /* the observer that registered it during a dispatch, or NULL */
    unsigned command_flags;             /* runs only for a command declared with all of these (keel_command_flags) */
    bool removed;
};

/* The observers of @event and @phase, and those of the commands (borrowed). */
observer_list *keel__app_observers(keel_app *app, keel_event event, keel_phase phase);
observer_list *keel__app_command_observers(keel_app *app);
/* Registers an observer with the texts the machine logs for a skip and for a failure. */
int keel__app_observe_full(keel_app *app, keel_event event, keel_phase phase, const char *name, const char *label,
                           const char *failing, keel_observer_handler_t handler, void *userdata, keel_observer **ret);
/* Makes @o run only for a command declared with every flag of @flags, so that neither the machine
 * nor `plan` shows it for another (the PID file for `serve`, not for a one-shot command). */
void keel__observer_set_command_flags(keel_observer *o, unsigned flags);
/* Whether @o runs for the selected command: its command, and the flags it needs. */
bool keel__observer_applies(const keel_observer *o, const char *command);
void keel__observer_list_done(observer_list *l);
/* A walk of @l begins: removals mark until it ends. */
void keel__observer_list_hold(observer_list *l);
/* Ends a walk of @l: frees the observers removed during it once no walk is under way. */
void keel__observer_list_release(observer_list *l);
