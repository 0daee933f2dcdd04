/* SPDX-License-Identifier: MIT */
/* OpenSSL sessions for a Keel HTTP server (tls-server.h). The context is made again when the
 * identity's current credential changes (at the first connection after it) or when the files are
 * reloaded; a session holds a reference on the context it was made from, so it keeps its
 * certificate to the end. */
#include <sys/epoll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <keel/fileio.h>
#include <keel/log.h>

#include "libssl.h"
#include "openssl-util.h"
#include "tls-server.h"

struct tls_server {
    identity *id; /* borrowed; NULL: the files */
    char *cert_file, *key_file, *client_ca_file;
    pthread_mutex_t lock; /* ctx and made_for: the polling thread reads, a reload replaces */
    SSL_CTX *ctx;         /* owned */
    credential *made_for; /* self: the credential ctx holds (owned reference) */
};

typedef struct session {
    SSL *ssl;
    char *identity;
    bool identity_read;
} session;

static int ssl_fail(char *error, int r, const char *fmt, const char *arg)
{
    char why[256] = "";
    unsigned long code = ERR_get_error();
    if (code)
        ERR_error_string_n(code, why, sizeof why);
    ERR_clear_error();
    int n = snprintf(error, TLS_SERVER_ERROR_MAX, fmt, arg);
    if (*why && n >= 0 && n < TLS_SERVER_ERROR_MAX)
        (void) snprintf(error + n, (size_t) (TLS_SERVER_ERROR_MAX - n), ": %s", why);
    return r;
}

static int select_http11(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in, unsigned inlen,
                         void *arg)
{
    static const unsigned char ours[] = "\x08http/1.1";
    unsigned char *selected;
    if (sym_SSL_select_next_proto(&selected, outlen, ours, sizeof ours - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

/* A key file others may read is refused, as ssh and the certificate service do (keel_secret_check()). */
static int check_key_mode(const char *path, char *error)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        int r = -errno;
        (void) snprintf(error, TLS_SERVER_ERROR_MAX, "Cannot read the TLS key '%s': %s", path, strerror(-r));
        return r;
    }
    if (keel_secret_check(&st) < 0) {
        (void) snprintf(error, TLS_SERVER_ERROR_MAX, "Permissions %04o for the TLS key '%s' are too open: " KEEL_SECRET_MODE_RULE,
                        (unsigned) (st.st_mode & 07777), path);
        return -EACCES;
    }
    return 0;
}

static int use_credential(SSL_CTX *ctx, const credential *c, char *error)
{
    STACK_OF(X509) *chain = credential_chain(c);
    if (sym_SSL_CTX_use_certificate(ctx, credential_cert(c)) != 1 || sym_SSL_CTX_use_PrivateKey(ctx, credential_key(c)) != 1)
        return ssl_fail(error, -EINVAL, "Cannot use the credential %s for TLS", credential_kid(c));
    for (int i = 0; chain && i < sk_X509_num(chain); i++)
        if (sym_SSL_CTX_ctrl(ctx, SSL_CTRL_CHAIN_CERT, 1, sk_X509_value(chain, i)) != 1)
            return ssl_fail(error, -ENOMEM, "Cannot add the chain of %s", credential_kid(c));
    return 0;
}

static int use_files(SSL_CTX *ctx, const tls_server *t, char *error)
{
    int r = check_key_mode(t->key_file, error);
    if (r < 0)
        return r;
    if (sym_SSL_CTX_use_certificate_chain_file(ctx, t->cert_file) != 1)
        return ssl_fail(error, -EBADMSG, "Cannot read the TLS certificate '%s'", t->cert_file);
    if (sym_SSL_CTX_use_PrivateKey_file(ctx, t->key_file, SSL_FILETYPE_PEM) != 1)
        return ssl_fail(error, -EBADMSG, "Cannot read the TLS key '%s'", t->key_file);
    if (sym_SSL_CTX_check_private_key(ctx) != 1)
        return ssl_fail(error, -EKEYREJECTED, "The TLS key '%s' is not the key of its certificate", t->key_file);
    return 0;
}

static int use_client_ca(SSL_CTX *ctx, const char *path, char *error)
{
    if (sym_SSL_CTX_load_verify_locations(ctx, path, NULL) != 1)
        return ssl_fail(error, -EBADMSG, "Cannot read the client CA file '%s'", path);
    STACK_OF(X509_NAME) *names = sym_SSL_load_client_CA_file(path);
    if (!names)
        return ssl_fail(error, -EBADMSG, "The client CA file '%s' holds no certificate", path);
    sym_SSL_CTX_set_client_CA_list(ctx, names);
    /* Asked for, verified when given; whether a request needs one is the handler's to say. */
    sym_SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return 0;
}

/* A context for @c (self) or the files. */
static int make_ctx(const tls_server *t, const credential *c, SSL_CTX **ret, char *error)
{
    SSL_CTX *ctx = sym_SSL_CTX_new(sym_TLS_server_method());
    if (!ctx)
        return ssl_fail(error, -ENOMEM, "%s", "Cannot make a TLS context");
    (void) sym_SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_2_VERSION, NULL);
    (void) sym_SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
    (void) sym_SSL_CTX_ctrl(ctx, SSL_CTRL_MODE,
                            SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS, NULL);
    /* Whole reads: without it OpenSSL reads a record's 5-byte header, then its body, two system
     * calls a request; what it reads ahead, tls_read() hands over before the socket is waited on. */
    (void) sym_SSL_CTX_ctrl(ctx, SSL_CTRL_SET_READ_AHEAD, 1, NULL);
    (void) sym_SSL_CTX_set_session_id_context(ctx, (const unsigned char *) "keel", 4);
    sym_SSL_CTX_set_alpn_select_cb(ctx, select_http11, NULL);
    int r = c ? use_credential(ctx, c, error) : use_files(ctx, t, error);
    if (r >= 0 && t->client_ca_file)
        r = use_client_ca(ctx, t->client_ca_file, error);
    if (r < 0) {
        sym_SSL_CTX_free(ctx);
        return r;
    }
    *ret = ctx;
    return 0;
}

