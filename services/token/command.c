/* SPDX-License-Identifier: MIT */
/*
 * `keel token --domain D --role R [--format jwt|json]`: prints one token and exits. Runs command,
 * init, configure and the certificate service's start only (no server, no listening socket), then
 * mints with the current credential in start.after.
 */
#include <stdio.h>

#include <keel/keel.h>
#include <keel/util.h>

#include "request.h"
#include "token.h"

/* One command per process, parsed from the app's arguments. */
static struct {
    const char *domain, *role; /* borrowed from the app's arguments */
    bool json;
} cmd;

/* "--name value" or "--name=value" at argv[*i]; advances *i past what it took. */
static int option_value(keel_app *app, char **argv, int argc, int *i, const char *name, const char **ret)
{
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (!strneq(a, name, n) || (a[n] != '\0' && a[n] != '='))
        return 0;
    if (a[n] == '=')
        *ret = a + n + 1;
    else if (*i + 1 < argc)
        *ret = argv[++*i];
    else
        return keel_app_fail(app, -EINVAL, "'token': option %s needs a value", name);
    return 1;
}

static int parse_format(keel_app *app, const char *format)
{
    if (!STR_IN_SET(format, "jwt", "json"))
        return keel_app_fail(app, -EINVAL, "'token': --format must be jwt or json, not '%s'", format);
    cmd.json = streq(format, "json");
    return 0;
}

static int parse_one(keel_app *app, char **argv, int argc, int *i)
{
    const char *format = NULL;
    int r = option_value(app, argv, argc, i, "--domain", &cmd.domain);
    if (r == 0)
        r = option_value(app, argv, argc, i, "--role", &cmd.role);
    if (r == 0)
        r = option_value(app, argv, argc, i, "--format", &format);
    if (r == 0)
        return keel_app_fail(app, -EINVAL, "'token': unknown argument '%s' (usage: token --domain D --role R [--format jwt|json])",
                             argv[*i]);
    if (r > 0 && format)
        r = parse_format(app, format);
    return r < 0 ? r : 0;
}

/* The rules of the token server's request headers: a token this prints, the server would issue. */
static int check_names(keel_app *app)
{
    char reason[128];
    if (token_check_value("option --domain", cmd.domain, reason, sizeof reason) < 0 ||
        token_check_value("option --role", cmd.role, reason, sizeof reason) < 0)
        return keel_app_fail(app, -EINVAL, "'token': %s", reason);
    return 0;
}

static int parse_args(keel_app *app)
{
    int argc;
    char **argv = keel_app_args(app, &argc);
    for (int i = 1; i < argc; i++) {
        int r = parse_one(app, argv, argc, &i);
        if (r < 0)
            return r;
    }
    if (!cmd.domain || !*cmd.domain)
        return keel_app_fail(app, -EINVAL, "'token': --domain is required (usage: token --domain D --role R [--format jwt|json])");
    if (!cmd.role || !*cmd.role)
        return keel_app_fail(app, -EINVAL, "'token': --role is required (usage: token --domain D --role R [--format jwt|json])");
    return check_names(app);
}

static int print_token(keel_app *app, const char *jwt, keel_usec_t expires, keel_usec_t now)
{
    _cleanup_free_ char *body = NULL;
    if (cmd.json) {
        int r = token_response_json(jwt, expires, now, cmd.role, &body);
        if (r < 0)
            return keel_app_fail(app, r, "Failed to format the token: %s", strerror(-r));
    }
    if (printf("%s\n", cmd.json ? body : jwt) < 0 || fflush(stdout) != 0)
        return keel_app_fail(app, -EIO, "Failed to print the token to standard output");
    return 0;
}

static int mint_and_print(keel_app *app, void *userdata)
{
    token_params p = token_config_params(userdata);
    keel_usec_t now = keel_now_realtime(), expires = 0;
    _cleanup_free_ char *jwt = NULL;
    char reason[256] = "";
    identity *id = NULL;
    const int *provider = keel_app_config_value(app, "token.provider", KEEL_CONFIG_ENUM);
    if (provider && *provider != 0)
        return keel_app_fail(app, -EOPNOTSUPP,
                             "token.provider is oauth2: tokens come from the issuer, through the running agent's /token; this "
                             "command mints with the agent's own key only");
    int r = identity_of(app, &id);
    if (r < 0)
        return keel_app_fail(app, r, "Failed to set up the identity: %s", strerror(-r));
    r = token_issue(id, &p, cmd.domain, cmd.role, now, &jwt, &expires, reason, sizeof reason);
    if (r < 0)
        return keel_app_fail(app, r, "Failed to issue a token for domain[%s] role[%s]: %s", cmd.domain, cmd.role, reason);
    r = print_token(app, jwt, expires, now);
    if (r < 0)
        return r;
    (void) keel_app_cancel(app, KEEL_CAUSE_COMMAND_DONE, "token printed");
    return 0;
}

static int on_token(keel_app *app, void *userdata)
{
    int r = parse_args(app);
    if (r < 0)
        return r;
    /* After the certificate service's start (start.during) published the current credential. */
    return keel_app_observe(app, KEEL_EVENT_START, KEEL_PHASE_AFTER, "token.command.mint", mint_and_print, userdata, NULL);
}

/* Beside a serving agent: no PID file, and the state directory is only read (0 flags). The
 * certificate service loads the credential it mints with. */
int token_command_register(keel_app *app, keel_service *token)
{
    int r =
        keel_app_add_command(app, "token", "print one access token: --domain D --role R [--format jwt|json]", KEEL_COMMAND_QUIET);
    if (r >= 0)
        r = keel_app_command_uses(app, "token", "certificate");
    if (r >= 0)
        r = keel_app_observe_command(app, "token", "token.command.token", on_token, token);
    return r;
}
