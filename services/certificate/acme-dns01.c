/* SPDX-License-Identifier: MIT */
/*
 * The dns-01 solver (RFC 8555 §8.4): the TXT record _acme-challenge.DOMAIN, added and deleted
 * through RFC 2136 dynamic updates signed with TSIG (RFC 8945) on the zone's primary, over TCP
 * (an update is never truncated and a stray datagram cannot pose as the reply). Every exchange is
 * bounded by certificate.acme.dns01.timeout; present may then wait, bounded too, until the server
 * answers the record. docs/decisions/0031.
 */
#include <assert.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <keel/fileio.h>
#include <keel/log.h>

#include "dns01.h"

#define TXT_TTL 60 /* short: the record lives for one validation */

static const char *const algorithm_choices[] = { "hmac-sha256", "hmac-sha512", NULL };

#define C(field) offsetof(dns01_config, field)
#define SEC      1000000LL
const keel_config_key dns01_config_keys[] = {
    { .key = "certificate.acme.dns01.server",
      .type = KEEL_CONFIG_ADDRESS,
      .offset = C(server),
      .def = "127.0.0.1:53",
      .help = "dns-01: the primary name server that accepts RFC 2136 updates of the zone, a numeric address and port" },
    { .key = "certificate.acme.dns01.zone",
      .type = KEEL_CONFIG_STRING,
      .offset = C(zone),
      .def = "''",
      .help = "dns-01: the zone the _acme-challenge records go in; empty: the one the server's SOA answer names" },
    { .key = "certificate.acme.dns01.tsig_name",
      .type = KEEL_CONFIG_STRING,
      .offset = C(tsig_name),
      .def = "''",
      .help = "dns-01: the name of the TSIG key the server accepts updates signed with" },
    { .key = "certificate.acme.dns01.tsig_algorithm",
      .type = KEEL_CONFIG_ENUM,
      .offset = C(tsig_algorithm),
      .def = "hmac-sha256",
      .choices = algorithm_choices,
      .help = "dns-01: the TSIG key's algorithm, hmac-sha256 or hmac-sha512" },
    { .key = "certificate.acme.dns01.tsig_secret_file",
      .type = KEEL_CONFIG_PATH,
      .offset = C(tsig_secret_file),
      .def = "''",
      .help = "dns-01: a file (0600) holding the TSIG key's secret, base64 as the server's configuration has it" },
    { .key = "certificate.acme.dns01.timeout",
      .type = KEEL_CONFIG_DURATION,
      .offset = C(timeout),
      .def = "10s",
      .min = SEC / 10,
      .max = 300 * SEC,
      .help = "dns-01: the most one exchange with the server may take, connection included" },
    { .key = "certificate.acme.dns01.propagation_timeout",
      .type = KEEL_CONFIG_DURATION,
      .offset = C(propagation),
      .def = "30s",
      .max = 3600 * SEC,
      .help = "dns-01: the most to wait for the server to answer a new record before the CA is asked to look; 0: no wait" },
};
const size_t dns01_n_config_keys = ELEMENTSOF(dns01_config_keys);

struct dns01_solver {
    struct sockaddr_storage address;
    socklen_t address_size;
    char server[sizeof(((keel_address *) 0)->host) + 8]; /* "host:port", for messages */
    char zone[DNS01_NAME_MAX + 1];                       /* configured, or "": the server names each record's */
    dns01_key key;
    keel_usec_t timeout, propagation;
    dns01_stop stop; /* what ends present's waits early */
    /* present ended at the stop's stop. A sign of it may be gone by the cleanup (the app's stop
     * descriptor is readable while the signal is pending, until the loop takes it). */
    bool stopped;
};

/* A reply: up to the 64 KiB a TCP message can hold. */
typedef struct answer {
    uint8_t data[UINT16_MAX];
    size_t size;
    dns01_reply reply;
} answer;

