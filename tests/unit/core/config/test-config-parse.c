/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <keel/strbuf.h>

#include "config-internal.h"
#include "macro-internal.h"

TestSuite(config_parse);

#define ROW(t, ...) ((keel_config_key){ .key = "test.key", .type = (t), __VA_ARGS__ })
#define SEC         KEEL_USEC_PER_SEC

static const char *const backup_choices[] = { "none", "read", "write", "read+write", NULL };

/* Parses @text for @k into @ret and expects success. */
static void ok(const keel_config_key *k, const char *text, void *ret)
{
    _cleanup_free_ char *err = NULL;
    int r = keel__config_parse_value(k, text, ret, &err);
    cr_assert_eq(r, 0, "'%s' for %s: %d %s", text, keel__config_type_to_string(k->type), r, err ?: "");
    cr_assert_null(err);
}

/* Parses @text for @k, expects @error and the message @msg (any when NULL), and the field left
 * untouched. */
static void bad(const keel_config_key *k, const char *text, int error, const char *msg)
{
    _cleanup_free_ char *err = NULL;
    keel_config_field f, sentinel;
    memset(&f, 0xa5, sizeof(f));
    memcpy(&sentinel, &f, sizeof(f));

    int r = keel__config_parse_value(k, text, &f, &err);
    cr_assert_eq(r, error, "'%s': expected %d, got %d (%s)", text, error, r, err ?: "");
    cr_assert_not_null(err, "'%s': no message", text);
    if (msg)
        cr_assert_str_eq(err, msg);
    cr_assert_eq(memcmp(&f, &sentinel, sizeof(f)), 0, "'%s': field written on failure", text);
    /* without a message wanted: the same result */
    cr_assert_eq(keel__config_parse_value(k, text, &f, NULL), error);
}

/* Like bad(), for messages only whose start is ours (libyaml words the rest). */
static void bad_prefix(const keel_config_key *k, const char *text, int error, const char *prefix)
{
    _cleanup_free_ char *err = NULL;
    keel_config_field f = {};
    cr_assert_eq(keel__config_parse_value(k, text, &f, &err), error, "'%s'", text);
    cr_assert_not_null(err);
    cr_assert(strneq(err, prefix, strlen(prefix)), "'%s': message '%s' lacks '%s'", text, err, prefix);
}

static void formats(const keel_config_key *k, const void *field, const char *expected)
{
    _cleanup_free_ char *s = keel__config_format_value(k, field);
    cr_assert_not_null(s);
    cr_assert_str_eq(s, expected);
}

/* ---- STRING and PATH ----------------------------------------------------------------------- */

static void string_is(const keel_config_key *k, const char *text, const char *expected)
{
    char *s = NULL;
    ok(k, text, &s);
    cr_assert_str_eq(s, expected, "'%s'", text);
    keel__config_value_done(k, &s);
    cr_assert_null(s);
}

Test(config_parse, string)
{
    keel_config_key k = ROW(KEEL_CONFIG_STRING);
    string_is(&k, "hello", "hello");
    string_is(&k, "hello world", "hello world");
    string_is(&k, "'quoted'", "quoted");
    string_is(&k, "\"a\\tb\"", "a\tb");
    string_is(&k, "'it''s'", "it's");
    string_is(&k, "127.0.0.1:80", "127.0.0.1:80");
    string_is(&k, "a # comment", "a");
    /* YAML's null is the empty string; quoted, it is the text */
    string_is(&k, "", "");
    string_is(&k, NULL, "");
    string_is(&k, "~", "");
    string_is(&k, "null", "");
    string_is(&k, "''", "");
    string_is(&k, "'~'", "~");
    string_is(&k, "'null'", "null");
    bad(&k, "[a, b]", -EINVAL, "invalid string for test.key: expected a single value, not a list");
    bad(&k, "a: b", -EINVAL, "'a: b' is a YAML mapping, not a value");
    bad(&k, "\"a\\0b\"", -EINVAL, "a value cannot contain a NUL character");
    bad(&k, "a\n---\nb", -EINVAL, "only one YAML document is allowed");
    bad_prefix(&k, "'unterminated", -EINVAL, "invalid YAML ''unterminated': ");
    bad_prefix(&k, "@at", -EINVAL, "invalid YAML '@at': ");
}

