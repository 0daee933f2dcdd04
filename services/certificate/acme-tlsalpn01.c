/* SPDX-License-Identifier: MIT */
/*
 * The tls-alpn-01 responder (RFC 8737, tlsalpn01.h): the names being validated with their
 * certificates (made by acme-tlsalpn01-cert.c), the TLS context that picks one by the
 * ClientHello, and the listener: one thread of the responder's own with an epoll set for the
 * listener, a wake-up eventfd and the handshakes, each bounded in time and in number.
 * docs/decisions/0034.
 */
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include <keel/http.h>
#include <keel/log.h>

#include "libssl.h"
#include "openssl-util.h"
#include "tlsalpn01.h"

/* At most this many handshakes at once: past it a new one takes the place of the oldest, the
 * likeliest to be stalled, as a CA's handshake takes milliseconds. */
#define CONNECTIONS_MAX   32
#define HANDSHAKE_TIMEOUT (10 * KEEL_USEC_PER_SEC)
#define LISTENER_REST     (100 * KEEL_USEC_PER_MSEC)
#define EVENT_LISTENER    UINT32_MAX
#define EVENT_WAKE        (UINT32_MAX - 1)

#define LOG(level, ...) keel_log_service("certificate", (level), __VA_ARGS__)

typedef struct challenge {
    char *identifier;
    char server_name[TLSALPN01_NAME_MAX + 1]; /* what the ClientHello names: tlsalpn01_server_name() */
    X509 *cert;                               /* owned */
} challenge;

typedef struct connection {
    SSL *ssl; /* owned; NULL: the slot is free */
    int fd;   /* owned while ssl is set */
    keel_usec_t deadline;
    char peer[INET6_ADDRSTRLEN + 8];
} connection;

struct tlsalpn01_responder {
    pthread_mutex_t lock; /* the challenges: the thread reads them in client_hello() */
    challenge *challenges;
    size_t n_challenges;
    EVP_PKEY *key; /* owned: every validation certificate's */
    SSL_CTX *ctx;  /* owned */
    int listen_fd, wake_fd, epoll_fd;
    uint16_t port;
    keel_usec_t listener_rest_until; /* 0: the listener is in the epoll set */
    bool thread_started;
    pthread_t thread;
    connection connections[CONNECTIONS_MAX]; /* the thread's alone */
};

#define C(field) offsetof(tlsalpn01_config, field)
const keel_config_key tlsalpn01_config_keys[] = {
    { .key = "certificate.acme.tls_alpn01.address",
      .type = KEEL_CONFIG_ADDRESS,
      .offset = C(address),
      .def = ":443",
      .help = "tls-alpn-01: where the responder listens during a validation; port 443 of each name must reach it" },
};
const size_t tlsalpn01_n_config_keys = ELEMENTSOF(tlsalpn01_config_keys);

/* ---- the names being validated ---------------------------------------------------------------- */

static challenge *find(tlsalpn01_responder *r, const char *server_name)
{
    for (size_t i = 0; i < r->n_challenges; i++)
        if (strcasecmp(r->challenges[i].server_name, server_name) == 0)
            return &r->challenges[i];
    return NULL;
}

int tlsalpn01_add(tlsalpn01_responder *r, const char *identifier, const char *key_authorization, cert_error *e)
{
    challenge c = { .identifier = strdup(identifier) };
    int ret = tlsalpn01_server_name(identifier, c.server_name);
    if (ret >= 0)
        ret = tlsalpn01_certificate(r->key, identifier, key_authorization, &c.cert);
    if (ret >= 0 && !c.identifier)
        ret = -ENOMEM;
    if (ret < 0) {
        free(c.identifier);
        return cert_fail(e, ret, "ACME: cannot make the tls-alpn-01 certificate for '%s': %s", identifier, strerror(-ret));
    }
    (void) pthread_mutex_lock(&r->lock);
    challenge *old = find(r, c.server_name), *grown = NULL;
    if (old) { /* a new key authorization for the same name (a new order): the last one wins */
        X509_free(old->cert);
        free(old->identifier);
        *old = c;
    } else if ((grown = realloc(r->challenges, (r->n_challenges + 1) * sizeof c))) {
        r->challenges = grown;
        r->challenges[r->n_challenges++] = c;
    }
    (void) pthread_mutex_unlock(&r->lock);
    if (old || grown)
        return 0;
    X509_free(c.cert);
    free(c.identifier);
    return cert_fail(e, -ENOMEM, "ACME: out of memory for the tls-alpn-01 challenge of '%s'", identifier);
}

