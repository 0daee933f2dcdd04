/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <criterion/criterion.h>

#include "config-internal.h"
#include "helpers.h"
#include "macro-internal.h"

#define SEC KEEL_USEC_PER_SEC

typedef struct settings {
    char *state_dir;
    char *pidfile;
    int log_level;
    keel_usec_t timeout;
    keel_usec_t delay;
    char **dns_names;
    keel_address token_address;
    bool metrics;
    uint64_t buffer;
    int64_t workers;
} settings;

static const char *const levels[] = { "error", "warning", "info", "debug", NULL };

#define S(field) offsetof(settings, field)
static const keel_config_key table[] = {
    { .key = "state_dir", .type = KEEL_CONFIG_PATH, .offset = S(state_dir), .def = "/var/lib/keel" },
    { .key = "pidfile", .type = KEEL_CONFIG_STRING, .offset = S(pidfile), .def = "''" },
    { .key = "log.level", .type = KEEL_CONFIG_ENUM, .offset = S(log_level), .def = "info", .choices = levels, .live = true },
    { .key = "shutdown.timeout",
      .type = KEEL_CONFIG_DURATION,
      .offset = S(timeout),
      .def = "30s",
      .min = 1000,
      .max = 3600LL * 1000000,
      .live = true },
    { .key = "shutdown.delay", .type = KEEL_CONFIG_DURATION, .offset = S(delay), .def = "0" },
    { .key = "certificate.dns_names", .type = KEEL_CONFIG_LIST, .offset = S(dns_names), .def = "[]", .live = true },
    { .key = "token.address", .type = KEEL_CONFIG_ADDRESS, .offset = S(token_address), .def = "127.0.0.1:8880" },
    { .key = "metrics.enabled", .type = KEEL_CONFIG_BOOL, .offset = S(metrics), .def = "true", .live = true },
    { .key = "token.buffer", .type = KEEL_CONFIG_SIZE, .offset = S(buffer), .def = "64K" },
    { .key = "token.workers", .type = KEEL_CONFIG_INT, .offset = S(workers), .def = "4", .min = 1, .max = 64 },
};

/* Each test runs in its own process: the fixture is plain globals. */
static keel_config *config;
static settings st;
static char *dir;

static void setup(void)
{
    memset(&st, 0x5a, sizeof(st)); /* garbage before the defaults are written */
    config = keel__config_new("keel");
    cr_assert_not_null(config);
    cr_assert_eq(keel__config_add_table(config, table, ELEMENTSOF(table), &st), 0);
    dir = keel_strdup_printf("%s/%s", test_tmpdir(), "cfg");
    (void) mkdir(dir, 0755);
}

static void teardown(void)
{
    config = keel__config_free(config);
    free(dir);
}

TestSuite(config, .init = setup, .fini = teardown);

/* Writes @content to @name in the test directory; the path lives until the test ends. */
static const char *file(const char *name, const char *content)
{
    static char *paths[16];
    static size_t n;
    cr_assert_lt(n, ELEMENTSOF(paths));
    return paths[n++] = test_write_file(dir, name, content);
}

/* The errors joined by newlines, so that one error compares as itself. */
static char *joined(char **errors)
{
    char *s = errors ? strdup("") : NULL;
    for (char **e = errors; e && *e; e++) {
        char *t = keel_strdup_printf("%s%s%s", s, e == errors ? "" : "\n", *e);
        free(s);
        s = t;
    }
    return s;
}

static int load(const keel_config_sources *src, char **ret_error)
{
    _cleanup_strv_free_ char **errors = NULL;
    int r = keel__config_load(config, src, ret_error ? &errors : NULL);
    if (ret_error)
        *ret_error = joined(errors);
    return r;
}

/* Loads @src, expects @error and the message @msg. */
static void load_fails(const keel_config_sources *src, int error, const char *msg)
{
    _cleanup_free_ char *err = NULL;
    int r = load(src, &err);
    cr_assert_eq(r, error, "expected %d, got %d (%s)", error, r, err ?: "");
    cr_assert_not_null(err);
    if (msg)
        cr_assert_str_eq(err, msg);
}

static void load_ok(const keel_config_sources *src)
{
    _cleanup_free_ char *err = NULL;
    int r = load(src, &err);
    cr_assert_eq(r, 0, "%d: %s", r, err ?: "");
    cr_assert_null(err);
}

static void origin_is(const char *key, const char *expected)
{
    const char *o = keel__config_origin(config, key);
    cr_assert_not_null(o, "%s has no origin", key);
    cr_assert_str_eq(o, expected, "origin of %s", key);
}

/* "DIR/NAME:LINE:COL" */
static char *at(const char *name, unsigned line, unsigned column)
{
    return keel_strdup_printf("%s/%s:%u:%u", dir, name, line, column);
}

static void origin_at(const char *key, const char *name, unsigned line, unsigned column)
{
    _cleanup_free_ char *o = at(name, line, column);
    origin_is(key, o);
}

/* @msg with DIR replaced by the test directory, then compared. */
static void load_fails_in(const keel_config_sources *src, int error, const char *fmt, ...)
{
    char *msg;
    va_list ap;
    va_start(ap, fmt);
    cr_assert_geq(vasprintf(&msg, fmt, ap), 0);
    va_end(ap);
    load_fails(src, error, msg);
    free(msg);
}

/* ---- Registering --------------------------------------------------------------------------- */

Test(config, defaults_written_at_once)
{
    cr_assert_str_eq(st.state_dir, "/var/lib/keel");
    cr_assert_str_eq(st.pidfile, "");
    cr_assert_eq(st.log_level, 2);
    cr_assert_eq(st.timeout, 30 * SEC);
    cr_assert_eq(st.delay, 0);
    cr_assert_not_null(st.dns_names);
    cr_assert_null(st.dns_names[0]);
    cr_assert_str_eq(st.token_address.host, "127.0.0.1");
    cr_assert_eq(st.token_address.port, 8880);
    cr_assert(st.metrics);
    cr_assert_eq(st.buffer, 65536);
    cr_assert_eq(st.workers, 4);
    for (size_t i = 0; i < ELEMENTSOF(table); i++)
        origin_is(table[i].key, "default");
    cr_assert_null(keel__config_origin(config, "no.such_key"));
    cr_assert_null(keel__config_origin(config, "shutdown"));
}

