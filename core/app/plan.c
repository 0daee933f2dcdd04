/* SPDX-License-Identifier: MIT */
/*
 * `plan [--format text|dot] [COMMAND [ARGS...]]`: every observer COMMAND would run, in the order it
 * would run them, without running anything but COMMAND's own command observers (which only read
 * their arguments and register what the command needs: the observers they register are shown as
 * registered by them). Observers that observers of later events register are registered only
 * when those run, so a plan cannot show them.
 */
#include <stdio.h>

#include "app-state-internal.h"
#include "macro-internal.h"
#include "service-internal.h"

typedef enum plan_format {
    PLAN_TEXT,
    PLAN_DOT,
} plan_format;

/* One observer in the order it would run. */
typedef struct step {
    const keel_observer *o;
    keel_event event;
    const char *phase; /* the phase's name, or the command's */
    unsigned order;    /* 1-based, within its event and phase */
} step;

static const char *plugin_of(const keel_observer *o)
{
    return o->plugin ? o->plugin->name : "-";
}

static void print_text(FILE *f, const step *s, size_t n)
{
    fprintf(f, "%-10s %-8s %3s  %-32s %-12s %s\n", "EVENT", "PHASE", "#", "OBSERVER", "PLUGIN", "NOTE");
    for (size_t i = 0; i < n; i++) {
        const keel_observer *o = s[i].o;
        char note[256] = "";
        if (o->service)
            (void) snprintf(note, sizeof note, "service %s", keel_service_name(o->service));
        if (o->registered_by)
            (void) snprintf(note + strlen(note), sizeof note - strlen(note), "%sregistered by %s", note[0] ? "; " : "",
                            o->registered_by);
        if (note[0])
            fprintf(f, "%-10s %-8s %3u  %-32s %-12s %s\n", keel_event_to_string(s[i].event), s[i].phase, s[i].order, o->name,
                    plugin_of(o), note);
        else
            fprintf(f, "%-10s %-8s %3u  %-32s %s\n", keel_event_to_string(s[i].event), s[i].phase, s[i].order, o->name,
                    plugin_of(o));
    }
}

/* One cluster per event, the observers chained in order; dashed when registered during dispatch,
 * with a dotted edge from the observer that registered them. */
static void print_dot(FILE *f, const char *command, const step *s, size_t n)
{
    fprintf(f, "digraph \"plan %s\" {\n    rankdir=TB;\n    node [shape=box, fontname=\"monospace\"];\n", command);
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || s[i].event != s[i - 1].event)
            fprintf(f, "%s    subgraph \"cluster_%s\" {\n        label=\"%s\";\n", i ? "    }\n" : "",
                    keel_event_to_string(s[i].event), keel_event_to_string(s[i].event));
        fprintf(f, "        n%zu [label=\"%s.%s #%u\\n%s\\n(%s)\"%s];\n", i, keel_event_to_string(s[i].event), s[i].phase,
                s[i].order, s[i].o->name, plugin_of(s[i].o), s[i].o->registered_by ? ", style=dashed" : "");
    }
    if (n)
        fputs("    }\n", f);
    for (size_t i = 1; i < n; i++)
        fprintf(f, "    n%zu -> n%zu;\n", i - 1, i);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; s[i].o->registered_by && j < n; j++)
            if (streq(s[j].o->name, s[i].o->registered_by))
                fprintf(f, "    n%zu -> n%zu [style=dotted, label=\"registers\"];\n", j, i);
    fputs("}\n", f);
}

/* Appends the live observers of @l in dispatch order (reverse for stop and finalize). */
static int add_list(step **s, size_t *n, size_t *allocated, const observer_list *l, keel_event e, const char *phase,
                    const char *command)
{
    bool reverse = e == KEEL_EVENT_STOP || e == KEEL_EVENT_FINALIZE;
    unsigned order = 0;
    for (size_t k = 0; k < l->n; k++) {
        const keel_observer *o = l->items[reverse ? l->n - 1 - k : k];
        if (!keel__observer_applies(o, command))
            continue;
        int r = GROW(*s, *allocated, *n + 1);
        if (r < 0)
            return r;
        (*s)[(*n)++] = (step){ .o = o, .event = e, .phase = phase, .order = ++order };
    }
    return 0;
}