int dns01_txt_value(const char *key_authorization, char ret[static 44])
{
    uint8_t digest[32];
    if (!key_authorization || !*key_authorization)
        return -EINVAL;
    if (!EVP_Digest(key_authorization, strlen(key_authorization), digest, NULL, EVP_sha256(), NULL))
        return -EIO;
    _cleanup_free_ char *text = NULL;
    int r = base64url(digest, sizeof digest, &text);
    if (r < 0)
        return r;
    memcpy(ret, text, 44);
    return 0;
}

dns01_solver *dns01_solver_free(dns01_solver *s)
{
    if (s) {
        explicit_bzero(s, sizeof *s); /* the secret */
        free(s);
    }
    return NULL;
}

/* The secret of certificate.acme.dns01.tsig_secret_file: standard base64 (RFC 4648 §4), as
 * tsig-keygen, keymgr and knsupdate write it. */
static int read_secret(dns01_key *k, const char *path, cert_error *e)
{
    _cleanup_free_ char *text = NULL;
    size_t n = 0;
    mode_t mode = 0;
    int r = keel_file_read_secret(path, 4096, &text, &n, &mode);
    if (r == -EACCES && mode)
        return cert_fail(e, r,
                         "Permissions %04o for certificate.acme.dns01.tsig_secret_file '%s' are too open: " KEEL_SECRET_MODE_RULE,
                         (unsigned) mode, path);
    if (r < 0)
        return cert_fail(e, r, "certificate.acme.dns01.tsig_secret_file: cannot read '%s': %s", path, strerror(-r));
    while (n > 0 && strchr(" \t\r\n", text[n - 1]))
        n--;
    size_t pad = n >= 2 && text[n - 2] == '=' ? 2 : n >= 1 && text[n - 1] == '=' ? 1 : 0;
    uint8_t buf[4096 / 4 * 3];
    int len = n % 4 == 0 && n / 4 * 3 <= sizeof buf ? EVP_DecodeBlock(buf, (const unsigned char *) text, (int) n) : -1;
    explicit_bzero(text, n);
    if (len <= 0 || (size_t) len - pad > sizeof k->secret) {
        explicit_bzero(buf, sizeof buf);
        return cert_fail(e, -EINVAL, "certificate.acme.dns01.tsig_secret_file '%s' is not a base64 key of at most %zu bytes", path,
                         sizeof k->secret);
    }
    k->secret_size = (size_t) len - pad;
    memcpy(k->secret, buf, k->secret_size);
    explicit_bzero(buf, sizeof buf);
    return 0;
}

static int resolve(dns01_solver *s, const keel_address *a, cert_error *e)
{
    char port[8];
    (void) snprintf(port, sizeof port, "%u", a->port);
    (void) snprintf(s->server, sizeof s->server, strchr(a->host, ':') ? "[%s]:%u" : "%s:%u", a->host, a->port);
    struct addrinfo *ai = NULL, hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM };
    /* Numeric only: a name lookup here would be a wait no timeout of ours bounds. */
    int r = *a->host && a->port ? getaddrinfo(a->host, port, &hints, &ai) : EAI_NONAME;
    if (r != 0)
        return cert_fail(e, -EINVAL, "certificate.acme.dns01.server '%s' is not a numeric address and port", s->server);
    memcpy(&s->address, ai->ai_addr, ai->ai_addrlen);
    s->address_size = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

int dns01_solver_new(const dns01_config *c, dns01_solver **ret, cert_error *e)
{
    _cleanup_(dns01_solver_freep) dns01_solver *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    *s = (dns01_solver){
        .timeout = c->timeout, .propagation = c->propagation, .key.algorithm = c->tsig_algorithm, .stop.fd = -EBADF
    };
    if (c->tsig_algorithm < 0 || c->tsig_algorithm >= _DNS01_ALGORITHM_MAX)
        return cert_fail(e, -EINVAL, "certificate.acme.dns01.tsig_algorithm: no algorithm %d", c->tsig_algorithm);
    if (!c->tsig_name || !*c->tsig_name || !c->tsig_secret_file || !*c->tsig_secret_file)
        return cert_fail(e, -EINVAL, "dns-01: set certificate.acme.dns01.%s (the TSIG key the server accepts updates with)",
                         !c->tsig_name || !*c->tsig_name ? "tsig_name" : "tsig_secret_file");
    if (dns01_name_canonical(c->tsig_name, s->key.name) < 0)
        return cert_fail(e, -EINVAL, "certificate.acme.dns01.tsig_name '%s' is not a DNS name", c->tsig_name);
    if (c->zone && *c->zone && dns01_name_canonical(c->zone, s->zone) < 0)
        return cert_fail(e, -EINVAL, "certificate.acme.dns01.zone '%s' is not a DNS name", c->zone);
    int r = resolve(s, &c->server, e);
    if (r >= 0)
        r = read_secret(&s->key, c->tsig_secret_file, e);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(s);
    return 0;
}

