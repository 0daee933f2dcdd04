/* SPDX-License-Identifier: MIT */
#pragma once

/* The certificate service's state, shared by certificate.c (configuration, hooks, health,
 * metrics), provider.c (where a credential comes from) and refresh.c (the refresh task and the
 * file watch). Core allocates it (keel_service_state()). */

#include <pthread.h>
#include <stdatomic.h>

#include <systemd/sd-event.h>

#include <keel/keel.h>

#include "certificate.h"
#include "dns01.h"
#include "tlsalpn01.h"
#include "hooks.h"
#include "identity.h"

typedef enum cert_provider {
    CERT_PROVIDER_LOCAL_CA,
    CERT_PROVIDER_FILE,
    CERT_PROVIDER_ACME,
    _CERT_PROVIDER_MAX,
} cert_provider;

/* certificate.backup: bit 0 read, bit 1 write, in the order of the choices. */
typedef enum cert_backup {
    CERT_BACKUP_NONE,
    CERT_BACKUP_READ,
    CERT_BACKUP_WRITE,
    CERT_BACKUP_READ_WRITE,
    _CERT_BACKUP_MAX,
} cert_backup;

/* The challenge types of certificate.acme.challenges (acme-choice.c). */
typedef enum acme_challenge_type {
    ACME_CHALLENGE_HTTP01,
    ACME_CHALLENGE_DNS01,
    ACME_CHALLENGE_TLSALPN01,
    _ACME_CHALLENGE_TYPE_MAX,
    _ACME_CHALLENGE_TYPE_INVALID = -EINVAL,
} acme_challenge_type;

/* How a validation ended, for keel_certificate_acme_validations_total{type,result}. */
typedef enum acme_validation_result {
    ACME_VALIDATION_VALID,   /* the CA validated it */
    ACME_VALIDATION_INVALID, /* the CA looked and refused */
    ACME_VALIDATION_ERROR,   /* keel could not present it, or the CA's verdict never came */
    _ACME_VALIDATION_RESULT_MAX,
} acme_validation_result;

typedef struct certificate_config {
    int provider; /* cert_provider */
    keel_usec_t refresh_interval;
    int backup; /* cert_backup */
    char **dns_names;
    keel_usec_t lifetime;
    int key_type; /* cert_key_type */
    int64_t rsa_bits;
    char *key_file, *cert_file, *ca_key_file, *ca_cert_file;
    keel_usec_t publish_delay;                /* file: a new key is the next one this long before it signs */
    char *out_dir, *out_key_mode, *out_group; /* the pair delivered to another program (out.c) */
    hook_config out_hooks;                    /* certificate.out_exec, out_signal, out_pidfile, out_hook_timeout */
    char **roles, *role_dir;                  /* role certificates (roles.c) */
    char **issuers;                           /* certificate.issuers: empty, provider alone (issuers.c) */
    int64_t issuer_attempts;                  /* attempts through one issuer before the next one */
    struct {
        char *directory_url, *ca_file, *email, *http01_server, *eab_kid, *eab_hmac_key_file;
        int account_key_type; /* cert_key_type */
        keel_usec_t timeout;
        bool renewal_info; /* follow the CA's renewalInfo (RFC 9773) where it offers one */
        char **challenges; /* certificate.acme.challenges: a table of acme-challenge.c's */
        char *profile;     /* the CA's certificate profile to order ("shortlived"), or "" for its default */
    } acme;
} certificate_config;

