/* SPDX-License-Identifier: MIT */
/* The OAuth2 issuer (token.provider oauth2): the client credentials grant (RFC 6749 §4.4) at
 * token.oauth2.token_url, the client authenticated by mutual TLS (RFC 8705 tls_client_auth) or
 * by client_secret_basic, the answer (RFC 6749 §5.1) or its error (§5.2) parsed with jansson. A
 * small pool of keel_fetch clients keeps connections (and libcurl) between mints. */
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <keel/fetch.h>
#include <keel/fileio.h>
#include <keel/log.h>
#include <keel/strbuf.h>
#include <keel/util.h>

#include "oauth2.h"

#define POOL       4
#define SECRET_MAX 1024

struct oauth2 {
    char *token_url, *client_id, *scope_template;
    char *authorization;      /* "Authorization: Basic …" for client_secret_basic, or NULL */
    keel_fetch_options fetch; /* its strings owned below */
    char *ca_file, *cert_file, *key_file;
    pthread_mutex_t lock; /* the pool */
    keel_fetch *idle[POOL];
    size_t n_idle;
};

const char *const oauth2_auth_choices[] = { "tls_client_auth", "client_secret_basic", NULL };
static const char *const provider_choices[] = { "local", "oauth2", NULL };

#define C(field) offsetof(token_provider_settings, field)
const keel_config_key oauth2_config_keys[] = {
    { .key = "token.provider",
      .type = KEEL_CONFIG_ENUM,
      .offset = C(provider),
      .def = "local",
      .choices = provider_choices,
      .help = "local (JWTs signed with the agent's key) or oauth2 (the issuer's tokens: token.oauth2.*)" },
    { .key = "token.oauth2.token_url",
      .type = KEEL_CONFIG_STRING,
      .offset = C(oauth2.token_url),
      .def = "''",
      .help = "provider oauth2: the issuer's token endpoint (https://)" },
    { .key = "token.oauth2.client_id",
      .type = KEEL_CONFIG_STRING,
      .offset = C(oauth2.client_id),
      .def = "''",
      .help = "provider oauth2: the agent's client id at the issuer" },
    { .key = "token.oauth2.client_auth",
      .type = KEEL_CONFIG_ENUM,
      .offset = C(oauth2.client_auth),
      .def = "tls_client_auth",
      .choices = oauth2_auth_choices,
      .help = "provider oauth2: tls_client_auth (the client certificate, RFC 8705) or client_secret_basic" },
    { .key = "token.oauth2.client_secret_file",
      .type = KEEL_CONFIG_PATH,
      .offset = C(oauth2.client_secret_file),
      .def = "''",
      .help = "client_secret_basic: a file (0600 or stricter) whose first line is the secret" },
    { .key = "token.oauth2.cert_file",
      .type = KEEL_CONFIG_PATH,
      .offset = C(cert_file),
      .def = "''",
      .help = "tls_client_auth: the client certificate (PEM); empty: the certificate service's" },
    { .key = "token.oauth2.key_file",
      .type = KEEL_CONFIG_PATH,
      .offset = C(key_file),
      .def = "''",
      .help = "tls_client_auth: its key (PEM); empty: the certificate service's" },
    { .key = "token.oauth2.ca_file",
      .type = KEEL_CONFIG_PATH,
      .offset = C(oauth2.ca_file),
      .def = "''",
      .help = "provider oauth2: trust anchors (PEM) for the issuer's TLS; empty: the system's" },
    { .key = "token.oauth2.scope",
      .type = KEEL_CONFIG_STRING,
      .offset = C(oauth2.scope),
      .def = "'{domain}:role.{role}'",
      .help = "provider oauth2: the scope asked for, {domain} and {role} from the request's headers" },
    { .key = "token.oauth2.timeout",
      .type = KEEL_CONFIG_DURATION,
      .offset = C(oauth2.timeout),
      .def = "10s",
      .min = 100000,
      .max = 300LL * 1000000,
      .help = "provider oauth2: the most a token request to the issuer may take" },
};
#undef C
const size_t oauth2_n_config_keys = ELEMENTSOF(oauth2_config_keys);

static int fail(char *error, size_t size, int r, const char *fmt, ...) KEEL_PRINTF(4, 5);
static int fail(char *error, size_t size, int r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void) vsnprintf(error, size, fmt, ap);
    va_end(ap);
    return r;
}

