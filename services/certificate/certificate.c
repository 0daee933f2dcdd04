/* SPDX-License-Identifier: MIT */
/*
 * The certificate service: keeps the app's private key and X.509 certificate. It starts only with
 * a valid credential published (so READY=1 waits for one), keeps it fresh with a refresh task,
 * watches the operator's files with the file provider, and reports a `certificate` health check
 * and metrics. See docs/operations.md, "Keys and certificates".
 */
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

#include "certificate-service.h"
#include "mode.h"
#include "openssl-util.h"

static const char *const provider_choices[] = { "local-ca", "file", "acme", NULL };
static const char *const backup_choices[] = { "none", "read", "write", "read+write", NULL };
static const char *const key_type_choices[] = { "ec", "rsa", NULL };

#define C(field) offsetof(cert_service, config.field)
#define HOUR     (3600LL * 1000000)
static const keel_config_key config_keys[] = {
    { .key = "certificate.provider",
      .type = KEEL_CONFIG_ENUM,
      .offset = C(provider),
      .def = "local-ca",
      .choices = provider_choices,
      .help = "local-ca (a CA in state_dir issues the certificate), file (key_file and cert_file) or acme (an ACME CA)" },
    { .key = "certificate.issuers",
      .type = KEEL_CONFIG_LIST,
      .offset = C(issuers),
      .def = "[]",
      .help = "issuers tried in order, each of acme, acme:URL (another ACME CA), local or file; empty: provider alone" },
    { .key = "certificate.issuer_attempts",
      .type = KEEL_CONFIG_INT,
      .offset = C(issuer_attempts),
      .def = "3",
      .min = 1,
      .max = 10,
      .help = "issuers: attempts through one issuer (1 s, 2 s, 4 s... apart) before the next one issues" },
    { .key = "certificate.refresh_interval",
      .type = KEEL_CONFIG_DURATION,
      .offset = C(refresh_interval),
      .def = "24h",
      .min = 10000,
      .max = 8760 * HOUR,
      .live = true,
      .help = "renew this often, or at half the remaining lifetime if sooner (±10 % jitter)" },
    { .key = "certificate.backup",
      .type = KEEL_CONFIG_ENUM,
      .offset = C(backup),
      .def = "none",
      .choices = backup_choices,
      .help = "write: copy each credential to state_dir/backup; read: start from it when the provider fails" },
    { .key = "certificate.dns_names",
      .type = KEEL_CONFIG_LIST,
      .offset = C(dns_names),
      .def = "[]",
      .help = "names (or IP addresses) in the certificate; empty: the host name and localhost" },
    { .key = "certificate.publish_delay",
      .type = KEEL_CONFIG_DURATION,
      .offset = C(publish_delay),
      .def = "0s",
      .max = 24 * HOUR,
      .live = true,
      .help = "provider file: a new key in the files is in JWKS (as the next key) this long before it signs; replicas sharing the "
              "files agree" },
    { .key = "certificate.lifetime",
      .type = KEEL_CONFIG_DURATION,
      .offset = C(lifetime),
      .def = "72h",
      .min = 1000000,
      .max = 8760 * HOUR,
      .help = "validity of the certificates the local CA issues" },
    { .key = "certificate.key_type",
      .type = KEEL_CONFIG_ENUM,
      .offset = C(key_type),
      .def = "ec",
      .choices = key_type_choices,
      .help = "ec (ECDSA P-256) or rsa (certificate.rsa_bits) for keys the service generates" },
    { .key = "certificate.rsa_bits",
      .type = KEEL_CONFIG_INT,
      .offset = C(rsa_bits),
      .def = "2048",
      .min = 2048,
      .max = 8192,
      .help = "size of generated RSA keys" },
    { .key = "certificate.key_file",
      .type = KEEL_CONFIG_PATH,
      .offset = C(key_file),
      .def = "''",
      .help = "provider file: the private key (PEM, mode 0600 or stricter)" },
    { .key = "certificate.cert_file",
      .type = KEEL_CONFIG_PATH,
      .offset = C(cert_file),
      .def = "''",
      .help = "provider file: the certificate, then its chain (PEM)" },
    { .key = "certificate.ca_key_file",
      .type = KEEL_CONFIG_PATH,
      .offset = C(ca_key_file),
      .def = "''",
      .help = "provider local-ca: a CA key to issue with instead of state_dir/ca.key.pem" },
    { .key = "certificate.ca_cert_file",
      .type = KEEL_CONFIG_PATH,
      .offset = C(ca_cert_file),
      .def = "''",
      .help = "local-ca: the certificate of ca_key_file; file: the CA the certificate must verify to" },
    { .key = "certificate.acme.directory_url",
      .type = KEEL_CONFIG_STRING,
      .offset = C(acme.directory_url),
      .def = "''",
      .help = "provider acme: the CA's directory (https://acme-v02.api.letsencrypt.org/directory)" },
    { .key = "certificate.acme.ca_file",
      .type = KEEL_CONFIG_PATH,
      .offset = C(acme.ca_file),
      .def = "''",
      .help = "provider acme: trust anchors (PEM) for the ACME server's own TLS; empty: the system's" },
    { .key = "certificate.acme.email",
      .type = KEEL_CONFIG_STRING,
      .offset = C(acme.email),
      .def = "''",
      .help = "provider acme: the account's contact address (expiry notices); empty: none" },
    { .key = "certificate.acme.http01_server",
      .type = KEEL_CONFIG_STRING,
      .offset = C(acme.http01_server),
      .def = "healthcheck",
      .help = "provider acme: the service whose HTTP server answers the http-01 challenges (at its address)" },
    { .key = "certificate.acme.account_key_type",
      .type = KEEL_CONFIG_ENUM,
      .offset = C(acme.account_key_type),
      .def = "ec",
      .choices = key_type_choices,
      .help = "provider acme: ec (ES256) or rsa (RS256, 2048 bits) for a new account key" },
    { .key = "certificate.acme.eab_kid",
      .type = KEEL_CONFIG_STRING,
      .offset = C(acme.eab_kid),
      .def = "''",
      .help = "provider acme: the key id of an external account binding (RFC 8555 §7.3.4), for CAs that require one" },
    { .key = "certificate.acme.eab_hmac_key_file",
      .type = KEEL_CONFIG_PATH,
      .offset = C(acme.eab_hmac_key_file),
      .def = "''",
      .help = "provider acme: a file (0600) with the binding's MAC key, base64url as the CA gives it" },
    { .key = "certificate.acme.timeout",
      .type = KEEL_CONFIG_DURATION,
      .offset = C(acme.timeout),
      .def = "60s",
      .min = 1000000,
      .max = 3600LL * 1000000,
      .help = "provider acme: the most an issuance may take, validation included" },
    { .key = "certificate.acme.renewal_info",
      .type = KEEL_CONFIG_BOOL,
      .offset = C(acme.renewal_info),
      .def = "true",
      .help = "provider acme, or the ACME CA of certificate.issuers that issued the certificate: renew in the window the CA "
              "suggests (RFC 9773 renewalInfo) where it offers one, and name the replaced certificate in its next order; false: "
              "by refresh_interval only" },
    { .key = "certificate.acme.profile",
      .type = KEEL_CONFIG_STRING,
      .offset = C(acme.profile),
      .def = "''",
      .help = "provider acme: the certificate profile to order, one the CA's directory lists (draft-ietf-acme-profiles; "
              "Let's Encrypt: shortlived for 6-day certificates); empty: the CA's default" },
    { .key = "certificate.out_dir",
      .type = KEEL_CONFIG_PATH,
      .offset = C(out_dir),
      .def = "''",
      .help = "a directory where key.pem and cert.pem of each new pair are delivered for another program (swapped atomically)" },
    { .key = "certificate.out_key_mode",
      .type = KEEL_CONFIG_STRING,
      .offset = C(out_key_mode),
      .def = "0440",
      .help = "octal mode of the delivered key.pem: owner and group only" },
    { .key = "certificate.out_group",
      .type = KEEL_CONFIG_STRING,
      .offset = C(out_group),
      .def = "''",
      .help = "group (name or number) of the delivered files, for a program that runs as another user; empty: keel's own" },
    { .key = "certificate.roles",
      .type = KEEL_CONFIG_LIST,
      .offset = C(roles),
      .def = "[]",
      .help = "local-ca: domain:role pairs whose role certificates (of the current key) are issued with each new pair" },
    { .key = "certificate.role_dir",
      .type = KEEL_CONFIG_PATH,
      .offset = C(role_dir),
      .def = "''",
      .help = "where each role certificate is written, as <domain>:role.<role>.cert.pem (required with roles)" },
    { .key = "certificate.out_exec",
      .type = KEEL_CONFIG_LIST,
      .offset = C(out_hooks.exec),
      .def = "[]",
      .help = "a command (argv) run after each new pair in out_dir replaces another, e.g. [systemctl, reload, nginx]" },
    { .key = "certificate.out_signal",
      .type = KEEL_CONFIG_STRING,
      .offset = C(out_hooks.signal),
      .def = "''",
      .help = "a signal (HUP, USR1, ...) sent after each new pair in out_dir to the PID in out_pidfile" },
    { .key = "certificate.out_pidfile",
      .type = KEEL_CONFIG_PATH,
      .offset = C(out_hooks.pidfile),
      .def = "''",
      .help = "the pidfile of the program out_signal goes to" },
    { .key = "certificate.out_hook_timeout",
      .type = KEEL_CONFIG_DURATION,
      .offset = C(out_hooks.timeout),
      .def = "10s",
      .min = 100000,
      .max = 600LL * 1000000,
      .help = "the most out_exec may run before it is killed" },
};
#undef C

