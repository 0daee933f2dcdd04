/* SPDX-License-Identifier: MIT */
/*
 * A request's head and a chunked body, read strictly (RFC 9112), so that a proxy in front of us
 * and we never read one message two ways: whatever could frame a body or a request twice is
 * refused with a constant answer and the connection closes after it. The head is parsed in place,
 * in the connection's buffer: every part is NUL-terminated where it lies, which is safe because a
 * NUL sent by the client is refused before anything is cut.
 */
#include <string.h>
#include <strings.h>

#include "http-internal.h"

const keel__http_refusal keel__http_too_large = { 431, "request header fields too large: more than http.header_limit\n", true };
const keel__http_refusal keel__http_unchecked = { 503, "service unavailable: no memory to read the request\n", false };
static const keel__http_refusal too_many_fields = { 431, "request header fields too large: more than 512 fields\n", true };
static const keel__http_refusal nul_in_line = { 400, "bad request: a NUL byte in the request line\n", false };
static const keel__http_refusal nul_in_field = { 400, "bad request: a NUL byte in a header field\n", false };
static const keel__http_refusal bad_line = { 400, "bad request: a malformed request line\n", false };
static const keel__http_refusal bad_version = { 505, "HTTP version not supported: HTTP/1.1 and HTTP/1.0 are\n", false };
static const keel__http_refusal bad_target = { 400, "bad request: a space or control character in the request target\n", false };
static const keel__http_refusal bad_form = { 400, "bad request: a request target that is neither a path nor an absolute URI\n",
                                             false };
static const keel__http_refusal escaped_nul = { 400, "bad request: %00 in the request target\n", false };
static const keel__http_refusal bad_field = { 400, "bad request: a malformed header field\n", false };
static const keel__http_refusal space_before_colon = { 400, "bad request: whitespace between a header field's name and its colon\n",
                                                       true };
static const keel__http_refusal folded = { 400, "bad request: a header field folded over two lines (obsolete line folding)\n",
                                           true };
static const keel__http_refusal ctl_in_field = { 400, "bad request: a CR byte inside a header field\n", false };
static const keel__http_refusal no_host = { 400, "bad request: HTTP/1.1 needs a Host header\n", false };
static const keel__http_refusal two_hosts = { 400, "bad request: more than one Host header\n", false };
static const keel__http_refusal bad_length = { 400, "bad request: an invalid Content-Length\n", true };
static const keel__http_refusal two_lengths = { 400, "bad request: Content-Length values that disagree\n", true };
static const keel__http_refusal length_and_coding = { 400, "bad request: both Content-Length and Transfer-Encoding\n", true };
static const keel__http_refusal coding_in_10 = { 400, "bad request: Transfer-Encoding in an HTTP/1.0 request\n", true };
static const keel__http_refusal not_chunked = { 400, "bad request: the final transfer coding is not chunked\n", true };
static const keel__http_refusal unknown_coding = { 501, "not implemented: a transfer coding other than chunked\n", true };

/* RFC 9110 §5.6.2: tchar, one bit per byte below 128: "!#$%&'*+-.^_`|~", digits and letters. A
 * bitmap, not strchr() or a switch: every byte of every method and field name is tested, and
 * this is the parser's inner loop. test-http-parse checks it against the RFC's list. */
static bool is_tchar(unsigned char c)
{
    static const uint64_t below_64 = UINT64_C(0x03ff6cfa00000000), below_128 = UINT64_C(0x57ffffffc7fffffe);
    return c < 64 ? (below_64 >> c & 1) != 0 : c < 128 && (below_128 >> (c - 64) & 1) != 0;
}

int keel__http_unhex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char) (c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Whether @name (of length @len) is @lower (lower case), in any case. Not strcasecmp(): a call
 * into libc with its locale for each field of every head, where field names are ASCII (§5.1). */
static bool name_is(const char *name, size_t len, const char *lower, size_t lower_len)
{
    if (len != lower_len)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i] >= 'A' && name[i] <= 'Z' ? (char) (name[i] + ('a' - 'A')) : name[i];
        if (c != lower[i])
            return false;
    }
    return true;
}