/* The secret from @path: a file others cannot read, its first line. */
static int read_secret(const char *path, char *buf, size_t size, char *error, size_t esize)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return fail(error, esize, -errno, "Cannot read token.oauth2.client_secret_file '%s': %s", path, strerror(errno));
    if (keel_secret_check(&st) < 0)
        return fail(error, esize, -EACCES,
                    "Permissions %04o for token.oauth2.client_secret_file '%s' are too open: " KEEL_SECRET_MODE_RULE,
                    (unsigned) (st.st_mode & 07777), path);
    ssize_t n = read(fd, buf, size - 1);
    if (n < 0)
        return fail(error, esize, -errno, "Cannot read token.oauth2.client_secret_file '%s': %s", path, strerror(errno));
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (!*buf)
        return fail(error, esize, -EINVAL, "token.oauth2.client_secret_file '%s' is empty", path);
    return 0;
}

/* RFC 6749 §2.3.1: id and secret form-encoded, then base64, as "Basic …". */
static int basic_header(const char *id, const char *secret, char **ret)
{
    char pair[2 * SECRET_MAX + 8];
    keel_strbuf sb = KEEL_STRBUF_INIT(pair);
    for (const char *const *p = (const char *const[]){ id, ":", secret, NULL }; *p; p++)
        keel_strbuf_append(&sb, *p); /* ids and secrets are checked to be unreserved characters */
    if (sb.truncated)
        return -E2BIG;
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = sb.len, o = 0;
    char out[sizeof pair * 4 / 3 + 8];
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t) (unsigned char) pair[i] << 16 | (i + 1 < n ? (uint32_t) (unsigned char) pair[i + 1] << 8 : 0) |
                     (i + 2 < n ? (unsigned char) pair[i + 2] : 0);
        out[o++] = b64[v >> 18 & 63];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    out[o] = '\0';
    explicit_bzero(pair, sizeof pair);
    *ret = keel_strdup_printf("Authorization: Basic %s", out);
    explicit_bzero(out, sizeof out);
    return *ret ? 0 : -ENOMEM;
}

static bool unreserved(const char *s)
{
    return *s && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~") == strlen(s);
}

static int setup_auth(oauth2 *o, const oauth2_config *c, char *error, size_t size)
{
    if (c->client_auth == OAUTH2_CLIENT_SECRET_BASIC) {
        char secret[SECRET_MAX];
        if (!*c->client_secret_file)
            return fail(error, size, -EINVAL,
                        "token.oauth2.client_auth is client_secret_basic: set token.oauth2.client_secret_file");
        int r = read_secret(c->client_secret_file, secret, sizeof secret, error, size);
        if (r >= 0 && !unreserved(secret))
            r = fail(error, size, -EINVAL,
                     "token.oauth2.client_secret_file '%s': the secret has characters other than [A-Za-z0-9._~-]",
                     c->client_secret_file);
        if (r >= 0)
            r = basic_header(o->client_id, secret, &o->authorization);
        explicit_bzero(secret, sizeof secret);
        return r;
    }
    if (!*c->cert_file || !*c->key_file)
        return fail(error, size, -EINVAL, "token.oauth2.client_auth is tls_client_auth: no client certificate and key");
    o->cert_file = strdup(c->cert_file);
    o->key_file = strdup(c->key_file);
    return o->cert_file && o->key_file ? 0 : -ENOMEM;
}

int oauth2_new(const oauth2_config *c, oauth2 **ret, char *error, size_t size)
{
    if (strncmp(c->token_url, "https://", 8) != 0)
        return fail(error, size, -EINVAL, "token.oauth2.token_url: '%s' is not an https:// URL", c->token_url);
    if (!unreserved(c->client_id))
        return fail(error, size, -EINVAL, "token.oauth2.client_id: '%s' is empty or has characters other than [A-Za-z0-9._~-]",
                    c->client_id);
    oauth2 *o = calloc(1, sizeof *o);
    if (!o)
        return -ENOMEM;
    (void) pthread_mutex_init(&o->lock, NULL);
    o->token_url = strdup(c->token_url);
    o->client_id = strdup(c->client_id);
    o->scope_template = strdup(c->scope);
    o->ca_file = *c->ca_file ? strdup(c->ca_file) : NULL;
    int r =
        o->token_url && o->client_id && o->scope_template && (!*c->ca_file || o->ca_file) ? setup_auth(o, c, error, size) : -ENOMEM;
    if (r < 0) {
        oauth2_free(o);
        return r == -ENOMEM ? fail(error, size, r, "Out of memory") : r;
    }
    o->fetch = (keel_fetch_options){ .ca_file = o->ca_file,
                                     .cert_file = o->cert_file,
                                     .key_file = o->key_file,
                                     .timeout = c->timeout,
                                     .connect_timeout = KEEL_MIN(c->timeout, 10 * KEEL_USEC_PER_SEC),
                                     .body_limit = 64 * 1024 };
    *ret = o;
    return 0;
}

