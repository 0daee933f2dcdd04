/* SPDX-License-Identifier: MIT */
/* The typed values of the configuration: one parser and one formatter per keel_config_type, in
 * one table, shared by the defaults in the tables and every layer above them. A formatter writes
 * YAML that its parser reads back as the same value, so `keel config` output is a config file. */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <keel/strbuf.h>

#include "config-internal.h"
#include "macro-internal.h"

typedef int (*parse_handler_t)(const keel_config_key *k, const keel_config_raw *v, keel_config_field *ret, char **ret_error);
typedef char *(*format_handler_t)(const keel_config_key *k, const keel_config_field *f);

typedef struct type_info {
    const char *name; /* in messages: "invalid duration 'x' for ..." */
    size_t size;
    bool bounded; /* min/max apply */
    parse_handler_t parse;
    format_handler_t format;
} type_info;

/* Sets *ret_error to the formatted message and returns @r; -ENOMEM when the message cannot be
 * allocated, so a caller never sees a failure without either a message or -ENOMEM. */
int keel__config_fail(char **ret_error, int r, const char *fmt, ...)
{
    if (!ret_error)
        return r;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(ret_error, fmt, ap);
    va_end(ap);
    if (n < 0) {
        *ret_error = NULL;
        return -ENOMEM;
    }
    return r;
}

bool keel__config_has_bounds(const keel_config_key *k)
{
    return k->min != 0 || k->max != 0;
}

/* ---- Scalars ------------------------------------------------------------------------------- */

/* The text a scalar parser sees: YAML's null reads as the empty string. */
const char *keel__config_scalar_text(const keel_config_raw *v)
{
    return v->null ? "" : v->text;
}

static int parse_string(const keel_config_key *k, const keel_config_raw *v, keel_config_field *ret, char **ret_error)
{
    char *s = strdup(keel__config_scalar_text(v));
    if (!s)
        return -ENOMEM;
    ret->string = s;
    return 0;
}

/* The directory relative paths are made absolute against: where the process started, taken before
 * --daemon moves to "/" (keel__config_path_base_init()); the working directory when not taken. */
static char *path_base;

void keel__config_path_base_init(void)
{
    if (!path_base)
        path_base = getcwd(NULL, 0);
}

char *keel__config_path_absolute(const char *path)
{
    _cleanup_free_ char *cwd = NULL;
    const char *base = path_base ?: (cwd = getcwd(NULL, 0));
    if (path[0] == '/' || !base)
        return strdup(path);
    while (path[0] == '.' && path[1] == '/')
        path += 2;
    return keel_strdup_printf("%s%s%s", base, streq(base, "/") ? "" : "/", streq(path, ".") ? "" : path);
}

/* Absolute, so that the value means the same after --daemon moved to "/" and in `config`'s dump.
 * Empty only where the default is: "none". */
static int parse_path(const keel_config_key *k, const keel_config_raw *v, keel_config_field *ret, char **ret_error)
{
    const char *t = keel__config_scalar_text(v);
    if (!*t && !(k->def && streq(k->def, "''")))
        return keel__config_fail(ret_error, -EINVAL, "invalid path '%s' for %s: expected a non-empty path", v->text, k->key);
    ret->string = *t ? keel__config_path_absolute(t) : strdup("");
    return ret->string ? 0 : -ENOMEM;
}

static char *format_string(const keel_config_key *k, const keel_config_field *f)
{
    return keel__config_yaml_quote(f->string, false);
}

static int parse_bool(const keel_config_key *k, const keel_config_raw *v, keel_config_field *ret, char **ret_error)
{
    const char *t = v->text;
    if (!strcasecmp(t, "true") || !strcasecmp(t, "yes") || !strcasecmp(t, "on"))
        ret->boolean = true;
    else if (!strcasecmp(t, "false") || !strcasecmp(t, "no") || !strcasecmp(t, "off"))
        ret->boolean = false;
    else
        return keel__config_fail(ret_error, -EINVAL, "invalid boolean '%s' for %s: expected true or false (or yes/no, on/off)", t,
                                 k->key);
    return 0;
}

static char *format_bool(const keel_config_key *k, const keel_config_field *f)
{
    return strdup(f->boolean ? "true" : "false");
}