int tlsalpn01_remove(tlsalpn01_responder *r, const char *identifier)
{
    char server_name[TLSALPN01_NAME_MAX + 1];
    if (tlsalpn01_server_name(identifier, server_name) < 0)
        return -ENOENT;
    (void) pthread_mutex_lock(&r->lock);
    challenge *c = find(r, server_name);
    if (c) {
        X509_free(c->cert);
        free(c->identifier);
        *c = r->challenges[--r->n_challenges];
    }
    (void) pthread_mutex_unlock(&r->lock);
    return c ? 0 : -ENOENT;
}

static void challenges_free(tlsalpn01_responder *r)
{
    for (size_t i = 0; i < r->n_challenges; i++) {
        X509_free(r->challenges[i].cert);
        free(r->challenges[i].identifier);
    }
    free(r->challenges);
    r->challenges = NULL;
    r->n_challenges = 0;
}

/* ---- the TLS context: which ClientHello gets which certificate --------------------------------- */

/* The host_name of a server_name extension (RFC 6066 §3), as a string, or false. */
static bool client_server_name(SSL *ssl, char ret[static TLSALPN01_NAME_MAX + 1])
{
    const unsigned char *p;
    size_t n;
    if (sym_SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &n) != 1 || n < 5)
        return false;
    size_t list = (size_t) p[0] << 8 | p[1], name = (size_t) p[3] << 8 | p[4];
    if (list != n - 2 || p[2] != TLSEXT_NAMETYPE_host_name || name == 0 || name > TLSALPN01_NAME_MAX || 5 + name > n ||
        memchr(p + 5, '\0', name))
        return false;
    memcpy(ret, p + 5, name);
    ret[name] = '\0';
    return true;
}

/* Whether the ALPN extension (RFC 7301 §3.1) lists acme-tls/1. */
static bool client_offers_acme_tls(SSL *ssl)
{
    const unsigned char *p;
    size_t n;
    if (sym_SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &p, &n) != 1 || n < 2 ||
        ((size_t) p[0] << 8 | p[1]) != n - 2)
        return false;
    for (size_t i = 2; i < n; i += 1 + (size_t) p[i])
        if (i + 1 + p[i] <= n && p[i] == strlen(TLSALPN01_PROTOCOL) && memcmp(p + i + 1, TLSALPN01_PROTOCOL, p[i]) == 0)
            return true;
    return false;
}

/* Before anything is chosen, the certificate of the name the client asks for — only to a client
 * that speaks acme-tls/1: this listener answers nothing else (RFC 8737 §3). The certificate is
 * taken by reference, so a name removed during the handshake does not pull it away. */
static int client_hello(SSL *ssl, int *alert, void *arg)
{
    tlsalpn01_responder *r = arg;
    char name[TLSALPN01_NAME_MAX + 1];
    if (!client_offers_acme_tls(ssl))
        return *alert = SSL_AD_NO_APPLICATION_PROTOCOL, SSL_CLIENT_HELLO_ERROR;
    if (!client_server_name(ssl, name))
        return *alert = SSL_AD_UNRECOGNIZED_NAME, SSL_CLIENT_HELLO_ERROR;
    (void) pthread_mutex_lock(&r->lock);
    challenge *c = find(r, name);
    bool used = c && sym_SSL_use_certificate(ssl, c->cert) == 1 && sym_SSL_use_PrivateKey(ssl, r->key) == 1;
    (void) pthread_mutex_unlock(&r->lock);
    if (!used)
        return *alert = c ? SSL_AD_INTERNAL_ERROR : SSL_AD_UNRECOGNIZED_NAME, SSL_CLIENT_HELLO_ERROR;
    return SSL_CLIENT_HELLO_SUCCESS;
}