static char *strdup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

int tls_server_new(identity *id, const char *cert_file, const char *key_file, const char *client_ca_file, tls_server **ret,
                   char error[static TLS_SERVER_ERROR_MAX])
{
    tls_server *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    *t = (tls_server){ .id = id,
                       .cert_file = strdup_or_null(cert_file),
                       .key_file = strdup_or_null(key_file),
                       .client_ca_file = strdup_or_null(client_ca_file) };
    (void) pthread_mutex_init(&t->lock, NULL);
    int r = libssl_load(error, TLS_SERVER_ERROR_MAX);
    if (r >= 0 && !id && (!t->cert_file || !t->key_file))
        r = -EINVAL, (void) snprintf(error, TLS_SERVER_ERROR_MAX, "TLS from files needs both a certificate and a key file");
    else if (r >= 0 && id && !(t->made_for = identity_get(id, IDENTITY_CURRENT)))
        r = -ENOKEY, (void) snprintf(error, TLS_SERVER_ERROR_MAX, "No current credential to serve TLS with");
    if (r >= 0)
        r = make_ctx(t, t->made_for, &t->ctx, error);
    if (r < 0) {
        tls_server_free(t);
        return r;
    }
    *ret = t;
    return 0;
}

int tls_server_reload(tls_server *t, char error[static TLS_SERVER_ERROR_MAX])
{
    SSL_CTX *ctx = NULL;
    _cleanup_(credential_unrefp) credential *c = t->id ? identity_get(t->id, IDENTITY_CURRENT) : NULL;
    if (t->id && !c)
        return (void) snprintf(error, TLS_SERVER_ERROR_MAX, "No current credential to serve TLS with"), -ENOKEY;
    int r = make_ctx(t, c, &ctx, error);
    if (r < 0)
        return r;
    (void) pthread_mutex_lock(&t->lock);
    sym_SSL_CTX_free(t->ctx);
    t->ctx = ctx;
    credential_unref(t->made_for);
    t->made_for = TAKE_PTR(c);
    (void) pthread_mutex_unlock(&t->lock);
    return 0;
}