Test(config, free_clears_owned_fields)
{
    config = keel__config_free(config);
    cr_assert_null(st.state_dir);
    cr_assert_null(st.pidfile);
    cr_assert_null(st.dns_names);
    cr_assert_null(keel__config_free(NULL));
}

typedef struct other {
    char *name;
    int64_t n;
} other;

static int add_one(const keel_config_key *row)
{
    other o;
    memset(&o, 0x77, sizeof(o));
    other copy = o;
    int r = keel__config_add_table(config, row, 1, &o);
    if (r < 0)
        cr_assert_eq(memcmp(&o, &copy, sizeof(o)), 0, "storage touched on failure");
    return r;
}

#define ROW(k, t, d, ...) (&(keel_config_key){ .key = (k), .type = (t), .def = (d), __VA_ARGS__ })

Test(config, add_table_rejects)
{
    cr_assert_eq(add_one(ROW("state_dir", KEEL_CONFIG_STRING, "x")), -EEXIST);
    cr_assert_eq(add_one(ROW("shutdown", KEEL_CONFIG_STRING, "x")), -EEXIST);         /* a section */
    cr_assert_eq(add_one(ROW("state_dir.sub", KEEL_CONFIG_STRING, "x")), -EEXIST);    /* under a key */
    cr_assert_eq(add_one(ROW("shutdown_timeout", KEEL_CONFIG_STRING, "x")), -EEXIST); /* $KEEL_SHUTDOWN_TIMEOUT */
    cr_assert_eq(add_one(ROW("Upper", KEEL_CONFIG_STRING, "x")), -EINVAL);
    cr_assert_eq(add_one(ROW("a..b", KEEL_CONFIG_STRING, "x")), -EINVAL);
    cr_assert_eq(add_one(ROW(".a", KEEL_CONFIG_STRING, "x")), -EINVAL);
    cr_assert_eq(add_one(ROW("a.", KEEL_CONFIG_STRING, "x")), -EINVAL);
    cr_assert_eq(add_one(ROW("a-b", KEEL_CONFIG_STRING, "x")), -EINVAL);
    cr_assert_eq(add_one(ROW("", KEEL_CONFIG_STRING, "x")), -EINVAL);
    cr_assert_eq(add_one(ROW(NULL, KEEL_CONFIG_STRING, "x")), -EINVAL);
    cr_assert_eq(add_one(ROW("x.n", KEEL_CONFIG_INT, "abc")), -EINVAL);                   /* bad default */
    cr_assert_eq(add_one(ROW("x.n", KEEL_CONFIG_INT, "0", .min = 1, .max = 2)), -EINVAL); /* out of bounds */
    cr_assert_eq(add_one(ROW("x.n", KEEL_CONFIG_INT, NULL)), -EINVAL);                    /* no default */
    cr_assert_eq(add_one(ROW("x.n", KEEL_CONFIG_INT, "1", .min = 2, .max = 1)), -EINVAL);
    cr_assert_eq(add_one(ROW("x.n", KEEL_CONFIG_ENUM, "a")), -EINVAL);
    cr_assert_eq(add_one(ROW("x.n", KEEL_CONFIG_STRING, "a", .max = 3)), -EINVAL);
    cr_assert_eq(add_one(ROW("x.n", _KEEL_CONFIG_TYPE_MAX, "a")), -EINVAL);
    cr_assert_eq(keel__config_add_table(NULL, table, 1, &st), -EINVAL);
    cr_assert_eq(keel__config_add_table(config, NULL, 1, &st), -EINVAL);
    cr_assert_eq(keel__config_add_table(config, table, 1, NULL), -EINVAL);
    cr_assert_eq(keel__config_add_table(config, NULL, 0, NULL), 0);
    cr_assert_null(keel__config_origin(config, "x.n"));
}

Test(config, add_table_is_all_or_nothing)
{
    other o = {};
    const keel_config_key rows[] = {
        { .key = "other.name", .type = KEEL_CONFIG_STRING, .offset = offsetof(other, name), .def = "n" },
        { .key = "other.name", .type = KEEL_CONFIG_INT, .offset = offsetof(other, n), .def = "1" },
    };
    cr_assert_eq(keel__config_add_table(config, rows, 2, &o), -EEXIST);
    cr_assert_null(o.name);
    cr_assert_null(keel__config_origin(config, "other.name"));

    const keel_config_key good[] = {
        { .key = "other.name", .type = KEEL_CONFIG_STRING, .offset = offsetof(other, name), .def = "n" },
        { .key = "other.n", .type = KEEL_CONFIG_INT, .offset = offsetof(other, n), .def = "-1" },
    };
    cr_assert_eq(keel__config_add_table(config, good, 2, &o), 0);
    cr_assert_str_eq(o.name, "n");
    cr_assert_eq(o.n, -1);
    origin_is("other.n", "default");
    /* both tables load together */
    load_ok(&(keel_config_sources){ .sets = (char *[]){ "other.n=7", "token.workers=3", NULL } });
    cr_assert_eq(o.n, 7);
    cr_assert_eq(st.workers, 3);
    /* the configuration is loaded: no more tables */
    other late = {};
    const keel_config_key row = { .key = "late.n", .type = KEEL_CONFIG_INT, .offset = offsetof(other, n), .def = "1" };
    cr_assert_eq(keel__config_add_table(config, &row, 1, &late), -ESTALE);
    cr_assert_eq(late.n, 0);
    keel__config_free(TAKE_PTR(config)); /* before o goes out of scope: it owns o.name */
}

/* ---- Layers and precedence ----------------------------------------------------------------- */

