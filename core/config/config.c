/* SPDX-License-Identifier: MIT */
/* The layered configuration: registered tables, the six layers read in precedence order into
 * temporaries, an all-or-nothing commit into the storages, origins, suggestions and the dump. */
#include <ctype.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <keel/fileio.h>

#include "config.h"
#include "macro.h"

/* A configuration file is a few KiB; anything this big is a mistake (or /dev/zero). */
#define CONFIG_FILE_MAX (4U * 1024 * 1024)

typedef struct config_entry {
    const keel_config_key *row; /* borrowed: tables are static and outlive the config */
    void *storage;              /* borrowed: the value is at storage + row->offset */
    char *env;                  /* owned: "KEEL_SHUTDOWN_TIMEOUT" */
    char *origin;               /* owned: where the value in storage came from */
} config_entry;

struct keel_config {
    config_entry *entries; /* owned, sorted by key */
    size_t n_entries;
    bool loaded; /* tables may no longer be added */
};

static void *field_of(const config_entry *e)
{
    return (char *) e->storage + e->row->offset;
}

static int entry_compare(const void *a, const void *b)
{
    return strcmp(((const config_entry *) a)->row->key, ((const config_entry *) b)->row->key);
}

static config_entry *find_entry(const keel_config *c, const char *key)
{
    keel_config_key k = { .key = key };
    config_entry e = { .row = &k };
    return c->n_entries ? bsearch(&e, c->entries, c->n_entries, sizeof(e), entry_compare) : NULL;
}

/* Whether @key names a section: some key starts with "@key.". */
static bool is_section(const keel_config *c, const char *key)
{
    size_t n = strlen(key);
    for (size_t i = 0; i < c->n_entries; i++)
        if (strneq(c->entries[i].row->key, key, n) && c->entries[i].row->key[n] == '.')
            return true;
    return false;
}

keel_config *keel__config_new(void)
{
    keel_config *c = malloc(sizeof(*c));
    if (!c)
        return NULL;
    *c = (keel_config){};
    return c;
}

static void entry_done(config_entry *e)
{
    free(e->env);
    free(e->origin);
}

keel_config *keel__config_free(keel_config *c)
{
    if (!c)
        return NULL;
    for (size_t i = 0; i < c->n_entries; i++) {
        keel__config_value_done(c->entries[i].row, field_of(&c->entries[i]));
        entry_done(&c->entries[i]);
    }
    free(c->entries);
    free(c);
    return NULL;
}

/* ---- Registering tables -------------------------------------------------------------------- */

/* "shutdown.timeout": segments of [a-z0-9_], joined by single dots. */
static bool key_is_valid(const char *key)
{
    if (!key || !*key || *key == '.')
        return false;
    for (const char *p = key; *p; p++)
        if (*p == '.' ? p[1] == '.' || p[1] == 0 : !strchr("abcdefghijklmnopqrstuvwxyz0123456789_", *p))
            return false;
    return true;
}

/* The environment variable of @key: KEEL_ and the key upper-cased, '.' as '_'. */
static char *env_name(const char *key)
{
    char *s = keel_strdup_printf("KEEL_%s", key);
    if (!s)
        return NULL;
    for (char *p = s; *p; p++)
        *p = *p == '.' ? '_' : (char) toupper((unsigned char) *p);
    return s;
}

/* Checks row @k and parses its default into @ret_default. -EINVAL (reason logged at debug). */
static int check_row(const keel_config_key *k, keel_config_field *ret_default)
{
    _cleanup_free_ char *err = NULL;
    const char *reason = NULL;

    if (!key_is_valid(k->key)) {
        keel_log_debug("Config key '%s' is not a valid key name", k->key ?: "(null)");
        return -EINVAL;
    }
    if (keel__config_check_row(k, &reason) < 0) {
        keel_log_debug("Config key '%s': %s", k->key, reason);
        return -EINVAL;
    }
    int r = keel__config_parse_value(k, k->def, ret_default, &err);
    if (r == -ENOMEM)
        return r;
    if (r < 0) {
        keel_log_debug("Config key '%s': bad default: %s", k->key, err ?: "");
        return -EINVAL;
    }
    return 0;
}

/* In sorted @all: a key twice, a key that is another's section ("a" and "a.b"), or two keys with
 * one environment variable ("a.b_c", "a_b.c"). */
