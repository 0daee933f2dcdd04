/* SPDX-License-Identifier: MIT */
/* certificate.issuers, its pure part: what an entry names, how long one issuer is retried before
 * the next one issues, and where each ACME CA's account key is kept (docs/decisions/0035). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include <keel/util.h>

#include "certificate.h"

#define ACME_PREFIX "acme:"

int cert_issuer_parse(const char *entry, const char *default_url, cert_issuer *ret)
{
    cert_issuer i = { .kind = _CERT_ISSUER_KIND_INVALID, .name = entry };
    const char *url = NULL;
    if (streq(entry, "local"))
        i.kind = CERT_ISSUER_LOCAL;
    else if (streq(entry, "file"))
        i.kind = CERT_ISSUER_FILE;
    else if (streq(entry, "acme")) {
        if (!default_url || !*default_url)
            return -ENOENT;
        url = default_url;
    } else if (strncmp(entry, ACME_PREFIX, strlen(ACME_PREFIX)) == 0)
        url = entry + strlen(ACME_PREFIX);
    else
        return -EINVAL;
    if (url) {
        /* Only https: the account key signs every request, and RFC 8555 §6.1 requires TLS. */
        if (strncmp(url, "https://", 8) != 0 || !url[8])
            return -EPROTONOSUPPORT;
        i = (cert_issuer){ .kind = CERT_ISSUER_ACME, .name = entry, .directory_url = url };
    }
    *ret = i;
    return 0;
}

keel_usec_t cert_issuer_pause(unsigned failures)
{
    keel_usec_t pause = 0;
    for (unsigned n = 0; n < failures; n++)
        pause = cert_backoff_next(pause);
    return pause;
}

keel_usec_t cert_issuer_budget(unsigned attempts)
{
    keel_usec_t total = 0;
    for (unsigned failures = 1; failures < attempts; failures++)
        total += cert_issuer_pause(failures);
    return total;
}

int cert_acme_account_file(const char *directory_url, const char *first_url, char *buf, size_t size)
{
    int n;
    if (first_url && streq(directory_url, first_url))
        n = snprintf(buf, size, "account.key.pem");
    else {
        /* A hash, not the host: two CAs may share a host (Pebble on two ports, a CA's staging and
         * production directories), and a URL holds characters a file name cannot. */
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned len = 0;
        if (EVP_Digest(directory_url, strlen(directory_url), md, &len, EVP_sha256(), NULL) != 1 || len < 8)
            return -EIO;
        n = snprintf(buf, size, "account-%02x%02x%02x%02x%02x%02x%02x%02x.key.pem", md[0], md[1], md[2], md[3], md[4], md[5], md[6],
                     md[7]);
    }
    return n < 0 || (size_t) n >= size ? -ENAMETOOLONG : 0;
}