Test(config, precedence_of_all_six_layers)
{
    const char *defaults = file("defaults.yaml", "shutdown:\n  timeout: 1s\n  delay: 1s\n");
    const char *app = file("app.yaml", "shutdown:\n  timeout: 2s\n");
    (void) file("keel.dev.yaml", "# the dev profile\nshutdown.timeout: 3s\n");
    char *env[] = { "KEEL_SHUTDOWN_TIMEOUT=4s", NULL };
    char *sets[] = { "shutdown.timeout=5s", NULL };
    keel_config_sources all = { .defaults_file = defaults, .app_file = app, .profile = "dev", .environ = env, .sets = sets };

    /* each run drops the highest layer left: the next one down must win */
    struct {
        keel_usec_t value;
        const char *origin;
        unsigned line, column;
    } expected[] = {
        { 5 * SEC, "--set", 0, 0 },          { 4 * SEC, "env KEEL_SHUTDOWN_TIMEOUT", 0, 0 },
        { 3 * SEC, "keel.dev.yaml", 2, 19 }, { 2 * SEC, "app.yaml", 2, 12 },
        { 1 * SEC, "defaults.yaml", 2, 12 }, { 30 * SEC, "default", 0, 0 },
    };
    for (size_t i = 0; i < ELEMENTSOF(expected); i++) {
        keel_config_sources src = all;
        if (i >= 1)
            src.sets = NULL;
        if (i >= 2)
            src.environ = NULL;
        if (i >= 3)
            src.profile = NULL;
        if (i >= 4)
            src.app_file = NULL;
        if (i >= 5)
            src.defaults_file = NULL;
        load_ok(&src);
        cr_assert_eq(st.timeout, expected[i].value, "layer %zu: %" PRIu64, i, st.timeout);
        if (expected[i].line)
            origin_at("shutdown.timeout", expected[i].origin, expected[i].line, expected[i].column);
        else
            origin_is("shutdown.timeout", expected[i].origin);
        /* a key only one layer sets keeps that layer */
        if (src.defaults_file) {
            cr_assert_eq(st.delay, SEC);
            origin_at("shutdown.delay", "defaults.yaml", 3, 10);
        } else {
            cr_assert_eq(st.delay, 0);
            origin_is("shutdown.delay", "default");
        }
        origin_is("state_dir", "default");
    }
}

Test(config, later_set_wins)
{
    load_ok(&(keel_config_sources){ .sets = (char *[]){ "token.workers=2", "token.workers=9", NULL } });
    cr_assert_eq(st.workers, 9);
    origin_is("token.workers", "--set");
}

Test(config, defaults_file_is_optional)
{
    _cleanup_free_ char *missing = keel_strdup_printf("%s/nope.yaml", dir);
    load_ok(&(keel_config_sources){ .defaults_file = missing });
    cr_assert_eq(st.timeout, 30 * SEC);
    load_ok(NULL);
}

Test(config, app_file_must_exist)
{
    _cleanup_free_ char *missing = keel_strdup_printf("%s/nope.yaml", dir);
    load_fails_in(&(keel_config_sources){ .app_file = missing }, -ENOENT, "%s: No such file or directory", missing);
    load_fails_in(&(keel_config_sources){ .app_file = dir }, -EISDIR, "%s: Is a directory", dir);
    load_fails(&(keel_config_sources){ .app_file = "/dev/zero" }, -EINVAL, "/dev/zero: not a regular file");
    load_ok(&(keel_config_sources){ .app_file = "/dev/null" }); /* no configuration file, as `ssh -F /dev/null` */
    origin_is("token.workers", "default");
}

Test(config, profile_next_to_app_file)
{
    const char *app = file("app.yaml", "");
    (void) file("keel.prod.yaml", "token.workers: 8\n");
    load_ok(&(keel_config_sources){ .app_file = app, .profile = "prod" });
    cr_assert_eq(st.workers, 8);
    origin_at("token.workers", "keel.prod.yaml", 1, 16);

    load_fails_in(&(keel_config_sources){ .app_file = app, .profile = "qa" }, -ENOENT,
                  "profile 'qa': %s/keel.qa.yaml: No such file or directory", dir);
    load_fails(&(keel_config_sources){ .app_file = app, .profile = "" }, -EINVAL, "--profile: the profile name is empty");
}

/* An operator's profile sits beside the operator's file (/etc/keel/), also when that file does not
 * exist, and never beside the packaged defaults (/usr/share/keel/). */
Test(config, profile_next_to_profile_base_not_defaults_file)
{
    _cleanup_free_ char *share = keel_strdup_printf("%s/share", dir), *etc = keel_strdup_printf("%s/etc", dir),
                        *base = keel_strdup_printf("%s/etc/keel.yaml", dir), *defaults = NULL, *profile = NULL;
    cr_assert_eq(mkdir(share, 0755), 0);
    cr_assert_eq(mkdir(etc, 0755), 0);
    defaults = test_write_file(share, "defaults.yaml", "token.workers: 2\n");
    free(test_write_file(share, "keel.dev.yaml", "token.workers: 9\n"));
    load_fails_in(&(keel_config_sources){ .defaults_file = defaults, .profile_base = base, .profile = "dev" }, -ENOENT,
                  "profile 'dev': %s/etc/keel.dev.yaml: No such file or directory", dir);
    load_fails(&(keel_config_sources){ .defaults_file = defaults, .profile = "dev" }, -ENOENT,
               "profile 'dev': keel.dev.yaml: No such file or directory");

    profile = test_write_file(etc, "keel.dev.yaml", "token.workers: 3\n");
    load_ok(&(keel_config_sources){ .defaults_file = defaults, .profile_base = base, .profile = "dev" });
    cr_assert_eq(st.workers, 3);
    _cleanup_free_ char *o = keel_strdup_printf("%s:1:16", profile);
    origin_is("token.workers", o);
}

Test(config, profile_as_path)
{
    const char *p = file("custom-profile.yaml", "token.workers: 5\n");
    load_ok(&(keel_config_sources){ .profile = p });
    cr_assert_eq(st.workers, 5);
    /* without any file to sit next to, the profile is looked up in the working directory */
    load_fails(&(keel_config_sources){ .profile = "no-such-profile" }, -ENOENT,
               "profile 'no-such-profile': keel.no-such-profile.yaml: No such file or directory");
}

/* ---- File structure ------------------------------------------------------------------------ */

Test(config, nested_and_flat_keys)
{
    const char *f = file("app.yaml", "log:\n"
                                     "  level: debug\n"
                                     "shutdown.timeout: 10s\n"
                                     "certificate:\n"
                                     "  dns_names:\n"
                                     "    - a.example\n"
                                     "    - 'b.example'\n"
                                     "token: {address: ':0', workers: 16}\n"
                                     "metrics.enabled: no\n");
    load_ok(&(keel_config_sources){ .app_file = f });
    cr_assert_eq(st.log_level, 3);
    cr_assert_eq(st.timeout, 10 * SEC);
    cr_assert(keel_strv_equal(st.dns_names, (char *[]){ "a.example", "b.example", NULL }));
    cr_assert_str_eq(st.token_address.host, "");
    cr_assert_eq(st.token_address.port, 0);
    cr_assert_eq(st.workers, 16);
    cr_assert_not(st.metrics);
    origin_at("log.level", "app.yaml", 2, 10);
    origin_at("certificate.dns_names", "app.yaml", 6, 5);
    origin_at("token.workers", "app.yaml", 8, 33);
}