oauth2 *oauth2_free(oauth2 *o)
{
    if (!o)
        return NULL;
    for (size_t i = 0; i < o->n_idle; i++)
        (void) keel_fetch_free(o->idle[i]);
    if (o->authorization)
        explicit_bzero(o->authorization, strlen(o->authorization));
    free(o->authorization);
    free(o->token_url);
    free(o->client_id);
    free(o->scope_template);
    free(o->ca_file);
    free(o->cert_file);
    free(o->key_file);
    (void) pthread_mutex_destroy(&o->lock);
    free(o);
    return NULL;
}

/* The first @n bytes of @s form-encoded (RFC 6749 Appendix B): all but RFC 3986's unreserved
 * characters as %XX, so that a '&', '=', '+' or '%' in a scope or client id stays data. */
static void form_append(keel_strbuf *sb, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~", c))
            keel_strbuf_appendn(sb, s + i, 1);
        else
            keel_strbuf_printf(sb, "%%%02X", c);
    }
}

/* @template with {domain} and {role} (its first @n bytes) replaced, form-encoded. */
static void expand_one(const char *template, const char *domain, const char *role, size_t n, keel_strbuf *sb)
{
    for (const char *p = template; *p;) {
        if (strncmp(p, "{domain}", 8) == 0)
            form_append(sb, domain, strlen(domain)), p += 8;
        else if (strncmp(p, "{role}", 6) == 0)
            form_append(sb, role, n), p += 6;
        else
            form_append(sb, p++, 1);
    }
}

/* The scope of @roles, one role or a set one space apart (POST /accesstoken's): @template once
 * for each role, the scopes one space apart (RFC 6749 §3.3). */
static void expand_scope(const char *template, const char *domain, const char *roles, keel_strbuf *sb)
{
    for (const char *role = roles; *role;) {
        size_t n = strcspn(role, " ");
        if (role != roles)
            keel_strbuf_append(sb, "%20");
        expand_one(template, domain, role, n, sb);
        role += n + (role[n] == ' ');
    }
}

static keel_fetch *take_client(oauth2 *o, char *error, size_t size)
{
    keel_fetch *f = NULL;
    (void) pthread_mutex_lock(&o->lock);
    if (o->n_idle > 0)
        f = o->idle[--o->n_idle];
    (void) pthread_mutex_unlock(&o->lock);
    char why[KEEL_FETCH_ERROR_MAX];
    if (!f && keel_fetch_new(&o->fetch, &f, why) < 0) {
        (void) snprintf(error, size, "%s", why);
        return NULL;
    }
    return f;
}

static void give_back(oauth2 *o, keel_fetch *f)
{
    (void) pthread_mutex_lock(&o->lock);
    if (o->n_idle < POOL)
        o->idle[o->n_idle++] = TAKE_PTR(f);
    (void) pthread_mutex_unlock(&o->lock);
    (void) keel_fetch_free(f);
}

/* expires_in (RFC 6749 5.1): absent is an hour, as the RFC only recommends it; issuers send an
 * integer, and some a real (3599.0) or a string of digits ("3599"). Anything else is refused,
 * never read as an hour: a token would be served long after the issuer's end for it. */
static int expires_seconds(const json_t *v, long long *ret)
{
    const char *text = json_string_value(v);
    char *end;
    if (!v)
        *ret = 3600;
    else if (json_is_integer(v))
        *ret = (long long) json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) > -1e15 && json_real_value(v) < 1e15)
        *ret = (long long) json_real_value(v);
    else if (text && *text >= '0' && *text <= '9' && strlen(text) <= 12)
        *ret = strtoll(text, &end, 10), text = end;
    else
        return -EINVAL;
    return text && *text ? -EINVAL : 0;
}