static int parse_int(const keel_config_key *k, const keel_config_raw *v, keel_config_field *ret, char **ret_error)
{
    const char *t = v->text, *digits = t + (*t == '+' || *t == '-');
    char *end;

    /* strtoll() would also take leading blanks and "0x"; only a plain decimal is a YAML integer */
    if (!isdigit((unsigned char) *digits))
        return keel__config_fail(ret_error, -EINVAL, "invalid integer '%s' for %s: expected a whole number", t, k->key);
    errno = 0;
    long long n = strtoll(t, &end, 10);
    if (*end)
        return keel__config_fail(ret_error, -EINVAL, "invalid integer '%s' for %s: expected a whole number", t, k->key);
    bool bounded = keel__config_has_bounds(k);
    /* past int64 too the key's own bounds are what the operator has to know */
    if (errno == ERANGE || (bounded && (n < k->min || n > k->max)))
        return keel__config_fail(ret_error, -ERANGE,
                                 "integer '%s' for %s is out of range: expected between %" PRIi64 " and %" PRIi64, t, k->key,
                                 bounded ? k->min : INT64_MIN, bounded ? k->max : INT64_MAX);
    ret->integer = n;
    return 0;
}

static char *format_int(const keel_config_key *k, const keel_config_field *f)
{
    return keel_strdup_printf("%" PRIi64, f->integer);
}

/* Reads the decimal digits at *p into *ret and moves *p past them. -EINVAL when there is none,
 * -ERANGE when they overflow. Unlike strtoull() it takes no sign and no blanks. */
int keel__config_parse_digits(const char **p, uint64_t *ret)
{
    const char *s = *p;
    uint64_t n = 0;

    if (!isdigit((unsigned char) *s))
        return -EINVAL;
    for (; isdigit((unsigned char) *s); s++)
        if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, (uint64_t) (*s - '0'), &n))
            return -ERANGE;
    *p = s;
    *ret = n;
    return 0;
}

/* ---- Addresses ----------------------------------------------------------------------------- */

#define ADDRESS_EXPECTED "expected host:port, :port (every address) or [IPv6]:port"

/* Splits "host:port", ":port" and "[v6]:port" at the port's colon; the host keeps no brackets.
 * On failure *ret_reason says why, or stays NULL when the shape is just wrong. */
static int split_address(const char *t, const char **ret_host, size_t *ret_host_len, const char **ret_port, const char **ret_reason)
{
    const char *colon;

    if (*t == '[') {
        const char *close = strchr(t, ']');
        if (!close || close == t + 1 || (close[1] != ':' && close[1] != 0))
            return -EINVAL;
        if (close[1] == 0) {
            *ret_reason = "missing port";
            return -EINVAL;
        }
        *ret_host = t + 1;
        *ret_host_len = (size_t) (close - t - 1);
        colon = close + 1;
    } else {
        colon = strrchr(t, ':');
        if (!colon) {
            *ret_reason = "missing port";
            return -EINVAL;
        }
        if (memchr(t, ':', (size_t) (colon - t))) {
            *ret_reason = "an IPv6 address needs brackets, as in [::1]:8080";
            return -EINVAL;
        }
        *ret_host = t;
        *ret_host_len = (size_t) (colon - t);
    }
    *ret_port = colon + 1;
    return 0;
}

static int parse_address(const keel_config_key *k, const keel_config_raw *v, keel_config_field *ret, char **ret_error)
{
    const char *t = v->text, *host, *port, *reason = NULL;
    keel_address a = {};
    size_t host_len;
    uint64_t n = 0;

    if (split_address(t, &host, &host_len, &port, &reason) < 0)
        return reason
                   ? keel__config_fail(ret_error, -EINVAL, "invalid address '%s' for %s: %s; " ADDRESS_EXPECTED, t, k->key, reason)
                   : keel__config_fail(ret_error, -EINVAL, "invalid address '%s' for %s: " ADDRESS_EXPECTED, t, k->key);
    if (!*port)
        return keel__config_fail(ret_error, -EINVAL, "invalid address '%s' for %s: missing port; " ADDRESS_EXPECTED, t, k->key);
    if (port[strspn(port, "0123456789")] != 0)
        return keel__config_fail(ret_error, -EINVAL, "invalid address '%s' for %s: port '%s' is not a number from 0 to 65535", t,
                                 k->key, port);
    const char *end = port;
    if (keel__config_parse_digits(&end, &n) < 0 || n > UINT16_MAX)
        return keel__config_fail(ret_error, -ERANGE, "invalid address '%s' for %s: port '%s' is not a number from 0 to 65535", t,
                                 k->key, port);
    if (host_len >= sizeof(a.host))
        return keel__config_fail(ret_error, -EINVAL, "invalid address '%s' for %s: host is longer than %zu characters", t, k->key,
                                 sizeof(a.host) - 1);
    for (size_t i = 0; i < host_len; i++)
        if (isspace((unsigned char) host[i]) || iscntrl((unsigned char) host[i]) || strchr("[]/", host[i]))
            return keel__config_fail(ret_error, -EINVAL, "invalid address '%s' for %s: bad character in host", t, k->key);
    memcpy(a.host, host, host_len);
    a.port = (uint16_t) n;
    ret->address = a;
    return 0;
}