Test(config, empty_files)
{
    const char *contents[] = { "", "# only a comment\n\n# and another\n", "---\n", "---\n...\n" };
    for (size_t i = 0; i < ELEMENTSOF(contents); i++) {
        _cleanup_free_ char *name = keel_strdup_printf("empty%zu.yaml", i);
        load_ok(&(keel_config_sources){ .app_file = file(name, contents[i]) });
        cr_assert_eq(st.timeout, 30 * SEC);
    }
}

/* A section left with its keys commented out is empty, at a load as at a reload; a section name
 * no table has is still unknown. */
Test(config, null_section_sets_nothing)
{
    const keel_config_sources src = { .app_file = file("null.yaml", "shutdown:\n#  timeout: 5s\ntoken: ~\nlog.level: debug\n") };
    load_ok(&src);
    cr_assert_eq(st.timeout, 30 * SEC);
    origin_is("shutdown.timeout", "default");
    cr_assert_eq(keel__config_reload(config, &src, NULL, NULL), 0);
    cr_assert_eq(st.timeout, 30 * SEC);

    const keel_config_sources unknown = { .app_file = file("unknown.yaml", "shutdwn:\n") };
    load_fails_in(&unknown, -EINVAL, "%s/unknown.yaml:1:1: unknown key 'shutdwn'", dir);
}

Test(config, structure_errors)
{
    const keel_config_sources src = { .app_file = file("app.yaml", "shutdown:\n  timeout: [1s]\n") };
    load_fails_in(&src, -EINVAL, "%s/app.yaml:2:12: invalid duration for shutdown.timeout: expected a single value, not a list",
                  dir);

    const keel_config_sources map = { .app_file = file("map.yaml", "shutdown:\n  timeout:\n    x: 1\n") };
    load_fails_in(&map, -EINVAL, "%s/map.yaml:3:5: expected a value for 'shutdown.timeout', not a mapping", dir);

    const keel_config_sources item = { .app_file = file("item.yaml", "certificate:\n  dns_names:\n    - a: b\n") };
    load_fails_in(&item, -EINVAL,
                  "%s/item.yaml:3:7: an item of the list 'certificate.dns_names' must be a single value, not a mapping", dir);

    const keel_config_sources section = { .app_file = file("section.yaml", "shutdown: 5s\n") };
    load_fails_in(&section, -EINVAL,
                  "%s/section.yaml:1:1: 'shutdown' is a section, not a key (its keys: shutdown.delay shutdown.timeout)", dir);

    const keel_config_sources top = { .app_file = file("top.yaml", "just a string\n") };
    load_fails_in(&top, -EINVAL, "%s/top.yaml:1:1: expected a mapping of keys (key: value) at the top level", dir);

    const keel_config_sources docs = { .app_file = file("docs.yaml", "token.workers: 1\n---\ntoken.workers: 2\n") };
    load_fails_in(&docs, -EINVAL, "%s/docs.yaml:2:1: only one YAML document is allowed", dir);

    const keel_config_sources alias = { .app_file = file("alias.yaml", "pidfile: &p /run/x\nstate_dir: *p\n") };
    load_fails_in(&alias, -EINVAL, "%s/alias.yaml:2:12: aliases are not supported (the value of 'state_dir')", dir);

    const keel_config_sources dup = { .app_file = file("dup.yaml", "shutdown:\n  timeout: 1s\nshutdown.timeout: 2s\n") };
    load_fails_in(&dup, -EINVAL, "%s/dup.yaml:3:1: duplicate key 'shutdown.timeout' (first at line 2, column 3)", dir);
}

Test(config, nesting_depth_is_limited)
{
    char deep[512] = "";
    for (int i = 0; i < 40; i++)
        strcat(deep, "{a: ");
    strcat(deep, "1");
    for (int i = 0; i < 40; i++)
        strcat(deep, "}");
    const keel_config_sources src = { .app_file = file("deep.yaml", deep) };
    load_fails_in(&src, -EINVAL, "%s/deep.yaml:1:129: mappings nested deeper than 32 levels", dir);
}

Test(config, huge_file_is_refused)
{
    _cleanup_free_ char *path = keel_strdup_printf("%s/huge.yaml", dir);
    FILE *f = fopen(path, "we");
    cr_assert_not_null(f);
    cr_assert_eq(ftruncate(fileno(f), 5 * 1024 * 1024), 0);
    cr_assert_eq(fclose(f), 0);
    load_fails_in(&(keel_config_sources){ .app_file = path }, -EFBIG, "%s: File too large", path);
}

Test(config, malformed_yaml)
{
    const keel_config_sources indent = { .app_file = file("indent.yaml", "shutdown:\n  timeout: 1s\n delay: 2s\n") };
    load_fails_in(&indent, -EINVAL,
                  "%s/indent.yaml:3:2: did not find expected key (while parsing a block mapping at line 1, column 1)", dir);

    const keel_config_sources flow = { .app_file = file("flow.yaml", "certificate.dns_names: [a, b\n") };
    load_fails_in(&flow, -EINVAL,
                  "%s/flow.yaml:2:1: did not find expected ',' or ']' (while parsing a flow sequence at line 1, column 24)", dir);

    const keel_config_sources tab = { .app_file = file("tab.yaml", "shutdown:\n\ttimeout: 1s\n") };
    load_fails_in(&tab, -EINVAL,
                  "%s/tab.yaml:2:1: found character that cannot start any token (while scanning for the next token at line 2, "
                  "column 1)",
                  dir);

    const keel_config_sources colon = { .app_file = file("colon.yaml", "pidfile: a: b\n") };
    load_fails_in(&colon, -EINVAL, "%s/colon.yaml:1:11: mapping values are not allowed in this context", dir);

    const keel_config_sources utf8 = { .app_file = file("utf8.yaml", "pidfile: ok\nstate_dir: \xff\n") };
    load_fails_in(&utf8, -EINVAL, "%s/utf8.yaml:2:12: invalid leading UTF-8 octet", dir);
}

/* ---- Unknown keys -------------------------------------------------------------------------- */