void dns01_solver_set_stop(dns01_solver *s, const dns01_stop *stop)
{
    assert(s && stop);
    s->stop = *stop;
}

/* ---- one exchange over TCP, bounded ------------------------------------------------------------ */

static bool stop_asked(const dns01_stop *stop)
{
    return stop && stop->cancelled && stop->cancelled(stop->userdata);
}

/* Whether @stop's stop has come, by either of its signs. */
static bool stop_came(const dns01_stop *stop)
{
    struct pollfd p = { .fd = stop ? stop->fd : -EBADF, .events = POLLIN };
    return stop_asked(stop) || (p.fd >= 0 && poll(&p, 1, 0) > 0);
}

/* Waits for @events on @fd until @deadline: -ETIMEDOUT then, -ECANCELED as soon as @stop (when not
 * NULL) says so. A poll(2) of @fd and the stop's descriptor: nothing spins; a stop without one is
 * asked between polls of at most DNS01_STOP_POLL. */
static int wait_fd(int fd, short events, keel_usec_t deadline, const dns01_stop *stop)
{
    int stop_fd = stop ? stop->fd : -EBADF;
    for (;;) {
        keel_usec_t now = keel_now();
        if (stop_asked(stop))
            return -ECANCELED;
        if (now >= deadline)
            return -ETIMEDOUT;
        keel_usec_t wait = stop && stop->cancelled ? KEEL_MIN(deadline - now, DNS01_STOP_POLL) : deadline - now;
        struct pollfd p[2] = { { .fd = fd, .events = events }, { .fd = stop_fd, .events = POLLIN } };
        int n = poll(p, stop_fd >= 0 ? 2 : 1, (int) ((wait + 999) / 1000));
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n > 0 && stop_fd >= 0 && p[1].revents)
            return -ECANCELED;
        if (n > 0)
            return 0;
    }
}

static int send_all(int fd, const uint8_t *p, size_t n, keel_usec_t deadline, const dns01_stop *stop)
{
    while (n > 0) {
        int r = wait_fd(fd, POLLOUT, deadline, stop);
        if (r < 0)
            return r;
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno != EAGAIN && errno != EINTR)
            return -errno;
        if (k > 0)
            p += k, n -= (size_t) k;
    }
    return 0;
}

static int recv_all(int fd, uint8_t *p, size_t n, keel_usec_t deadline, const dns01_stop *stop)
{
    while (n > 0) {
        int r = wait_fd(fd, POLLIN, deadline, stop);
        if (r < 0)
            return r;
        ssize_t k = recv(fd, p, n, 0);
        if (k == 0)
            return -ECONNRESET; /* closed before the whole reply */
        if (k < 0 && errno != EAGAIN && errno != EINTR)
            return -errno;
        if (k > 0)
            p += k, n -= (size_t) k;
    }
    return 0;
}

static int connect_server(const dns01_solver *s, keel_usec_t deadline, const dns01_stop *stop)
{
    _cleanup_close_ int fd = socket(s->address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (const struct sockaddr *) &s->address, s->address_size) < 0) {
        if (errno != EINPROGRESS)
            return -errno;
        int r = wait_fd(fd, POLLOUT, deadline, stop), error = 0;
        socklen_t len = sizeof error;
        if (r < 0)
            return r;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
            return -errno;
        if (error)
            return -error;
    }
    return TAKE_FD(fd);
}