typedef struct cert_service {
    certificate_config config;
    dns01_config dns01;         /* certificate.acme.dns01.*: acme-dns01.c's table */
    tlsalpn01_config tlsalpn01; /* certificate.acme.tls_alpn01.*: acme-tlsalpn01.c's table */
    keel_app *app;              /* borrowed */
    identity *identity;         /* borrowed from the app: where the credential is published */
    pthread_mutex_t lock;       /* serialises loads, issues and stores: the refresh task and the watch */

    /* Set up by start, freed by stop. */
    char *state_dir, *backup_dir;
    char *key_path, *cert_path; /* where the credential is read from or stored */
    char **names;               /* the names to certify: dns_names, or the host name and localhost */
    EVP_PKEY *ca_key;           /* local-ca: the CA's key */
    X509 *ca_cert;              /* local-ca: the CA; file: the trust anchor (ca_cert_file), or NULL */
    EVP_PKEY *next_key;         /* made for a rotation whose certificate is not stored yet */
    keel_task_group *tasks;     /* owned */
    sd_event_source *watch[2];  /* owned: inotify on the directories of key_file and cert_file */
    sd_event_source *debounce;  /* owned */
    sd_event_source *promote;   /* owned: ends publish_delay, then makes `pending` current */
    credential *pending;        /* owned: a new key from the files, published as next until then */

    keel_counter *refreshes, *refresh_failures; /* borrowed from the app's registry */
    keel_counter *acme_errors[16];              /* keel_certificate_acme_errors_total by type (acme.c) */
    /* keel_certificate_acme_validations_total (acme-challenge.c) */
    keel_counter *acme_validations[_ACME_CHALLENGE_TYPE_MAX][_ACME_VALIDATION_RESULT_MAX];
    acme_challenge_type challenge_types[_ACME_CHALLENGE_TYPE_MAX]; /* certificate.acme.challenges, in order */
    size_t n_challenge_types;
    keel_task *refresh_task;         /* the task renewing now, so that ACME's waits end at a stop; NULL on the main thread */
    keel_usec_t retry_after;         /* an ACME server's Retry-After from the last failure (µs), or 0 */
    atomic_uint_fast64_t interval;   /* config.refresh_interval as the refresh task reads it (live) */
    atomic_uint_fast64_t renewal_at; /* CLOCK_MONOTONIC µs of the refresh task's next attempt, 0 before it runs */
    sd_event_source *clock_watch;    /* owned: tells of steps of the wall clock (clock.c) */
    mode_t out_key_mode;             /* certificate.out_key_mode */
    gid_t out_gid;                   /* certificate.out_group, or (gid_t) -1 */
    char out_pair[96];               /* the pair last delivered: its out_dir directory's name (out.c) */
    int out_error;                   /* of the last delivery: 0, or a negative errno */
    int roles_error;                 /* of the last role certificates: 0, or a negative errno */
    keel_counter *out_written, *out_failures; /* keel_certificate_deliveries_total{result} */
    hooks *hooks;                             /* owned: told of each pair that replaces another, or NULL */
    struct cert_chain *chain;                 /* owned: certificate.issuers (issuers.c), or NULL: provider alone */
    bool checks_registered;
    bool read_only; /* state_dir is another process's (`keel token`): nothing there is written or removed */
    /* ARI (acme-ari.c), written by the refresh task; the metrics and the health check read the
     * atomics. Times are CLOCK_REALTIME µs, 0 when there is no window. */
    struct {
        atomic_uint_fast64_t start, end; /* the CA's suggested window for the current certificate */
        atomic_uint_fast64_t renew_at;   /* the point of it picked for the renewal */
        atomic_uint_fast64_t next_check; /* CLOCK_MONOTONIC µs of the next read, 0 when none is planned */
        keel_usec_t checked_at;          /* CLOCK_MONOTONIC µs of the last read */
        char cert_id[192];               /* the certificate the window is for (RFC 9773 §4.1), "" before a read */
        bool offered, told;              /* the CA's directory named renewalInfo at the last read; a read was logged */
    } ari;
} cert_service;

#define CERT_LOG(level, ...)          keel_log_service("certificate", (level), __VA_ARGS__)
#define CERT_LOG_ERRNO(level, r, ...) keel_log_service_errno("certificate", (level), (r), __VA_ARGS__)
#define CERT_CA_LIFETIME              (10ULL * 365 * 24 * 3600 * KEEL_USEC_PER_SEC)

/* provider.c */
/* The credential to start with: reused from disk when valid, else issued (local-ca), or loaded
 * from the files (file), with the backup as the fallback when configured. When read_only, only
 * what is on disk, and nothing there changes. */
int cert_obtain(cert_service *s, cert_pair *ret, cert_error *e);
/* A new credential for a refresh: a new key and certificate (local-ca), or the files re-read. Stores
 * it (and its backup) before returning. */
int cert_renew(cert_service *s, cert_pair *ret, cert_error *e);
/* Publishes @p as the current credential. */
int cert_publish(cert_service *s, const cert_pair *p);
/* Makes the key the next renewal will use and publishes it as the next credential, unless it is
 * made already or the provider is the operator's files. Under the service's lock. */
int cert_prepare_next_key(cert_service *s);
/* "local-ca", "file"; "none", "read", "write", "read+write". */
const char *cert_provider_name(int provider);
/* Where credentials come from, for the log: "issuers" (certificate.issuers), else the provider's name. */
const char *cert_source_name(const cert_service *s);
const char *cert_backup_name(int backup);

/* acme.c */
/* Registers the ACME error counters. */
int acme_register_metrics(cert_service *s);
/* Orders a certificate for @key and s->names from the CA at @directory_url (RFC 8555): the
 * account of the key in state_dir/acme (made when missing, one per CA), the order, its
 * challenges (certificate.acme.challenges), the CSR, the download. The
 * pair goes into *@ret (a reference on @key). Blocks for at most certificate.acme.timeout. */
int acme_issue(cert_service *s, const char *directory_url, EVP_PKEY *key, cert_pair *ret, cert_error *e);