Test(config, unknown_key_with_suggestion)
{
    const keel_config_sources nested = { .app_file = file("nested.yaml", "shutdown:\n  timout: 5s\n") };
    load_fails_in(&nested, -EINVAL, "%s/nested.yaml:2:3: unknown key 'shutdown.timout'; did you mean 'shutdown.timeout'?", dir);

    const keel_config_sources flat = { .app_file = file("flat.yaml", "\ntoken.adress: ':1'\n") };
    load_fails_in(&flat, -EINVAL, "%s/flat.yaml:2:1: unknown key 'token.adress'; did you mean 'token.address'?", dir);

    const keel_config_sources section = { .app_file = file("section.yaml", "shutdwn:\n  timeout: 5s\n") };
    load_fails_in(&section, -EINVAL, "%s/section.yaml:2:3: unknown key 'shutdwn.timeout'; did you mean 'shutdown.timeout'?", dir);

    const keel_config_sources transposed = { .app_file = file("transposed.yaml", "stetu_dir: /x\n") };
    load_fails_in(&transposed, -EINVAL, "%s/transposed.yaml:1:1: unknown key 'stetu_dir'; did you mean 'state_dir'?", dir);

    const keel_config_sources caps = { .app_file = file("caps.yaml", "Log.Level: info\n") };
    load_fails_in(&caps, -EINVAL, "%s/caps.yaml:1:1: unknown key 'Log.Level'; did you mean 'log.level'?", dir);

    /* the key without its section */
    const keel_config_sources leaf = { .app_file = file("leaf.yaml", "workers: 3\n") };
    load_fails_in(&leaf, -EINVAL, "%s/leaf.yaml:1:1: unknown key 'workers'; did you mean 'token.workers'?", dir);

    load_fails(&(keel_config_sources){ .sets = (char *[]){ "shutdown.timout=5s", NULL } }, -EINVAL,
               "--set shutdown.timout=5s: unknown key 'shutdown.timout'; did you mean 'shutdown.timeout'?");
}

Test(config, unknown_key_without_suggestion)
{
    const keel_config_sources far = { .app_file = file("far.yaml", "completely_unrelated: 1\n") };
    load_fails_in(&far, -EINVAL, "%s/far.yaml:1:1: unknown key 'completely_unrelated'", dir);

    const keel_config_sources empty_section = { .app_file = file("empty.yaml", "plugins: {}\n") };
    load_fails_in(&empty_section, -EINVAL, "%s/empty.yaml:1:1: unknown key 'plugins'", dir);

    /* "delay" would be the leaf of one key only, "address" is not: too close to two */
    load_fails(&(keel_config_sources){ .sets = (char *[]){ "xyz=1", NULL } }, -EINVAL, "--set xyz=1: unknown key 'xyz'");
    load_fails(&(keel_config_sources){ .sets = (char *[]){ "shutdown=1", NULL } }, -EINVAL,
               "--set shutdown=1: 'shutdown' is a section, not a key (its keys: shutdown.delay shutdown.timeout)");
}

Test(config, unknown_environment_is_ignored)
{
    char *env[] = { "KEEL_FAULT=error@in:metrics.start",
                    "KEEL_SHUTDOWN_TIMOUT=abc",
                    "KEEL_=x",
                    "KEEL",
                    "PATH=/usr/bin",
                    "KEEL_TOKEN_WORKERS=12",
                    NULL };
    load_ok(&(keel_config_sources){ .environ = env });
    cr_assert_eq(st.workers, 12);
    origin_is("token.workers", "env KEEL_TOKEN_WORKERS");
    origin_is("shutdown.timeout", "default");
}

/* ---- Values -------------------------------------------------------------------------------- */

Test(config, bad_values_name_origin_key_text_and_expectation)
{
    const keel_config_sources f = { .app_file = file("app.yaml", "shutdown:\n  timeout: abc\n") };
    load_fails_in(&f, -EINVAL,
                  "%s/app.yaml:2:12: invalid duration 'abc' for shutdown.timeout: expected a number with a unit (250ms, 30s, 5m, "
                  "24h)",
                  dir);

    const keel_config_sources bounds = { .app_file = file("bounds.yaml", "shutdown.timeout: 2h\n") };
    load_fails_in(&bounds, -EINVAL,
                  "%s/bounds.yaml:1:19: duration '2h' for shutdown.timeout is out of range: expected between 1ms and 1h", dir);

    load_fails(&(keel_config_sources){ .environ = (char *[]){ "KEEL_TOKEN_WORKERS=100", NULL } }, -EINVAL,
               "env KEEL_TOKEN_WORKERS: integer '100' for token.workers is out of range: expected between 1 and 64");
    load_fails(&(keel_config_sources){ .environ = (char *[]){ "KEEL_LOG_LEVEL=loud", NULL } }, -EINVAL,
               "env KEEL_LOG_LEVEL: invalid value 'loud' for log.level: expected one of error, warning, info, debug");
    load_fails(&(keel_config_sources){ .sets = (char *[]){ "token.address=localhost", NULL } }, -EINVAL,
               "--set token.address=localhost: invalid address 'localhost' for token.address: missing port; expected "
               "host:port, :port (every address) or [IPv6]:port");
    load_fails(&(keel_config_sources){ .sets = (char *[]){ "state_dir=", NULL } }, -EINVAL,
               "--set state_dir=: invalid path '' for state_dir: expected a non-empty path");
}

Test(config, set_values_are_yaml)
{
    char *sets[] = { "certificate.dns_names=[a.example,b.example]", "pidfile='/run/x y.pid'", "token.address=':9000'",
                     "state_dir=/srv/keel # a comment", NULL };
    load_ok(&(keel_config_sources){ .sets = sets });
    cr_assert(keel_strv_equal(st.dns_names, (char *[]){ "a.example", "b.example", NULL }));
    cr_assert_str_eq(st.pidfile, "/run/x y.pid");
    cr_assert_eq(st.token_address.port, 9000);
    cr_assert_str_eq(st.state_dir, "/srv/keel");
    origin_is("certificate.dns_names", "--set");

    load_ok(&(keel_config_sources){ .sets = (char *[]){ "certificate.dns_names=one.example", "pidfile=", NULL } });
    cr_assert(keel_strv_equal(st.dns_names, (char *[]){ "one.example", NULL }));
    cr_assert_str_eq(st.pidfile, "");
    load_ok(&(keel_config_sources){ .sets = (char *[]){ "certificate.dns_names=[]", NULL } });
    cr_assert_null(st.dns_names[0]);
}

/* !!str is the text as it stands, never null; any other tag is refused, where it stands, rather
 * than dropped unread. */