static int check_conflicts(const config_entry *all, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        const char *a = all[i - 1].row->key, *b = all[i].row->key;
        size_t la = strlen(a);
        /* '.' sorts before every other key character, so "a.b" directly follows "a" */
        if (streq(a, b) || (strneq(a, b, la) && b[la] == '.')) {
            keel_log_debug("Config key '%s' conflicts with '%s'", b, a);
            return -EEXIST;
        }
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (streq(all[i].env, all[j].env)) {
                keel_log_debug("Config keys '%s' and '%s' share $%s", all[i].row->key, all[j].row->key, all[i].env);
                return -EEXIST;
            }
    return 0;
}

/* The new entries of a table being added, with their parsed defaults, until they are committed. */
typedef struct pending {
    const keel_config_key *keys;
    size_t n;
    config_entry *entries;       /* owned: env and origin of each */
    keel_config_field *defaults; /* owned */
} pending;

static void pending_done(pending *p)
{
    for (size_t i = 0; p->entries && p->defaults && i < p->n; i++) {
        entry_done(&p->entries[i]);
        keel__config_value_done(&p->keys[i], &p->defaults[i]);
    }
    free(p->entries);
    free(p->defaults);
}

static int pending_prepare(pending *p, void *storage)
{
    p->entries = calloc(p->n, sizeof(*p->entries));
    p->defaults = calloc(p->n, sizeof(*p->defaults));
    if (!p->entries || !p->defaults)
        return -ENOMEM;
    for (size_t i = 0; i < p->n; i++) {
        p->entries[i] = (config_entry){ .row = &p->keys[i], .storage = storage };
        int r = check_row(&p->keys[i], &p->defaults[i]);
        if (r < 0)
            return r;
        p->entries[i].env = env_name(p->keys[i].key);
        p->entries[i].origin = strdup("default");
        if (!p->entries[i].env || !p->entries[i].origin)
            return -ENOMEM;
    }
    return 0;
}

int keel__config_add_table(keel_config *c, const keel_config_key *keys, size_t n, void *storage)
{
    _cleanup_(pending_done) pending p = { .keys = keys, .n = n };
    _cleanup_free_ config_entry *all = NULL;

    keel_assert_return(c, -EINVAL);
    keel_assert_return(keys || n == 0, -EINVAL);
    keel_assert_return(storage || n == 0, -EINVAL);
    keel_assert_return(!c->loaded, -ESTALE);
    if (n == 0)
        return 0;

    int r = pending_prepare(&p, storage);
    if (r < 0)
        return r;
    all = reallocarray(NULL, c->n_entries + n, sizeof(*all));
    if (!all)
        return -ENOMEM;
    if (c->n_entries > 0) /* memcpy() from NULL is undefined even for 0 bytes */
        memcpy(all, c->entries, c->n_entries * sizeof(*all));
    memcpy(all + c->n_entries, p.entries, n * sizeof(*all));
    qsort(all, c->n_entries + n, sizeof(*all), entry_compare);
    r = check_conflicts(all, c->n_entries + n);
    if (r < 0)
        return r;

    /* nothing fails from here: the defaults go to the storage, the entries to the config */
    for (size_t i = 0; i < n; i++)
        memcpy((char *) storage + keys[i].offset, &p.defaults[i], keel__config_type_size(keys[i].type));
    free(c->entries);
    c->entries = TAKE_PTR(all);
    c->n_entries += n;
    /* the env names, origins and default values now belong to the config and the storage */
    free(TAKE_PTR(p.entries));
    free(TAKE_PTR(p.defaults));
    return 0;
}

/* ---- Suggestions --------------------------------------------------------------------------- */

/* Optimal string alignment distance (Levenshtein plus adjacent transpositions), ignoring case;
 * SIZE_MAX for strings too long to be a typo of a key. */
static size_t edit_distance(const char *a, const char *b)
{
    enum { N = 128 };
    unsigned char d[N + 1][N + 1]; /* distances never exceed N */
    size_t la = strlen(a), lb = strlen(b);

    if (la > N || lb > N)
        return SIZE_MAX;
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (unsigned char) i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (unsigned char) j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int x = tolower((unsigned char) a[i - 1]), y = tolower((unsigned char) b[j - 1]);
            unsigned v = MIN(MIN(d[i - 1][j] + 1u, d[i][j - 1] + 1u), d[i - 1][j - 1] + (unsigned) (x != y));
            if (i > 1 && j > 1 && x == tolower((unsigned char) b[j - 2]) && tolower((unsigned char) a[i - 2]) == y)
                v = MIN(v, d[i - 2][j - 2] + 1u);
            d[i][j] = (unsigned char) v;
        }
    return d[la][lb];
}