/* The bound of one exchange: certificate.acme.dns01.timeout, cut to DNS01_STOP_CLEANUP for one
 * that no stop ends (cleanup's) once the solver's stop has come. */
static keel_usec_t exchange_timeout(const dns01_solver *s, const dns01_stop *stop)
{
    return !stop && (s->stopped || stop_came(&s->stop)) ? KEEL_MIN(s->timeout, DNS01_STOP_CLEANUP) : s->timeout;
}

/* Sends @m (RFC 1035 §4.2.2: each message after its length) and reads the reply to it within
 * @timeout; given up at @stop's stop when @stop is not NULL (present's exchanges, not cleanup's). */
static int exchange(const dns01_solver *s, const dns01_message *m, const dns01_stop *stop, keel_usec_t timeout, answer *ret)
{
    keel_usec_t deadline = keel_now() + timeout;
    _cleanup_close_ int fd = connect_server(s, deadline, stop);
    if (fd < 0)
        return fd;
    uint8_t len[2] = { (uint8_t) (m->size >> 8), (uint8_t) m->size };
    int r = send_all(fd, len, 2, deadline, stop);
    if (r >= 0)
        r = send_all(fd, m->data, m->size, deadline, stop);
    if (r >= 0)
        r = recv_all(fd, len, 2, deadline, stop);
    if (r >= 0)
        r = recv_all(fd, ret->data, ret->size = (size_t) (len[0] << 8 | len[1]), deadline, stop);
    return r;
}

/* What went wrong in an exchange bounded by @timeout: a timeout says which bound it overran. */
static const char *exchange_error(const dns01_solver *s, int r, keel_usec_t timeout, char *buf, size_t size)
{
    char t[32];
    if (r == -ECANCELED)
        return "stopped";
    if (r != -ETIMEDOUT)
        return strerror(-r);
    (void) snprintf(buf, size, "no reply within %s (%s)", keel_format_duration(timeout, t, sizeof t),
                    timeout < s->timeout ? "the bound of a deletion at a stop" : "certificate.acme.dns01.timeout");
    return buf;
}

static uint16_t new_id(void)
{
    uint16_t id = 0;
    if (getrandom(&id, sizeof id, GRND_NONBLOCK) != sizeof id)
        id = (uint16_t) keel_now(); /* the id only pairs a reply with its request on our own connection */
    return id;
}

/* ---- the challenge ----------------------------------------------------------------------------- */

static const char *op_name(dns01_update_op op)
{
    return op == DNS01_UPDATE_ADD ? "add" : "delete";
}

/* One record of a challenge, and the zone it is updated in. */
typedef struct record {
    char owner[DNS01_NAME_MAX + 1]; /* _acme-challenge.NAME. */
    char zone[DNS01_NAME_MAX + 1];
    char value[44];
    dns01_update_op op;
} record;

/* What the reply to the update of @rec says, as an error or 0. */
static int check_update(const dns01_solver *s, const record *rec, const dns01_reply *p, cert_error *e)
{
    char b1[16], b2[16];
    const char *rcode = dns01_rcode_name(p->rcode, b1), *alg = algorithm_choices[s->key.algorithm], *op = op_name(rec->op);
    if (p->tsig_error)
        return cert_fail(e, -EPERM,
                         "dns-01: %s refused to %s TXT %s in zone %s: %s, TSIG error %s (key %s, %s: check the name, "
                         "algorithm, secret and clock)",
                         s->server, op, rec->owner, rec->zone, rcode, dns01_rcode_name(p->tsig_error, b2), s->key.name, alg);
    if (p->rcode != 0)
        return cert_fail(e, p->rcode == DNS01_RCODE_NOTAUTH || p->rcode == DNS01_RCODE_REFUSED ? -EPERM : -EIO,
                         "dns-01: %s refused to %s TXT %s in zone %s: %s", s->server, op, rec->owner, rec->zone, rcode);
    uint64_t now = (uint64_t) time(NULL);
    if (!p->tsig_verified || (p->tsig_time > now ? p->tsig_time - now : now - p->tsig_time) > 300)
        return cert_fail(e, -EBADMSG, "dns-01: the reply of %s to the %s of TXT %s in zone %s is not signed by key %s (%s)",
                         s->server, op, rec->owner, rec->zone, s->key.name, alg);
    return 0;
}

