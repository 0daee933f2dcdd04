/* SPDX-License-Identifier: MIT */
#include <getopt.h>
#include <stdio.h>

#include "app-state-internal.h"
#include "config-internal.h"
#include "macro-internal.h"

enum {
    ARG_LOG_LEVEL = 0x100,
    ARG_LOG_FORMAT,
    ARG_TRACE,
    ARG_VERSION,
    ARG_PIDFILE,
    ARG_DAEMON,
};

static const struct option options[] = {
    { "config", required_argument, NULL, 'c' },
    { "profile", required_argument, NULL, 'p' },
    { "set", required_argument, NULL, 's' },
    { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
    { "log-format", required_argument, NULL, ARG_LOG_FORMAT },
    { "trace", required_argument, NULL, ARG_TRACE },
    { "pidfile", required_argument, NULL, ARG_PIDFILE },
    { "daemon", no_argument, NULL, ARG_DAEMON },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, ARG_VERSION },
    {},
};

void keel__cli_usage(const keel_app *app, FILE *f)
{
    fprintf(f,
            "Usage: %s [OPTIONS] [COMMAND [ARGS...]]\n\n"
            "Runs the application's lifecycle: command, init, configure, start, ready, (refresh on SIGHUP),\n"
            "stop on SIGINT/SIGTERM, finalize.\n\nCommands:\n",
            app->name);
    for (size_t i = 0; i < app->registry.n_commands; i++)
        fprintf(f, "  %-10s %s\n", app->registry.commands[i].name, app->registry.commands[i].summary);
    fprintf(f,
            "\nOptions:\n"
            "  -c, --config FILE      application configuration file (YAML)\n"
            "  -p, --profile NAME     also read %s.NAME.yaml next to the configuration file (/etc/%s/ without --config)\n"
            "  -s, --set KEY=VALUE    set one configuration key; VALUE is YAML (repeatable)\n"
            "      --log-level LEVEL  error, warning, notice, info or debug\n"
            "      --log-format FMT   auto, text, json or journal\n"
            "      --trace FILE       write a Chrome trace of the lifecycle to FILE ('-': readable lines on stderr)\n"
            "      --pidfile FILE     hold FILE locked with our PID while running (the key pidfile)\n"
            "      --daemon           serve detached; exit 0 once the daemon is ready, 1 with its error if it failed\n"
            "  -h, --help             show this help and exit\n"
            "      --version          print the version and exit\n\n"
            "Options may also follow the command; what they do not claim is the command's. Name them in full.\n"
            "Environment: %s<SECTION>_<KEY> sets a configuration key; KEEL_FAULT injects faults.\n"
            "Exit status: 0 done, 1 failure, 2 shutdown forced, 64 bad usage, 78 bad configuration.\n",
            app->name, app->name, keel__config_env_prefix(app->config));
}

static int usage_error(const keel_app *app, const char *fmt, const char *arg)
{
    if (fmt) {
        fprintf(stderr, "%s: ", app->name);
        fprintf(stderr, fmt, arg);
        fputc('\n', stderr);
    }
    fprintf(stderr, "Try '%s --help' for more information.\n", app->name);
    return -EINVAL;
}

static int add_set(keel_app *app, const char *key, const char *value)
{
    char *kv = keel_strdup_printf("%s=%s", key, value);
    return kv ? keel_strv_push(&app->cli.sets, kv) : -ENOMEM;
}

/* A file name as a YAML scalar: "run #1.pid", "null" or "~" mean that name, never YAML. */
static int add_quoted_set(keel_app *app, const char *key, const char *value)
{
    _cleanup_free_ char *quoted = keel__config_yaml_quote(value, false);
    return quoted ? add_set(app, key, quoted) : -ENOMEM;
}

static int replace(char **field, const char *value)
{
    char *v = strdup(value);
    if (!v)
        return -ENOMEM;
    free(*field);
    *field = v;
    return 0;
}

/* Keel's version goes with the program's, for a bug report to say which framework it runs on;
 * Keel's own agent would only repeat it. */
