/* SPDX-License-Identifier: MIT */
/* The ACME directory and the account (RFC 8555 §7.1.1, §7.3): the key kept in state_dir/acme, newAccount
 * asked at every issuance with the contact and, for CAs that require one, the external account
 * binding (§7.3.4). */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>

#include <keel/fetch.h>
#include <keel/fileio.h>

#include "acme.h"
#include "openssl-util.h"

int acme_read_directory(acme *a)
{
    const char *url = a->directory_url ? a->directory_url : a->s->config.acme.directory_url;
    keel_fetch_response resp = {};
    char why[KEEL_FETCH_ERROR_MAX];
    int r = keel_fetch_request(a->fetch, "GET", url, NULL, NULL, 0, &resp, why);
    if (r < 0)
        return acme_fetch_failed(a, r, "directory", url, why);
    _cleanup_(json_decrefp) json_t *dir = NULL;
    if (resp.status != 200)
        r = cert_fail(a->e, -EPROTO, "ACME directory: %s answered %u", url, resp.status);
    else
        r = acme_parse_object(a, "directory", url, &resp, &dir);
    keel_fetch_response_done(&resp);
    if (r < 0)
        return r;
    const char *nonce = acme_json_text(dir, "newNonce"), *account = acme_json_text(dir, "newAccount"),
               *order = acme_json_text(dir, "newOrder");
    if (!nonce || !account || !order)
        return cert_fail(a->e, -EPROTO, "ACME directory: %s names no newNonce, newAccount or newOrder", url);
    a->new_nonce_url = strdup(nonce);
    a->new_account_url = strdup(account);
    a->new_order_url = strdup(order);
    if ((r = acme_profile_check(dir, url, a->s->config.acme.profile, a->e)) < 0)
        return r;
    const char *renewal_info = acme_json_text(dir, "renewalInfo"); /* RFC 9773 §3: optional */
    if (renewal_info && !(a->renewal_info_url = strdup(renewal_info)))
        return -ENOMEM;
    return a->new_nonce_url && a->new_account_url && a->new_order_url ? 0 : -ENOMEM;
}

/* The account key in state_dir/acme/account.key.pem (0600), made on first use; another CA's of
 * certificate.issuers beside it (cert_acme_account_file()): an account is a CA's. */
int acme_account_key(acme *a)
{
    cert_service *s = a->s;
    char name[64];
    int r = cert_acme_account_file(a->directory_url ? a->directory_url : s->config.acme.directory_url, s->config.acme.directory_url,
                                   name, sizeof name);
    if (r < 0)
        return cert_fail(a->e, r, "ACME: cannot name the account key: %s", strerror(-r));
    _cleanup_free_ char *dir = keel_strdup_printf("%s/acme", s->state_dir);
    _cleanup_free_ char *path = keel_strdup_printf("%s/acme/%s", s->state_dir, name);
    if (!dir || !path)
        return -ENOMEM;
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
    r = cert_read_key(path, &key, a->e);
    if (r == -ENOENT) {
        if ((r = cert_generate_key(s->config.acme.account_key_type, 2048, &key)) < 0)
            return cert_fail(a->e, r, "ACME: cannot generate an account key: %s", strerror(-r));
        if ((r = keel_dir_make(dir, 0700)) < 0 || (r = cert_write_key(path, key)) < 0)
            return cert_fail(a->e, r, "ACME: cannot write the account key '%s': %s", path, strerror(-r));
        CERT_LOG(KEEL_LOG_INFO, "Created the ACME account key[%s]", path);
    }
    if (r < 0)
        return r;
    return credential_new(key, NULL, NULL, &a->account);
}

/* Base64url without padding (RFC 4648 §5), as CAs hand out EAB MAC keys, into @ret (@size bytes);
 * the length decoded, or -EINVAL. */
static ssize_t base64url_decode(const char *in, size_t n, unsigned char *ret, size_t size)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t acc = 0;
    size_t bits = 0, o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = in[i] ? strchr(alphabet, in[i]) : NULL;
        if (!p)
            return -EINVAL;
        acc = acc << 6 | (uint32_t) (p - alphabet);
        if ((bits += 6) >= 8) {
            if (o == size)
                return -E2BIG;
            ret[o++] = (unsigned char) (acc >> (bits -= 8));
        }
    }
    return (ssize_t) o;
}

