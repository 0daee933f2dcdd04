/* SPDX-License-Identifier: MIT */
/* Reading configuration YAML with libyaml's event API. A file becomes a flat list of dotted keys,
 * each with the marks its messages need; a --set or environment value becomes one scalar or one
 * sequence. Nothing is typed here: config-parse.c does that, once the key is known. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <yaml.h>

#include "config-internal.h"
#include "macro-internal.h"

/* Deeper nesting is no configuration anyone writes, and the walk recurses once per level. */
#define MAX_DEPTH 32

typedef struct walker {
    yaml_parser_t parser;
    const char *path; /* names a file in messages; NULL while reading one value */
    const char *data; /* the whole input, to place reader errors, which carry only an offset */
    size_t size;
    keel_config_item *items; /* owned */
    size_t n_items, n_allocated;
    char *error; /* owned: the one message of a failure */
} walker;

static void walker_done(walker *w)
{
    yaml_parser_delete(&w->parser);
    keel__config_items_free(w->items, w->n_items);
    free(w->error);
}

/* Records "PATH:LINE:COL: message" (just the message for a value) and returns -EINVAL. */
static int walker_fail(walker *w, const yaml_mark_t *m, const char *fmt, ...) KEEL_PRINTF(3, 4);
static int walker_fail(walker *w, const yaml_mark_t *m, const char *fmt, ...)
{
    _cleanup_free_ char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -ENOMEM;
    if (!w->path)
        w->error = TAKE_PTR(msg);
    else if (!(w->error = keel_strdup_printf("%s:%zu:%zu: %s", w->path, m->line + 1, m->column + 1, msg)))
        return -ENOMEM;
    return -EINVAL;
}

/* The mark of a reader error (bad encoding), which libyaml gives only as a byte offset. */
static yaml_mark_t mark_at_offset(const walker *w, size_t offset)
{
    yaml_mark_t m = { .index = offset };
    for (size_t i = 0; i < offset && i < w->size; i++)
        if (w->data[i] == '\n') {
            m.line++;
            m.column = 0;
        } else if (((unsigned char) w->data[i] & 0xc0) != 0x80)
            m.column++; /* libyaml counts characters, not the bytes of UTF-8 sequences */
    return m;
}

static int walker_fail_parser(walker *w)
{
    const yaml_parser_t *p = &w->parser;
    const char *problem = p->problem ?: "malformed YAML";

    if (p->error == YAML_MEMORY_ERROR)
        return -ENOMEM;
    if (!w->path)
        return walker_fail(w, NULL, "invalid YAML '%.*s': %s", (int) w->size, w->data, problem);
    if (p->error == YAML_READER_ERROR) {
        yaml_mark_t m = mark_at_offset(w, p->problem_offset);
        return walker_fail(w, &m, "%s", problem);
    }
    if (p->context)
        return walker_fail(w, &p->problem_mark, "%s (%s at line %zu, column %zu)", problem, p->context, p->context_mark.line + 1,
                           p->context_mark.column + 1);
    return walker_fail(w, &p->problem_mark, "%s", problem);
}

static int next_event(walker *w, yaml_event_t *ret)
{
    if (!yaml_parser_parse(&w->parser, ret))
        return walker_fail_parser(w);
    return 0;
}

/* Reads and drops one structural event (stream or document start or end), which libyaml's
 * grammar guarantees; returns its type. */
static int skip_event(walker *w)
{
    _cleanup_(yaml_event_delete) yaml_event_t ev = {};
    int r = next_event(w, &ev);
    return r < 0 ? r : (int) ev.type;
}

/* Only !!str means something here: the text as it stands, never null. Any other tag would be
 * dropped unread, !!binary NXM= taken as text and a !custom meant for another program obeyed. */
static int check_tag(walker *w, const yaml_event_t *ev, const yaml_char_t *tag)
{
    static const char standard[] = "tag:yaml.org,2002:";
    const char *t = (const char *) tag;

    if (!t || (ev->type == YAML_SCALAR_EVENT && streq(t, YAML_STR_TAG)))
        return 0;
    bool shorthand = strneq(t, standard, strlen(standard));
    return walker_fail(w, &ev->start_mark, "unsupported YAML tag '%s%s' (only !!str is, on a single value)", shorthand ? "!!" : "",
                       shorthand ? t + strlen(standard) : t);
}