/* ---- configure ----------------------------------------------------------------------------------- */

static int certificate_configure(keel_service *svc, void *state)
{
    cert_service *s = state;
    const certificate_config *c = &s->config;
    keel_app *app = s->app = keel_service_app(svc);
    int r = identity_of(app, &s->identity);
    if (r < 0)
        return keel_app_fail(app, r, "Cannot set up the identity: %s", strerror(-r));
    if (c->provider == CERT_PROVIDER_FILE && (!*c->key_file || !*c->cert_file))
        return keel_app_fail(app, -EINVAL, "certificate.provider is file: set certificate.key_file and certificate.cert_file");
    if (c->provider == CERT_PROVIDER_LOCAL_CA && !*c->issuers && !*c->ca_key_file != !*c->ca_cert_file)
        return keel_app_fail(app, -EINVAL, "Set both certificate.ca_key_file and certificate.ca_cert_file, or neither");
    if (c->provider == CERT_PROVIDER_ACME && (!*c->acme.directory_url || !*c->dns_names))
        return keel_app_fail(
            app, -EINVAL,
            "certificate.provider is acme: set certificate.acme.directory_url and certificate.dns_names (the names "
            "the CA is asked to certify)");
    if (c->provider == CERT_PROVIDER_ACME && !*c->acme.eab_kid != !*c->acme.eab_hmac_key_file)
        return keel_app_fail(app, -EINVAL, "Set both certificate.acme.eab_kid and certificate.acme.eab_hmac_key_file, or neither");
    if (c->provider == CERT_PROVIDER_ACME && strncmp(c->acme.directory_url, "https://", 8) != 0)
        return keel_app_fail(app, -EINVAL, "certificate.acme.directory_url: '%s' is not an https:// URL", c->acme.directory_url);
    for (char **n = c->dns_names; *n; n++)
        if (!cert_name_valid(*n))
            return keel_app_fail(app, -EINVAL, "certificate.dns_names: '%s' is not a DNS name or an IP address", *n);
    /* Set for the file provider and then another chosen: said, since nothing else would show it. */
    const char *origin = keel_app_config_origin(app, "certificate.publish_delay");
    if (c->provider != CERT_PROVIDER_FILE && origin && !streq(origin, "default"))
        CERT_LOG(KEEL_LOG_WARNING, "certificate.publish_delay (%s) applies to certificate.provider file only; ignored with %s",
                 origin, cert_provider_name(c->provider));
    if ((r = acme_challenges_configure(s, app)) < 0)
        return r;
    if ((r = cert_issuers_configure(s, app)) < 0)
        return r;
    return cert_out_configure(s, app);
}