size_t keel__http_head_end(const char *buf, size_t len, size_t *scanned)
{
    /* The head ends at an empty line: LF then CRLF or LF (a bare LF ends a line too, §2.2). */
    for (size_t i = *scanned; i < len;) {
        const char *lf = memchr(buf + i, '\n', len - i);
        if (!lf)
            break;
        size_t j = (size_t) (lf - buf);
        if (j + 1 < len && buf[j + 1] == '\n')
            return j + 2;
        if (j + 2 < len && buf[j + 1] == '\r' && buf[j + 2] == '\n')
            return j + 3;
        if (j + 2 >= len && (j + 1 == len || buf[j + 1] == '\r')) {
            *scanned = j; /* too few bytes yet to tell */
            return 0;
        }
        i = j + 1;
    }
    *scanned = len;
    return 0;
}

/* Percent-decodes @p in place; false when %00 was in it. A '%' not followed by two hex digits
 * stays as it is, as libmicrohttpd left it. */
static bool unescape(char *p)
{
    char *w = p;
    for (const char *r = p; *r; r++) {
        int hi, lo;
        if (*r == '%' && (hi = keel__http_unhex(r[1])) >= 0 && (lo = keel__http_unhex(r[2])) >= 0) {
            if (hi == 0 && lo == 0)
                return false;
            *w++ = (char) (hi << 4 | lo);
            r += 2;
        } else
            *w++ = *r;
    }
    *w = '\0';
    return true;
}

/* The target's path and query (§3.2): origin form "/p?q", absolute form "http://host/p?q" (which a
 * server MUST accept, §3.2.2) or "*". */
static const keel__http_refusal *parse_target(char *t, keel__http_head *h)
{
    static char root[] = "/";
    char *path = t;
    if (t[0] != '/' && !streq(t, "*")) {
        size_t scheme = strncasecmp(t, "http://", 7) == 0 ? 7 : strncasecmp(t, "https://", 8) == 0 ? 8 : 0;
        if (!scheme || !t[scheme] || t[scheme] == '/')
            return &bad_form;
        path = t + scheme + strcspn(t + scheme, "/?");
    }
    char *q = strchr(path, '?');
    h->query = q ? q + 1 : NULL;
    if (q)
        *q = '\0';
    if (!path[0]) /* "http://host" or "http://host?q": the root (the query's '?' was cut above) */
        path = root;
    if ((path != root && strchr(path, '%') && !unescape(path)) || (h->query && strstr(h->query, "%00")))
        return &escaped_nul;
    h->path = path;
    return NULL;
}

/* "GET /livez HTTP/1.1": one space between the parts, no other whitespace (§3). */
static const keel__http_refusal *parse_request_line(char *p, char *end, keel__http_head *h)
{
    if (end <= p || memchr(p, '\0', (size_t) (end - p)))
        return end <= p ? &bad_line : &nul_in_line;
    char *sp1 = p;
    while (sp1 < end && is_tchar((unsigned char) *sp1))
        sp1++;
    char *version = end;
    while (version > sp1 && version[-1] != ' ')
        version--;
    if (sp1 == p || sp1 == end || *sp1 != ' ' || version - 1 <= sp1 + 1)
        return &bad_line; /* no method, a tab after it, or no target */
    if (end - version != 8 || memcmp(version, "HTTP/", 5) != 0 || version[6] != '.' || version[5] < '0' || version[5] > '9' ||
        version[7] < '0' || version[7] > '9')
        return &bad_line;
    if (version[5] != '1')
        return &bad_version;
    h->minor = version[7] == '0' ? 0 : 1;
    for (const char *t = sp1 + 1; t < version - 1; t++)
        if ((unsigned char) *t <= ' ' || *t == 0x7f)
            return &bad_target;
    *sp1 = '\0';
    version[-1] = '\0';
    h->method = p;
    h->path = sp1 + 1; /* as sent, for the log, should the target be refused */
    h->head_method = streq(p, "HEAD");
    return parse_target(sp1 + 1, h);
}

/* What the fields say about framing and the connection, gathered while they are read. */
typedef struct fields_seen {
    unsigned hosts, lengths, codings, chunked, te_fields;
    bool last_chunked, close, keep_alive;
    uint64_t length;
} fields_seen;

/* Content-Length: digits, or a list of equal ones ("5, 5", §6.3). */
static const keel__http_refusal *see_length(const char *v, fields_seen *f)
{
    for (const char *p = v;;) {
        uint64_t n = 0;
        unsigned digits = 0;
        for (; *p >= '0' && *p <= '9'; p++, digits++)
            n = n * 10 + (uint64_t) (*p - '0');
        if (digits == 0 || digits > 18)
            return &bad_length;
        if (f->lengths++ > 0 && n != f->length)
            return &two_lengths;
        f->length = n;
        while (is_ows(*p))
            p++;
        if (!*p)
            return NULL;
        if (*p++ != ',')
            return &bad_length;
        while (is_ows(*p))
            p++;
    }
}

