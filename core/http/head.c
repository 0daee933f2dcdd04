/* SPDX-License-Identifier: MIT */
/*
 * What a request's head must be before any handler sees it, on the polling thread: within
 * http.header_limit, with Host on HTTP/1.1 (RFC 9112 §3.2), no space or control byte in its
 * target, no %00 decoded into it, and no NUL byte anywhere (RFC 9110 §5.5). A head that is not is
 * refused with a constant answer, so that a proxy and we never read one head two ways.
 *
 * libmicrohttpd 0.9.7x parses the head in its own buffer, in place: it writes a NUL over each space
 * that ends the method and the target, over each colon and each CR and LF, and hands over the
 * parts as C strings, so that a NUL sent by the client silently ends a part there ("X-Athenz-Role:
 * admin\0;evil" reads "admin"). Every part stays where it was received, and the head is the
 * MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE bytes from the method on, so the parts must tile the head
 * with only MHD's own NULs between them: one after the method (then the spaces MHD skips), one
 * after the target, one or two at each line end, blanks after a colon. Any byte left over between
 * two parts is what followed a client's NUL. This reading of MHD's buffer is checked for 0.9.74 to
 * 0.9.77 (whose line reading is the same), which the build requires; 1.0 refuses a NUL itself.
 */
#include <string.h>

#include <microhttpd.h>

#include "http-internal.h"

#if MHD_VERSION >= 0x01000000
#define HEAD_WALK 0 /* libmicrohttpd refuses a NUL in the head with its own 400 */
#else
#define HEAD_WALK 1
#endif

static const keel__http_refusal too_large = { 431, "request header fields too large: more than http.header_limit\n" };
static const keel__http_refusal nul_in_line = { 400, "bad request: a NUL byte in the request line\n" };
static const keel__http_refusal nul_in_field = { 400, "bad request: a NUL byte in a header field\n" };
static const keel__http_refusal malformed = { 400, "bad request: a malformed request head\n" };
static const keel__http_refusal bad_target = { 400, "bad request: a space or control character in the request target\n" };
static const keel__http_refusal escaped_nul = { 400, "bad request: %00 in the request target\n" };
static const keel__http_refusal no_host = { 400, "bad request: HTTP/1.1 needs a Host header\n" };
static const keel__http_refusal unchecked = { 503, "service unavailable: no memory to check the request\n" };

static connection_state *state_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *sc = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return sc ? sc->socket_context : NULL;
}

/* MHD_OPTION_URI_LOG_CALLBACK: the target as sent, before MHD cuts off its query and decodes it. */
void *keel__http_on_target(void *cls, const char *uri, struct MHD_Connection *c)
{
    connection_state *cs = state_of(c);
    if (cs) {
        size_t n = strlen(uri);
        cs->target = uri;
        cs->target_len = n;
        cs->target_bad = false;
        for (size_t i = 0; i < n && !cs->target_bad; i++)
            cs->target_bad = (unsigned char) uri[i] <= ' ' || uri[i] == 0x7f;
        cs->nul_in_target = false;
    }
    return NULL; /* the request's context is made by its first call (request.c) */
}

/* MHD's own decoding of the path and the query, which cuts a decoded %00 short ("/jwks.json%00.txt"
 * would be "/jwks.json"): the request is marked, and refused. */
size_t keel__http_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    size_t n = MHD_http_unescape(s);
    connection_state *cs = strlen(s) != n ? state_of(c) : NULL;
    if (cs)
        cs->nul_in_target = true;
    return n;
}

#if HEAD_WALK
/* Whether [@from, @to) holds only the NULs MHD wrote over the ends of @lines lines: CRLF or LF. */
static bool line_ends(const char *from, const char *to, size_t lines)
{
    if (to < from + lines || to > from + 2 * lines)
        return false;
    for (const char *p = from; p < to; p++)
        if (*p)
            return false;
    return true;
}

typedef struct walk {
    const char *at, *end; /* the end of the parts checked so far; the end of the head */
    const keel__http_refusal *verdict;
} walk;

/* What lies in [@from, @to), where line ends alone belong: more NULs or other bytes are what
 * followed a client's NUL (MHD writes nothing else); too little room means the parts are not where
 * MHD's reading of the head puts them. */
static const keel__http_refusal *gap_verdict(const char *from, const char *to, size_t lines)
{
    if (line_ends(from, to, lines))
        return NULL;
    return to < from + lines ? &malformed : &nul_in_field;
}

static enum MHD_Result walk_field(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size, const char *value,
                                  size_t value_size)
{
    walk *w = cls;
    const char *colon = key + key_size;
    if (key_size == 0 || key < w->at || colon >= w->end || value <= colon || value + value_size > w->end) {
        w->verdict = &malformed; /* an empty name (RFC 9110 §5.1); a folded line, which 0.9.75 copies elsewhere */
        return MHD_NO;
    }
    w->verdict = gap_verdict(w->at, key, 1);
    for (const char *p = colon + 1; !w->verdict && p < value; p++)
        if (*p != ' ' && *p != '\t')
            w->verdict = &nul_in_field; /* a NUL among the blanks after the colon */
    w->at = value + value_size;
    return w->verdict ? MHD_NO : MHD_YES;
}

static const keel__http_refusal *walk_head(struct MHD_Connection *c, const connection_state *cs, const char *method,
                                           const char *version, size_t size)
{
    const char *end = method + size, *at = method + strlen(method) + 1, *target = cs->target;
    if (!target || !version || target < at || target + cs->target_len >= version || version >= end)
        return &malformed;
    for (; at < target; at++)
        if (*at != ' ')
            return &nul_in_line; /* the rest of a method cut by a NUL */
    if (target + cs->target_len + 1 != version)
        return &nul_in_line; /* the rest of a target cut by a NUL */
    walk w = { .at = version + strlen(version), .end = end };
    (void) MHD_get_connection_values_n(c, MHD_HEADER_KIND, walk_field, &w);
    if (w.verdict)
        return w.verdict;
    return gap_verdict(w.at, end, 2); /* the last line's end and the empty line */
}
#endif

const keel__http_refusal *keel__http_head_refusal(const keel_http_server *s, struct MHD_Connection *c, const char *method,
                                                  const char *version)
{
    const union MHD_ConnectionInfo *head = MHD_get_connection_info(c, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    connection_state *cs = state_of(c);
    if (!cs) /* its state could not be allocated when it opened: not served unchecked */
        return &unchecked;
    if (!head || !method)
        return &malformed;
    const keel__http_refusal *r = NULL;
    if (head->header_size > s->header_limit)
        r = &too_large;
#if HEAD_WALK
    if (!r)
        r = walk_head(c, cs, method, version, head->header_size);
#endif
    if (!r && cs->target_bad)
        r = &bad_target;
    if (!r && cs->nul_in_target)
        r = &escaped_nul;
    if (!r && version && streq(version, MHD_HTTP_VERSION_1_1) && !MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host"))
        r = &no_host;
    cs->target = NULL;
    cs->nul_in_target = cs->target_bad = false;
    return r;
}