/* ---- health and metrics ---------------------------------------------------------------------------- */

static void format_utc(keel_usec_t usec, char *buf, size_t size)
{
    time_t t = (time_t) (usec / KEEL_USEC_PER_SEC);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        (void) snprintf(buf, size, "?");
}

/* A note beside "ok" in the verbose list. */
static int healthy(cert_service *s, char *reason, size_t size)
{
    if (cert_ari_note(s, reason, size) == 0)
        (void) cert_issuers_note(s, reason, size);
    return 0;
}

/* Healthy while the certificate is valid. In the last 10 % of its lifetime it is due, and the
 * probe says so beside "ok" but stays ready: every replica of a fleet reads the same certificate,
 * so failing then would take them all out of their Services at once (and a restart into a
 * startupProbe on /readyz would loop) while the key still signs; the expiry metric is what to
 * alert on. Seeing it due wakes the refresh task, which then renews at once: a step of the wall
 * clock that the clock watch did not see (one before the start, or no watch) is found by the
 * first probe. Every probe runs this: the credential itself is read only when the lock-free read
 * of its validity does not say all is well, and then for the reason. */
static int check_health(void *userdata, char *reason, size_t size)
{
    cert_service *s = userdata;
    keel_usec_t now = keel_now_realtime(), nb, na;
    if (identity_current_valid(s->identity, now, &nb, &na) && !cert_due(now, nb, na))
        return healthy(s, reason, size);
    _cleanup_(credential_unrefp) credential *c = identity_get(s->identity, IDENTITY_CURRENT);
    if (!c)
        return snprintf(reason, size, "no certificate"), -ENOKEY;
    nb = credential_not_before(c), na = credential_not_after(c);
    bool due = cert_due(now, nb, na);
    if (due)
        keel_task_group_wake(s->tasks);
    int r = credential_check(c, now, reason, size);
    if (r >= 0 && !due)
        return healthy(s, reason, size);
    if (r >= 0) {
        char when[32];
        format_utc(na, when, sizeof when);
        (void) snprintf(reason, size, "the certificate expires at %s, within 10%% of its lifetime, and is not renewed yet", when);
        return 0;
    }
    return r;
}