static int select_acme_tls(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in, unsigned inlen,
                           void *arg)
{
    static const unsigned char ours[] = "\x0a" TLSALPN01_PROTOCOL;
    unsigned char *selected;
    if (sym_SSL_select_next_proto(&selected, outlen, ours, sizeof ours - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

static int make_ctx(tlsalpn01_responder *r, SSL_CTX **ret)
{
    SSL_CTX *ctx = sym_SSL_CTX_new(sym_TLS_server_method());
    if (!ctx) {
        ERR_clear_error();
        return -ENOMEM;
    }
    (void) sym_SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_2_VERSION, NULL);
    (void) sym_SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
    /* Every handshake in full: a resumed session would present no certificate to validate. */
    (void) sym_SSL_CTX_ctrl(ctx, SSL_CTRL_SET_SESS_CACHE_MODE, SSL_SESS_CACHE_OFF, NULL);
    (void) sym_SSL_CTX_set_num_tickets(ctx, 0);
    sym_SSL_CTX_set_client_hello_cb(ctx, client_hello, r);
    sym_SSL_CTX_set_alpn_select_cb(ctx, select_acme_tls, NULL);
    *ret = ctx;
    return 0;
}

/* ---- the listener, on the responder's thread ---------------------------------------------------- */

static void drop(tlsalpn01_responder *r, connection *c)
{
    ERR_clear_error();
    sym_SSL_free(c->ssl);
    ERR_clear_error();
    (void) epoll_ctl(r->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    c->fd = safe_close(c->fd);
    c->ssl = NULL;
}

/* A free slot, or the oldest handshake's, cut. */
static connection *slot_for_new(tlsalpn01_responder *r)
{
    connection *oldest = &r->connections[0];
    for (size_t i = 0; i < CONNECTIONS_MAX; i++) {
        if (!r->connections[i].ssl)
            return &r->connections[i];
        if (r->connections[i].deadline < oldest->deadline)
            oldest = &r->connections[i];
    }
    LOG(KEEL_LOG_DEBUG, "tls-alpn-01: %d handshakes at once, cutting the oldest, from %s", CONNECTIONS_MAX, oldest->peer);
    drop(r, oldest);
    return oldest;
}

static void format_peer(const struct sockaddr_storage *ss, socklen_t len, char *ret, size_t size)
{
    char host[INET6_ADDRSTRLEN], port[8];
    if (getnameinfo((const struct sockaddr *) ss, len, host, sizeof host, port, sizeof port, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        (void) snprintf(ret, size, "?");
    else
        (void) snprintf(ret, size, ss->ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

static void begin(tlsalpn01_responder *r, int fd, const struct sockaddr_storage *ss, socklen_t len)
{
    connection *c = slot_for_new(r);
    SSL *ssl = sym_SSL_new(r->ctx);
    if (!ssl || sym_SSL_set_fd(ssl, fd) != 1) {
        sym_SSL_free(ssl);
        ERR_clear_error();
        (void) close(fd);
        return;
    }
    sym_SSL_set_accept_state(ssl);
    *c = (connection){ .ssl = ssl, .fd = fd, .deadline = keel_now() + HANDSHAKE_TIMEOUT };
    format_peer(ss, len, c->peer, sizeof c->peer);
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t) (c - r->connections) };
    if (epoll_ctl(r->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
        drop(r, c);
}

static void accept_all(tlsalpn01_responder *r)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(r->listen_fd, (struct sockaddr *) &ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED))
            return;
        if (fd < 0) {
            /* Out of descriptors or memory: the listener stays readable, and epoll would spin on it. */
            keel_log_service_errno("certificate", KEEL_LOG_DEBUG, -errno, "tls-alpn-01: cannot accept, resting 100 ms: %m");
            (void) epoll_ctl(r->epoll_fd, EPOLL_CTL_DEL, r->listen_fd, NULL);
            r->listener_rest_until = keel_now() + LISTENER_REST;
            return;
        }
        begin(r, fd, &ss, len);
    }
}

/* The handshake is the whole exchange: once it is done with acme-tls/1 the CA has the certificate,
 * and RFC 8737 §3 has the connection closed without application data. */
static void finish(tlsalpn01_responder *r, connection *c)
{
    const unsigned char *alpn = NULL;
    unsigned n = 0;
    sym_SSL_get0_alpn_selected(c->ssl, &alpn, &n);
    if (n != strlen(TLSALPN01_PROTOCOL) || memcmp(alpn, TLSALPN01_PROTOCOL, n) != 0)
        return; /* cannot be: client_hello() refused it; cut without a word, to be sure */
    /* The identifier, not the SNI: an address's reverse name says less to whoever reads the log. */
    const char *name = sym_SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
    (void) pthread_mutex_lock(&r->lock);
    challenge *ch = name ? find(r, name) : NULL;
    LOG(KEEL_LOG_INFO, "Answered the ACME tls-alpn-01 challenge for %s to %s", ch ? ch->identifier : name ? name : "?", c->peer);
    (void) pthread_mutex_unlock(&r->lock);
    ERR_clear_error();
    (void) sym_SSL_shutdown(c->ssl); /* close_notify, if the socket takes it now */
}

static void step(tlsalpn01_responder *r, connection *c)
{
    ERR_clear_error();
    int ret = sym_SSL_do_handshake(c->ssl);
    if (ret == 1)
        finish(r, c);
    else {
        int error = sym_SSL_get_error(c->ssl, ret);
        struct epoll_event ev = { .events = error == SSL_ERROR_WANT_WRITE ? EPOLLOUT : EPOLLIN,
                                  .data.u32 = (uint32_t) (c - r->connections) };
        if ((error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) &&
            epoll_ctl(r->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev) >= 0)
            return;
        char why[256] = "closed";
        if (ERR_peek_error())
            ERR_error_string_n(ERR_get_error(), why, sizeof why);
        LOG(KEEL_LOG_DEBUG, "tls-alpn-01: handshake with %s failed: %s", c->peer, why);
    }
    drop(r, c);
}

/* Takes the listener back once its rest is over; returns when that is (KEEL_USEC_INFINITY: not resting). */
static keel_usec_t wake_listener(tlsalpn01_responder *r, keel_usec_t now)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = EVENT_LISTENER };
    if (r->listener_rest_until == 0)
        return KEEL_USEC_INFINITY;
    if (now < r->listener_rest_until)
        return r->listener_rest_until;
    r->listener_rest_until = 0;
    (void) epoll_ctl(r->epoll_fd, EPOLL_CTL_ADD, r->listen_fd, &ev);
    return KEEL_USEC_INFINITY;
}

/* Cuts the handshakes past their deadline; returns the milliseconds to the next deadline or the
 * end of the listener's rest, or -1. */
static int expire(tlsalpn01_responder *r)
{
    keel_usec_t now = keel_now(), next = wake_listener(r, now);
    for (size_t i = 0; i < CONNECTIONS_MAX; i++) {
        connection *c = &r->connections[i];
        if (c->ssl && c->deadline <= now) {
            LOG(KEEL_LOG_DEBUG, "tls-alpn-01: handshake with %s timed out", c->peer);
            drop(r, c);
        } else if (c->ssl)
            next = KEEL_MIN(next, c->deadline);
    }
    return next == KEEL_USEC_INFINITY ? -1 : (int) ((next - now + KEEL_USEC_PER_MSEC - 1) / KEEL_USEC_PER_MSEC);
}

static void *serve(void *userdata)
{
    tlsalpn01_responder *r = userdata;
    for (;;) {
        struct epoll_event events[16];
        int n = epoll_wait(r->epoll_fd, events, ELEMENTSOF(events), expire(r));
        if (n < 0 && errno != EINTR) {
            keel_log_service_errno("certificate", KEEL_LOG_ERROR, -errno, "tls-alpn-01: the responder stops: %m");
            return NULL;
        }
        for (int i = 0; i < n; i++) {
            uint32_t slot = events[i].data.u32;
            if (slot == EVENT_WAKE)
                return NULL;
            if (slot == EVENT_LISTENER)
                accept_all(r);
            else if (r->connections[slot].ssl)
                step(r, &r->connections[slot]);
        }
    }
}

/* ---- opening and closing ------------------------------------------------------------------------ */

static int bound_port(int fd, uint16_t *ret)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *) &ss, &len) < 0)
        return -errno;
    *ret = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *) &ss)->sin6_port : ((struct sockaddr_in *) &ss)->sin_port);
    return 0;
}