static int scalar_text(walker *w, const yaml_event_t *ev, char **ret)
{
    const char *v = (const char *) ev->data.scalar.value;
    size_t n = ev->data.scalar.length;

    int r = check_tag(w, ev, ev->data.scalar.tag);
    if (r < 0)
        return r;
    /* "\0" in a double-quoted scalar is valid YAML, but C strings would silently cut it */
    if (memchr(v, 0, n))
        return walker_fail(w, &ev->start_mark, "a value cannot contain a NUL character");
    char *s = strndup(v, n);
    if (!s)
        return -ENOMEM;
    *ret = s;
    return 0;
}

static int scalar_to_raw(walker *w, const yaml_event_t *ev, keel_config_raw *ret)
{
    char *text = NULL;
    int r = scalar_text(w, ev, &text);
    if (r < 0)
        return r;
    *ret = (keel_config_raw){
        .text = text,
        .null = !ev->data.scalar.tag && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                STR_IN_SET(text, "", "~", "null", "Null", "NULL"),
    };
    return 0;
}

/* Reads the items of a sequence whose start event was just read, up to its end. */
static int read_sequence(walker *w, const char *key, keel_config_raw *ret)
{
    _cleanup_strv_free_ char **l = NULL;
    size_t n = 0, allocated = 0;
    if (GROW(l, allocated, 1) < 0)
        return -ENOMEM;
    l[0] = NULL;
    for (;;) {
        _cleanup_(yaml_event_delete) yaml_event_t ev = {};
        char *s = NULL;
        int r = next_event(w, &ev);
        if (r < 0)
            return r;
        if (ev.type == YAML_SEQUENCE_END_EVENT)
            break;
        if (ev.type == YAML_ALIAS_EVENT)
            return walker_fail(w, &ev.start_mark, "aliases are not supported (in the list%s%s%s)", key ? " '" : "", key ?: "",
                               key ? "'" : "");
        if (ev.type != YAML_SCALAR_EVENT)
            return walker_fail(w, &ev.start_mark, "an item of the list%s%s%s must be a single value, not a %s", key ? " '" : "",
                               key ?: "", key ? "'" : "", ev.type == YAML_MAPPING_START_EVENT ? "mapping" : "list");
        r = scalar_text(w, &ev, &s);
        if (r < 0)
            return r;
        /* Counted here: keel_strv_push() walks the list each time, quadratic in a file's 4 MiB. */
        if (GROW(l, allocated, n + 2) < 0) {
            free(s);
            return -ENOMEM;
        }
        l[n++] = s;
        l[n] = NULL;
    }
    *ret = (keel_config_raw){ .list = TAKE_PTR(l) };
    return 0;
}

/* Appends an item, taking @key and the contents of @value. */
static int push_item(walker *w, char *key, bool section, keel_config_raw *value, const yaml_mark_t *key_mark,
                     const yaml_mark_t *mark)
{
    if (GROW(w->items, w->n_allocated, w->n_items + 1) < 0) {
        free(key);
        keel__config_raw_done(value);
        return -ENOMEM;
    }
    w->items[w->n_items++] = (keel_config_item){
        .key = key,
        .section = section,
        .value = *value,
        .key_line = (unsigned) key_mark->line + 1,
        .key_column = (unsigned) key_mark->column + 1,
        .line = (unsigned) mark->line + 1,
        .column = (unsigned) mark->column + 1,
    };
    *value = (keel_config_raw){};
    return 0;
}

static int walk_mapping(walker *w, const char *prefix, unsigned depth);

/* Reads the value of @key, whose key event was at @key_mark, and appends what it holds. */
static int walk_value(walker *w, char *key, const yaml_mark_t *key_mark, unsigned depth)
{
    _cleanup_(yaml_event_delete) yaml_event_t ev = {};
    _cleanup_(keel__config_raw_done) keel_config_raw v = {};
    _cleanup_free_ char *k = key;
    int r;

    r = next_event(w, &ev);
    if (r < 0)
        return r;
    switch (ev.type) {
    case YAML_SCALAR_EVENT:
        r = scalar_to_raw(w, &ev, &v);
        break;
    case YAML_SEQUENCE_START_EVENT:
        r = check_tag(w, &ev, ev.data.sequence_start.tag);
        if (r >= 0)
            r = read_sequence(w, k, &v);
        break;
    case YAML_MAPPING_START_EVENT: {
        r = check_tag(w, &ev, ev.data.mapping_start.tag);
        if (r < 0)
            return r;
        if (depth >= MAX_DEPTH)
            return walker_fail(w, &ev.start_mark, "mappings nested deeper than %d levels", MAX_DEPTH);
        char *copy = strdup(k);
        if (!copy)
            return -ENOMEM;
        r = push_item(w, copy, true, &v, key_mark, &ev.start_mark);
        if (r < 0)
            return r;
        return walk_mapping(w, k, depth + 1);
    }
    case YAML_ALIAS_EVENT:
        return walker_fail(w, &ev.start_mark, "aliases are not supported (the value of '%s')", k);
    default:
        return walker_fail(w, &ev.start_mark, "unexpected YAML event");
    }
    if (r < 0)
        return r;
    return push_item(w, TAKE_PTR(k), false, &v, key_mark, &ev.start_mark);
}