/* The MAC key of certificate.acme.eab_hmac_key_file: a file others cannot read, base64url. */
static ssize_t eab_key(acme *a, unsigned char *key, size_t size)
{
    const char *path = a->s->config.acme.eab_hmac_key_file;
    _cleanup_free_ char *text = NULL;
    size_t n = 0;
    mode_t mode = 0;
    int r = keel_file_read_secret(path, 4096, &text, &n, &mode);
    if (r == -EACCES && mode)
        return cert_fail(a->e, r,
                         "Permissions %04o for certificate.acme.eab_hmac_key_file '%s' are too open: " KEEL_SECRET_MODE_RULE,
                         (unsigned) mode, path);
    if (r < 0)
        return cert_fail(a->e, r, "certificate.acme.eab_hmac_key_file: cannot read '%s': %s", path, strerror(-r));
    while (n > 0 && strchr(" \t\r\n=", text[n - 1]))
        n--;
    ssize_t len = base64url_decode(text, n, key, size);
    explicit_bzero(text, n);
    if (len <= 0)
        return cert_fail(a->e, -EINVAL, "certificate.acme.eab_hmac_key_file '%s' is not a base64url key", path);
    return len;
}

/* RFC 8555 §7.3.4: the account key's JWK, signed with the CA's MAC key (HS256) under its key id,
 * for newAccount at @url. */
static int eab_binding(acme *a, const char *url, char **ret)
{
    unsigned char key[256], mac[EVP_MAX_MD_SIZE];
    ssize_t klen = eab_key(a, key, sizeof key);
    if (klen < 0)
        return (int) klen;
    char buf[1024];
    keel_strbuf sb = KEEL_STRBUF_INIT(buf);
    keel_strbuf_append(&sb, "{\"alg\":\"HS256\",\"kid\":\"");
    keel_strbuf_json(&sb, a->s->config.acme.eab_kid);
    keel_strbuf_append(&sb, "\",\"url\":\"");
    keel_strbuf_json(&sb, url);
    keel_strbuf_append(&sb, "\"}");
    const char *jwk = credential_jwk_members(a->account);
    _cleanup_free_ char *protected = NULL, *payload = NULL, *input = NULL, *signature = NULL;
    int r = sb.truncated ? -E2BIG : base64url(buf, sb.len, &protected);
    if (r >= 0)
        r = base64url(jwk, strlen(jwk), &payload);
    if (r >= 0 && !(input = keel_strdup_printf("%s.%s", protected, payload)))
        r = -ENOMEM;
    size_t mlen = 0;
    if (r >= 0 && !EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, (size_t) klen, (const unsigned char *) input, strlen(input),
                             mac, sizeof mac, &mlen))
        r = -EIO;
    explicit_bzero(key, sizeof key);
    if (r >= 0)
        r = base64url(mac, mlen, &signature);
    if (r >= 0 && !(*ret = keel_strdup_printf("{\"protected\":\"%s\",\"payload\":\"%s\",\"signature\":\"%s\"}", protected, payload,
                                              signature)))
        r = -ENOMEM;
    return r < 0 ? cert_fail(a->e, r, "ACME: cannot sign the external account binding: %s", strerror(-r)) : 0;
}

/* newAccount answers an existing account's URL too (RFC 8555 §7.3.1), so it is asked every time. */
int acme_find_or_create_account(acme *a)
{
    const char *email = a->s->config.acme.email;
    char buf[4096];
    keel_strbuf sb = KEEL_STRBUF_INIT(buf);
    keel_strbuf_append(&sb, "{\"termsOfServiceAgreed\":true");
    if (*email) {
        keel_strbuf_append(&sb, ",\"contact\":[\"mailto:");
        keel_strbuf_json(&sb, email);
        keel_strbuf_append(&sb, "\"]");
    }
    _cleanup_free_ char *binding = NULL;
    if (*a->s->config.acme.eab_kid) {
        int r = eab_binding(a, a->new_account_url, &binding);
        if (r < 0)
            return r;
        keel_strbuf_printf(&sb, ",\"externalAccountBinding\":%s", binding);
    }
    keel_strbuf_append(&sb, "}");
    if (sb.truncated)
        return cert_fail(a->e, -E2BIG, "certificate.acme.email: '%s' is too long", email);
    _cleanup_(json_decrefp) json_t *account = NULL;
    int r = acme_post_json(a, "newAccount", a->new_account_url, buf, &account, &a->kid);
    if (r < 0)
        return r;
    const char *status = acme_json_text(account, "status");
    if (status && !streq(status, "valid"))
        return cert_fail(a->e, -EACCES, "ACME newAccount: the account %s is %s", a->kid, status);
    return 0;
}
