/* SPDX-License-Identifier: MIT */
/* Loading: the six layers read in precedence order into candidates, then one all-or-nothing
 * commit into the storages (a refresh keeps what may not change live). A bad value, key or file
 * is recorded and loading goes on, so that one run reports every error of every layer. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <keel/fileio.h>

#include "config-load-internal.h"

/* The value a key will have once every layer is read. */
typedef struct candidate {
    keel_config_field value; /* owned */
    char *origin;            /* owned */
    unsigned layer;          /* the last file layer that set it, to catch a key twice in one file */
    unsigned line, column;   /* of that key */
    bool same, refused;      /* decided before the commit */
} candidate;

typedef struct load_state {
    keel_config *config; /* borrowed */
    candidate *cands;    /* owned, one per entry, same order */
    char **errors;       /* owned strv: the errors, in the order of the layers and their lines */
    size_t n_errors;     /* all of them, also those past KEEL_CONFIG_ERRORS_MAX */
    int error;           /* the first error's errno */
} load_state;

static void load_state_done(load_state *st)
{
    for (size_t i = 0; st->cands && i < st->config->n_entries; i++) {
        keel__config_value_done(st->config->entries[i].row, &st->cands[i].value);
        free(st->cands[i].origin);
    }
    free(st->cands);
    keel_strv_free(st->errors);
}

/* Records an error (@r, its errno) and returns 0 so that loading goes on; -ENOMEM when the
 * message cannot be kept, which ends the load. */
static int load_fail(load_state *st, int r, const char *fmt, ...) KEEL_PRINTF(3, 4);
static int load_fail(load_state *st, int r, const char *fmt, ...)
{
    va_list ap;
    char *msg;
    if (st->error == 0)
        st->error = r;
    if (st->n_errors++ >= KEEL_CONFIG_ERRORS_MAX)
        return 0;
    va_start(ap, fmt);
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    return n < 0 || keel_strv_push(&st->errors, msg) < 0 ? -ENOMEM : 0;
}

static int fail_unknown(load_state *st, const char *where, const char *key)
{
    /* Past the errors shown, only counted: the suggestion ("did you mean …") compares the key
     * with every known one, and 380,000 unknown keys took 18.8 s (issue 25). */
    if (st->n_errors >= KEEL_CONFIG_ERRORS_MAX)
        return load_fail(st, -EINVAL, "%s", "");
    _cleanup_free_ char *msg = keel__config_unknown_key_message(st->config, key);
    if (!msg)
        return -ENOMEM;
    return load_fail(st, -EINVAL, "%s: %s", where, msg);
}

/* Types @v for entry @i and makes it the candidate, from @origin (taken); @where prefixes a
 * failure. */
static int set_candidate(load_state *st, size_t i, const keel_config_raw *v, char *origin, const char *where)
{
    _cleanup_free_ char *o = origin, *msg = NULL;
    const keel_config_key *row = st->config->entries[i].row;
    candidate *cand = &st->cands[i];
    keel_config_field f = {};

    if (!o)
        return -ENOMEM;
    int r = keel__config_parse_raw(row, v, &f, &msg);
    if (r == -ENOMEM)
        return r;
    if (r < 0) /* out of bounds too: for the caller it is all bad configuration */
        return load_fail(st, -EINVAL, "%s: %s", where, msg);
    keel__config_value_done(row, &cand->value);
    cand->value = f;
    free(cand->origin);
    cand->origin = TAKE_PTR(o);
    return 0;
}

static int load_defaults(load_state *st)
{
    for (size_t i = 0; i < st->config->n_entries; i++) {
        const keel_config_key *row = st->config->entries[i].row;
        /* checked when the table was added, so only memory can fail here */
        int r = keel__config_parse_value(row, row->def, &st->cands[i].value, NULL);
        if (r < 0)
            return r == -ENOMEM ? r : -EINVAL;
        if (!(st->cands[i].origin = strdup("default")))
            return -ENOMEM;
    }
    return 0;
}

/* @has_children: the next items are inside @it (a section), and will name themselves in
 * messages better than a section can. Returns 1 when they are not to be read: the section stands
 * where a value should, and its keys would only repeat that error as unknown ones. */