static char *format_address(const keel_config_key *k, const keel_config_field *f)
{
    const keel_address *a = &f->address;
    bool v6 = strchr(a->host, ':');
    _cleanup_free_ char *t = keel_strdup_printf("%s%s%s:%u", v6 ? "[" : "", a->host, v6 ? "]" : "", (unsigned) a->port);
    /* "[::1]:80" would be a YAML list */
    return t ? keel__config_yaml_quote(t, false) : NULL;
}

/* ---- Lists and choices --------------------------------------------------------------------- */

static int parse_list(const keel_config_key *k, const keel_config_raw *v, keel_config_field *ret, char **ret_error)
{
    _cleanup_strv_free_ char **l = NULL;

    if (v->list)
        l = keel_strv_copy(v->list);
    else if (v->null)
        l = calloc(1, sizeof(char *));
    else if (keel_strv_extend(&l, v->text) < 0) /* one scalar is a list of one */
        return -ENOMEM;
    if (!l)
        return -ENOMEM;
    ret->list = TAKE_PTR(l);
    return 0;
}

static char *format_list(const keel_config_key *k, const keel_config_field *f)
{
    _cleanup_free_ char *buf = NULL;
    size_t size = 0;
    FILE *m = open_memstream(&buf, &size);
    if (!m)
        return NULL;
    fputc('[', m);
    for (char **i = f->list; i && *i; i++) {
        _cleanup_free_ char *q = keel__config_yaml_quote(*i, true);
        if (!q) {
            (void) fclose(m);
            return NULL;
        }
        fprintf(m, "%s%s", i == f->list ? "" : ", ", q);
    }
    fputc(']', m);
    if (fclose(m) != 0)
        return NULL;
    return TAKE_PTR(buf);
}

static int parse_enum(const keel_config_key *k, const keel_config_raw *v, keel_config_field *ret, char **ret_error)
{
    for (int i = 0; k->choices[i]; i++)
        if (!strcasecmp(k->choices[i], v->text)) {
            ret->choice = i;
            return 0;
        }

    char buf[512];
    keel_strbuf sb = KEEL_STRBUF_INIT(buf);
    for (int i = 0; k->choices[i]; i++)
        keel_strbuf_printf(&sb, "%s%s", i ? ", " : "", k->choices[i]);
    return keel__config_fail(ret_error, -EINVAL, "invalid value '%s' for %s: expected one of %s", v->text, k->key, buf);
}

static char *format_enum(const keel_config_key *k, const keel_config_field *f)
{
    for (int i = 0; k->choices[i]; i++)
        if (i == f->choice)
            return strdup(k->choices[i]);
    return keel_strdup_printf("%d", f->choice); /* not a choice: show it rather than hide it */
}

static const type_info types[_KEEL_CONFIG_TYPE_MAX] = {
    [KEEL_CONFIG_STRING] = { "string", sizeof(char *), false, parse_string, format_string },
    [KEEL_CONFIG_PATH] = { "path", sizeof(char *), false, parse_path, format_string },
    [KEEL_CONFIG_BOOL] = { "boolean", sizeof(bool), false, parse_bool, format_bool },
    [KEEL_CONFIG_INT] = { "integer", sizeof(int64_t), true, parse_int, format_int },
    [KEEL_CONFIG_DURATION] = { "duration", sizeof(keel_usec_t), true, keel__config_parse_duration, keel__config_format_duration },
    [KEEL_CONFIG_SIZE] = { "size", sizeof(uint64_t), true, keel__config_parse_size, keel__config_format_size },
    [KEEL_CONFIG_ADDRESS] = { "address", sizeof(keel_address), false, parse_address, format_address },
    [KEEL_CONFIG_LIST] = { "list", sizeof(char **), false, parse_list, format_list },
    [KEEL_CONFIG_ENUM] = { "value", sizeof(int), false, parse_enum, format_enum },
};