Test(config_parse, path)
{
    keel_config_key k = ROW(KEEL_CONFIG_PATH);
    string_is(&k, "/var/lib/keel", "/var/lib/keel");
    bad(&k, "''", -EINVAL, "invalid path '' for test.key: expected a non-empty path");
    bad(&k, "", -EINVAL, "invalid path '' for test.key: expected a non-empty path");
    bad(&k, "[/a]", -EINVAL, "invalid path for test.key: expected a single value, not a list");
}

/* Relative paths are made absolute against the directory the process started in, so that they mean
 * the same once --daemon has moved to "/"; an empty path is "none" where the default is. */
Test(config_parse, relative_paths_become_absolute)
{
    keel_config_key k = ROW(KEEL_CONFIG_PATH);
    _cleanup_free_ char *cwd = getcwd(NULL, 0), *want = NULL;
    cr_assert_not_null(cwd);
    keel__config_path_base_init();
    cr_assert_eq(chdir("/"), 0);
    want = keel_strdup_printf("%s/relative/dir", cwd);
    string_is(&k, "relative/dir", want);
    string_is(&k, "./relative/dir", want);
    string_is(&k, "/abs", "/abs");
    cr_assert_eq(chdir(cwd), 0);
    k.def = "''";
    string_is(&k, "''", "");
}

/* ---- BOOL and INT -------------------------------------------------------------------------- */

static void bool_is(const char *text, bool expected)
{
    keel_config_key k = ROW(KEEL_CONFIG_BOOL);
    bool b = !expected;
    ok(&k, text, &b);
    cr_assert_eq(b, expected, "'%s'", text);
}

Test(config_parse, bool)
{
    keel_config_key k = ROW(KEEL_CONFIG_BOOL);
    bool_is("true", true);
    bool_is("True", true);
    bool_is("YES", true);
    bool_is("on", true);
    bool_is("'on'", true);
    bool_is("false", false);
    bool_is("No", false);
    bool_is("OFF", false);
    bad(&k, "maybe", -EINVAL, "invalid boolean 'maybe' for test.key: expected true or false (or yes/no, on/off)");
    bad(&k, "1", -EINVAL, NULL);
    bad(&k, "", -EINVAL, "invalid boolean '' for test.key: expected true or false (or yes/no, on/off)");
    bad(&k, "[true]", -EINVAL, "invalid boolean for test.key: expected a single value, not a list");
}

static void int_is(const keel_config_key *k, const char *text, int64_t expected)
{
    int64_t v = 0;
    ok(k, text, &v);
    cr_assert_eq(v, expected, "'%s': %" PRIi64, text, v);
}

Test(config_parse, int)
{
    keel_config_key k = ROW(KEEL_CONFIG_INT);
    int_is(&k, "42", 42);
    int_is(&k, "-7", -7);
    int_is(&k, "+3", 3);
    int_is(&k, "0", 0);
    int_is(&k, "'12'", 12);
    int_is(&k, "9223372036854775807", INT64_MAX);
    int_is(&k, "-9223372036854775808", INT64_MIN);
    bad(&k, "9223372036854775808", -ERANGE,
        "integer '9223372036854775808' for test.key is out of range: expected between -9223372036854775808 and "
        "9223372036854775807");
    bad(&k, "-9223372036854775809", -ERANGE, NULL);
    bad(&k, "abc", -EINVAL, "invalid integer 'abc' for test.key: expected a whole number");
    bad(&k, "1.5", -EINVAL, NULL);
    bad(&k, "0x10", -EINVAL, NULL);
    bad(&k, "' 1'", -EINVAL, NULL);
    bad(&k, "-", -EINVAL, NULL);
    bad(&k, "", -EINVAL, NULL);
}