static double expiry_seconds(void *userdata)
{
    cert_service *s = userdata;
    _cleanup_(credential_unrefp) credential *c = identity_get(s->identity, IDENTITY_CURRENT);
    return c ? (double) (credential_not_after(c) / KEEL_USEC_PER_SEC) : 0;
}

/* The task waits on the monotonic clock: the wall-clock time of its next attempt is that wait's
 * end seen from now, so it shows where a step of the clock has moved it. */
static double renewal_seconds(void *userdata)
{
    cert_service *s = userdata;
    keel_usec_t at = atomic_load(&s->renewal_at), mono = keel_now(), real = keel_now_realtime();
    if (at == 0)
        return 0;
    return (double) ((real + (at > mono ? at - mono : 0)) / KEEL_USEC_PER_SEC);
}

static int register_checks(cert_service *s)
{
    keel_metrics *m = keel_app_metrics(s->app);
    if (s->checks_registered)
        return 0;
    int r = keel_app_add_health_check(s->app, "certificate", check_health, s);
    if (r >= 0)
        r = keel_metrics_gauge_fn(m, "keel_certificate_expiry_timestamp_seconds",
                                  "When the current certificate expires, in seconds since the epoch", NULL, expiry_seconds, s);
    if (r >= 0)
        r = keel_metrics_gauge_fn(
            m, "keel_certificate_renewal_timestamp_seconds",
            "When the refresh task next renews the certificate, in seconds since the epoch (0 before it runs)", NULL,
            renewal_seconds, s);
    if (r >= 0)
        r = keel_metrics_counter(m, "keel_certificate_refresh_total", "Certificate refresh attempts", NULL, &s->refreshes);
    if (r >= 0)
        r = keel_metrics_counter(m, "keel_certificate_refresh_failures_total", "Certificate refresh attempts that failed", NULL,
                                 &s->refresh_failures);
    if (r >= 0)
        r = keel_metrics_counter(m, "keel_certificate_deliveries_total", "Pairs delivered to certificate.out_dir, by result",
                                 (const char *const[]){ "result", "ok", NULL }, &s->out_written);
    if (r >= 0)
        r = keel_metrics_counter(m, "keel_certificate_deliveries_total", "Pairs delivered to certificate.out_dir, by result",
                                 (const char *const[]){ "result", "error", NULL }, &s->out_failures);
    if (r >= 0 && s->config.provider == CERT_PROVIDER_ACME)
        r = acme_register_metrics(s);
    if (r >= 0 && s->config.provider == CERT_PROVIDER_ACME && s->config.acme.renewal_info)
        r = cert_ari_register_metrics(s);
    if (r >= 0)
        r = cert_issuers_register_metrics(s);
    s->checks_registered = r >= 0;
    return r;
}

/* ---- start and stop -------------------------------------------------------------------------------- */