int keel__cli_print_version(const keel_app *app, FILE *f)
{
    if (!app->version)
        fprintf(f, "%s (keel %s)\n", app->name, KEEL_VERSION);
    else if (streq(app->name, "keel") && streq(app->version, KEEL_VERSION))
        fprintf(f, "keel %s\n", KEEL_VERSION);
    else
        fprintf(f, "%s %s (keel %s)\n", app->name, app->version, KEEL_VERSION);
    return keel__cli_flushed(f, "the version");
}

int keel__cli_flushed(FILE *f, const char *what)
{
    if (fflush(f) == 0 && !ferror(f))
        return 0;
    int r = errno > 0 ? -errno : -EIO;
    keel_log_error_errno(r, "Failed to print %s: %m", what);
    return r;
}

int keel__cli_version_first(const keel_app *app, int argc, char **argv)
{
    if (argc < 2 || !streq(argv[1], "--version"))
        return 0;
    return keel__cli_print_version(app, stdout) < 0 ? -EIO : 1;
}

/* One option; 1 when it ends parsing successfully (--help, --version). */
static int parse_option(keel_app *app, int c, const char *arg)
{
    switch (c) {
    case 'c':
        return replace(&app->cli.config_file, arg);
    case 'p':
        if (!*arg)
            return usage_error(app, "--profile expects a name%s", "");
        return replace(&app->cli.profile, arg);
    case 's':
        if (!strchr(arg, '=') || arg[0] == '=')
            return usage_error(app, "--set expects KEY=VALUE, got '%s'", arg);
        return keel_strv_extend(&app->cli.sets, arg);
    case ARG_LOG_LEVEL: {
        int l = keel_log_level_from_string(arg);
        if (l < 0)
            return usage_error(app, "--log-level: unknown level '%s' (expected error, warning, notice, info or debug)", arg);
        keel_log_set_level((keel_log_level) l); /* at once, so start-up is logged at that level too */
        return add_set(app, "log.level", keel_log_level_to_string((keel_log_level) l)); /* "warn" is "warning" there */
    }
    case ARG_LOG_FORMAT: {
        keel_log_format f = keel_log_format_from_string(arg);
        if (f < 0)
            return usage_error(app, "--log-format: unknown format '%s' (expected auto, text, json or journal)", arg);
        (void) keel_log_set_format(f);
        return add_set(app, "log.format", arg);
    }
    case ARG_TRACE:
        return replace(&app->cli.trace_path, arg);
    case ARG_PIDFILE:
        if (!*arg)
            return usage_error(app, "--pidfile expects a file name%s", "");
        return add_quoted_set(app, "pidfile", arg);
    case ARG_DAEMON:
        app->cli.daemonize = true;
        return 0;
    case 'h':
        keel__cli_usage(app, stdout);
        return keel__cli_flushed(stdout, "the usage") < 0 ? -EIO : 1;
    case ARG_VERSION:
        return keel__cli_print_version(app, stdout) < 0 ? -EIO : 1;
    default: /* getopt already said what was wrong */
        return usage_error(app, NULL, NULL);
    }
}

static bool command_known(const keel_app *app, const char *name)
{
    for (size_t i = 0; i < app->registry.n_commands; i++)
        if (streq(app->registry.commands[i].name, name))
            return true;
    return false;
}

/* The global option @arg names, or NULL: "--set", "--set=k=v", "-s", "-sk=v". Sets *ret_value to
 * an inline value ("k=v") or NULL when the value is the next argument. */
static const struct option *global_option(const char *arg, const char **ret_value)
{
    *ret_value = NULL;
    if (strneq(arg, "--", 2)) {
        size_t n = strcspn(arg + 2, "=");
        for (const struct option *o = options; o->name; o++)
            if (strlen(o->name) == n && strneq(arg + 2, o->name, n)) {
                if (arg[2 + n] == '=')
                    *ret_value = arg + 3 + n;
                return o;
            }
        return NULL;
    }
    if (arg[0] != '-' || !arg[1])
        return NULL;
    for (const struct option *o = options; o->name; o++)
        if (o->val == arg[1]) {
            if (arg[2])
                *ret_value = arg + 2;
            return o;
        }
    return NULL;
}

/* After the command, global options are still taken wherever they stand (as cobra's persistent
 * flags are, so `keel config --set k=v` and `qworker enqueue NAME TEXT --set k=v` work); everything
 * else is the command's, and after a "--" everything is. */
