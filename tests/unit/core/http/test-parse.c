/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "http-internal.h"

/* The copies heads are parsed in, and the fields they are parsed into: freed after each test. */
static char *copies[32];
static keel__http_field *fields[32];
static size_t n_copies;

static void free_copies(void)
{
    for (size_t i = 0; i < n_copies; i++) {
        free(copies[i]);
        free(fields[i]);
    }
    n_copies = 0;
}

TestSuite(parse, .timeout = 30, .fini = free_copies);

/* Parses @text as a whole head into *@h, in a copy that stays until the test ends. */
static const keel__http_refusal *parse(const char *text, keel__http_head *h)
{
    size_t scanned = 0, len = strlen(text);
    cr_assert_eq(keel__http_head_end(text, len, &scanned), len, "%s", text);
    cr_assert_lt(n_copies, sizeof copies / sizeof *copies);
    char *copy = copies[n_copies] = strdup(text);
    cr_assert_not_null(copy);
    *h = (keel__http_head){};
    const keel__http_refusal *r = keel__http_parse_head(copy, len, h);
    fields[n_copies++] = h->fields;
    return r;
}

Test(parse, the_head_ends_at_an_empty_line_however_it_comes)
{
    const char head[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET";
    size_t scanned = 0;
    for (size_t n = 0; n < sizeof head - 4; n++) /* a byte at a time: found once, where it is */
        cr_assert_eq(keel__http_head_end(head, n, &scanned), 0, "%zu", n);
    cr_assert_eq(keel__http_head_end(head, sizeof head - 4, &scanned), sizeof head - 4);
    scanned = 0;
    cr_assert_eq(keel__http_head_end("GET / HTTP/1.0\n\nX", 17, &scanned), 16, "bare LFs end lines too");
}

Test(parse, a_served_head_has_its_parts_in_place)
{
    keel__http_head h;
    cr_assert_null(parse("GET http://h:1/a%2fb?verbose&x=1 HTTP/1.1\r\nHost:  h \r\nX-A:\t1\t\r\n\r\n", &h));
    cr_assert_str_eq(h.method, "GET");
    cr_assert_str_eq(h.path, "/a/b");
    cr_assert_str_eq(h.query, "verbose&x=1");
    cr_assert_eq(h.n_fields, 2);
    cr_assert_str_eq(h.fields[0].value, "h");
    cr_assert_str_eq(h.fields[1].name, "X-A");
    cr_assert_str_eq(h.fields[1].value, "1");
    cr_assert(!h.close && h.body == BODY_NONE);
    cr_assert_null(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\nConnection: close\r\n\r\n", &h));
    cr_assert(h.close && h.body == BODY_LENGTH && h.length == 5);
    cr_assert_null(parse("GET / HTTP/1.0\r\n\r\n", &h));
    cr_assert(h.close, "HTTP/1.0 closes unless it asks otherwise");
}

/* A refusal closes where the framing is in doubt and where the client asked for the end, or may
 * have in the fields left unread. */
Test(parse, refusals_close_the_connection_when_the_framing_is_in_doubt_or_the_client_asks)
{
    static const struct {
        const char *head;
        unsigned status;
        bool close;
    } cases[] = {
        { "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, true },
        { "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400, true },
        { "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400, true },
        { "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, true },
        { "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, true },
        { "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n", 400, true },
        { "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400, true },
        { "GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n", 400, false },
        { "GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", 400, false },
        { "GET /a%00 HTTP/1.1\r\nHost: h\r\n\r\n", 400, false },
        { "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505, false },
        { "GET / HTTP/1.1\r\n\r\n", 400, false },
        { "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\nContent-Length: 3\r\n\r\n", 400, true }, /* a body named after */
        { "GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\nContent-Length: 0\r\n\r\n", 400, true },
        { "GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 400, true },
        { "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400, true },
        { "GET / HTTP/1.0\r\nConnection: keep-alive\r\nHost: a\r\nHost: b\r\n\r\n", 400, false },
        { "GET /a%00 HTTP/1.0\r\n\r\n", 400, true },
        { "GET /a%00 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", 400, true }, /* said after the refusal */
        { "GET / HTTP/1.1\r\nHost: h\r\nXy\r\nConnection: keep-alive\r\n\r\n", 400, true },
        { "GET / HTTP/1.1\r\nHost: h\r\nXy\r\nX-Z: 1\r\n\r\n", 400, false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        keel__http_head h;
        const keel__http_refusal *r = parse(cases[i].head, &h);
        cr_assert_not_null(r, "%s", cases[i].head);
        cr_assert_eq(r->status, cases[i].status, "%s: %u", cases[i].head, r->status);
        cr_assert_eq(h.close, cases[i].close, "%s", cases[i].head);
        cr_assert_not_null(h.method, "named for the log: %s", cases[i].head);
    }
}

/* Skips @body a byte at a time: what a body sent in pieces leaves the state machine in. */
static ssize_t skip_bytewise(keel__http_chunked *c, const char *body, size_t len)
{
    size_t i = 0;
    for (; i < len && c->state != CHUNK_DONE; i++)
        if (keel__http_chunked_skip(c, body + i, 1) < 0)
            return -EBADMSG;
    return (ssize_t) i;
}

Test(parse, a_chunked_body_is_skipped_exactly)
{
    static const char *const good[] = {
        "4;a=b\r\nabcd\r\n3 \r\nefg\r\n0\r\nX-T: y\r\n\r\nGET",
        "1 ; a = \"q\\\"x;\" ; b\t;c=d\r\nx\r\n0;e\r\n\r\nGET",
        "1;a=\"\";b=c \r\nx\r\n0\r\n\r\nGET",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        size_t len = strlen(good[i]);
        keel__http_chunked c = { .state = CHUNK_SIZE };
        cr_assert_eq(keel__http_chunked_skip(&c, good[i], len), (ssize_t) len - 3, "%s", good[i]);
        cr_assert_eq(c.state, CHUNK_DONE, "%s", good[i]);
        c = (keel__http_chunked){ .state = CHUNK_SIZE };
        cr_assert_eq(skip_bytewise(&c, good[i], len), (ssize_t) len - 3, "a byte at a time: %s", good[i]);
    }
}

/* RFC 9112 §7.1: only CRLF ends a line of chunked framing, and an extension is a token, with a
 * token or quoted string for its value (§7.1.1). A proxy that read any of these another way would
 * frame the body, and the request behind it, differently. */
Test(parse, a_chunked_body_with_a_bare_lf_or_a_malformed_extension_is_refused)
{
    static const char *const bad[] = {
        /* sizes and data */
        "5 6\r\n",
        "x\r\n",
        "11111111111111111\r\n",
        "1\r\nab\r\n",
        /* lines ended by a bare LF, or a CR alone */
        "1\nx\r\n0\r\n\r\n",
        "1 \nx\r\n",
        "1;a=b\nx\r\n",
        "1;a\nx\r\n",
        "1\r\nx\n0\r\n\r\n",
        "1\r\nx\rX",
        "0\r\n\n",
        "0\r\nX: y\n\r\n",
        "0\r\nX: y\rZ\r\n\r\n",
        /* extensions */
        "1;\r\n",
        "1;;a\r\n",
        "1;=b\r\n",
        "1;a=\r\n",
        "1;a b\r\n",
        "1;a=b c\r\n",
        "1;a@b\r\n",
        "1;a=b\"\r\n",
        "1;a=\"x\r\n",
        "1;a=\"\x7f\"\r\n",
        "1;a=\"\\\n\"\r\n",
        "1;a=b=c\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        keel__http_chunked c = { .state = CHUNK_SIZE };
        cr_assert_lt(keel__http_chunked_skip(&c, bad[i], strlen(bad[i])), 0, "%s", bad[i]);
    }
}

/* RFC 9110 §5.6.2, tchar: what a method and a field name may be made of, byte by byte. */
static bool rfc_tchar(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

Test(parse, methods_and_field_names_are_made_of_tchar_only)
{
    for (int c = 1; c < 256; c++) {
        if (c == '\n')
            continue; /* it would end the line, not be in it */
        char method[64], field[64];
        (void) snprintf(method, sizeof method, "G%cT / HTTP/1.1\r\nHost: x\r\n\r\n", c);
        (void) snprintf(field, sizeof field, "GET / HTTP/1.1\r\nHost: x\r\nX%cY: 1\r\n\r\n", c);
        keel__http_head h;
        cr_assert_eq(parse(method, &h) == NULL, rfc_tchar(c), "method byte %d", c);
        cr_assert_eq(parse(field, &h) == NULL, rfc_tchar(c) || c == ':', "field name byte %d", c);
        free_copies();
    }
}