/* acme-challenge.c */
/* Adds the keys certificate.acme.challenges and certificate.acme.dns01.* (register). */
int acme_challenge_add_config(keel_app *app, cert_service *s);
/* Checks certificate.acme.challenges against the names and the dns-01 keys (configure): fills
 * s->challenge_types. A failure is logged and fails the configuration. */
int acme_challenges_configure(cert_service *s, keel_app *app);

/* acme-ari.c */
/* Reads the current certificate's renewal information when its time has come (see acme-ari.c),
 * from the ACME CA that issued it; @woken: the refresh task was woken, which reads it again if the
 * last read is a minute old. The refresh task only. With certificate.acme.renewal_info off, or a
 * certificate no known ACME CA issued (provider local-ca or file; issuer local or file), nothing. */
void cert_ari_update(cert_service *s, bool woken);
/* Until the renewal the CA's window asks for (ari_renew_delay()) into *@ret; false when there
 * is no window, and refresh_interval's schedule holds. */
bool cert_ari_delay(cert_service *s, keel_usec_t not_before, keel_usec_t not_after, keel_usec_t *ret);
/* Until the next read of the renewal information; KEEL_USEC_INFINITY when none is planned. */
keel_usec_t cert_ari_check_in(cert_service *s);
/* The window and the renewal picked in it as one line for /readyz?verbose, into @buf; 0 (nothing
 * written) without a window. */
int cert_ari_note(cert_service *s, char *buf, size_t size);
/* Registers the keel_certificate_ari_* gauges. */
int cert_ari_register_metrics(cert_service *s);

/* refresh.c */
/* One renewal (cert_renew()) published, under the service's lock; from the main thread, a new key
 * of the file provider waits certificate.publish_delay as the next credential first. */
int cert_reload(cert_service *s, bool main_thread, cert_error *e);
int cert_refresh_start(cert_service *s);
int cert_watch_start(cert_service *s);
void cert_refresh_stop(cert_service *s);
/* Whether the current certificate is due for renewal now (cert_due()). */
bool cert_current_due(cert_service *s);
/* Whether what obtains a certificate is to give up: in start a stop request, in the refresh task
 * its group's stop (an issuance is a credential fetch: a stop gives it up, the seed's rule). */
bool cert_stopping(const cert_service *s);

/* out.c */
/* Checks certificate.out_* and, with out_dir set, delivers each new current credential there
 * (the outcome in out_error, logged and counted). Configure only. */
int cert_out_configure(cert_service *s, keel_app *app);

/* roles.c */
/* Checks certificate.roles and role_dir (configure); issues and writes the role certificates of
 * @c (its outcome in roles_error, logged and counted), under the service's lock. */
int cert_roles_configure(cert_service *s, keel_app *app);
void cert_roles_deliver(cert_service *s, const credential *c);

/* clock.c */
/* Wakes the refresh task at each step of the wall clock, so that it schedules again. */
int cert_clock_watch_start(cert_service *s);

/* issuers.c: certificate.issuers (docs/decisions/0035) */
/* Reads certificate.issuers into s->chain (NULL when it is empty): an unknown entry, or one
 * repeated, fails the configure naming its position. Configure only. */
int cert_issuers_configure(cert_service *s, keel_app *app);
void cert_issuers_free(cert_service *s);
/* Registers keel_certificate_issuance_attempts_total and keel_certificate_issuer_fallbacks_total
 * (and the ACME error counters if an issuer is an ACME CA and the provider is not). */
int cert_issuers_register_metrics(cert_service *s);
/* A new pair from the first issuer that gives one, each tried certificate.issuer_attempts times
 * with pauses between (cert_issuer_pause()), stored. A stop ends the whole chain: -ECANCELED.
 * Under the service's lock. */
int cert_issuers_run(cert_service *s, cert_pair *ret, cert_error *e);
/* "issued by ISSUER (N of M ...)" for /readyz?verbose into @buf: 1, or 0 (nothing written) before
 * an issue, and without issuers. */
int cert_issuers_note(cert_service *s, char *buf, size_t size);
/* Which issuer issued the current certificate, when the start reused the pair in state_dir: the
 * one its record there names (state_dir/issuer, written at each issuance), if the record is of
 * that certificate; else none is known until the next issuance (logged). The refresh task, first. */
void cert_issuers_recall(cert_service *s);
/* The issuer of @leaf, the current certificate: NULL when it was not issued through the chain
 * (none, the backup) or which issuer did is not known. The thread that issues. */
const cert_issuer *cert_issuers_of(cert_service *s, X509 *leaf);

/* provider.c, for issuers.c: one attempt through @i: a new key's certificate (acme, local) or the
 * operator's files (file), stored in state_dir. */
int cert_issue_through(cert_service *s, const cert_issuer *i, cert_pair *ret, cert_error *e);