static int resolve_names(cert_service *s)
{
    char host[256];
    if (*s->config.dns_names)
        return (s->names = keel_strv_copy(s->config.dns_names)) ? 0 : -ENOMEM;
    if (gethostname(host, sizeof host) < 0 || !*host || !cert_name_valid(host))
        (void) snprintf(host, sizeof host, "localhost");
    if (keel_strv_extend(&s->names, host) < 0 || (!streq(host, "localhost") && keel_strv_extend(&s->names, "localhost") < 0))
        return -ENOMEM;
    return 0;
}

static int resolve_paths(cert_service *s)
{
    const char *dir = keel_app_state_dir(s->app);
    bool file = s->config.provider == CERT_PROVIDER_FILE;
    s->state_dir = strdup(dir);
    s->backup_dir = keel_strdup_printf("%s/backup", dir);
    s->key_path = file ? strdup(s->config.key_file) : keel_strdup_printf("%s/key.pem", dir);
    s->cert_path = file ? strdup(s->config.cert_file) : keel_strdup_printf("%s/cert.pem", dir);
    return s->state_dir && s->backup_dir && s->key_path && s->cert_path ? 0 : -ENOMEM;
}

/* keel init: an issuance by ACME, or by certificate.issuers, that fails is tried again, with a
 * backoff, until init.timeout. A stop signal while it waits or fetches ends it as a failure of the
 * service (exit 1): init did not write what it is for. Other providers fail at once: their errors
 * are not transient. */
static int obtain_in_init(cert_service *s, cert_pair *p, cert_error *e)
{
    keel_usec_t deadline = keel_now() + agent_init_timeout(s->app), backoff = KEEL_USEC_PER_SEC;
    for (;;) {
        int r = cert_obtain(s, p, e);
        if (r >= 0 || (s->config.provider != CERT_PROVIDER_ACME && !s->chain))
            return r;
        if (r == -ECANCELED || keel_now() + backoff >= deadline) {
            size_t n = strlen(e->text);
            (void) snprintf(e->text + n, sizeof e->text - n,
                            r == -ECANCELED ? " (keel init stopped)" : " (keel init gave up at init.timeout)");
            return r == -ECANCELED ? -EINTR : r;
        }
        char d[32];
        CERT_LOG(KEEL_LOG_WARNING, "Failed to obtain the certificate, trying again in %s: %s",
                 keel_format_duration(backoff, d, sizeof d), e->text);
        if (keel_app_wait(s->app, backoff) < 0) {
            (void) cert_fail(e, -EINTR, "keel init stopped while it retried: %s", e->text);
            return -EINTR;
        }
        backoff = KEEL_MIN(backoff * 2, 30 * KEEL_USEC_PER_SEC);
        *e = (cert_error){};
    }
}

static int certificate_start(keel_service *svc, void *state)
{
    cert_service *s = state;
    keel_app *app = keel_service_app(svc);
    /* The command that runs beside a serving agent (`keel token`) holds no lock: it only reads. */
    s->read_only = !keel_app_state_dir_locked(app);
    int r = resolve_paths(s);
    if (r >= 0)
        r = resolve_names(s);
    if (r >= 0)
        r = register_checks(s);
    if (r < 0)
        return keel_app_fail(app, r, "Cannot set up the certificate service: %s", strerror(-r));

    /* For serve, state_dir exists and is locked (core), and is not in layout 1 (the layout plugin). */
    _cleanup_(cert_pair_done) cert_pair p = {};
    cert_error e = {};
    (void) pthread_mutex_lock(&s->lock);
    r = agent_init_mode(app) ? obtain_in_init(s, &p, &e) : cert_obtain(s, &p, &e);
    if (r >= 0 && (r = cert_publish(s, &p)) < 0)
        (void) cert_fail(&e, r, "Cannot publish the credential: %s", strerror(-r));
    (void) pthread_mutex_unlock(&s->lock);
    if (r < 0)
        return keel_app_fail(app, r, "%s", e.text);
    if (s->out_error < 0)
        return keel_app_fail(app, s->out_error, "Cannot deliver the pair to certificate.out_dir '%s' (see above)",
                             s->config.out_dir);
    if (s->roles_error < 0)
        return keel_app_fail(app, s->roles_error, "Cannot deliver the role certificates to certificate.role_dir '%s' (see above)",
                             s->config.role_dir);
    if (s->read_only || agent_init_mode(app)) /* a command that exits soon: nothing to keep fresh */
        return 0;
    if ((r = hooks_start(s->hooks)) < 0)
        return keel_app_fail(app, r, "Cannot start the certificate.out hooks: %s", r == -EIO ? KEEL_FAULT_MESSAGE : strerror(-r));

    if (s->config.provider == CERT_PROVIDER_FILE && (r = cert_watch_start(s)) < 0)
        return keel_app_fail(app, r, "Cannot watch the directory of '%s': %s", s->key_path, strerror(-r));
    if ((r = cert_refresh_start(s)) < 0)
        return keel_app_fail(app, r, "Cannot start the refresh task: %s", r == -EIO ? KEEL_FAULT_MESSAGE : strerror(-r));
    return 0;
}