/* Reads the keys of a mapping whose start event was just read, up to its end; nested keys are
 * joined to @prefix with '.'. */
static int walk_mapping(walker *w, const char *prefix, unsigned depth)
{
    for (;;) {
        _cleanup_(yaml_event_delete) yaml_event_t ev = {};
        _cleanup_free_ char *name = NULL;
        int r = next_event(w, &ev);
        if (r < 0)
            return r;
        if (ev.type == YAML_MAPPING_END_EVENT)
            return 0;
        if (ev.type != YAML_SCALAR_EVENT)
            return walker_fail(w, &ev.start_mark, "a key must be a plain name, not a %s",
                               ev.type == YAML_ALIAS_EVENT ? "alias" : "mapping or list");
        r = scalar_text(w, &ev, &name);
        if (r < 0)
            return r;
        char *key = prefix ? keel_strdup_printf("%s.%s", prefix, name) : TAKE_PTR(name);
        if (!key)
            return -ENOMEM;
        r = walk_value(w, key, &ev.start_mark, depth);
        if (r < 0)
            return r;
    }
}

/* The top of a file: a mapping, or nothing at all (an empty file, comments, a bare "---"). */
static int walk_root(walker *w)
{
    _cleanup_(yaml_event_delete) yaml_event_t ev = {};
    int r = next_event(w, &ev);
    if (r < 0)
        return r;
    if (ev.type == YAML_MAPPING_START_EVENT)
        return check_tag(w, &ev, ev.data.mapping_start.tag) ?: walk_mapping(w, NULL, 1);
    if (ev.type == YAML_SCALAR_EVENT && ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE && ev.data.scalar.length == 0)
        return 0;
    return walker_fail(w, &ev.start_mark, "expected a mapping of keys (key: value) at the top level");
}

/* Reads the optional single document of the stream, calling @root for its top node. */
static int walk_stream(walker *w, int (*root)(walker *w))
{
    int r = skip_event(w); /* stream start */
    if (r < 0)
        return r;
    _cleanup_(yaml_event_delete) yaml_event_t ev = {};
    r = next_event(w, &ev);
    if (r < 0)
        return r;
    if (ev.type == YAML_STREAM_END_EVENT)
        return 0;
    r = root(w);
    if (r < 0)
        return r;
    r = skip_event(w); /* document end */
    if (r < 0)
        return r;
    yaml_event_delete(&ev);
    r = next_event(w, &ev);
    if (r < 0)
        return r;
    if (ev.type != YAML_STREAM_END_EVENT)
        return walker_fail(w, &ev.start_mark, "only one YAML document is allowed");
    return 0;
}

static int walker_init(walker *w, const char *path, const char *data, size_t size)
{
    *w = (walker){ .path = path, .data = data, .size = size };
    if (!yaml_parser_initialize(&w->parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&w->parser, (const unsigned char *) data, size);
    return 0;
}

void keel__config_items_free(keel_config_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i].key);
        keel__config_raw_done(&items[i].value);
    }
    free(items);
}

int keel__config_yaml_parse_file(const char *path, const char *data, size_t size, keel_config_item **ret_items, size_t *ret_n,
                                 char **ret_error)
{
    _cleanup_(walker_done) walker w = {};

    assert(path && (data || size == 0) && ret_items && ret_n);
    int r = walker_init(&w, path, data ?: "", size);
    if (r >= 0)
        r = walk_stream(&w, walk_root);
    if (r < 0) {
        if (ret_error)
            *ret_error = TAKE_PTR(w.error);
        return r;
    }
    *ret_items = TAKE_PTR(w.items);
    *ret_n = w.n_items;
    w.n_items = 0;
    return 0;
}

/* The top of a value: a scalar or a sequence, not a mapping. */
static int walk_value_root(walker *w)
{
    _cleanup_(yaml_event_delete) yaml_event_t ev = {};
    keel_config_raw v = {};
    int r = next_event(w, &ev);
    if (r < 0)
        return r;
    if (ev.type == YAML_SCALAR_EVENT)
        r = scalar_to_raw(w, &ev, &v);
    else if (ev.type == YAML_SEQUENCE_START_EVENT)
        r = check_tag(w, &ev, ev.data.sequence_start.tag) ?: read_sequence(w, NULL, &v);
    else
        return walker_fail(w, &ev.start_mark, "'%.*s' is a YAML %s, not a value", (int) w->size, w->data,
                           ev.type == YAML_MAPPING_START_EVENT ? "mapping" : "alias");
    if (r < 0)
        return r;
    /* one item without a key carries the value out */
    return push_item(w, NULL, false, &v, &ev.start_mark, &ev.start_mark);
}

