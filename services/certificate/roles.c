/* SPDX-License-Identifier: MIT */
/*
 * Role certificates (certificate.roles, certificate.role_dir): for each domain:role, a
 * certificate of the current key that says the holder acts in that role — Athenz's form, subject
 * CN "<domain>:role.<role>" and the URI SAN spiffe://<domain>/ra/<role>, for clientAuth — issued
 * by the local CA with each new pair and written to <role_dir>/<domain>:role.<role>.cert.pem.
 * Only the local CA can: an ACME CA certifies DNS names, and the operator's files come with no CA
 * key; configure says so.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certificate-service.h"
#include "delivery.h"
#include "openssl-util.h"

static bool role_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* A domain or a role: 1-128 of [A-Za-z0-9._-], as the token service takes them (no ':' or '/'). */
static bool role_name_valid(const char *s, size_t n)
{
    if (n == 0 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!role_char(s[i]))
            return false;
    return true;
}

static int check_roles(cert_service *s, keel_app *app)
{
    const certificate_config *c = &s->config;
    if (c->provider != CERT_PROVIDER_LOCAL_CA)
        return keel_app_fail(app, -EINVAL, "certificate.roles: the %s provider cannot issue role certificates (%s); use local-ca",
                             cert_provider_name(c->provider),
                             c->provider == CERT_PROVIDER_ACME ? "an ACME CA certifies DNS names only"
                                                               : "the files come with no CA key");
    if (!*c->role_dir)
        return keel_app_fail(app, -EINVAL, "certificate.roles is set: set certificate.role_dir too, where they are written");
    for (size_t i = 0; c->roles[i]; i++) {
        const char *colon = strchr(c->roles[i], ':');
        if (!colon || !role_name_valid(c->roles[i], (size_t) (colon - c->roles[i])) ||
            !role_name_valid(colon + 1, strlen(colon + 1)))
            return keel_app_fail(app, -EINVAL, "certificate.roles[%zu]: '%s' is not domain:role (each 1-128 of [A-Za-z0-9._-])", i,
                                 c->roles[i]);
    }
    return 0;
}

int cert_roles_configure(cert_service *s, keel_app *app)
{
    return s->config.roles && s->config.roles[0] ? check_roles(s, app) : 0;
}

static int write_role(cert_service *s, const credential *c, const char *target, char *why, size_t size)
{
    const char *colon = strchr(target, ':');
    char domain[130], path[PATH_MAX];
    (void) snprintf(domain, sizeof domain, "%.*s", (int) (colon - target), target);
    int n = snprintf(path, sizeof path, "%s/%s:role.%s.cert.pem", s->config.role_dir, domain, colon + 1);
    if (n < 0 || (size_t) n >= sizeof path)
        return snprintf(why, size, "the path of %s is too long", target), -ENAMETOOLONG;
    _cleanup_(X509_freep) X509 *cert = NULL;
    int r = cert_issue_role(s->ca_key, s->ca_cert, credential_key(c), domain, colon + 1, s->config.lifetime, &cert);
    if (r < 0)
        return snprintf(why, size, "cannot issue %s: %s", target, strerror(-r)), r;
    char *pem = NULL;
    size_t bytes = 0;
    if ((r = cert_certs_pem(cert, NULL, &pem, &bytes)) >= 0)
        r = delivery_write(path, pem, bytes, 0444, s->out_gid);
    cert_pem_free(pem, bytes);
    if (r < 0)
        return snprintf(why, size, "cannot write '%s': %s", path, strerror(-r)), r;
    return 0;
}

void cert_roles_deliver(cert_service *s, const credential *c)
{
    const char *const *roles = (const char *const *) s->config.roles;
    if (!roles || !roles[0] || !s->ca_key)
        return;
    char why[PATH_MAX + 64];
    size_t written = 0;
    for (size_t i = 0; roles[i]; i++) {
        int r = write_role(s, c, roles[i], why, sizeof why);
        keel_counter_add(r < 0 ? s->out_failures : s->out_written, 1);
        if (r < 0) {
            s->roles_error = r;
            CERT_LOG_ERRNO(KEEL_LOG_WARNING, r, "Failed to deliver the role certificate %s: %s", roles[i], why);
        } else
            written++;
    }
    if (written == keel_strv_length(s->config.roles))
        s->roles_error = 0;
    CERT_LOG(KEEL_LOG_INFO, "Issued %zu of %zu role certificates for key[%s] in '%s'", written, keel_strv_length(s->config.roles),
             credential_kid(c), s->config.role_dir);
}
