/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The ACME dns-01 challenge (RFC 8555 §8.4) answered through RFC 2136 dynamic updates signed with
 * TSIG (RFC 8945): acme-dns01.c holds the solver and its configuration keys, dns-message.c the DNS
 * messages it sends and reads (docs/decisions/0031). Every function returns 0 or a negative errno
 * and, on failure, a one-line reason in a cert_error that names the server, zone and record.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <keel/config.h>

#include "certificate.h"

/* ---- configuration: certificate.acme.dns01.* -------------------------------------------------- */

typedef enum dns01_algorithm {
    DNS01_HMAC_SHA256,
    DNS01_HMAC_SHA512,
    _DNS01_ALGORITHM_MAX,
    _DNS01_ALGORITHM_INVALID = -EINVAL,
} dns01_algorithm;

/* The storage of dns01_config_keys; the strings are the app's (keel_app_add_config()). */
typedef struct dns01_config {
    keel_address server;     /* the primary that accepts updates, "host:port", host numeric */
    char *zone;              /* "" finds it by an SOA query */
    char *tsig_name;         /* the key's name as the server knows it */
    int tsig_algorithm;      /* dns01_algorithm */
    char *tsig_secret_file;  /* base64 secret, a file only its owner reads */
    keel_usec_t timeout;     /* one exchange with the server: connect, send, answer */
    keel_usec_t propagation; /* the most present waits for the record to be served; 0: no wait */
} dns01_config;

extern const keel_config_key dns01_config_keys[];
extern const size_t dns01_n_config_keys;

/* ---- the solver ------------------------------------------------------------------------------- */

typedef struct dns01_solver dns01_solver;

/* The TXT value for @key_authorization ("TOKEN.THUMBPRINT"): base64url(SHA-256) without padding,
 * 43 characters, into @ret (at least 44 bytes). -EINVAL for an empty key authorization. */
int dns01_txt_value(const char *key_authorization, char ret[static 44]);