/* Calls @fn for each element of a comma-separated list (§5.6.1), parameters cut off. */
static void each_token(const char *v, void (*fn)(const char *token, size_t len, fields_seen *f), fields_seen *f)
{
    while (*v) {
        v += strspn(v, " \t,");
        size_t len = strcspn(v, " \t,;");
        if (len > 0)
            fn(v, len, f);
        v += len;
        v += strcspn(v, ",");
    }
}

static void see_coding(const char *t, size_t len, fields_seen *f)
{
    bool chunked = len == 7 && strncasecmp(t, "chunked", 7) == 0;
    f->codings++;
    f->chunked += chunked;
    f->last_chunked = chunked;
}

static void see_connection(const char *t, size_t len, fields_seen *f)
{
    f->close = f->close || (len == 5 && strncasecmp(t, "close", 5) == 0);
    f->keep_alive = f->keep_alive || (len == 10 && strncasecmp(t, "keep-alive", 10) == 0);
}

/* The fields that frame the message or the connection; others are only kept. By length first:
 * most fields of a head are none of these. */
static const keel__http_refusal *see_field(const char *name, size_t len, const char *value, keel__http_head *h, fields_seen *f)
{
    if (name_is(name, len, "host", 4))
        f->hosts++;
    else if (name_is(name, len, "content-length", 14))
        return see_length(value, f);
    else if (name_is(name, len, "transfer-encoding", 17))
        f->te_fields++, each_token(value, see_coding, f); /* counted as a field too: "Transfer-Encoding:" names no coding */
    else if (name_is(name, len, "connection", 10))
        each_token(value, see_connection, f);
    else if (name_is(name, len, "expect", 6))
        h->expect_continue = h->minor >= 1 && strcasecmp(value, "100-continue") == 0; /* RFC 9110 10.1.1: not for 1.0 */
    return NULL;
}

/* "Name: value" (§5): a token, the colon right after it, the value without its blanks around. */
static const keel__http_refusal *parse_field(char *p, char *end, keel__http_head *h, fields_seen *f)
{
    if (is_ows(*p))
        return &folded;
    if (end <= p || memchr(p, '\0', (size_t) (end - p)))
        return end <= p ? &bad_field : &nul_in_field;
    char *colon = p;
    while (colon < end && is_tchar((unsigned char) *colon))
        colon++;
    if (colon == p || colon == end || *colon != ':')
        return colon > p && colon < end && is_ows(*colon) ? &space_before_colon : &bad_field;
    char *v = colon + 1, *ve = end;
    while (v < ve && is_ows(*v))
        v++;
    while (ve > v && is_ows(ve[-1]))
        ve--;
    /* CR, LF and NUL are what RFC 9110 §5.5 makes a recipient refuse; other control bytes reach
     * the handler, whose keel_http_request_header_strict() refuses them where a value decides. */
    if (memchr(v, '\r', (size_t) (ve - v)))
        return &ctl_in_field;
    if (h->n_fields == KEEL_HTTP_MAX_FIELDS)
        return &too_many_fields;
    if (GROW(h->fields, h->allocated_fields, h->n_fields + 1) < 0)
        return &keel__http_unchecked;
    *colon = '\0';
    *ve = '\0';
    h->fields[h->n_fields++] = (keel__http_field){ p, v };
    return see_field(p, (size_t) (colon - p), v, h, f);
}

/* How the body is framed (§6) and whether the connection stays open. */
static const keel__http_refusal *conclude(keel__http_head *h, const fields_seen *f)
{
    if (f->hosts > 1)
        return &two_hosts;
    if (f->hosts == 0 && h->minor == 1)
        return &no_host;
    h->close = f->close || (h->minor == 0 && !f->keep_alive);
    if (f->te_fields > 0) {
        if (h->minor == 0)
            return &coding_in_10;
        if (f->lengths > 0)
            return &length_and_coding;
        if (!f->last_chunked || f->chunked > 1)
            return &not_chunked;
        if (f->codings > 1)
            return &unknown_coding;
        h->body = BODY_CHUNKED;
    } else if (f->lengths > 0 && f->length > 0) {
        h->body = BODY_LENGTH;
        h->length = f->length;
    }
    return NULL;
}