static int certificate_stop(keel_service *svc, void *state)
{
    cert_service *s = state;
    bool started = s->state_dir != NULL;
    cert_refresh_stop(s);
    s->hooks = hooks_free(s->hooks); /* after the refresh task, the last to deliver */
    EVP_PKEY_free(s->ca_key);
    X509_free(s->ca_cert);
    EVP_PKEY_free(s->next_key);
    s->ca_key = s->next_key = NULL;
    s->ca_cert = NULL;
    s->names = keel_strv_free(s->names);
    free(s->state_dir);
    free(s->backup_dir);
    free(s->key_path);
    free(s->cert_path);
    s->state_dir = s->backup_dir = s->key_path = s->cert_path = NULL;
    if (started)
        CERT_LOG(KEEL_LOG_INFO, "Stopped certificate provider");
    return 0;
}

/* SIGHUP: the file provider reads its files again (for file systems inotify does not see, such as
 * NFS); a bad file fails the refresh and the current credential stays. The local CA and ACME renew
 * on their schedule, which a due certificate brings to now; ACME reads the CA's renewal window
 * again, which a revocation may have moved to now. */
static int certificate_refresh(keel_service *svc, void *state)
{
    cert_service *s = state;
    cert_error e = {};
    /* The files first: when they fail, the refresh fails and its configuration is put back
     * (core/machine), so nothing of it may have been taken here yet. */
    if (s->config.provider == CERT_PROVIDER_FILE && s->state_dir) {
        int r = cert_reload(s, true, &e);
        if (r < 0) {
            if (cert_current_due(s))
                keel_task_group_wake(s->tasks);
            return keel_app_fail(keel_service_app(svc), r, "%s; keeping the current certificate", e.text);
        }
        CERT_LOG(KEEL_LOG_INFO, "Reloaded key[%s], cert[%s]", s->key_path, s->cert_path);
    }
    /* A new interval, or a certificate due (after a step of the clock), takes effect at once: the
     * task wakes and schedules again. */
    bool changed = atomic_exchange(&s->interval, s->config.refresh_interval) != s->config.refresh_interval;
    bool ari = (s->config.provider == CERT_PROVIDER_ACME || s->chain) && s->config.acme.renewal_info;
    if (changed || ari || (s->state_dir && cert_current_due(s)))
        keel_task_group_wake(s->tasks);
    return 0;
}

static int certificate_setup(keel_service *svc, void *state)
{
    cert_service *s = state;
    return -pthread_mutex_init(&s->lock, NULL);
}

static void certificate_free(keel_service *svc, void *state)
{
    cert_service *s = state;
    s->hooks = hooks_free(s->hooks); /* a command that configured and never started */
    cert_issuers_free(s);
    (void) pthread_mutex_destroy(&s->lock);
}

/* The first to start (DESIGN §4). A command that uses it besides serve (keel_app_command_uses())
 * and holds no lock on the state directory gets a credential that is only read. */
static const keel_service_vtable certificate_vtable = {
    .name = "certificate",
    .label = "certificate provider",
    .state_size = sizeof(cert_service),
    .config = config_keys,
    .n_config = ELEMENTSOF(config_keys),
    .setup = certificate_setup,
    .configure = certificate_configure,
    .start = certificate_start,
    .stop = certificate_stop,
    .refresh = certificate_refresh,
    .free = certificate_free,
};

/* The service, and the keys of its files that its table cannot hold (acme-challenge.c, acme-dns01.c). */
static int certificate_register(keel_app *app)
{
    keel_service *svc = NULL;
    int r = keel_app_add_service(app, &certificate_vtable, &svc);
    return r < 0 ? r : acme_challenge_add_config(app, keel_service_state(svc));
}

KEEL_PLUGIN(certificate, certificate_register);