Test(config_parse, int_bounds)
{
    keel_config_key k = ROW(KEEL_CONFIG_INT, .min = -5, .max = 10);
    int_is(&k, "-5", -5);
    int_is(&k, "10", 10);
    bad(&k, "11", -ERANGE, "integer '11' for test.key is out of range: expected between -5 and 10");
    bad(&k, "-6", -ERANGE, "integer '-6' for test.key is out of range: expected between -5 and 10");
    /* past int64 as well: the key's own bounds, not int64's */
    bad(&k, "99999999999999999999", -ERANGE,
        "integer '99999999999999999999' for test.key is out of range: expected between -5 and 10");
    bad(&k, "-99999999999999999999", -ERANGE,
        "integer '-99999999999999999999' for test.key is out of range: expected between -5 and 10");
    /* min 0 with a max is a bound, not "unbounded" */
    keel_config_key z = ROW(KEEL_CONFIG_INT, .min = 0, .max = 3);
    bad(&z, "-1", -ERANGE, "integer '-1' for test.key is out of range: expected between 0 and 3");
}

/* ---- DURATION ------------------------------------------------------------------------------ */

static void duration_is(const keel_config_key *k, const char *text, keel_usec_t expected)
{
    keel_usec_t v = 12345;
    ok(k, text, &v);
    cr_assert_eq(v, expected, "'%s': %" PRIu64, text, v);
}

Test(config_parse, duration)
{
    keel_config_key k = ROW(KEEL_CONFIG_DURATION);
    duration_is(&k, "0", 0);
    duration_is(&k, "000", 0);
    duration_is(&k, "0s", 0);
    duration_is(&k, "1us", 1);
    duration_is(&k, "250ms", 250 * KEEL_USEC_PER_MSEC);
    duration_is(&k, "30s", 30 * SEC);
    duration_is(&k, "5m", 300 * SEC);
    duration_is(&k, "24h", 86400 * SEC);
    duration_is(&k, "2d", 2 * 86400 * SEC);
    duration_is(&k, "1h30m", 5400 * SEC);
    duration_is(&k, "1h 30m", 5400 * SEC);
    duration_is(&k, "1m1s1ms1us", 61 * SEC + 1001);
    duration_is(&k, "'90s'", 90 * SEC);
    duration_is(&k, "213503982d", 213503982ULL * 86400 * SEC);
    duration_is(&k, "18446744073709551615us", UINT64_MAX);
}

Test(config_parse, duration_rejects)
{
    keel_config_key k = ROW(KEEL_CONFIG_DURATION);
    bad(&k, "abc", -EINVAL, "invalid duration 'abc' for test.key: expected a number with a unit (250ms, 30s, 5m, 24h)");
    bad(&k, "30", -EINVAL, "invalid duration '30' for test.key: expected a number with a unit (250ms, 30s, 5m, 24h)");
    bad(&k, "-5s", -EINVAL, "invalid duration '-5s' for test.key: a duration cannot be negative");
    bad(&k, "5x", -EINVAL, "invalid duration '5x' for test.key: unknown unit 'x' (expected us, ms, s, m, h or d)");
    bad(&k, "5sec", -EINVAL, "invalid duration '5sec' for test.key: unknown unit 'sec' (expected us, ms, s, m, h or d)");
    bad(&k, "5S", -EINVAL, NULL);
    bad(&k, "1.5s", -EINVAL, NULL);
    bad(&k, "s", -EINVAL, NULL);
    bad(&k, "1h30", -EINVAL, NULL);
    bad(&k, "", -EINVAL, NULL);
    bad(&k, "18446744073709551616us", -ERANGE, "invalid duration '18446744073709551616us' for test.key: too large");
    bad(&k, "213503983d", -ERANGE, "invalid duration '213503983d' for test.key: too large");
    bad(&k, "213503982d1d", -ERANGE, NULL);
    bad(&k, "[1s]", -EINVAL, "invalid duration for test.key: expected a single value, not a list");
}

Test(config_parse, duration_bounds)
{
    keel_config_key k = ROW(KEEL_CONFIG_DURATION, .min = (int64_t) SEC, .max = 3600 * (int64_t) SEC);
    duration_is(&k, "1s", SEC);
    duration_is(&k, "1h", 3600 * SEC);
    bad(&k, "1h1us", -ERANGE, "duration '1h1us' for test.key is out of range: expected between 1s and 1h");
    bad(&k, "999ms", -ERANGE, "duration '999ms' for test.key is out of range: expected between 1s and 1h");
    bad(&k, "0", -ERANGE, NULL);
}