/* The line at @p, up to its LF (which must be there): its end without a CR before the LF, and the
 * next line's start. A CR elsewhere is left in the line, where it is refused as a control byte. */
static char *line_end(char *p, char *end, char **next)
{
    char *lf = end > p ? memchr(p, '\n', (size_t) (end - p)) : NULL;
    if (!lf)
        lf = end;
    *next = lf < end ? lf + 1 : end;
    return lf > p && lf[-1] == '\r' ? lf - 1 : lf;
}

/* Whether a line of the head names a field that frames a body or the connection: a head refused
 * before its fields were all read may still have one. A line ends at an LF or at a NUL: parsing
 * writes one over the LF that ends a line without a CR (a NUL the client sent splits a line too,
 * which can only make the answer yes). */
static bool names_framing(const char *buf, size_t len)
{
    for (size_t i = 0; i < len;) {
        const char *p = buf + i;
        size_t n = 0;
        while (i + n < len && p[n] != '\n' && p[n] != '\0')
            n++;
        if ((n >= 14 && strncasecmp(p, "Content-Length", 14) == 0) || (n >= 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) ||
            (n >= 10 && strncasecmp(p, "Connection", 10) == 0))
            return true;
        i += n + 1;
    }
    return false;
}

/* Whether the connection ends after a refusal that does not say so itself. A refused request's
 * body is not read, so one the head names leaves the next request's start unknown; and the client
 * that asked for the end (Connection: close, HTTP/1.0 without keep-alive) gets it, as it would
 * after an answer that served it. Of a head refused before its fields were all read, what they
 * say is unknown: any field that could say either, and HTTP/1.0, close. */
static bool refusal_closes(const keel__http_head *h, const fields_seen *f, bool all_fields, const char *buf, size_t len)
{
    if (!all_fields)
        return h->minor == 0 || names_framing(buf, len);
    return f->lengths > 0 || f->te_fields > 0 || f->close || (h->minor == 0 && !f->keep_alive);
}

/* For the log line of a refused request line: its first word and the rest up to its last space,
 * as sent (the log escapes what is not printable). */
static void name_for_log(char *line, char *end, keel__http_head *h)
{
    char *sp1 = end > line ? memchr(line, ' ', (size_t) (end - line)) : NULL, *sp2 = end;
    while (sp2 > line && sp2[-1] != ' ')
        sp2--;
    *end = '\0';
    h->method = line;
    h->path = (char *) "";
    if (!sp1)
        return;
    *sp1 = '\0';
    if (sp2 - 1 > sp1) {
        sp2[-1] = '\0';
        h->path = sp1 + 1;
    }
}

const keel__http_refusal *keel__http_parse_head(char *buf, size_t len, keel__http_head *h)
{
    keel__http_field *fields = h->fields;
    size_t allocated = h->allocated_fields;
    /* HTTP/1.1 until the request line says otherwise: a refused one is not answered as 1.0. */
    *h = (keel__http_head){ .fields = fields, .allocated_fields = allocated, .minor = 1 };
    char *end = buf + len, *next;
    char *e = line_end(buf, end, &next);
    const keel__http_refusal *r = parse_request_line(buf, e, h);
    if (r && !h->method)
        name_for_log(buf, e, h);
    fields_seen f = {};
    for (char *p = next; !r && p < end; p = next) {
        e = line_end(p, end, &next);
        if (e == p)
            break; /* the empty line */
        r = parse_field(p, e, h, &f);
    }
    bool all_fields = !r;
    if (!r)
        r = conclude(h, &f);
    if (r)
        h->close = r->close || refusal_closes(h, &f, all_fields, buf, len);
    return r;
}

static void chunk_size_done(keel__http_chunked *c)
{
    c->state = c->left > 0 ? CHUNK_DATA : CHUNK_TRAILER;
    c->digits = 0;
}

static bool go(keel__http_chunked *c, int state)
{
    c->state = state;
    return true;
}

/* A size line's ';' (an extension) or its end. Only CRLF ends a line of chunked framing (RFC 9112
 * §7.1): a proxy that took a bare LF for one and a server that did not would frame it two ways. */
static bool size_line_next(keel__http_chunked *c, char ch)
{
    return (ch == ';' && go(c, CHUNK_EXT_BEFORE_NAME)) || (ch == '\r' && go(c, CHUNK_SIZE_LF));
}