static const type_info *type_of(const keel_config_key *k)
{
    assert(k->type >= 0 && k->type < _KEEL_CONFIG_TYPE_MAX);
    return &types[k->type];
}

/* ---- The module's entry points ------------------------------------------------------------- */

const char *keel__config_type_to_string(keel_config_type t)
{
    return t >= 0 && t < _KEEL_CONFIG_TYPE_MAX ? types[t].name : NULL;
}

size_t keel__config_type_size(keel_config_type t)
{
    return t >= 0 && t < _KEEL_CONFIG_TYPE_MAX ? types[t].size : 0;
}

int keel__config_check_row(const keel_config_key *k, const char **ret_reason)
{
    const char *reason = NULL;

    if (k->type < 0 || k->type >= _KEEL_CONFIG_TYPE_MAX)
        reason = "type out of range";
    else if (!types[k->type].bounded && keel__config_has_bounds(k))
        reason = "min/max given for a type without bounds";
    else if (keel__config_has_bounds(k) && k->min > k->max)
        reason = "min is greater than max";
    else if (keel__config_has_bounds(k) && k->type != KEEL_CONFIG_INT && k->min < 0)
        reason = "negative bound for an unsigned type";
    else if (k->type == KEEL_CONFIG_ENUM && (!k->choices || !k->choices[0]))
        reason = "an ENUM needs choices";
    else if (k->type != KEEL_CONFIG_ENUM && k->choices)
        reason = "choices given for a type other than ENUM";
    if (!reason)
        return 0;
    *ret_reason = reason;
    return -EINVAL;
}

void keel__config_raw_done(keel_config_raw *v)
{
    free(v->text);
    v->text = NULL;
    v->list = keel_strv_free(v->list);
    v->null = false;
}

int keel__config_parse_raw(const keel_config_key *k, const keel_config_raw *v, void *ret_field, char **ret_error)
{
    const type_info *t = type_of(k);
    keel_config_field f = {};

    if (v->list && k->type != KEEL_CONFIG_LIST)
        return keel__config_fail(ret_error, -EINVAL, "invalid %s for %s: expected a single value, not a list", t->name, k->key);
    int r = t->parse(k, v, &f, ret_error);
    if (r < 0)
        return r;
    memcpy(ret_field, &f, t->size);
    return 0;
}

int keel__config_parse_value(const keel_config_key *k, const char *text, void *ret_field, char **ret_error)
{
    _cleanup_(keel__config_raw_done) keel_config_raw v = {};

    keel_assert_return(k && k->type >= 0 && k->type < _KEEL_CONFIG_TYPE_MAX && ret_field, -EINVAL);
    keel_assert_return(k->type != KEEL_CONFIG_ENUM || k->choices, -EINVAL);

    int r = keel__config_yaml_parse_value(text, &v, ret_error);
    if (r < 0)
        return r;
    return keel__config_parse_raw(k, &v, ret_field, ret_error);
}

char *keel__config_format_value(const keel_config_key *k, const void *field)
{
    keel_config_field f = {};

    keel_assert_return(k && k->type >= 0 && k->type < _KEEL_CONFIG_TYPE_MAX && field, NULL);
    memcpy(&f, field, types[k->type].size); /* the storage field may be less aligned than the union */
    return types[k->type].format(k, &f);
}

void keel__config_value_done(const keel_config_key *k, void *field)
{
    keel_config_field f = {};

    if (k->type != KEEL_CONFIG_STRING && k->type != KEEL_CONFIG_PATH && k->type != KEEL_CONFIG_LIST)
        return;
    memcpy(&f, field, sizeof(void *));
    if (k->type == KEEL_CONFIG_LIST)
        keel_strv_free(f.list);
    else
        free(f.string);
    memset(field, 0, sizeof(void *));
}

bool keel__config_value_equal(const keel_config_key *k, const void *a, const void *b)
{
    keel_config_field x = {}, y = {};
    size_t size = type_of(k)->size;

    memcpy(&x, a, size);
    memcpy(&y, b, size);
    switch (k->type) {
    case KEEL_CONFIG_STRING:
    case KEEL_CONFIG_PATH:
        return streq(x.string, y.string);
    case KEEL_CONFIG_LIST:
        return keel_strv_equal(x.list, y.list);
    case KEEL_CONFIG_ADDRESS:
        /* the bytes after the host's NUL are not part of the value */
        return x.address.port == y.address.port && streq(x.address.host, y.address.host);
    default:
        return memcmp(&x, &y, size) == 0;
    }
}