/* ---- SIZE ---------------------------------------------------------------------------------- */

static void size_is(const keel_config_key *k, const char *text, uint64_t expected)
{
    uint64_t v = 1;
    ok(k, text, &v);
    cr_assert_eq(v, expected, "'%s': %" PRIu64, text, v);
}

Test(config_parse, size)
{
    keel_config_key k = ROW(KEEL_CONFIG_SIZE);
    size_is(&k, "0", 0);
    size_is(&k, "512", 512);
    size_is(&k, "512B", 512);
    size_is(&k, "64K", 64 * 1024);
    size_is(&k, "64k", 64 * 1024);
    size_is(&k, "64KB", 64 * 1024);
    size_is(&k, "64KiB", 64 * 1024);
    size_is(&k, "8MiB", 8ULL << 20);
    size_is(&k, "8m", 8ULL << 20);
    size_is(&k, "1G", 1ULL << 30);
    size_is(&k, "2TiB", 2ULL << 40);
    size_is(&k, "16777215T", 16777215ULL << 40);
    size_is(&k, "18446744073709551615", UINT64_MAX);
    bad(&k, "abc", -EINVAL,
        "invalid size 'abc' for test.key: expected a number of bytes, optionally with K, M, G or T (512, 64K, 8MiB, 1G)");
    bad(&k, "-1", -EINVAL, NULL);
    bad(&k, "1X", -EINVAL, NULL);
    bad(&k, "1iB", -EINVAL, NULL);
    bad(&k, "1KiBB", -EINVAL, NULL);
    bad(&k, "1Kb", -EINVAL, NULL);
    bad(&k, "1.5K", -EINVAL, NULL);
    bad(&k, "K", -EINVAL, NULL);
    bad(&k, "16777216T", -ERANGE, "invalid size '16777216T' for test.key: too large");
    bad(&k, "18446744073709551616", -ERANGE, NULL);
    bad(&k, "[1K]", -EINVAL, "invalid size for test.key: expected a single value, not a list");
}

Test(config_parse, size_bounds)
{
    keel_config_key k = ROW(KEEL_CONFIG_SIZE, .min = 1024, .max = 1 << 20);
    size_is(&k, "1K", 1024);
    size_is(&k, "1M", 1 << 20);
    bad(&k, "1023", -ERANGE, "size '1023' for test.key is out of range: expected between 1KiB and 1MiB");
    bad(&k, "2M", -ERANGE, "size '2M' for test.key is out of range: expected between 1KiB and 1MiB");
}

/* ---- ADDRESS ------------------------------------------------------------------------------- */

static void address_is(const char *text, const char *host, unsigned port)
{
    keel_config_key k = ROW(KEEL_CONFIG_ADDRESS);
    keel_address a;
    memset(&a, 'x', sizeof(a));
    ok(&k, text, &a);
    cr_assert_str_eq(a.host, host, "'%s'", text);
    cr_assert_eq(a.port, port, "'%s'", text);
}

Test(config_parse, address)
{
    address_is("127.0.0.1:8880", "127.0.0.1", 8880);
    address_is(":9999", "", 9999);
    address_is("'[::1]:80'", "::1", 80);
    address_is("\"[::]:443\"", "::", 443);
    address_is("localhost:0", "localhost", 0);
    address_is("example.com:65535", "example.com", 65535);
    address_is("'[fe80::1%eth0]:8080'", "fe80::1%eth0", 8080);

    char host[256], longest[300];
    memset(host, 'a', 255);
    host[255] = 0;
    snprintf(longest, sizeof(longest), "%s:1", host);
    address_is(longest, host, 1);
}