static int apply_item(load_state *st, const char *path, unsigned layer, const keel_config_item *it, bool has_children)
{
    keel_config *c = st->config;
    config_entry *e = keel__config_find_entry(c, it->key);
    _cleanup_free_ char *at_key = keel_strdup_printf("%s:%u:%u", path, it->key_line, it->key_column),
                        *at_value = keel_strdup_printf("%s:%u:%u", path, it->line, it->column);

    if (!at_key || !at_value)
        return -ENOMEM;
    if (it->section) {
        if (e) {
            int r = load_fail(st, -EINVAL, "%s: expected a value for '%s', not a mapping", at_value, it->key);
            return r < 0 ? r : 1;
        }
        return keel__config_is_section(c, it->key) || has_children ? 0 : fail_unknown(st, at_key, it->key);
    }
    if (!e && it->value.null && keel__config_is_section(c, it->key))
        return 0; /* "shutdown:" with every key commented out: an empty section */
    if (!e)
        return fail_unknown(st, at_key, it->key);

    size_t i = (size_t) (e - c->entries);
    candidate *cand = &st->cands[i];
    if (cand->layer == layer)
        return load_fail(st, -EINVAL, "%s: duplicate key '%s' (first at line %u, column %u)", at_key, it->key, cand->line,
                         cand->column);
    cand->layer = layer;
    cand->line = it->key_line;
    cand->column = it->key_column;
    return set_candidate(st, i, &it->value, strdup(at_value), at_value);
}

/* Reads file layer @layer from @path. @what, when not NULL, words a missing or unreadable file
 * ("profile 'dev'"); an optional file that does not exist is skipped. */
static int load_file(load_state *st, const char *path, unsigned layer, bool required, const char *what)
{
    _cleanup_free_ char *data = NULL, *msg = NULL;
    keel_config_item *items = NULL;
    size_t size = 0, n = 0;

    int r = keel_file_read(path, CONFIG_FILE_MAX, &data, &size, NULL);
    if (r == -ENOENT && !required)
        return 0;
    if (r == -ENOMEM)
        return r;
    if (r < 0) /* keel_file_read()'s -EINVAL, with a path, is a device or socket */
        return load_fail(st, r, "%s%s%s: %s", what ?: "", what ? ": " : "", path,
                         r == -EINVAL ? "not a regular file" : strerror(-r));
    r = keel__config_yaml_parse_file(path, data, size, &items, &n, &msg);
    if (r == -ENOMEM)
        return r;
    if (r < 0) /* the parser cannot go past a syntax error; the other layers still can */
        return load_fail(st, r, "%s", msg);
    for (size_t i = 0; i < n && r >= 0; i++) {
        /* items come in document order: a section's children follow it */
        size_t len = strlen(items[i].key), end = i + 1;
        while (end < n && strneq(items[end].key, items[i].key, len) && items[end].key[len] == '.')
            end++;
        r = apply_item(st, path, layer, &items[i], end > i + 1);
        if (r == 1)
            i = end - 1;
    }
    keel__config_items_free(items, n);
    return MIN(r, 0);
}

/* --profile P: a path when P has a '/', else <name>.P.yaml next to the application file, or in
 * the working directory without one. */
static char *profile_path(const keel_config *c, const keel_config_sources *src)
{
    const char *p = src->profile, *base = src->profile_base ?: src->app_file;
    const char *slash = base ? strrchr(base, '/') : NULL;

    if (strchr(p, '/'))
        return strdup(p);
    if (!slash)
        return keel_strdup_printf("%s.%s.yaml", c->name, p);
    return keel_strdup_printf("%.*s/%s.%s.yaml", (int) (slash - base), base, c->name, p);
}

static int load_profile(load_state *st, const keel_config_sources *src)
{
    if (!*src->profile)
        return load_fail(st, -EINVAL, "--profile: the profile name is empty");
    _cleanup_free_ char *path = profile_path(st->config, src), *what = keel_strdup_printf("profile '%s'", src->profile);
    if (!path || !what)
        return -ENOMEM;
    return load_file(st, path, 4, true, what);
}

/* Reads @text (YAML) as the value of entry @i. */
static int set_from_text(load_state *st, size_t i, const char *text, char *origin, const char *where)
{
    _cleanup_(keel__config_raw_done) keel_config_raw v = {};
    _cleanup_free_ char *o = origin, *msg = NULL;

    int r = keel__config_yaml_parse_value(text, &v, &msg);
    if (r == -ENOMEM)
        return r;
    if (r < 0)
        return load_fail(st, -EINVAL, "%s: %s", where, msg);
    return set_candidate(st, i, &v, TAKE_PTR(o), where);
}

/* The value of @name in @env ("NAME=value" strings), the first one like getenv(). */
static const char *env_lookup(char *const *env, const char *name)
{
    size_t n = strlen(name);
    for (; env && *env; env++)
        if (strneq(*env, name, n) && (*env)[n] == '=')
            return *env + n + 1;
    return NULL;
}

/* Only the variables of known keys are read: KEEL_FAULT and friends belong to others. */
static int load_environment(load_state *st, char *const *env)
{
    for (size_t i = 0; i < st->config->n_entries && env; i++) {
        const char *name = st->config->entries[i].env, *value = env_lookup(env, name);
        if (!value)
            continue;
        _cleanup_free_ char *where = keel_strdup_printf("env %s", name);
        if (!where)
            return -ENOMEM;
        int r = set_from_text(st, i, value, strdup(where), where);
        if (r < 0)
            return r;
    }
    return 0;
}