/* A quoted string's text (RFC 9110 §5.6.4), obs-text included; and what a backslash may quote. */
static bool is_qdtext(unsigned char c)
{
    return c == '\t' || c == ' ' || c == '!' || (c >= '#' && c <= '[') || (c >= ']' && c != 0x7f);
}

static bool is_quotable(unsigned char c)
{
    return c == '\t' || (c >= ' ' && c != 0x7f);
}

/* One byte of a size line after the size (RFC 9112 §7.1.1): *( BWS ";" BWS name [ BWS "=" BWS
 * value ] ), a name being a token, a value a token or a quoted string. */
static bool size_line_byte(keel__http_chunked *c, char ch)
{
    unsigned char u = (unsigned char) ch;
    switch (c->state) {
    case CHUNK_EXT_BEFORE_NAME:
        return is_ows(ch) || (is_tchar(u) && go(c, CHUNK_EXT_NAME));
    case CHUNK_EXT_NAME:
        if (is_tchar(u))
            return true;
        return (is_ows(ch) && go(c, CHUNK_EXT_AFTER_NAME)) || (ch == '=' && go(c, CHUNK_EXT_BEFORE_VALUE)) || size_line_next(c, ch);
    case CHUNK_EXT_AFTER_NAME:
        return is_ows(ch) || (ch == '=' && go(c, CHUNK_EXT_BEFORE_VALUE)) || size_line_next(c, ch);
    case CHUNK_EXT_BEFORE_VALUE:
        return is_ows(ch) || (ch == '"' && go(c, CHUNK_EXT_QUOTED)) || (is_tchar(u) && go(c, CHUNK_EXT_VALUE));
    case CHUNK_EXT_VALUE:
        return is_tchar(u) || (is_ows(ch) && go(c, CHUNK_SIZE_WS)) || size_line_next(c, ch);
    case CHUNK_EXT_QUOTED:
        return (ch == '"' && go(c, CHUNK_SIZE_WS)) || (ch == '\\' && go(c, CHUNK_EXT_QUOTED_PAIR)) || is_qdtext(u);
    case CHUNK_EXT_QUOTED_PAIR:
        return is_quotable(u) && go(c, CHUNK_EXT_QUOTED);
    case CHUNK_SIZE_WS:
        return is_ows(ch) || size_line_next(c, ch);
    default:
        return false;
    }
}

/* One byte of a chunk's size line, its end, the CRLF after its data, or a trailer line; false when
 * it cannot be there. */
static bool chunk_byte(keel__http_chunked *c, char ch)
{
    int v;
    switch (c->state) {
    case CHUNK_SIZE:
        if ((v = keel__http_unhex(ch)) >= 0 && c->digits < 16) {
            c->left = c->left << 4 | (uint64_t) v;
            c->digits++;
            return true;
        }
        return c->digits > 0 && ((is_ows(ch) && go(c, CHUNK_SIZE_WS)) || size_line_next(c, ch));
    case CHUNK_SIZE_LF:
        chunk_size_done(c);
        return ch == '\n';
    case CHUNK_DATA_CR:
        return ch == '\r' && go(c, CHUNK_DATA_LF);
    case CHUNK_DATA_LF:
        return ch == '\n' && go(c, CHUNK_SIZE);
    case CHUNK_TRAILER: /* the start of a trailer line, or the CR of the empty line that ends the body */
        return ch == '\r' ? go(c, CHUNK_TRAILER_CR) : ch != '\n' && ch != '\0' && go(c, CHUNK_TRAILER_LINE);
    case CHUNK_TRAILER_CR:
        return ch == '\n' && go(c, CHUNK_DONE);
    case CHUNK_TRAILER_LINE:
        return ch == '\r' ? go(c, CHUNK_TRAILER_LF) : ch != '\n' && ch != '\0';
    case CHUNK_TRAILER_LF:
        return ch == '\n' && go(c, CHUNK_TRAILER);
    default:
        return size_line_byte(c, ch);
    }
}

ssize_t keel__http_chunked_skip(keel__http_chunked *c, const char *buf, size_t len)
{
    size_t i = 0;
    while (i < len && c->state != CHUNK_DONE) {
        if (c->state == CHUNK_DATA) { /* the data itself is skipped whole */
            size_t take = (size_t) MIN((uint64_t) (len - i), c->left);
            i += take;
            c->left -= take;
            if (c->left == 0)
                c->state = CHUNK_DATA_CR;
            continue;
        }
        if (!chunk_byte(c, buf[i++]))
            return -EBADMSG;
    }
    return (ssize_t) i;
}