Test(config_parse, address_rejects)
{
    keel_config_key k = ROW(KEEL_CONFIG_ADDRESS);
    bad(&k, "localhost", -EINVAL,
        "invalid address 'localhost' for test.key: missing port; expected host:port, :port (every address) or [IPv6]:port");
    bad(&k, "localhost:", -EINVAL, NULL);
    bad(&k, "'[::1]'", -EINVAL, NULL);
    bad(&k, "[::1]:80", -EINVAL, NULL); /* unquoted, YAML reads a list */
    bad(&k, "", -EINVAL, NULL);
    bad(&k, "localhost:65536", -ERANGE,
        "invalid address 'localhost:65536' for test.key: port '65536' is not a number from 0 to 65535");
    bad(&k, "localhost:99999999999999999999999", -ERANGE, NULL);
    bad(&k, "localhost:http", -EINVAL,
        "invalid address 'localhost:http' for test.key: port 'http' is not a number from 0 to 65535");
    bad(&k, "localhost:-1", -EINVAL, NULL);
    bad(&k, "::1:80", -EINVAL,
        "invalid address '::1:80' for test.key: an IPv6 address needs brackets, as in [::1]:8080; expected host:port, :port "
        "(every address) or [IPv6]:port");
    bad(&k, "'[::1]80'", -EINVAL,
        "invalid address '[::1]80' for test.key: expected host:port, :port (every address) or [IPv6]:port");
    bad(&k, "'[]:80'", -EINVAL, NULL);
    bad(&k, "'a b:80'", -EINVAL, "invalid address 'a b:80' for test.key: bad character in host");
    bad(&k, "'[:80]'", -EINVAL, NULL);

    char too_long[300];
    memset(too_long, 'a', 256);
    strcpy(too_long + 256, ":1");
    bad(&k, too_long, -EINVAL, NULL);
}

/* ---- LIST and ENUM ------------------------------------------------------------------------- */

static void list_is(const char *text, char *const *expected)
{
    keel_config_key k = ROW(KEEL_CONFIG_LIST);
    char **l = NULL;
    ok(&k, text, &l);
    cr_assert_not_null(l, "'%s'", text);
    cr_assert(keel_strv_equal(l, expected), "'%s': got %zu items", text, keel_strv_length(l));
    keel__config_value_done(&k, &l);
    cr_assert_null(l);
}

Test(config_parse, list)
{
    list_is("[a, b]", (char *[]){ "a", "b", NULL });
    list_is("[a.example,b.example]", (char *[]){ "a.example", "b.example", NULL });
    list_is("- a\n- 'b c'\n", (char *[]){ "a", "b c", NULL });
    list_is("[]", (char *[]){ NULL });
    list_is("", (char *[]){ NULL });
    list_is("~", (char *[]){ NULL });
    list_is("single", (char *[]){ "single", NULL });
    list_is("'a, b'", (char *[]){ "a, b", NULL });
    list_is("['x,y', '']", (char *[]){ "x,y", "", NULL });

    keel_config_key k = ROW(KEEL_CONFIG_LIST);
    bad(&k, "[a, [b]]", -EINVAL, "an item of the list must be a single value, not a list");
    bad(&k, "[a, {b: c}]", -EINVAL, "an item of the list must be a single value, not a mapping");
    bad(&k, "{a: b}", -EINVAL, "'{a: b}' is a YAML mapping, not a value");
    bad_prefix(&k, "[a, b", -EINVAL, "invalid YAML '[a, b': ");
}

/* As long a list as a configuration file holds (its 4 MiB): every item, in order. Reading it was
 * quadratic once (the list counted again at each item): minutes for this size. */
Test(config_parse, long_list, .timeout = 60)
{
    enum { N = 200000 };
    char start[64];
    keel_strbuf sb = KEEL_STRBUF_INIT_GROWABLE(start);
    keel_strbuf_append(&sb, "[");
    for (int i = 0; i < N; i++)
        keel_strbuf_printf(&sb, "%si%d", i ? "," : "", i);
    keel_strbuf_append(&sb, "]");
    cr_assert(!sb.truncated);
    keel_config_key k = ROW(KEEL_CONFIG_LIST);
    char **l = NULL;
    ok(&k, sb.buf, &l);
    cr_assert_eq(keel_strv_length(l), N);
    cr_assert_str_eq(l[0], "i0");
    cr_assert_str_eq(l[N - 1], "i199999");
    keel__config_value_done(&k, &l);
    keel_strbuf_done(&sb);
}