/* One "key=value" of --set. */
static int load_set(load_state *st, const char *kv)
{
    _cleanup_free_ char *where = keel_strdup_printf("--set %s", kv), *key = NULL;
    const char *eq = strchr(kv, '=');
    if (!where)
        return -ENOMEM;
    if (!eq)
        return load_fail(st, -EINVAL, "%s: expected key=value", where);
    if (!(key = strndup(kv, (size_t) (eq - kv))))
        return -ENOMEM;
    config_entry *e = keel__config_find_entry(st->config, key);
    if (!e)
        return fail_unknown(st, where, key);
    return set_from_text(st, (size_t) (e - st->config->entries), eq + 1, strdup("--set"), where);
}

static int load_sets(load_state *st, char *const *sets)
{
    for (; sets && *sets; sets++) {
        int r = load_set(st, *sets);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Every layer, past the errors of the ones before: only -ENOMEM stops it. */
static int load_layers(load_state *st, const keel_config_sources *src)
{
    int r = load_defaults(st);
    if (r < 0 || !src)
        return r;
    if (src->defaults_file && (r = load_file(st, src->defaults_file, 2, false, NULL)) < 0)
        return r;
    if (src->app_file && (r = load_file(st, src->app_file, 3, true, NULL)) < 0)
        return r;
    if (src->profile && (r = load_profile(st, src)) < 0)
        return r;
    if ((r = load_environment(st, src->environ)) < 0)
        return r;
    if ((r = load_sets(st, src->sets)) < 0)
        return r;
    if (st->n_errors <= KEEL_CONFIG_ERRORS_MAX)
        return 0;
    char *more = keel_strdup_printf("%zu more errors not shown", st->n_errors - KEEL_CONFIG_ERRORS_MAX);
    return more ? keel_strv_push(&st->errors, more) : -ENOMEM;
}

/* Replaces the changed values with the candidates. Everything that can fail happens before the
 * first value is replaced, so the storages see all of the new configuration or none of it. */
static int commit(load_state *st, bool reload, char ***ret_refused)
{
    keel_config *c = st->config;
    _cleanup_strv_free_ char **refused = calloc(1, sizeof(char *));

    if (!refused)
        return -ENOMEM;
    for (size_t i = 0; i < c->n_entries; i++) {
        candidate *cand = &st->cands[i];
        cand->same = keel__config_value_equal(c->entries[i].row, keel__config_field_of(&c->entries[i]), &cand->value);
        cand->refused = reload && !cand->same && !c->entries[i].row->live;
        if (cand->refused && keel_strv_extend(&refused, c->entries[i].row->key) < 0)
            return -ENOMEM;
    }
    for (size_t i = 0; i < c->n_entries; i++) {
        config_entry *e = &c->entries[i];
        candidate *cand = &st->cands[i];
        if (cand->refused)
            continue; /* the old value stays, and so does its origin */
        if (reload)
            keel__config_entry_keep_previous(e, !cand->same);
        if (!cand->same) {
            /* an unchanged value keeps its storage, so pointers into it stay valid */
            if (!reload)
                keel__config_value_done(e->row, keel__config_field_of(e));
            memcpy(keel__config_field_of(e), &cand->value, keel__config_type_size(e->row->type));
            cand->value = (keel_config_field){};
        }
        if (!reload)
            free(e->origin);
        e->origin = TAKE_PTR(cand->origin);
    }
    c->loaded = true;
    if (ret_refused)
        *ret_refused = TAKE_PTR(refused);
    return 0;
}

static int config_load(keel_config *c, const keel_config_sources *src, bool reload, char ***ret_refused, char ***ret_errors)
{
    _cleanup_(load_state_done) load_state st = { .config = c };

    st.cands = calloc(MAX(c->n_entries, (size_t) 1), sizeof(*st.cands));
    if (!st.cands)
        return -ENOMEM;
    int r = load_layers(&st, src);
    if (r >= 0 && st.error < 0)
        r = st.error;
    if (r >= 0)
        r = commit(&st, reload, ret_refused);
    if (r < 0 && ret_errors)
        *ret_errors = r == -ENOMEM ? NULL : TAKE_PTR(st.errors);
    return r;
}

int keel__config_load(keel_config *c, const keel_config_sources *src, char ***ret_errors)
{
    keel_assert_return(c, -EINVAL);
    return config_load(c, src, false, NULL, ret_errors);
}

int keel__config_reload(keel_config *c, const keel_config_sources *src, char ***ret_refused, char ***ret_errors)
{
    keel_assert_return(c, -EINVAL);
    return config_load(c, src, true, ret_refused, ret_errors);
}