static int query(const dns01_solver *s, const char *name, uint16_t type, const dns01_stop *stop, answer *ret, cert_error *e)
{
    dns01_message m;
    uint16_t id = new_id();
    int r = dns01_build_query(&m, id, name, type);
    if (r < 0)
        return cert_fail(e, r, "dns-01: cannot ask for '%s': %s", name, strerror(-r));
    keel_usec_t timeout = exchange_timeout(s, stop);
    if ((r = exchange(s, &m, stop, timeout, ret)) < 0) {
        char t[64];
        return cert_fail(e, r, "dns-01: cannot ask %s for %s: %s", s->server, name, exchange_error(s, r, timeout, t, sizeof t));
    }
    r = dns01_parse_reply(ret->data, ret->size, NULL, NULL, 0, &ret->reply);
    if (r < 0 || ret->reply.id != id)
        return cert_fail(e, -EBADMSG, "dns-01: %s answered the query for %s with no DNS reply to it", s->server, name);
    return 0;
}

/* The zone the server says @rec's owner is in: the owner of the SOA record it answers with (in
 * the authority section of an NXDOMAIN or NODATA answer, or the answer at an apex). Asked for
 * each record: one solver may serve names of several zones. */
static int find_zone(const dns01_solver *s, record *rec, const dns01_stop *stop, answer *a, cert_error *e)
{
    char b[16];
    int r = query(s, rec->owner, DNS01_TYPE_SOA, stop, a, e);
    if (r < 0)
        return r;
    if (dns01_reply_soa_owner(a->data, a->size, rec->zone) < 0)
        return cert_fail(e, -ENOENT, "dns-01: %s names no zone for %s (%s, no SOA record): set certificate.acme.dns01.zone",
                         s->server, rec->owner, dns01_rcode_name(a->reply.rcode, b));
    return 0;
}

/* Sleeps until @deadline, at most @most: -ECANCELED at the stop's stop. */
static int pause_until(const dns01_stop *stop, keel_usec_t deadline, keel_usec_t most)
{
    keel_usec_t now = keel_now(), wait = deadline > now ? KEEL_MIN(deadline - now, most) : 0;
    if (stop->wait)
        return stop->wait(wait, stop->userdata);
    struct timespec ts = { .tv_sec = (time_t) (wait / KEEL_USEC_PER_SEC), .tv_nsec = (long) (wait % KEEL_USEC_PER_SEC) * 1000 };
    (void) nanosleep(&ts, NULL); /* a signal ends the pause early: the loop asks again sooner */
    return 0;
}

/* Asks the server until it answers the new record: a primary may accept an update before it
 * serves it, and the CA must not look before. Bounded by the propagation wait or the stop's
 * deadline, the sooner (and the last exchange's timeout); given up at the stop's stop. */
static int wait_visible(const dns01_solver *s, const record *rec, answer *a, cert_error *e)
{
    if (s->propagation == 0)
        return 0;
    keel_usec_t start = keel_now(), deadline = start + s->propagation;
    bool issuance_ends = s->stop.deadline && s->stop.deadline < deadline;
    deadline = issuance_ends ? KEEL_MAX(s->stop.deadline, start) : deadline;
    for (;;) {
        cert_error last = { .text = "" };
        int r = query(s, rec->owner, DNS01_TYPE_TXT, &s->stop, a, &last);
        if (r >= 0 && dns01_reply_has_txt(a->data, a->size, rec->owner, rec->value) > 0)
            return 0;
        if (r == -ECANCELED || (r = pause_until(&s->stop, deadline, KEEL_USEC_PER_SEC)) == -ECANCELED)
            return cert_fail(e, -ECANCELED, "dns-01: stopped while waiting for %s to answer TXT %s", s->server, rec->owner);
        if (keel_now() >= deadline) {
            char t[32];
            return cert_fail(e, -ETIMEDOUT, "dns-01: %s does not answer TXT %s \"%s\" %s after adding it (%s)%s%s", s->server,
                             rec->owner, rec->value, keel_format_duration(deadline - start, t, sizeof t),
                             issuance_ends ? "the end of certificate.acme.timeout" : "certificate.acme.dns01.propagation_timeout",
                             *last.text ? ": " : "", last.text);
        }
    }
}