Test(config_parse, enumeration)
{
    keel_config_key k = ROW(KEEL_CONFIG_ENUM, .choices = backup_choices);
    int v = -1;
    ok(&k, "none", &v);
    cr_assert_eq(v, 0);
    ok(&k, "read+write", &v);
    cr_assert_eq(v, 3);
    ok(&k, "WRITE", &v);
    cr_assert_eq(v, 2);
    bad(&k, "bogus", -EINVAL, "invalid value 'bogus' for test.key: expected one of none, read, write, read+write");
    bad(&k, "", -EINVAL, NULL);
    bad(&k, "[read]", -EINVAL, "invalid value for test.key: expected a single value, not a list");
}

/* ---- Formatting ---------------------------------------------------------------------------- */

Test(config_parse, format)
{
    keel_config_key d = ROW(KEEL_CONFIG_DURATION), z = ROW(KEEL_CONFIG_SIZE), a = ROW(KEEL_CONFIG_ADDRESS),
                    b = ROW(KEEL_CONFIG_BOOL), i = ROW(KEEL_CONFIG_INT), e = ROW(KEEL_CONFIG_ENUM, .choices = backup_choices),
                    l = ROW(KEEL_CONFIG_LIST), s = ROW(KEEL_CONFIG_STRING);

    formats(&d, &(keel_usec_t){ 0 }, "0s");
    formats(&d, &(keel_usec_t){ 30 * SEC }, "30s");
    formats(&d, &(keel_usec_t){ 5400 * SEC }, "1h30m");
    formats(&d, &(keel_usec_t){ 1500 * KEEL_USEC_PER_MSEC }, "1s500ms");
    formats(&d, &(keel_usec_t){ 86400 * SEC + 1 }, "24h1us");
    formats(&d, &(keel_usec_t){ 72 * 3600 * SEC }, "72h");
    formats(&z, &(uint64_t){ 0 }, "0");
    formats(&z, &(uint64_t){ 1536 }, "1536");
    formats(&z, &(uint64_t){ 64 * 1024 }, "64KiB");
    formats(&z, &(uint64_t){ 8ULL << 20 }, "8MiB");
    formats(&z, &(uint64_t){ 3ULL << 40 }, "3TiB");
    formats(&a, &(keel_address){ .host = "127.0.0.1", .port = 8880 }, "127.0.0.1:8880");
    formats(&a, &(keel_address){ .host = "", .port = 9999 }, ":9999");
    formats(&a, &(keel_address){ .host = "::1", .port = 80 }, "'[::1]:80'");
    formats(&b, &(bool){ true }, "true");
    formats(&i, &(int64_t){ -42 }, "-42");
    formats(&e, &(int){ 3 }, "read+write");
    formats(&l, &(char **){ (char *[]){ NULL } }, "[]");
    formats(&l, &(char **){ (char *[]){ "a", "b c", "x,y", "", "it's", "k: v", NULL } }, "[a, b c, 'x,y', '', it's, 'k: v']");
    formats(&s, &(char *){ "plain" }, "plain");
    formats(&s, &(char *){ "" }, "''");
    formats(&s, &(char *){ "~" }, "'~'");
    formats(&s, &(char *){ "a: b" }, "'a: b'");
    formats(&s, &(char *){ "a #b" }, "'a #b'");
    formats(&s, &(char *){ "#b" }, "'#b'");
    formats(&s, &(char *){ " lead" }, "' lead'");
    formats(&s, &(char *){ "tab\there\n" }, "\"tab\\there\\n\"");
    formats(&s, &(char *){ "a,b" }, "a,b");
    formats(&s, &(char *){ "-x" }, "-x");
    formats(&s, &(char *){ "- x" }, "'- x'");
    formats(&s, &(char *){ "---" }, "'---'");
    /* U+2028, U+2029 and U+0085 are line breaks to YAML 1.1: plain or single-quoted they would fold */
    formats(&s,
            &(char *){ "a\xe2\x80\xa8"
                       "b\xe2\x80\xa9"
                       "c\xc2\x85"
                       "d" },
            "\"a\\Lb\\Pc\\Nd\"");
    formats(&l, &(char **){ (char *[]){ "-x", ":x", NULL } }, "['-x', ':x']");
}