/* The known key @key was probably meant to be, or NULL when none is close: within a quarter of
 * its length (1 to 3 edits), or the only key whose last segment it is ("timeout"). */
static const char *closest_key(const keel_config *c, const char *key)
{
    const char *best = NULL, *leaf_match = NULL;
    size_t best_d = SIZE_MAX, limit = MAX((size_t) 1, MIN((size_t) 3, strlen(key) / 4)), n_leaf = 0;

    for (size_t i = 0; i < c->n_entries; i++) {
        const char *k = c->entries[i].row->key, *leaf = strrchr(k, '.');
        size_t d = edit_distance(key, k);
        if (d < best_d) {
            best_d = d;
            best = k;
        }
        if (leaf && !strcasecmp(leaf + 1, key)) {
            leaf_match = k;
            n_leaf++;
        }
    }
    if (best_d <= limit)
        return best;
    return n_leaf == 1 ? leaf_match : NULL;
}

/* "unknown key 'x'; did you mean 'y'?", or what a section is when @key names one. */
static char *unknown_key_message(const keel_config *c, const char *key)
{
    if (is_section(c, key)) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, n = strlen(key);
        FILE *m = open_memstream(&buf, &size);
        if (!m)
            return NULL;
        fprintf(m, "'%s' is a section, not a key (its keys:", key);
        for (size_t i = 0; i < c->n_entries; i++)
            if (strneq(c->entries[i].row->key, key, n) && c->entries[i].row->key[n] == '.')
                fprintf(m, " %s", c->entries[i].row->key);
        fputc(')', m);
        if (fclose(m) != 0)
            return NULL;
        return TAKE_PTR(buf);
    }
    const char *best = closest_key(c, key);
    if (best)
        return keel_strdup_printf("unknown key '%s'; did you mean '%s'?", key, best);
    return keel_strdup_printf("unknown key '%s'", key);
}

/* ---- Loading ------------------------------------------------------------------------------- */

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
    char *error;         /* owned: the one message of a failure */
} load_state;

static void load_state_done(load_state *st)
{
    for (size_t i = 0; st->cands && i < st->config->n_entries; i++) {
        keel__config_value_done(st->config->entries[i].row, &st->cands[i].value);
        free(st->cands[i].origin);
    }
    free(st->cands);
    free(st->error);
}

/* Records the failure message and returns @r; -ENOMEM when the message cannot be made. */
static int load_fail(load_state *st, int r, const char *fmt, ...) KEEL_PRINTF(3, 4);
static int load_fail(load_state *st, int r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&st->error, fmt, ap);
    va_end(ap);
    if (n < 0) {
        st->error = NULL;
        return -ENOMEM;
    }
    return r;
}