/* A solver for @c: reads the TSIG secret file now. Errors name the key that is missing. */
int dns01_solver_new(const dns01_config *c, dns01_solver **ret, cert_error *e);
dns01_solver *dns01_solver_free(dns01_solver *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(dns01_solver *, dns01_solver_free);

/* Sleeps up to @usec; -ECANCELED at a stop (keel_app_wait(), keel_task_wait()), else >= 0. */
typedef int (*dns01_wait_handler_t)(keel_usec_t usec, void *userdata);

/* How dns01_present()'s waits end early (decision 24): a stop, or the end of the issuance. */
typedef struct dns01_stop {
    dns01_wait_handler_t wait; /* the pauses of the propagation wait; NULL: they end at neither */
    /* Asked at least every DNS01_STOP_POLL while an exchange waits for the server: true is a stop
     * (a refresh task's, which has no descriptor). NULL: never. */
    bool (*cancelled)(void *userdata);
    void *userdata;
    int fd;               /* polled beside the server's socket, readable at a stop (keel_app_stop_fd()); -1: none */
    keel_usec_t deadline; /* CLOCK_MONOTONIC: the propagation wait ends here if sooner; 0: none */
} dns01_stop;

#define DNS01_STOP_POLL    (100 * KEEL_USEC_PER_MSEC)
#define DNS01_STOP_CLEANUP (1 * KEEL_USEC_PER_SEC)

/* Makes dns01_present() end with -ECANCELED at @stop's stop, and its propagation wait with
 * -ETIMEDOUT at @stop's deadline. dns01_cleanup() is never cancelled: a record left behind would
 * outlive us; each of its exchanges stays bounded by certificate.acme.dns01.timeout, or by
 * DNS01_STOP_CLEANUP once @stop's stop has come (a server that answers needs far less; one that is
 * silent does not hold the stop up). */
void dns01_solver_set_stop(dns01_solver *s, const dns01_stop *stop);

/* Adds TXT _acme-challenge.@domain (a leading "*." dropped) with the value of @key_authorization
 * and, when the propagation wait is not 0, returns once the server answers it to a query:
 * -ETIMEDOUT if it does not within that wait. A server that refuses gives -EPERM (NOTAUTH, REFUSED,
 * a TSIG error), -EIO for any other RCODE, -EBADMSG for a reply that is not DNS or not signed by
 * the key; -ETIMEDOUT when an exchange overran certificate.acme.dns01.timeout. */
int dns01_present(dns01_solver *s, const char *domain, const char *key_authorization, cert_error *e);
/* Deletes exactly the record dns01_present() added (other TXT records of the name stay).
 * Deleting one that is not there succeeds. Errors as for dns01_present(). */
int dns01_cleanup(dns01_solver *s, const char *domain, const char *key_authorization, cert_error *e);

/* ---- dns-message.c: DNS messages -------------------------------------------------------------- */

/* Our messages are small: a question or an update of one record, and a TSIG. */
#define DNS01_MESSAGE_MAX 2048
#define DNS01_NAME_MAX    255 /* RFC 1035 §2.3.4, in wire form; as text at most as long */

enum {
    DNS01_TYPE_SOA = 6,
    DNS01_TYPE_TXT = 16,
    DNS01_TYPE_TSIG = 250,
    DNS01_RCODE_REFUSED = 5,
    DNS01_RCODE_NOTAUTH = 9,
    DNS01_TSIG_BADSIG = 16,
};

typedef enum dns01_update_op {
    DNS01_UPDATE_ADD,
    DNS01_UPDATE_DELETE,
} dns01_update_op;

typedef struct dns01_message {
    uint8_t data[DNS01_MESSAGE_MAX];
    size_t size;
} dns01_message;

typedef struct dns01_key {
    char name[DNS01_NAME_MAX + 1]; /* lower case, ending in '.' */
    dns01_algorithm algorithm;
    uint8_t secret[128];
    size_t secret_size;
} dns01_key;

/* What a reply says. */
typedef struct dns01_reply {
    uint16_t id;
    int rcode;          /* extended by nothing: we send no EDNS */
    bool tsig;          /* it carries a TSIG record */
    int tsig_error;     /* that record's error: 0, BADSIG, BADKEY, BADTIME */
    uint64_t tsig_time; /* its time signed, seconds since the epoch */
    bool tsig_verified; /* its MAC is the key's over our request's MAC and the reply */
} dns01_reply;

/* An UPDATE of @zone that adds (with @ttl) or deletes the TXT record @value at @owner. -EINVAL for
 * a name that is not one (an empty label, a label over 63 bytes) or a value over 255 bytes. */
int dns01_build_update(dns01_message *m, uint16_t id, const char *zone, const char *owner, const char *value, uint32_t ttl,
                       dns01_update_op op);
/* A query (recursion not desired: we ask the authority itself) for @name of @type. */
int dns01_build_query(dns01_message *m, uint16_t id, const char *name, uint16_t type);
/* Appends the TSIG record of @k at @now (seconds since the epoch) and its MAC to @ret_mac. */
int dns01_sign(dns01_message *m, const dns01_key *k, uint64_t now, uint8_t ret_mac[static 64], size_t *ret_mac_size);
/* Reads the header and the TSIG record of @data, checking it against @k and the request's MAC when
 * @k is not NULL. -EBADMSG for a message that is not one. */
int dns01_parse_reply(const uint8_t *data, size_t size, const dns01_key *k, const uint8_t *request_mac, size_t mac_size,
                      dns01_reply *ret);
/* Whether the answer section of @data holds a TXT record of @name whose one string is @value: 1 or 0. */
int dns01_reply_has_txt(const uint8_t *data, size_t size, const char *name, const char *value);
/* The owner of the SOA record in the answer or authority section: the zone @name is in. -ENOENT without one. */
int dns01_reply_soa_owner(const uint8_t *data, size_t size, char ret[static DNS01_NAME_MAX + 1]);
/* @name as replies hold it: lower case, one trailing dot. -EINVAL for one that is not a name. */
int dns01_name_canonical(const char *name, char ret[static DNS01_NAME_MAX + 1]);
/* "NOERROR", "NOTAUTH", "BADSIG", ...; "RCODE%d" into @buf for one without a name. */
const char *dns01_rcode_name(int rcode, char buf[static 16]);