/* The signed update of @rec, and its signed reply. */
static int send_update(const dns01_solver *s, const record *rec, answer *a, cert_error *e)
{
    dns01_message m;
    uint8_t mac[64];
    size_t mac_size = 0;
    uint16_t id = new_id();
    char t[64];
    int r = dns01_build_update(&m, id, rec->zone, rec->owner, rec->value, TXT_TTL, rec->op);
    if (r >= 0)
        r = dns01_sign(&m, &s->key, (uint64_t) time(NULL), mac, &mac_size);
    if (r < 0)
        return cert_fail(e, r, "dns-01: cannot write the update of TXT %s in zone %s: %s", rec->owner, rec->zone, strerror(-r));
    const dns01_stop *stop = rec->op == DNS01_UPDATE_ADD ? &s->stop : NULL;
    keel_usec_t timeout = exchange_timeout(s, stop);
    if ((r = exchange(s, &m, stop, timeout, a)) < 0)
        return cert_fail(e, r, "dns-01: cannot %s TXT %s in zone %s at %s: %s", op_name(rec->op), rec->owner, rec->zone, s->server,
                         exchange_error(s, r, timeout, t, sizeof t));
    r = dns01_parse_reply(a->data, a->size, &s->key, mac, mac_size, &a->reply);
    if (r < 0 || a->reply.id != id)
        return cert_fail(e, -EBADMSG, "dns-01: %s answered the %s of TXT %s in zone %s with no DNS reply to it", s->server,
                         op_name(rec->op), rec->owner, rec->zone);
    return check_update(s, rec, &a->reply, e);
}

static int update(const dns01_solver *s, const char *domain, const char *key_authorization, dns01_update_op op, cert_error *e)
{
    record rec = { .op = op };
    const char *base = strncmp(domain, "*.", 2) == 0 ? domain + 2 : domain; /* RFC 8555 §8.4: a wildcard's base */
    char owner[DNS01_NAME_MAX + 2];
    int r = dns01_txt_value(key_authorization, rec.value);
    if (r < 0)
        return cert_fail(e, r, "dns-01: no key authorization for %s", domain);
    if (snprintf(owner, sizeof owner, "_acme-challenge.%s", base) >= (int) sizeof owner ||
        dns01_name_canonical(owner, rec.owner) < 0)
        return cert_fail(e, -EINVAL, "dns-01: '%s' is not a DNS name", domain);
    _cleanup_free_ answer *a = malloc(sizeof *a);
    if (!a)
        return -ENOMEM;
    if (*s->zone)
        memcpy(rec.zone, s->zone, sizeof rec.zone);
    else if ((r = find_zone(s, &rec, op == DNS01_UPDATE_ADD ? &s->stop : NULL, a, e)) < 0)
        return r;
    if ((r = send_update(s, &rec, a, e)) < 0)
        return r;
    keel_log_service("certificate", KEEL_LOG_INFO, "dns-01: %s TXT %s \"%s\" in zone %s at %s",
                     op == DNS01_UPDATE_ADD ? "Added" : "Deleted", rec.owner, rec.value, rec.zone, s->server);
    return op == DNS01_UPDATE_ADD ? wait_visible(s, &rec, a, e) : 0;
}

int dns01_present(dns01_solver *s, const char *domain, const char *key_authorization, cert_error *e)
{
    assert(s && domain);
    int r = update(s, domain, key_authorization, DNS01_UPDATE_ADD, e);
    s->stopped = s->stopped || r == -ECANCELED;
    return r;
}

int dns01_cleanup(dns01_solver *s, const char *domain, const char *key_authorization, cert_error *e)
{
    assert(s && domain);
    return update(s, domain, key_authorization, DNS01_UPDATE_DELETE, e);
}