tls_server *tls_server_free(tls_server *t)
{
    if (!t)
        return NULL;
    if (t->ctx) /* none when libssl failed to load, and then no sym_ to call */
        sym_SSL_CTX_free(t->ctx);
    credential_unref(t->made_for);
    free(t->cert_file);
    free(t->key_file);
    free(t->client_ca_file);
    (void) pthread_mutex_destroy(&t->lock);
    free(t);
    return NULL;
}

bool tls_server_verifies_clients(const tls_server *t)
{
    return t && t->client_ca_file;
}

/* ---- sessions, on the server's polling thread -------------------------------------------------------- */

/* Self: a context for the credential current now, when it is not the one of the context. A
 * failure keeps the context there is (its certificate is still valid, or the health check says
 * so) and is logged once per credential. */
static void follow_rotation(tls_server *t)
{
    _cleanup_(credential_unrefp) credential *c = identity_get(t->id, IDENTITY_CURRENT);
    if (!c || c == t->made_for)
        return;
    SSL_CTX *ctx = NULL;
    char error[TLS_SERVER_ERROR_MAX];
    int r = make_ctx(t, c, &ctx, error);
    if (r < 0)
        keel_log_warning_errno(r, "Serving TLS with the previous certificate: %s", error);
    else {
        sym_SSL_CTX_free(t->ctx);
        t->ctx = ctx;
    }
    credential_unref(t->made_for);
    t->made_for = TAKE_PTR(c);
}

static void *session_new(void *userdata, int fd)
{
    tls_server *t = userdata;
    session *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    (void) pthread_mutex_lock(&t->lock);
    if (t->id)
        follow_rotation(t);
    s->ssl = sym_SSL_new(t->ctx);
    (void) pthread_mutex_unlock(&t->lock);
    if (!s->ssl || sym_SSL_set_fd(s->ssl, fd) != 1) {
        sym_SSL_free(s->ssl);
        free(s);
        ERR_clear_error();
        return NULL;
    }
    sym_SSL_set_accept_state(s->ssl);
    return s;
}

/* What sym_SSL_get_error() says, as the ops return it. */
static int io_result(session *s, int ret, unsigned *want)
{
    switch (sym_SSL_get_error(s->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        *want = EPOLLIN;
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want = EPOLLOUT;
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        return 0;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        return errno ? -errno : 0; /* 0: the peer closed without close_notify */
    default: {
        char why[256];
        ERR_error_string_n(ERR_get_error(), why, sizeof why);
        ERR_clear_error();
        keel_log_debug("TLS: %s", why);
        return -EKEYREJECTED;
    }
    }
}

static int handshake(void *session_, unsigned *want)
{
    session *s = session_;
    ERR_clear_error();
    int ret = sym_SSL_do_handshake(s->ssl);
    if (ret == 1)
        return 1;
    int r = io_result(s, ret, want);
    return r == -EAGAIN ? 0 : r < 0 ? r : -ECONNRESET;
}

/* sym_SSL_get_error() needs an empty error queue before each call; clearing it every time was a tenth
 * of a request's CPU, so it is only looked at (failures here empty it in io_result(); other code
 * on the thread, a token's signature, may leave something). */
static void queue_empty(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

/* Reads until @size or until OpenSSL holds nothing more it read ahead: the server waits on the
 * socket after a read shorter than asked, and epoll cannot see what sits in OpenSSL's buffer. */
static ssize_t tls_read(void *session_, void *buf, size_t size, unsigned *want)
{
    session *s = session_;
    size_t got = 0;
    queue_empty();
    while (got < size) {
        int n = sym_SSL_read(s->ssl, (char *) buf + got, (int) KEEL_MIN(size - got, (size_t) INT_MAX));
        if (n <= 0)
            return got > 0 ? (ssize_t) got : io_result(s, n, want);
        got += (size_t) n;
        if (!sym_SSL_has_pending(s->ssl))
            break;
    }
    return (ssize_t) got;
}

static ssize_t tls_write(void *session_, const void *buf, size_t size, unsigned *want)
{
    session *s = session_;
    queue_empty();
    int n = sym_SSL_write(s->ssl, buf, (int) KEEL_MIN(size, (size_t) INT_MAX));
    if (n > 0)
        return n;
    int r = io_result(s, n, want);
    return r == 0 ? -EPIPE : r;
}

/* The first URI in subjectAltName (a SPIFFE ID, say), else the subject as RFC 2253 text. */
static char *identity_of_cert(X509 *cert)
{
    _cleanup_(GENERAL_NAMES_freep) GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type == GEN_URI)
            return strndup((const char *) ASN1_STRING_get0_data(g->d.uniformResourceIdentifier),
                           (size_t) ASN1_STRING_length(g->d.uniformResourceIdentifier));
    }
    _cleanup_(BIO_freep) BIO *bio = BIO_new(BIO_s_mem());
    if (!bio || X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0)
        return NULL;
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    return n >= 0 ? strndup(data, (size_t) n) : NULL;
}