/* What the formatter writes, the parser reads back as the same value. */
static void round_trips(const keel_config_key *k, const char *text)
{
    _cleanup_free_ char *formatted = NULL;
    keel_config_field a = {}, b = {};
    ok(k, text, &a);
    formatted = keel__config_format_value(k, &a);
    cr_assert_not_null(formatted);
    ok(k, formatted, &b);
    cr_assert(keel__config_value_equal(k, &a, &b), "'%s' came back from '%s' different", text, formatted);
    keel__config_value_done(k, &a);
    keel__config_value_done(k, &b);
}

/* A list of the string @text means, twice, formatted and read back. */
static void list_round_trips(const char *text)
{
    keel_config_key s = ROW(KEEL_CONFIG_STRING), l = ROW(KEEL_CONFIG_LIST);
    _cleanup_free_ char *item = NULL, *formatted = NULL;
    char **back = NULL;
    ok(&s, text, &item);
    char **list = (char *[]){ item, item, NULL };
    formatted = keel__config_format_value(&l, &list);
    cr_assert_not_null(formatted);
    ok(&l, formatted, &back);
    cr_assert(keel_strv_equal(list, back), "[%s, %s] came back from '%s' different", text, text, formatted);
    keel__config_value_done(&l, &back);
}

Test(config_parse, round_trip)
{
    keel_config_key s = ROW(KEEL_CONFIG_STRING), l = ROW(KEEL_CONFIG_LIST), d = ROW(KEEL_CONFIG_DURATION),
                    z = ROW(KEEL_CONFIG_SIZE), a = ROW(KEEL_CONFIG_ADDRESS);
    const char *strings[] = {
        "plain", "''",   "'~'",  "'null'",    "'a: b'",    "'a #b'",    "'- x'",  "'[x]'", "'{x'",    "'*x'",
        "'&x'",  "'!x'", "'%x'", "'@x'",      "'`x'",      "'|x'",      "'>x'",   "'\"x'", "'it''s'", "\"t\\tn\\n\\x01\"",
        "' x '", "'x:'", "'?x'", "'a,b'",     "ünïcode",   "-x",        "?x",     ":x",    "'---'",   "'...'",
        "'- '",  "'? '", "x:y",  "\"a\\Lb\"", "\"a\\Pb\"", "\"a\\Nb\"", "\"\\L\""
    };
    for (size_t i = 0; i < ELEMENTSOF(strings); i++) {
        round_trips(&s, strings[i]);
        list_round_trips(strings[i]);
    }
    round_trips(&l, "['a:b', 'c]', '{', '#', 'x #y']");
    const char *durations[] = { "0", "1us", "999ms", "1h30m", "2d3h4m5s6ms7us", "18446744073709551615us" };
    for (size_t i = 0; i < ELEMENTSOF(durations); i++)
        round_trips(&d, durations[i]);
    const char *sizes[] = { "0", "1", "1023", "1K", "1536", "8MiB", "3T", "18446744073709551615" };
    for (size_t i = 0; i < ELEMENTSOF(sizes); i++)
        round_trips(&z, sizes[i]);
    const char *addresses[] = { ":0", "127.0.0.1:8880", "'[::1]:80'", "host.example:65535" };
    for (size_t i = 0; i < ELEMENTSOF(addresses); i++)
        round_trips(&a, addresses[i]);
}

/* ---- Rows, equality, ownership ------------------------------------------------------------- */

