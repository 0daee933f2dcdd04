/* SPDX-License-Identifier: MIT */
#pragma once

#include <keel/app.h>
#include <keel/config.h>
#include <keel/task.h>
#include <keel/work.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * An HTTP/1.1 server, shared by every Keel service that listens: Keel's own, on one polling
 * thread per server (in the server's own task group) that owns the listener and every connection.
 * Every request runs inside the server's work tracker, and stopping it drains without losing a
 * request: the listener closes, every later answer says `Connection: close`, and the stop waits
 * until no request is in flight and no connection is open.
 */
typedef struct keel_http_server keel_http_server;
/**
 * One request, valid inside its handler and, once deferred, until keel_http_deferred_respond() is
 * called for it, even when its client or its server went away first.
 */
typedef struct keel_http_request keel_http_request;

/**
 * Answers @req with one of the keel_http_respond*() calls and returns 0, or returns a negative
 * errno without answering (the server answers 500). Runs on the server's polling thread: it must
 * not block. The server reads heads strictly (RFC 9112) and answers itself, without calling it, a
 * head larger than http.header_limit or of more than 512 fields (431); with 400 and a text/plain
 * reason, a NUL byte anywhere in the head, a CR inside a line, a space or control byte in the
 * target or a %00 decoded into it, HTTP/1.1 without Host or with two, whitespace before a field's
 * colon, a folded field, Content-Length values that disagree or come with Transfer-Encoding, a
 * final transfer coding other than chunked, or Transfer-Encoding on HTTP/1.0; with 501 another
 * coding before chunked; with 505 an HTTP version other than 1.x. Where the framing is in doubt,
 * and where the client asked for it (Connection: close, HTTP/1.0 without keep-alive), the
 * connection closes after the answer. A body is read and dropped by its framing, and the
 * handler does not see it, except on a path given to keel_http_server_accept_body(), where it runs
 * once the whole body has come and reads it with keel_http_request_body().
 */
typedef int (*keel_http_handler_t)(keel_http_request *req, void *userdata);

/**
 * A TLS implementation a server runs its connections through (keel_http_options.tls), so that
 * libkeel itself links no TLS library: the program brings its own (the keel agent runs OpenSSL).
 * The server accepts, hands each socket to session_new(), drives the handshake, and then reads
 * requests and writes answers through the session (each answer in one write), all on its polling
 * thread — where every function here is called, never two at once. @want is set to EPOLLIN and/or EPOLLOUT: what the session
 * waits for on the socket before it can go on. A session keeps what it was made with (its
 * certificate) until it is freed, so a new certificate applies to new connections only.
 */
typedef struct keel_http_tls_ops {
    /* A session for the accepted socket @fd (not owned), or NULL to close it. */
    void *(*session_new)(void *userdata, int fd);
    /* Advances the handshake: 1 done, 0 not yet (see @want), a negative errno when it failed. */
    int (*handshake)(void *session, unsigned *want);
    /* As read(2) and write(2): bytes, 0 at the end of the stream (read), -EAGAIN (see @want), or a
     * negative errno. */
    ssize_t (*read)(void *session, void *buf, size_t size, unsigned *want);
    ssize_t (*write)(void *session, const void *buf, size_t size, unsigned *want);
    /* The verified client certificate's identity (its first URI SAN, else its subject), or NULL. */
    const char *(*peer_identity)(void *session);
    /* Sends close_notify if it can without blocking, and frees the session. */
    void (*session_free)(void *session);
} keel_http_tls_ops;

/** What a server is. Zero limits take the configuration's http.* values. */
typedef struct keel_http_options {
    const char *service;         /* "healthcheck": points, thread, socket-activation name, log field */
    const char *label;           /* "health check server": "Starting health check server[127.0.0.1:9998]" */
    keel_address address;        /* port 0 picks a free port */
    unsigned connection_limit;   /* concurrent connections; 0: http.connection_limit (1024 by default) */
    unsigned connection_timeout; /* seconds a connection may stay silent; 0: http.connection_timeout (30 s by default) */
    size_t header_limit;         /* bytes of request line and headers (CRLFs and the empty line too); default http.header_limit */
    keel_http_handler_t handler;
    void *userdata;
    /* TLS on every connection (plain HTTP gets a 400 and is closed), or NULL for plain HTTP. */
    const keel_http_tls_ops *tls;
    void *tls_userdata;
} keel_http_options;

/** How long start waits for the server to answer its own GET before failing. */
#define KEEL_HTTP_READY_TIMEOUT_USEC (5 * KEEL_USEC_PER_SEC)

/**
 * From the configure hook of a service that will start a server with TLS options: begins loading,
 * on a helper thread, what keel_http_server_start() needs to confirm a TLS server (libcurl), so
 * that start does not wait for it. A plain server needs nothing loaded: Keel asks it itself.
 * Idempotent; harmless when no start follows (finalize joins the thread); does nothing for a
 * KEEL_COMMAND_CHECKS_SERVE command, which never starts. Failing to begin is not an error: the
 * first start then loads it itself.
 */
KEEL_API void keel_http_prepare(keel_app *app);

/**
 * A listening TCP socket for @address, as Keel's servers bind theirs: non-blocking, close-on-exec,
 * SO_REUSEADDR, a backlog of SOMAXCONN; an empty host is every address (IPv6 dual-stack where the
 * machine has IPv6), a host is resolved numerically or by name, and the first of its addresses that
 * binds is the one listened on ("localhost" may be [::1] alone). For a listener of a program's own
 * beside the servers (the agent's tls-alpn-01 responder). Returns the descriptor, which the caller
 * owns, or -EADDRINUSE, -EACCES and other errors of bind(2), -EADDRNOTAVAIL for a host that does
 * not resolve, -EINVAL.
 */
KEEL_API int keel_address_listen(const keel_address *address);

/**
 * The listening TCP socket systemd passed under @name (FileDescriptorName= of a socket unit), or
 * else keel_address_listen(@address); *@ret_activated (may be NULL) says which. A passed socket is
 * returned as a non-blocking, close-on-exec copy that the caller owns and closes, so that a
 * listener opened and closed again and again (the agent's tls-alpn-01 responder) takes it each
 * time. Returns the descriptor, or the errors of keel_address_listen(), of fcntl(2), -EINVAL.
 */
KEEL_API int keel_address_listen_named(const keel_address *address, const char *name, bool *ret_activated);

/**
 * Creates a stopped server. NULL when out of memory, or for options without service, label or
 * handler, a programming error that it logs at error level naming the option ("the options have no
 * handler"); keel_http_server_start_new() gives the same to keel_app_fail() as -EINVAL.
 */
KEEL_API keel_http_server *keel_http_server_new(keel_app *app, const keel_http_options *options);
/** Stops (keel_http_server_stop()) and frees @s. Accepts NULL; returns NULL. */
KEEL_API keel_http_server *keel_http_server_free(keel_http_server *s);

/**
 * From a start observer: binds the address (or takes the socket systemd passed under the service's
 * name), spawns the polling thread (in the server's own task group, named "<service>-server") at
 * the point "<service>.spawn.server", and confirms
 * the server end to end with a GET of its own (through libcurl for a TLS server), retrying with a millisecond backoff for at most
 * KEEL_HTTP_READY_TIMEOUT_USEC (a signal does not cut it short). Logs the bound address. The
 * first server a process starts raises its soft RLIMIT_NOFILE to the hard limit (each connection
 * is a descriptor; systemd's soft limit is 1024), which children it executes inherit: lower it
 * for one that uses select(2). Returns 0, -EADDRINUSE and other bind errors, -EPERM outside a
 * start observer, -ETIMEDOUT when the server never answered, -EALREADY when started before. The
 * failure is given to keel_app_fail().
 */
KEEL_API int keel_http_server_start(keel_http_server *s);

/**
 * From a stop observer: stops accepting (the listener closes), answers every later response with
 * `Connection: close`, closes idle keep-alive connections, waits until no request is in flight
 * and no connection is open (progress every 500 ms, EXTEND_TIMEOUT_USEC kept up) until the app's
 * stop deadline, then stops the polling thread. Safe on a server that never started
 * or started half-way; idempotent. Returns 0, or -ETIMEDOUT when the deadline passed with work
 * still open (what was open is logged; the connections are cut).
 */
KEEL_API int keel_http_server_stop(keel_http_server *s);

/**
 * For a service that is one HTTP server, from its start hook: creates the server into *@ret and
 * starts it. Failures are given to keel_app_fail() and returned; *@ret may be set even then, so
 * the stop hook can always call keel_http_server_stop_and_free(app, ret).
 */
KEEL_API int keel_http_server_start_new(keel_app *app, const keel_http_options *options, keel_http_server **ret);
/**
 * From the stop hook: stops and frees *@s and sets it to NULL. A drain past the deadline is given
 * to keel_app_fail() and returned (-ETIMEDOUT). Accepts *@s == NULL.
 */
KEEL_API int keel_http_server_stop_and_free(keel_app *app, keel_http_server **s);

/** The largest body limit keel_http_server_accept_body() takes: 1 MiB. */
#define KEEL_HTTP_BODY_MAX ((size_t) 1 << 20)

/** How a server refuses a body on a path that takes one (keel_http_server_accept_body()). */
typedef enum keel_http_body_flags {
    /* 411 and 413 as {"error","error_description"} JSON (the shape of RFC 6749 section 5.2), not text/plain */
    KEEL_HTTP_BODY_JSON_REFUSALS = 1 << 0,
} keel_http_body_flags;

/**
 * Before keel_http_server_start(): requests for @path (exact, percent-decoded, without the query;
 * any method) may carry a body of up to @limit bytes, which their handler reads with
 * keel_http_request_body(); the handler runs once all of it has come (http.request_body_timeout).
 * Only Content-Length frames such a body: the server answers, without calling the handler, 411 to
 * a chunked one and 413 to one announced larger than @limit, and closes the connection after
 * either (text/plain, or JSON with KEEL_HTTP_BODY_JSON_REFUSALS in @flags). Every other path keeps
 * its bodies skipped. Each connection of @s holds up to the largest @limit more in memory. Given
 * again, @path takes the new @limit and @flags. Returns 0, -EINVAL (@path not starting with '/',
 * @limit 0 or past KEEL_HTTP_BODY_MAX, an unknown flag), -EBUSY once started, -E2BIG past 8 paths,
 * -ENOMEM.
 */
KEEL_API int keel_http_server_accept_body(keel_http_server *s, const char *path, size_t limit, unsigned flags);

/** The bound address ("127.0.0.1:43121", "[::]:9998"), or NULL before start. */
KEEL_API const char *keel_http_server_address(const keel_http_server *s);
/** The bound port, or 0 before start. */
KEEL_API uint16_t keel_http_server_port(const keel_http_server *s);
/** The server's request tracker (borrowed). */
KEEL_API keel_work *keel_http_server_work(keel_http_server *s);
/** Connections open now. */
KEEL_API unsigned keel_http_server_connections(const keel_http_server *s);

/** A request whose answer comes later, from another thread. */
typedef struct keel_http_deferred keel_http_deferred;
/**
 * From a handler that cannot answer at once (its answer waits on another server, an OAuth2
 * issuer): suspends @req's connection without holding up the others, and returns the handle to
 * answer it with, from any thread, by keel_http_deferred_respond() — exactly once. The handler
 * then returns 0 without answering. @req, and what its accessors return, stay valid until that
 * call, on any thread, even once the client has gone away or the server has stopped. The request
 * counts as in flight until answered or its client goes away, so a drain waits for it: answer
 * every deferred request before the server's stop returns; one still unanswered when a drain
 * passes its deadline is cut with the connections still open, and a late
 * keel_http_deferred_respond() then only frees the handle and @req. NULL when out of memory
 * (answer at once then).
 */
KEEL_API keel_http_deferred *keel_http_request_defer(keel_http_request *req);
/**
 * Answers a deferred request as keel_http_respond() would, from any thread; copies everything and
 * frees @d, whatever it returns but for a NULL @d. Returns 0, -ESHUTDOWN when the server gave the
 * request up (its client went away, or the server stopped), -EINVAL for a status or body keel_http_respond() refuses, -ENOMEM (the
 * request is answered 500 then, for both).
 */
KEEL_API int keel_http_deferred_respond(keel_http_deferred *d, unsigned status, const char *content_type, const void *body,
                                        size_t size, const char *const *headers);

/** A handler one service mounts on another's server (keel_http_mount_add()). */
typedef struct keel_http_mount keel_http_mount;
/**
 * Answers the requests whose path starts with @prefix ("/.well-known/acme-challenge/") on the
 * server of @service ("healthcheck") with @handler instead of that server's own, whether the
 * server runs yet or not, until keel_http_mount_remove(); the first mount made wins where
 * prefixes overlap. How ACME's http-01 challenge is answered on a listener the certificate
 * service does not own. The handler runs on the server's polling thread under the app's mount
 * lock: it must answer at once. Any thread. Returns 0, -EINVAL (a prefix not starting with '/'),
 * -ENOMEM.
 */
KEEL_API int keel_http_mount_add(keel_app *app, const char *service, const char *prefix, keel_http_handler_t handler,
                                 void *userdata, keel_http_mount **ret);
/** Removes @m once no request is inside its handler, and frees it. Any thread. Accepts NULL; returns NULL. */
KEEL_API keel_http_mount *keel_http_mount_remove(keel_http_mount *m);
/** Whether a server of @service is started (ready) and not stopping. Any thread. */
KEEL_API bool keel_http_serving(keel_app *app, const char *service);

/** "GET". */
KEEL_API const char *keel_http_request_method(const keel_http_request *req);
/** The path without the query ("/readyz"). */
KEEL_API const char *keel_http_request_path(const keel_http_request *req);
/** The value of header @name (case-insensitive), or NULL. */
KEEL_API const char *keel_http_request_header(const keel_http_request *req, const char *name);
/**
 * The value of header @name into *@ret for a header that decides something (an identity, a
 * scope): NULL when absent. Returns 0, -ENOTUNIQ when the request repeats it (a proxy and we might
 * read different ones), -EBADMSG when it holds a control byte; *@ret is not written then. (A NUL
 * byte never reaches it: see keel_http_handler_t.)
 */
KEEL_API int keel_http_request_header_strict(const keel_http_request *req, const char *name, const char **ret);
/**
 * Whether @req is the server's own request of keel_http_server_start(), which confirms the server
 * answers before the service counts as started: a handler that logs what it refuses can keep it
 * out of the warnings. Told by its User-Agent, so a client can pass for it: never a permission.
 */
KEEL_API bool keel_http_request_from_ready_check(const keel_http_request *req);
/** Whether the query has @key, with or without a value ("?verbose"). */
KEEL_API bool keel_http_request_has_arg(const keel_http_request *req, const char *key);
/** The most bytes a request id takes, its NUL included. */
#define KEEL_HTTP_REQUEST_ID_MAX 40
/**
 * The request's id, unique in this process and unlikely to repeat across processes
 * ("3f9c0a1e2b7d4c55-42"), for an X-Request-Id header; made on first use. Every record logged
 * while the request's handler runs carries it (journald KEEL_REQUEST_ID=, JSON "request_id").
 */
KEEL_API const char *keel_http_request_id(const keel_http_request *req);
/**
 * The body of @req, on a path that takes one (keel_http_server_accept_body()): its bytes into
 * *@ret (not NUL-terminated; valid until @req is answered, deferred or not) and their number into
 * *@ret_size (0 and a valid pointer for a request without a body). Returns 0, or -ENODATA on a
 * path that takes no body (one sent there was skipped).
 */
KEEL_API int keel_http_request_body(const keel_http_request *req, const void **ret, size_t *ret_size);
/** Whether @req came over TLS. */
KEEL_API bool keel_http_request_tls(const keel_http_request *req);
/** The identity of the client certificate @req came with, verified by the server's TLS (the
 * certificate's first URI SAN, "spiffe://example.org/ns/web", else its subject
 * "CN=web,O=Example"), or NULL without one. */
KEEL_API const char *keel_http_request_peer_identity(const keel_http_request *req);
/** The peer's address ("127.0.0.1:50652"). */
KEEL_API const char *keel_http_request_peer(const keel_http_request *req);

/**
 * Answers @req with @status (200-599: a 1xx is not a final answer) and a copy of @body (@size
 * bytes) as @content_type (NULL: no Content-Type); 204 and 304 carry no body and no
 * Content-Length. @headers, when not NULL, is a NULL-terminated list of name, value pairs added to
 * the response. Returns 0, -EALREADY when @req was answered before, -EINVAL for a status out of
 * range or a body with 204 or 304, -ENOMEM.
 */
KEEL_API int keel_http_respond(keel_http_request *req, unsigned status, const char *content_type, const void *body, size_t size,
                               const char *const *headers);
/**
 * Answers @req with a constant: @content_type and @body must have static storage duration (string
 * literals). The response is built once per server and reused, without copying, for every request
 * that gives the same three values. Returns like keel_http_respond().
 */
KEEL_API int keel_http_respond_static(keel_http_request *req, unsigned status, const char *content_type, const char *body);
/** keel_http_respond() with a NUL-terminated text body. */
KEEL_API int keel_http_respond_text(keel_http_request *req, unsigned status, const char *content_type, const char *body);

#ifdef __cplusplus
}
#endif