static int collect(const keel_app *app, step **ret, size_t *ret_n)
{
    _cleanup_free_ step *s = NULL;
    size_t n = 0, allocated = 0;
    int r = add_list(&s, &n, &allocated, &app->registry.command_list, KEEL_EVENT_COMMAND, app->cli.command, app->cli.command);
    for (int e = KEEL_EVENT_INIT; r >= 0 && e < _KEEL_EVENT_MAX; e++)
        for (int p = 0; r >= 0 && p < _KEEL_PHASE_MAX; p++)
            r = add_list(&s, &n, &allocated, &app->registry.lists[e][p], (keel_event) e, keel_phase_to_string((keel_phase) p),
                         NULL);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(s);
    *ret_n = n;
    return 0;
}

static int usage(const keel_app *app, const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: plan: ", app->name);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", app->name);
    return KEEL_EXIT_USAGE;
}

/* "--format X" or "--format=X" at args[*i]; moves *i past it. 1 when taken, 0 when not, or the exit status. */
static int parse_format(const keel_app *app, char **args, size_t *i, plan_format *ret)
{
    const char *a = args[*i], *v;
    if (streq(a, "--format"))
        v = args[++*i];
    else if (strneq(a, "--format=", 9))
        v = a + 9;
    else
        return 0;
    if (!v || !STR_IN_SET(v, "text", "dot"))
        return -usage(app, "--format must be text or dot, not '%s'", v ? v : "");
    *ret = streq(v, "dot") ? PLAN_DOT : PLAN_TEXT;
    return 1;
}

/* The command to plan and its arguments become the app's command line. */
static int retarget(keel_app *app, plan_format *ret_format)
{
    char **args = app->cli.args;
    size_t i = 1;
    *ret_format = PLAN_TEXT;
    for (int r; args[i] && (r = parse_format(app, args, &i, ret_format)) != 0; i++)
        if (r < 0)
            return -r;
    const char *target = args[i] ? args[i] : "serve";
    if (!keel__app_command_declared(app, target) || streq(target, "plan"))
        return usage(app, "unknown command '%s'", target);
    char **rest = NULL;
    if (keel_strv_extend(&rest, target) < 0)
        return KEEL_EXIT_SOFTWARE;
    for (size_t j = args[i] ? i + 1 : i; args[j]; j++)
        if (keel_strv_extend(&rest, args[j]) < 0)
            return keel_strv_free(rest), KEEL_EXIT_SOFTWARE;
    free(app->cli.command);
    if (!(app->cli.command = strdup(target)))
        return keel_strv_free(rest), KEEL_EXIT_SOFTWARE;
    keel_strv_free(app->cli.args);
    app->cli.args = rest;
    return 0;
}

int keel__plan(keel_app *app)
{
    plan_format format;
    _cleanup_free_ char *error = NULL;
    _cleanup_free_ step *steps = NULL;
    size_t n = 0;
    int r = retarget(app, &format);
    if (r != 0)
        return r;
    if ((r = keel__services_resolve(app, app->cli.command, &error)) < 0 || (r = keel__state_dir_register(app)) < 0) {
        keel_log_error_errno(r, "Failed to set up the services: %s", error ? error : strerror(-r));
        return KEEL_EXIT_SOFTWARE;
    }
    if (keel__machine_run_command(app) < 0) /* the failure is logged: the command's own usage error */
        return KEEL_EXIT_USAGE;
    if (collect(app, &steps, &n) < 0)
        return KEEL_EXIT_SOFTWARE;
    if (format == PLAN_DOT)
        print_dot(stdout, app->cli.command, steps, n);
    else
        print_text(stdout, steps, n);
    return fflush(stdout) == 0 ? KEEL_EXIT_OK : KEEL_EXIT_FAILURE;
}