Test(config, yaml_tags)
{
    load_ok(&(keel_config_sources){ .sets = (char *[]){ "pidfile=!!str null", "certificate.dns_names=[!!str ~]", NULL } });
    cr_assert_str_eq(st.pidfile, "null");
    cr_assert(keel_strv_equal(st.dns_names, (char *[]){ "~", NULL }));
    load_ok(&(keel_config_sources){ .sets = (char *[]){ "pidfile=!!str", NULL } });
    cr_assert_str_eq(st.pidfile, "");

    load_fails(&(keel_config_sources){ .sets = (char *[]){ "pidfile=!!binary NXM=", NULL } }, -EINVAL,
               "--set pidfile=!!binary NXM=: unsupported YAML tag '!!binary' (only !!str is, on a single value)");
    load_fails(&(keel_config_sources){ .sets = (char *[]){ "log.level=!custom debug", NULL } }, -EINVAL,
               "--set log.level=!custom debug: unsupported YAML tag '!custom' (only !!str is, on a single value)");
    load_fails(&(keel_config_sources){ .sets = (char *[]){ "certificate.dns_names=!!seq [a]", NULL } }, -EINVAL,
               "--set certificate.dns_names=!!seq [a]: unsupported YAML tag '!!seq' (only !!str is, on a single value)");
    const char *tagged[][2] = {
        { "log:\n  level: !custom debug\n", "2:10: unsupported YAML tag '!custom'" },
        { "token: !!map {workers: 2}\n", "1:8: unsupported YAML tag '!!map'" },
        { "!!str token.workers: 2\n", NULL },
        { "!<tag:example.com,2024:x> pidfile: a\n", "1:1: unsupported YAML tag 'tag:example.com,2024:x'" },
        { "certificate.dns_names: [a, !!int 1]\n", "1:28: unsupported YAML tag '!!int'" },
    };
    for (size_t i = 0; i < ELEMENTSOF(tagged); i++) {
        const char *path = file("tagged.yaml", tagged[i][0]);
        _cleanup_free_ char *err = NULL;
        int r = load(&(keel_config_sources){ .app_file = path }, &err);
        if (!tagged[i][1]) {
            cr_assert_eq(r, 0, "%s", err ?: "");
            continue;
        }
        _cleanup_free_ char *want = keel_strdup_printf("%s:%s (only !!str is, on a single value)", path, tagged[i][1]);
        cr_assert_eq(r, -EINVAL, "%s", tagged[i][0]);
        cr_assert_str_eq(err, want);
    }
}

Test(config, set_errors)
{
    load_fails(&(keel_config_sources){ .sets = (char *[]){ "pidfile", NULL } }, -EINVAL, "--set pidfile: expected key=value");
    load_fails(&(keel_config_sources){ .sets = (char *[]){ "=x", NULL } }, -EINVAL, "--set =x: unknown key ''");
    load_fails(&(keel_config_sources){ .sets = (char *[]){ "certificate.dns_names=[a,b", NULL } }, -EINVAL,
               "--set certificate.dns_names=[a,b: invalid YAML '[a,b': did not find expected ',' or ']'");
    load_fails(&(keel_config_sources){ .sets = (char *[]){ "pidfile=a: b", NULL } }, -EINVAL,
               "--set pidfile=a: b: 'a: b' is a YAML mapping, not a value");
}

Test(config, environment_values_are_yaml)
{
    char *env[] = { "KEEL_CERTIFICATE_DNS_NAMES=[a.example, b.example]",
                    "KEEL_STATE_DIR=/srv/keel",
                    "KEEL_METRICS_ENABLED=off",
                    "KEEL_TOKEN_BUFFER=1MiB",
                    "KEEL_PIDFILE=",
                    "KEEL_SHUTDOWN_DELAY=5s",
                    "KEEL_SHUTDOWN_DELAY=9s",
                    NULL };
    load_ok(&(keel_config_sources){ .environ = env });
    cr_assert(keel_strv_equal(st.dns_names, (char *[]){ "a.example", "b.example", NULL }));
    cr_assert_str_eq(st.state_dir, "/srv/keel");
    cr_assert_not(st.metrics);
    cr_assert_eq(st.buffer, 1 << 20);
    cr_assert_str_eq(st.pidfile, "");
    cr_assert_eq(st.delay, 5 * SEC); /* the first, as getenv() */
    origin_is("certificate.dns_names", "env KEEL_CERTIFICATE_DNS_NAMES");

    load_ok(&(keel_config_sources){ .environ = (char *[]){ "KEEL_CERTIFICATE_DNS_NAMES=solo.example", NULL } });
    cr_assert(keel_strv_equal(st.dns_names, (char *[]){ "solo.example", NULL }));
    load_fails(&(keel_config_sources){ .environ = (char *[]){ "KEEL_CERTIFICATE_DNS_NAMES=[a", NULL } }, -EINVAL,
               "env KEEL_CERTIFICATE_DNS_NAMES: invalid YAML '[a': did not find expected ',' or ']'");
}

Test(config, every_error_of_every_layer_once_in_order)
{
    /* a section where a value belongs is one error: its keys are not reported as unknown too */
    const char *f = file("app.yaml", "shutdown:\n  timout: 5s\n  delay: soon\ntoken.address:\n  host: x\n  port: 1\n"
                                     "token.workers: 0\ntoken.workers: 2\n");
    char *env[] = { "KEEL_LOG_LEVEL=loud", "KEEL_TOKEN_WORKERS=3", NULL };
    char *sets[] = { "pidfile", "shutdown.timeout=2h", "state_dir=/srv/ok", NULL };
    const keel_config_sources src = { .app_file = f, .profile = "missing", .environ = env, .sets = sets };
    _cleanup_strv_free_ char **errors = NULL;

    cr_assert_eq(keel__config_load(config, &src, &errors), -EINVAL);
    _cleanup_free_ char
        *got = joined(errors),
        *expected = keel_strdup_printf(
            "%1$s/app.yaml:2:3: unknown key 'shutdown.timout'; did you mean 'shutdown.timeout'?\n"
            "%1$s/app.yaml:3:10: invalid duration 'soon' for shutdown.delay: expected a number with a unit (250ms, 30s, 5m, 24h)\n"
            "%1$s/app.yaml:5:3: expected a value for 'token.address', not a mapping\n"
            "%1$s/app.yaml:7:16: integer '0' for token.workers is out of range: expected between 1 and 64\n"
            "%1$s/app.yaml:8:1: duplicate key 'token.workers' (first at line 7, column 1)\n"
            "profile 'missing': %1$s/keel.missing.yaml: No such file or directory\n"
            "env KEEL_LOG_LEVEL: invalid value 'loud' for log.level: expected one of error, warning, info, debug\n"
            "--set pidfile: expected key=value\n"
            "--set shutdown.timeout=2h: duration '2h' for shutdown.timeout is out of range: expected between 1ms and 1h",
            dir);
    cr_assert_str_eq(got, expected);
    cr_assert_str_eq(st.state_dir, "/var/lib/keel", "a failed load changed a storage");
    cr_assert_eq(st.workers, 4);
}