Test(config_parse, check_row)
{
    const char *reason = NULL;
    static const char *const none[] = { NULL };
    cr_assert_eq(keel__config_check_row(&ROW(KEEL_CONFIG_INT, .min = 1, .max = 5), &reason), 0);
    cr_assert_eq(keel__config_check_row(&ROW(KEEL_CONFIG_INT, .min = -5, .max = -1), &reason), 0);
    cr_assert_eq(keel__config_check_row(&ROW(KEEL_CONFIG_DURATION, .max = 5), &reason), 0);
    cr_assert_eq(keel__config_check_row(&ROW(KEEL_CONFIG_ENUM, .choices = backup_choices), &reason), 0);
    cr_assert_null(reason);

    cr_assert_eq(keel__config_check_row(&ROW(_KEEL_CONFIG_TYPE_MAX), &reason), -EINVAL);
    cr_assert_str_eq(reason, "type out of range");
    cr_assert_eq(keel__config_check_row(&ROW((keel_config_type) -1), &reason), -EINVAL);
    cr_assert_eq(keel__config_check_row(&ROW(KEEL_CONFIG_STRING, .max = 5), &reason), -EINVAL);
    cr_assert_str_eq(reason, "min/max given for a type without bounds");
    cr_assert_eq(keel__config_check_row(&ROW(KEEL_CONFIG_INT, .min = 5, .max = 1), &reason), -EINVAL);
    cr_assert_str_eq(reason, "min is greater than max");
    cr_assert_eq(keel__config_check_row(&ROW(KEEL_CONFIG_SIZE, .min = -1, .max = 1), &reason), -EINVAL);
    cr_assert_str_eq(reason, "negative bound for an unsigned type");
    cr_assert_eq(keel__config_check_row(&ROW(KEEL_CONFIG_ENUM), &reason), -EINVAL);
    cr_assert_str_eq(reason, "an ENUM needs choices");
    cr_assert_eq(keel__config_check_row(&ROW(KEEL_CONFIG_ENUM, .choices = none), &reason), -EINVAL);
    cr_assert_eq(keel__config_check_row(&ROW(KEEL_CONFIG_INT, .choices = backup_choices), &reason), -EINVAL);
    cr_assert_str_eq(reason, "choices given for a type other than ENUM");
}

Test(config_parse, equal)
{
    keel_config_key a = ROW(KEEL_CONFIG_ADDRESS), l = ROW(KEEL_CONFIG_LIST), s = ROW(KEEL_CONFIG_STRING), b = ROW(KEEL_CONFIG_BOOL);
    keel_address x, y;
    memset(&x, 'x', sizeof(x));
    memset(&y, 'y', sizeof(y));
    strcpy(x.host, "h");
    strcpy(y.host, "h");
    x.port = y.port = 1;
    cr_assert(keel__config_value_equal(&a, &x, &y)); /* bytes past the host's NUL do not count */
    y.port = 2;
    cr_assert_not(keel__config_value_equal(&a, &x, &y));
    cr_assert(keel__config_value_equal(&l, &(char **){ (char *[]){ "a", NULL } }, &(char **){ (char *[]){ "a", NULL } }));
    cr_assert_not(keel__config_value_equal(&l, &(char **){ (char *[]){ "a", NULL } }, &(char **){ (char *[]){ NULL } }));
    cr_assert(keel__config_value_equal(&s, &(char *){ "a" }, &(char *){ "a" }));
    cr_assert_not(keel__config_value_equal(&s, &(char *){ "a" }, &(char *){ "b" }));
    cr_assert_not(keel__config_value_equal(&b, &(bool){ true }, &(bool){ false }));
}

Test(config_parse, bad_arguments)
{
    keel_config_field f = {};
    char *err = NULL;
    cr_assert_eq(keel__config_parse_value(NULL, "x", &f, &err), -EINVAL);
    cr_assert_eq(keel__config_parse_value(&ROW(KEEL_CONFIG_STRING), "x", NULL, &err), -EINVAL);
    cr_assert_eq(keel__config_parse_value(&ROW(_KEEL_CONFIG_TYPE_MAX), "x", &f, &err), -EINVAL);
    cr_assert_eq(keel__config_parse_value(&ROW(KEEL_CONFIG_ENUM), "x", &f, &err), -EINVAL);
    cr_assert_null(err);
    cr_assert_null(keel__config_format_value(NULL, &f));
    cr_assert_str_eq(keel__config_type_to_string(KEEL_CONFIG_DURATION), "duration");
    cr_assert_null(keel__config_type_to_string(_KEEL_CONFIG_TYPE_MAX));
    cr_assert_eq(keel__config_type_size(KEEL_CONFIG_ADDRESS), sizeof(keel_address));
    cr_assert_eq(keel__config_type_size(_KEEL_CONFIG_TYPE_INVALID), 0);
}