static const char *peer_identity(void *session_)
{
    session *s = session_;
    if (!s->identity_read) {
        s->identity_read = true;
        X509 *peer = sym_SSL_get0_peer_certificate(s->ssl);
        if (peer && sym_SSL_get_verify_result(s->ssl) == X509_V_OK)
            s->identity = identity_of_cert(peer);
    }
    return s->identity;
}

static void session_free(void *session_)
{
    session *s = session_;
    if (sym_SSL_is_init_finished(s->ssl)) {
        ERR_clear_error();
        (void) sym_SSL_shutdown(s->ssl); /* close_notify, if the socket takes it now */
    }
    ERR_clear_error();
    sym_SSL_free(s->ssl);
    free(s->identity);
    free(s);
}

const keel_http_tls_ops tls_server_ops = {
    .session_new = session_new,
    .handshake = handshake,
    .read = tls_read,
    .write = tls_write,
    .peer_identity = peer_identity,
    .session_free = session_free,
};

/* ---- as a service configures it ---------------------------------------------------------------- */

const char *const tls_server_mode_choices[] = { "off", "self", "files", NULL };

int tls_server_setup(keel_app *app, identity *id, const char *service, const tls_server_config *c, tls_server **ret)
{
    char error[TLS_SERVER_ERROR_MAX];
    *ret = NULL;
    if (c->mode == TLS_SERVER_OFF)
        return 0;
    if (c->mode == TLS_SERVER_FILES && (!*c->cert_file || !*c->key_file))
        return keel_app_fail(app, -EINVAL, "%s.tls is files: set %s.tls_cert_file and %s.tls_key_file", service, service, service);
    int r = tls_server_new(c->mode == TLS_SERVER_SELF ? id : NULL, c->cert_file, c->key_file, c->client_ca_file, ret, error);
    if (r < 0)
        return keel_app_fail(app, r, "%s.tls: cannot serve over TLS: %s", service, error);
    keel_log_service(service, KEEL_LOG_INFO, "Serving over TLS with %s%s%s",
                     c->mode == TLS_SERVER_SELF ? "the certificate service's credential" : c->cert_file,
                     *c->client_ca_file ? ", client certificates verified by " : "", c->client_ca_file);
    return 0;
}

void tls_server_refresh(tls_server *t, const char *service, const tls_server_config *c)
{
    char error[TLS_SERVER_ERROR_MAX];
    if (!t || c->mode != TLS_SERVER_FILES)
        return;
    int r = tls_server_reload(t, error);
    if (r < 0)
        keel_log_service_errno(service, KEEL_LOG_WARNING, r, "Keeping the previous TLS certificate: %s", error);
    else
        keel_log_service(service, KEEL_LOG_INFO, "Reloaded the TLS certificate %s", c->cert_file);
}
