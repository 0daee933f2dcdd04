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
#include <keel/strbuf.h>

#include "config-load-internal.h"
#include "macro-internal.h"

void *keel__config_field_of(const config_entry *e)
{
    return (char *) e->storage + e->row->offset;
}

static int entry_compare(const void *a, const void *b)
{
    return strcmp(((const config_entry *) a)->row->key, ((const config_entry *) b)->row->key);
}

config_entry *keel__config_find_entry(const keel_config *c, const char *key)
{
    keel_config_key k = { .key = key };
    config_entry e = { .row = &k };
    return c->n_entries ? bsearch(&e, c->entries, c->n_entries, sizeof(e), entry_compare) : NULL;
}

/* Whether @key names a section: some key starts with "@key.". */
bool keel__config_is_section(const keel_config *c, const char *key)
{
    size_t n = strlen(key);
    for (size_t i = 0; i < c->n_entries; i++)
        if (strneq(c->entries[i].row->key, key, n) && c->entries[i].row->key[n] == '.')
            return true;
    return false;
}

keel_config *keel__config_new(const char *name)
{
    if (!name || !*name || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(name))
        return NULL;
    keel_config *c = malloc(sizeof(*c));
    if (!c)
        return NULL;
    *c = (keel_config){ .name = strdup(name), .env_prefix = keel_strdup_printf("%s_", name) };
    if (!c->name || !c->env_prefix)
        return keel__config_free(c);
    for (char *p = c->env_prefix; *p; p++)
        *p = *p == '-' ? '_' : (char) toupper((unsigned char) *p);
    return c;
}

const char *keel__config_env_prefix(const keel_config *c)
{
    return c->env_prefix;
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
        keel__config_entry_forget_previous(&c->entries[i]);
        keel__config_value_done(c->entries[i].row, keel__config_field_of(&c->entries[i]));
        entry_done(&c->entries[i]);
    }
    free(c->entries);
    free(c->name);
    free(c->env_prefix);
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

/* The environment variable of @key: the prefix and the key upper-cased, '.' as '_'. */
static char *env_name(const keel_config *c, const char *key)
{
    char *s = keel_strdup_printf("%s%s", c->env_prefix, key);
    if (!s)
        return NULL;
    for (char *p = s + strlen(c->env_prefix); *p; p++)
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

static int pending_prepare(const keel_config *c, pending *p, void *storage)
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
        p->entries[i].env = env_name(c, p->keys[i].key);
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

    int r = pending_prepare(c, &p, storage);
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
char *keel__config_unknown_key_message(const keel_config *c, const char *key)
{
    if (keel__config_is_section(c, key)) {
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

bool keel__config_loaded(const keel_config *c)
{
    return c && c->loaded;
}

const char *keel__config_origin(const keel_config *c, const char *key)
{
    keel_assert_return(c && key, NULL);
    config_entry *e = keel__config_find_entry(c, key);
    return e ? e->origin : NULL;
}

const void *keel__config_value(const keel_config *c, const char *key, keel_config_type type)
{
    keel_assert_return(c && key, NULL);
    config_entry *e = keel__config_find_entry(c, key);
    return e && e->row->type == type ? (const char *) e->storage + e->row->offset : NULL;
}

/* Row @k's default, parsed and formatted back (checked when its table was added); NULL when out of
 * memory. */
static char *format_default(const keel_config_key *k)
{
    keel_config_field v = {};
    if (keel__config_parse_value(k, k->def, &v, NULL) < 0)
        return NULL;
    char *text = keel__config_format_value(k, &v);
    keel__config_value_done(k, &v);
    return text;
}

int keel__config_describe(const keel_config *c, FILE *f)
{
    keel_assert_return(c && f, -EINVAL);
    for (size_t i = 0; i < c->n_entries; i++) {
        const keel_config_key *k = c->entries[i].row;
        char type[512];
        keel_strbuf sb = KEEL_STRBUF_INIT(type);
        keel_strbuf_append(&sb, k->type == KEEL_CONFIG_ENUM ? "enum" : keel__config_type_to_string(k->type));
        for (size_t j = 0; k->type == KEEL_CONFIG_ENUM && k->choices[j]; j++)
            keel_strbuf_printf(&sb, "%s%s%s", j ? "|" : "(", k->choices[j], k->choices[j + 1] ? "" : ")");
        /* The default as `config` prints values, not as the table spells it ("60s" is "1m" there). */
        _cleanup_free_ char *def = format_default(k);
        if (!def)
            return -ENOMEM;
        if (fprintf(f, "%s\t%s\t%s\t%s\t%s\t%s\n", k->key, type, def, k->live ? "live" : "restart", c->entries[i].env,
                    k->help ? k->help : "") < 0)
            return -EIO;
    }
    return 0;
}

int keel__config_dump(const keel_config *c, FILE *f)
{
    keel_assert_return(c && f, -EINVAL);
    for (size_t i = 0; i < c->n_entries; i++) {
        const config_entry *e = &c->entries[i];
        _cleanup_free_ char *v = keel__config_format_value(e->row, keel__config_field_of(e));
        if (!v)
            return -ENOMEM;
        if (fprintf(f, "%s: %s   # %s\n", e->row->key, v, e->origin) < 0)
            return -EIO;
    }
    return 0;
}