static int watch(tlsalpn01_responder *r)
{
    struct epoll_event listener = { .events = EPOLLIN, .data.u32 = EVENT_LISTENER },
                       wake = { .events = EPOLLIN, .data.u32 = EVENT_WAKE };
    if ((r->epoll_fd = epoll_create1(EPOLL_CLOEXEC)) < 0 || (r->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
        epoll_ctl(r->epoll_fd, EPOLL_CTL_ADD, r->listen_fd, &listener) < 0 ||
        epoll_ctl(r->epoll_fd, EPOLL_CTL_ADD, r->wake_fd, &wake) < 0)
        return -errno;
    return 0;
}

/* The thread takes no signal: they are the main thread's (its loop's signalfd, or sigwait()). */
static int spawn(tlsalpn01_responder *r)
{
    sigset_t all, saved;
    (void) sigfillset(&all);
    (void) pthread_sigmask(SIG_SETMASK, &all, &saved);
    int ret = -pthread_create(&r->thread, NULL, serve, r);
    (void) pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (ret < 0)
        return ret;
    r->thread_started = true;
    (void) pthread_setname_np(r->thread, "cert-tlsalpn01");
    return 0;
}

int tlsalpn01_responder_open(const keel_address *address, tlsalpn01_responder **ret, cert_error *e)
{
    char error[256];
    int r = libssl_load(error, sizeof error);
    if (r < 0)
        return cert_fail(e, r, "ACME: cannot answer tls-alpn-01 challenges: %s", error);
    _cleanup_(tlsalpn01_responder_closep) tlsalpn01_responder *t = malloc(sizeof *t);
    if (!t)
        return cert_fail(e, -ENOMEM, "ACME: out of memory for the tls-alpn-01 responder");
    *t = (tlsalpn01_responder){ .listen_fd = -EBADF, .wake_fd = -EBADF, .epoll_fd = -EBADF };
    (void) pthread_mutex_init(&t->lock, NULL);
    if ((r = cert_generate_key(CERT_KEY_EC, 0, &t->key)) < 0 || (r = make_ctx(t, &t->ctx)) < 0)
        return cert_fail(e, r, "ACME: cannot make the tls-alpn-01 responder's key and TLS context: %s", strerror(-r));
    bool activated = false;
    if ((r = t->listen_fd = keel_address_listen_named(address, TLSALPN01_SOCKET_NAME, &activated)) < 0 ||
        (r = bound_port(t->listen_fd, &t->port)) < 0)
        return cert_fail(e, r, "ACME: cannot listen for tls-alpn-01 at %s:%u: %s", address->host[0] ? address->host : "*",
                         address->port, strerror(-r));
    if ((r = watch(t)) < 0 || (r = spawn(t)) < 0)
        return cert_fail(e, r, "ACME: cannot start the tls-alpn-01 responder: %s", strerror(-r));
    LOG(KEEL_LOG_INFO, "Answering ACME tls-alpn-01 challenges on port %u%s", t->port, activated ? " (socket activation)" : "");
    *ret = TAKE_PTR(t);
    return 0;
}

uint16_t tlsalpn01_responder_port(const tlsalpn01_responder *r)
{
    return r->port;
}

tlsalpn01_responder *tlsalpn01_responder_close(tlsalpn01_responder *r)
{
    if (!r)
        return NULL;
    if (r->thread_started) {
        uint64_t one = 1;
        while (write(r->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
            ;
        (void) pthread_join(r->thread, NULL);
    }
    for (size_t i = 0; i < CONNECTIONS_MAX; i++)
        if (r->connections[i].ssl)
            drop(r, &r->connections[i]);
    (void) safe_close(r->epoll_fd);
    (void) safe_close(r->wake_fd);
    (void) safe_close(r->listen_fd);
    if (r->ctx) /* none when libssl failed to load, and then no sym_ to call */
        sym_SSL_CTX_free(r->ctx);
    EVP_PKEY_free(r->key);
    challenges_free(r);
    (void) pthread_mutex_destroy(&r->lock);
    free(r);
    return NULL;
}