Test(config, errors_past_the_limit_are_counted)
{
    char text[16384] = "";
    for (int i = 0; i < KEEL_CONFIG_ERRORS_MAX + 50; i++)
        (void) snprintf(text + strlen(text), sizeof text - strlen(text), "unknown_%03d: 1\n", i);
    _cleanup_strv_free_ char **errors = NULL;
    cr_assert_eq(keel__config_load(config, &(keel_config_sources){ .app_file = file("many.yaml", text) }, &errors), -EINVAL);
    cr_assert_eq(keel_strv_length(errors), KEEL_CONFIG_ERRORS_MAX + 1);
    cr_assert(strstr(errors[KEEL_CONFIG_ERRORS_MAX - 1], "unknown key 'unknown_099'"), "%s", errors[KEEL_CONFIG_ERRORS_MAX - 1]);
    cr_assert_str_eq(errors[KEEL_CONFIG_ERRORS_MAX], "50 more errors not shown");
}

/* ---- Commit, reload ------------------------------------------------------------------------ */

Test(config, failed_load_changes_nothing)
{
    const char *good = file("good.yaml", "state_dir: /srv/a\ncertificate.dns_names: [x]\nshutdown.timeout: 5s\n");
    load_ok(&(keel_config_sources){ .app_file = good });
    settings before = st;
    _cleanup_free_ char *origin = strdup(keel__config_origin(config, "state_dir"));

    /* good values first, then one bad one: none of them may land */
    const char *bad = file("bad.yaml", "state_dir: /srv/b\ncertificate.dns_names: [y]\nshutdown.timeout: 5\n");
    load_fails_in(&(keel_config_sources){ .app_file = bad }, -EINVAL,
                  "%s/bad.yaml:3:19: invalid duration '5' for shutdown.timeout: expected a number with a unit (250ms, 30s, 5m, "
                  "24h)",
                  dir);
    load_fails(&(keel_config_sources){ .app_file = good, .sets = (char *[]){ "token.workers=2", "token.workers=0", NULL } },
               -EINVAL, "--set token.workers=0: integer '0' for token.workers is out of range: expected between 1 and 64");
    cr_assert_eq(memcmp(&st, &before, sizeof(st)), 0); /* the very same pointers */
    cr_assert_str_eq(st.state_dir, "/srv/a");
    cr_assert_str_eq(st.dns_names[0], "x");
    cr_assert_eq(st.workers, 4);
    origin_is("state_dir", origin);
}

Test(config, unchanged_values_keep_their_storage)
{
    const char *f = file("app.yaml", "state_dir: /var/lib/keel\ncertificate.dns_names: []\n");
    char *state_dir = st.state_dir;
    load_ok(&(keel_config_sources){ .app_file = f });
    cr_assert_eq(st.state_dir, state_dir, "an equal value was replaced");
    origin_at("state_dir", "app.yaml", 1, 12);
}

Test(config, reload_refuses_non_live_keys)
{
    const char *f = file("app.yaml", "state_dir: /srv/a\nshutdown.delay: 1s\nlog.level: info\n");
    keel_config_sources src = { .app_file = f };
    load_ok(&src);
    char *state_dir = st.state_dir;

    /* state_dir and shutdown.delay change but are not live; log.level and the timeout are */
    (void) file("app.yaml", "state_dir: /srv/b\nshutdown.delay: 2s\nlog.level: debug\n");
    src.sets = (char *[]){ "shutdown.timeout=10s", NULL };
    _cleanup_strv_free_ char **refused = NULL, **err = NULL;
    cr_assert_eq(keel__config_reload(config, &src, &refused, &err), 0, "%s", err ? err[0] : "");
    cr_assert(keel_strv_equal(refused, (char *[]){ "shutdown.delay", "state_dir", NULL }));
    cr_assert_eq(st.state_dir, state_dir);
    cr_assert_str_eq(st.state_dir, "/srv/a");
    cr_assert_eq(st.delay, SEC);
    origin_at("state_dir", "app.yaml", 1, 12); /* still the old value's origin */
    cr_assert_eq(st.log_level, 3);
    cr_assert_eq(st.timeout, 10 * SEC);
    origin_is("shutdown.timeout", "--set");

    /* a non-live key whose value does not change is no refusal, even from another layer */
    keel_strv_free(TAKE_PTR(refused));
    src.sets = (char *[]){ "shutdown.timeout=10s", "state_dir=/srv/a", "shutdown.delay=1s", NULL };
    cr_assert_eq(keel__config_reload(config, &src, &refused, &err), 0);
    cr_assert_not_null(refused);
    cr_assert_null(refused[0]);
    origin_is("state_dir", "--set");

    /* without anyone wanting the list */
    cr_assert_eq(keel__config_reload(config, &src, NULL, NULL), 0);
}

Test(config, reload_reverts_removed_keys_to_defaults)
{
    const char *f = file("app.yaml", "shutdown.timeout: 5s\nlog.level: debug\n");
    keel_config_sources src = { .app_file = f };
    load_ok(&src);
    cr_assert_eq(st.timeout, 5 * SEC);
    (void) file("app.yaml", "# nothing left\n");
    _cleanup_strv_free_ char **refused = NULL;
    cr_assert_eq(keel__config_reload(config, &src, &refused, NULL), 0);
    cr_assert_eq(st.timeout, 30 * SEC);
    cr_assert_eq(st.log_level, 2);
    origin_is("shutdown.timeout", "default");
}

/* A refresh that fails after the reload: every replaced value and origin comes back, the new
 * strings and lists are freed (ASan), and once undone nothing more is. */