int keel__config_yaml_parse_value(const char *text, keel_config_raw *ret, char **ret_error)
{
    _cleanup_(walker_done) walker w = {};

    assert(ret);
    int r = walker_init(&w, NULL, text ?: "", text ? strlen(text) : 0);
    if (r >= 0)
        r = walk_stream(&w, walk_value_root);
    if (r < 0) {
        if (ret_error)
            *ret_error = TAKE_PTR(w.error);
        return r;
    }
    if (w.n_items == 0) {
        /* no document at all: "" or only a comment, YAML's null */
        char *s = strdup("");
        if (!s)
            return -ENOMEM;
        *ret = (keel_config_raw){ .text = s, .null = true };
        return 0;
    }
    *ret = w.items[0].value;
    w.items[0].value = (keel_config_raw){};
    return 0;
}

/* ---- YAML quoting -------------------------------------------------------------------------- */

/* The escape of a YAML 1.1 line break other than LF at @p (NEL U+0085, LS U+2028, PS U+2029 in
 * UTF-8), and its length in *@len; NULL for anything else. Plain or single-quoted, libyaml folds
 * them: only a double-quoted escape keeps them. */
static const char *line_break_at(const unsigned char *p, size_t *len)
{
    if (p[0] == 0xc2 && p[1] == 0x85)
        return *len = 2, "\\N";
    if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9))
        return *len = 3, p[2] == 0xa8 ? "\\L" : "\\P";
    return NULL;
}

static bool has_control(const char *s)
{
    size_t len;
    for (const unsigned char *p = (const unsigned char *) s; *p; p++)
        if (*p < 0x20 || *p == 0x7f || line_break_at(p, &len))
            return true;
    return false;
}

static bool needs_quotes(const char *s, bool flow)
{
    if (!*s || STR_IN_SET(s, "~", "null", "Null", "NULL"))
        return true; /* YAML would read null */
    if (strneq(s, "---", 3) || strneq(s, "...", 3))
        return true; /* document markers */
    /* "-x", ":9999" and "?x" are plain scalars outside [] (libyaml takes ":" and "?" as
     * indicators inside, and "-" is not worth the distinction) */
    bool plain_lead = !flow && strchr("-?:", *s) && s[1] && s[1] != ' ';
    if (!plain_lead && strchr("-?:,[]{}#&*!|>'\"%@` ", *s))
        return true; /* an indicator, or a blank YAML would strip */
    if (s[strlen(s) - 1] == ' ' || has_control(s))
        return true;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char) *p;
        if (c < 0x20 || c == 0x7f)
            return true;
        if (c == ':' && (p[1] == ' ' || p[1] == 0 || flow))
            return true; /* a mapping; inside [] libyaml takes any ':' as one */
        if (c == '#' && p[-1] == ' ')
            return true; /* a comment */
        if (flow && strchr(",[]{}", c))
            return true;
    }
    return false;
}

char *keel__config_yaml_quote(const char *s, bool flow)
{
    _cleanup_free_ char *buf = NULL;
    size_t size = 0;

    if (!needs_quotes(s, flow))
        return strdup(s);
    FILE *m = open_memstream(&buf, &size);
    if (!m)
        return NULL;
    if (!has_control(s)) {
        /* single quotes escape nothing but the quote itself, doubled */
        fputc('\'', m);
        for (const char *p = s; *p; p++)
            fputs(*p == '\'' ? "''" : (char[]){ *p, 0 }, m);
        fputc('\'', m);
    } else {
        fputc('"', m);
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
            size_t len;
            const char *escape = line_break_at(p, &len);
            if (escape) {
                fputs(escape, m);
                p += len - 1;
            } else if (*p == '"' || *p == '\\')
                fprintf(m, "\\%c", *p);
            else if (*p == '\n')
                fputs("\\n", m);
            else if (*p == '\t')
                fputs("\\t", m);
            else if (*p < 0x20 || *p == 0x7f)
                fprintf(m, "\\x%02x", *p);
            else
                fputc(*p, m);
        }
        fputc('"', m);
    }
    if (fclose(m) != 0)
        return NULL;
    return TAKE_PTR(buf);
}