int oauth2_parse_answer(const keel_fetch_response *resp, keel_usec_t now, token_minted *ret, char *error, size_t size)
{
    json_error_t jerr;
    json_auto_t *j = json_loadb(resp->body, resp->size, 0, &jerr);
    const char *token = j ? json_string_value(json_object_get(j, "access_token")) : NULL;
    json_t *expires_in = j ? json_object_get(j, "expires_in") : NULL;
    if (resp->status != 200) {
        const char *e = j ? json_string_value(json_object_get(j, "error")) : NULL;
        const char *d = j ? json_string_value(json_object_get(j, "error_description")) : NULL;
        return fail(error, size, resp->status == 401 || resp->status == 400 ? -EACCES : -EIO, "HTTP %u %s%s%s", resp->status,
                    e ? e : "(no OAuth2 error)", d ? ": " : "", d ? d : "");
    }
    if (!j || !json_is_object(j))
        return fail(error, size, -EBADMSG, "the answer is not a JSON object: %s", j ? "another JSON value" : jerr.text);
    if (!token || !*token)
        return fail(error, size, -EBADMSG, "the answer has no access_token");
    /* RFC 6749 A.12: 1*VSCHAR. It goes into our answer's JSON and Authorization header. */
    for (const char *p = token; *p; p++)
        if ((unsigned char) *p < 0x20 || (unsigned char) *p > 0x7e)
            return fail(error, size, -EBADMSG, "the answer's access_token has the byte 0x%02x, outside RFC 6749's VSCHAR",
                        (unsigned char) *p);
    long long seconds;
    if (expires_seconds(expires_in, &seconds) < 0)
        return fail(error, size, -EBADMSG, "the answer's expires_in is not a number of seconds");
    if (seconds <= 0 || seconds > 366LL * 86400)
        return fail(error, size, -EBADMSG, "the answer's expires_in %lld is out of range", seconds);
    char *copy = strdup(token);
    if (!copy)
        return -ENOMEM;
    *ret = (token_minted){ .jwt = copy, .expires = now + (keel_usec_t) seconds * KEEL_USEC_PER_SEC };
    return 0;
}

int oauth2_fetch(oauth2 *o, const char *domain, const char *role, keel_usec_t now, int cancel_fd, token_minted *ret, char *error,
                 size_t size)
{
    /* Sixteen roles of 128 bytes, each in the template, outgrow it: the heap then. */
    char body[1024];
    keel_strbuf sb = KEEL_STRBUF_INIT_GROWABLE(body);
    keel_strbuf_append(&sb, "grant_type=client_credentials");
    if (domain && role) {
        keel_strbuf_append(&sb, "&scope=");
        expand_scope(o->scope_template, domain, role, &sb);
    }
    if (!o->authorization) { /* tls_client_auth: the id goes in the body (RFC 8705 §2) */
        keel_strbuf_append(&sb, "&client_id=");
        form_append(&sb, o->client_id, strlen(o->client_id));
    }
    int r = sb.truncated ? -ENOMEM : 0;
    keel_fetch *f = r < 0 ? NULL : take_client(o, error, size);
    if (!f) {
        keel_strbuf_done(&sb);
        return r < 0 ? fail(error, size, r, "no memory for the token request") : -ENOENT;
    }
    const char *headers[] = { "Content-Type: application/x-www-form-urlencoded", "Accept: application/json", o->authorization,
                              NULL };
    keel_fetch_response resp = {};
    char why[KEEL_FETCH_ERROR_MAX];
    (void) keel_fetch_set_cancel_fd(f, cancel_fd);
    r = keel_fetch_request(f, "POST", o->token_url, headers, sb.buf, sb.len, &resp, why);
    (void) keel_fetch_set_cancel_fd(f, -1);
    keel_strbuf_done(&sb);
    if (r < 0) {
        (void) keel_fetch_free(f); /* its connection may be broken: not reused */
        return fail(error, size, r, "%s", why);
    }
    give_back(o, f);
    r = oauth2_parse_answer(&resp, now, ret, error, size);
    keel_fetch_response_done(&resp);
    return r;
}

const char *oauth2_token_url(const oauth2 *o)
{
    return o->token_url;
}