Test(config, reload_undo_puts_back_values_and_origins)
{
    const char *f = file("app.yaml", "log.level: info\nshutdown.timeout: 5s\ncertificate.dns_names: [a.example]\n");
    keel_config_sources src = { .app_file = f };
    load_ok(&src);
    char **names = st.dns_names;
    (void) file("app.yaml", "log.level: debug\nshutdown.timeout: 5s\ncertificate.dns_names: [b.example, c.example]\n");
    src.sets = (char *[]){ "shutdown.timeout=7s", NULL };
    cr_assert_eq(keel__config_reload(config, &src, NULL, NULL), 0);
    cr_assert_eq(st.log_level, 3);
    cr_assert_eq(st.timeout, 7 * SEC);
    cr_assert_str_eq(st.dns_names[1], "c.example");
    origin_is("shutdown.timeout", "--set");

    cr_assert_eq(keel__config_reload_undo(config), 3);
    cr_assert_eq(st.log_level, 2);
    cr_assert_eq(st.timeout, 5 * SEC);
    cr_assert_eq(st.dns_names, names, "the old list itself, still alive");
    cr_assert(keel_strv_equal(st.dns_names, (char *[]){ "a.example", NULL }));
    origin_at("shutdown.timeout", "app.yaml", 2, 19);
    cr_assert_eq(keel__config_reload_undo(config), 0, "undone once");

    /* a reload that succeeds keeps its values: forget frees only the replaced ones */
    cr_assert_eq(keel__config_reload(config, &src, NULL, NULL), 0);
    keel__config_reload_forget(config);
    cr_assert_eq(keel__config_reload_undo(config), 0);
    cr_assert_str_eq(st.dns_names[0], "b.example");
    cr_assert_eq(st.timeout, 7 * SEC);
}

Test(config, failed_reload_changes_nothing)
{
    const char *f = file("app.yaml", "log.level: debug\n");
    keel_config_sources src = { .app_file = f };
    load_ok(&src);
    (void) file("app.yaml", "log.level: warning\nshutdown.timeout: forever\n");
    char **refused = (char **) 0x1;
    _cleanup_strv_free_ char **err = NULL;
    cr_assert_eq(keel__config_reload(config, &src, &refused, &err), -EINVAL);
    cr_assert_eq(refused, (char **) 0x1, "ret_refused written on failure");
    cr_assert_not_null(err);
    cr_assert_eq(st.log_level, 3);
}

/* ---- Dump ---------------------------------------------------------------------------------- */

static char *dump(void)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *m = open_memstream(&buf, &size);
    cr_assert_not_null(m);
    cr_assert_eq(keel__config_dump(config, m), 0);
    cr_assert_eq(fclose(m), 0);
    return buf;
}

Test(config, dump_format)
{
    const char *f = file("app.yaml", "certificate:\n  dns_names: [a.example, 'b c', 'x,y']\ntoken.address: '[::1]:80'\n");
    load_ok(&(keel_config_sources){ .app_file = f,
                                    .environ = (char *[]){ "KEEL_PIDFILE=/run/keel.pid", NULL },
                                    .sets = (char *[]){ "shutdown.timeout=1m30s", "state_dir='/srv/a: b'", NULL } });
    _cleanup_free_ char *out = dump(),
                        *expected = keel_strdup_printf("certificate.dns_names: [a.example, b c, 'x,y']   # %1$s/app.yaml:2:14\n"
                                                       "log.level: info   # default\n"
                                                       "metrics.enabled: true   # default\n"
                                                       "pidfile: /run/keel.pid   # env KEEL_PIDFILE\n"
                                                       "shutdown.delay: 0s   # default\n"
                                                       "shutdown.timeout: 1m30s   # --set\n"
                                                       "state_dir: '/srv/a: b'   # --set\n"
                                                       "token.address: '[::1]:80'   # %1$s/app.yaml:3:16\n"
                                                       "token.buffer: 64KiB   # default\n"
                                                       "token.workers: 4   # default\n",
                                                       dir);
    cr_assert_str_eq(out, expected);
}

/* `config --keys` prints each default as `config` prints the value: "0s" in both, not "0" in one
 * (issue 26), and "64KiB" for a table's "64K". */
Test(config, keys_print_defaults_as_the_dump_prints_values)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *m = open_memstream(&buf, &size);
    cr_assert_not_null(m);
    cr_assert_eq(keel__config_describe(config, m), 0);
    cr_assert_eq(fclose(m), 0);
    _cleanup_free_ char *keys = buf;
    cr_assert(strstr(keys, "shutdown.delay\tduration\t0s\t"), "%s", keys);
    cr_assert(strstr(keys, "token.buffer\tsize\t64KiB\t"), "%s", keys);

    load_ok(&(keel_config_sources){ 0 });
    _cleanup_free_ char *values = dump();
    cr_assert(strstr(values, "shutdown.delay: 0s   # default\n"), "%s", values);
    cr_assert(strstr(values, "token.buffer: 64KiB   # default\n"), "%s", values);
}

Test(config, dump_reads_back_as_the_same_configuration)
{
    char *sets[] = { "certificate.dns_names=['-a', 'b: c', '', '#x']",
                     "pidfile=''",
                     "state_dir=\"tab\\there\"",
                     "token.address=':1'",
                     "token.buffer=1536",
                     "shutdown.delay=1d1us",
                     NULL };
    load_ok(&(keel_config_sources){ .sets = sets });
    settings first = st;
    first.dns_names = keel_strv_copy(st.dns_names);
    first.state_dir = strdup(st.state_dir);
    first.pidfile = strdup(st.pidfile);

    _cleanup_free_ char *out = dump();
    load_ok(&(keel_config_sources){ .app_file = file("dumped.yaml", out) });
    for (size_t i = 0; i < ELEMENTSOF(table); i++)
        cr_assert(keel__config_value_equal(&table[i], (char *) &st + table[i].offset, (char *) &first + table[i].offset),
                  "%s differs after a round trip through:\n%s", table[i].key, out);
    keel_strv_free(first.dns_names);
    free(first.state_dir);
    free(first.pidfile);
}

Test(config, bad_arguments)
{
    char **err = NULL;
    cr_assert_eq(keel__config_load(NULL, NULL, &err), -EINVAL);
    cr_assert_eq(keel__config_reload(NULL, NULL, NULL, &err), -EINVAL);
    cr_assert_null(err);
    cr_assert_null(keel__config_origin(NULL, "x"));
    cr_assert_null(keel__config_origin(config, NULL));
    cr_assert_eq(keel__config_dump(config, NULL), -EINVAL);
}