static int split_command_args(keel_app *app, int argc, char **argv, int first)
{
    for (int i = first + 1; i < argc; i++) {
        const char *value;
        if (streq(argv[i], "--")) {
            for (i++; i < argc; i++)
                if (keel_strv_extend(&app->cli.args, argv[i]) < 0)
                    return -ENOMEM;
            break;
        }
        const struct option *o = global_option(argv[i], &value);
        if (!o) {
            if (keel_strv_extend(&app->cli.args, argv[i]) < 0)
                return -ENOMEM;
            continue;
        }
        if (o->has_arg == no_argument && value)
            return usage_error(app, "option '%s' doesn't allow an argument", argv[i]);
        if (o->has_arg == required_argument && !value) {
            if (i + 1 >= argc)
                return usage_error(app, "option '%s' requires an argument", argv[i]);
            value = argv[++i];
        }
        int r = parse_option(app, o->val, value);
        if (r != 0)
            return r;
    }
    return 0;
}

/* The text of the long option getopt_long() just read (options[@index]), when it was an
 * abbreviation ("--conf"), or NULL. After the command only whole names are options, or a command's
 * "--pid" would be taken for --pidfile; before it the same rule keeps one command line meaning one
 * thing wherever an option stands. */
static const char *abbreviation(char **argv, int index)
{
    if (index < 0)
        return NULL; /* a short option */
    bool value_apart = options[index].has_arg == required_argument && optarg == argv[optind - 1];
    const char *text = argv[optind - (value_apart ? 2 : 1)];
    return strcspn(text + 2, "=") == strlen(options[index].name) ? NULL : text;
}

/* The service is what a daemon runs: a command that prints or does one thing would detach, and
 * its result and status would be lost with the terminal it left. */
static int check_daemon(keel_app *app)
{
    if (!app->cli.daemonize || streq(app->cli.command, "serve"))
        return 0;
    return usage_error(app, "--daemon runs only with serve: '%s' does not run the service", app->cli.command);
}

int keel__cli_parse(keel_app *app, int argc, char **argv)
{
    int c, r, index = -1;

    optind = 0; /* full re-initialisation, so a process may run several apps (tests do) */
    opterr = 1;
    /* '+': stop at the command; what follows it is sorted out by split_command_args(). */
    while ((c = getopt_long(argc, argv, "+c:p:s:h", options, &index)) >= 0) {
        const char *abbreviated = c == '?' ? NULL : abbreviation(argv, index);
        if (abbreviated)
            return usage_error(app, "unrecognized option '%s' (options are named in full)", abbreviated);
        r = parse_option(app, c, optarg);
        if (r != 0)
            return r;
        index = -1;
    }
    const char *command = optind < argc ? argv[optind] : "serve";
    if (!command_known(app, command))
        return usage_error(app, "unknown command '%s'", command);
    if (replace(&app->cli.command, command) < 0)
        return -ENOMEM;
    app->cli.args = keel_strv_free(app->cli.args);
    if (keel_strv_extend(&app->cli.args, command) < 0)
        return -ENOMEM;
    r = optind < argc ? split_command_args(app, argc, argv, optind) : 0;
    return r != 0 ? r : check_daemon(app);
}

static int make_absolute(char **path)
{
    if (!*path)
        return 0;
    char *a = keel__config_path_absolute(*path);
    if (!a)
        return -ENOMEM;
    free(*path);
    *path = a;
    return 0;
}

/* --daemon: the daemon works from "/": the paths of the command line and $KEEL_DEFAULTS_FILE are
 * made absolute while the directory they are relative to is still ours (the configuration's paths
 * are made absolute by its parser). A profile name without a '/' is found next to the
 * configuration file. */
int keel__cli_make_paths_absolute(keel_app *app)
{
    int r = make_absolute(&app->cli.config_file);
    if (r >= 0)
        r = make_absolute(&app->paths.defaults_file);
    if (r >= 0)
        r = make_absolute(&app->cli.trace_path);
    if (r >= 0 && app->cli.profile && strchr(app->cli.profile, '/'))
        r = make_absolute(&app->cli.profile);
    return r;
}