static int fail_unknown(load_state *st, const char *where, const char *key)
{
    _cleanup_free_ char *msg = unknown_key_message(st->config, key);
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
 * messages better than a section can. */
static int apply_item(load_state *st, const char *path, unsigned layer, const keel_config_item *it, bool has_children)
{
    keel_config *c = st->config;
    config_entry *e = find_entry(c, it->key);
    _cleanup_free_ char *at_key = keel_strdup_printf("%s:%u:%u", path, it->key_line, it->key_column),
                        *at_value = keel_strdup_printf("%s:%u:%u", path, it->line, it->column);

    if (!at_key || !at_value)
        return -ENOMEM;
    if (it->section) {
        if (e)
            return load_fail(st, -EINVAL, "%s: expected a value for '%s', not a mapping", at_value, it->key);
        return is_section(c, it->key) || has_children ? 0 : fail_unknown(st, at_key, it->key);
    }
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
    if (r < 0)
        return load_fail(st, r, "%s%s%s: %s", what ?: "", what ? ": " : "", path, strerror(-r));
    r = keel__config_yaml_parse_file(path, data, size, &items, &n, &msg);
    if (r == -ENOMEM)
        return r;
    if (r < 0)
        return load_fail(st, r, "%s", msg);
    for (size_t i = 0; i < n && r >= 0; i++) {
        /* items come in document order: a section's first child follows it */
        size_t len = strlen(items[i].key);
        bool has_children = i + 1 < n && strneq(items[i + 1].key, items[i].key, len) && items[i + 1].key[len] == '.';
        r = apply_item(st, path, layer, &items[i], has_children);
    }
    keel__config_items_free(items, n);
    return r;
}

/* --profile P: a path when P has a '/', else keel.P.yaml next to the app file, or next to the
 * defaults file when there is none, or in the working directory. */
static char *profile_path(const keel_config_sources *src)
{
    const char *p = src->profile, *base = src->app_file ?: src->defaults_file;
    const char *slash = base ? strrchr(base, '/') : NULL;

    if (strchr(p, '/'))
        return strdup(p);
    if (!slash)
        return keel_strdup_printf("keel.%s.yaml", p);
    return keel_strdup_printf("%.*s/keel.%s.yaml", (int) (slash - base), base, p);
}

static int load_profile(load_state *st, const keel_config_sources *src)
{
    if (!*src->profile)
        return load_fail(st, -EINVAL, "--profile: the profile name is empty");
    _cleanup_free_ char *path = profile_path(src), *what = keel_strdup_printf("profile '%s'", src->profile);
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

static int load_sets(load_state *st, char *const *sets)
{
    for (; sets && *sets; sets++) {
        _cleanup_free_ char *where = keel_strdup_printf("--set %s", *sets), *key = NULL;
        const char *eq = strchr(*sets, '=');
        if (!where)
            return -ENOMEM;
        if (!eq)
            return load_fail(st, -EINVAL, "%s: expected key=value", where);
        if (!(key = strndup(*sets, (size_t) (eq - *sets))))
            return -ENOMEM;
        config_entry *e = find_entry(st->config, key);
        if (!e)
            return fail_unknown(st, where, key);
        int r = set_from_text(st, (size_t) (e - st->config->entries), eq + 1, strdup("--set"), where);
        if (r < 0)
            return r;
    }
    return 0;
}

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
    return load_sets(st, src->sets);
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
        cand->same = keel__config_value_equal(c->entries[i].row, field_of(&c->entries[i]), &cand->value);
        cand->refused = reload && !cand->same && !c->entries[i].row->live;
        if (cand->refused && keel_strv_extend(&refused, c->entries[i].row->key) < 0)
            return -ENOMEM;
    }
    for (size_t i = 0; i < c->n_entries; i++) {
        config_entry *e = &c->entries[i];
        candidate *cand = &st->cands[i];
        if (cand->refused)
            continue; /* the old value stays, and so does its origin */
        if (!cand->same) {
            /* an unchanged value keeps its storage, so pointers into it stay valid */
            keel__config_value_done(e->row, field_of(e));
            memcpy(field_of(e), &cand->value, keel__config_type_size(e->row->type));
            cand->value = (keel_config_field){};
        }
        free(e->origin);
        e->origin = TAKE_PTR(cand->origin);
    }
    c->loaded = true;
    if (ret_refused)
        *ret_refused = TAKE_PTR(refused);
    return 0;
}

static int config_load(keel_config *c, const keel_config_sources *src, bool reload, char ***ret_refused, char **ret_error)
{
    _cleanup_(load_state_done) load_state st = { .config = c };

    st.cands = calloc(MAX(c->n_entries, (size_t) 1), sizeof(*st.cands));
    if (!st.cands)
        return -ENOMEM;
    int r = load_layers(&st, src);
    if (r >= 0)
        r = commit(&st, reload, ret_refused);
    if (r < 0 && ret_error)
        *ret_error = TAKE_PTR(st.error);
    return r;
}

int keel__config_load(keel_config *c, const keel_config_sources *src, char **ret_error)
{
    keel_assert_return(c, -EINVAL);
    return config_load(c, src, false, NULL, ret_error);
}

int keel__config_reload(keel_config *c, const keel_config_sources *src, char ***ret_refused, char **ret_error)
{
    keel_assert_return(c, -EINVAL);
    return config_load(c, src, true, ret_refused, ret_error);
}

bool keel__config_loaded(const keel_config *c)
{
    return c && c->loaded;
}

const char *keel__config_origin(const keel_config *c, const char *key)
{
    keel_assert_return(c && key, NULL);
    config_entry *e = find_entry(c, key);
    return e ? e->origin : NULL;
}

int keel__config_dump(const keel_config *c, FILE *f)
{
    keel_assert_return(c && f, -EINVAL);
    for (size_t i = 0; i < c->n_entries; i++) {
        const config_entry *e = &c->entries[i];
        _cleanup_free_ char *v = keel__config_format_value(e->row, field_of(e));
        if (!v)
            return -ENOMEM;
        if (fprintf(f, "%s: %s   # %s\n", e->row->key, v, e->origin) < 0)
            return -EIO;
    }
    return 0;
}
