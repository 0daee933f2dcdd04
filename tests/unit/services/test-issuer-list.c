/* SPDX-License-Identifier: MIT */
/* certificate.issuers, its pure part in services/certificate/issuer-list.c: what an entry names,
 * the retry budget of one issuer, and the file of each ACME CA's account key. */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "certificate.h"

#define SEC KEEL_USEC_PER_SEC
#define URL "https://acme.example/dir"

TestSuite(issuer_list, .timeout = 30);

Test(issuer_list, reads_each_kind)
{
    cert_issuer i;
    cr_assert_eq(cert_issuer_parse("acme", URL, &i), 0);
    cr_assert_eq(i.kind, CERT_ISSUER_ACME);
    cr_assert_str_eq(i.directory_url, URL);
    cr_assert_str_eq(i.name, "acme");
    cr_assert_eq(cert_issuer_parse("acme:https://127.0.0.1:14001/dir", URL, &i), 0);
    cr_assert_eq(i.kind, CERT_ISSUER_ACME);
    cr_assert_str_eq(i.directory_url, "https://127.0.0.1:14001/dir");
    cr_assert_str_eq(i.name, "acme:https://127.0.0.1:14001/dir");
    cr_assert_eq(cert_issuer_parse("local", "", &i), 0);
    cr_assert_eq(i.kind, CERT_ISSUER_LOCAL);
    cr_assert_null(i.directory_url);
    cr_assert_eq(cert_issuer_parse("file", NULL, &i), 0);
    cr_assert_eq(i.kind, CERT_ISSUER_FILE);
}

Test(issuer_list, refuses_what_it_does_not_know_and_leaves_the_result)
{
    cert_issuer i = { .kind = CERT_ISSUER_FILE, .name = "kept" };
    cr_assert_eq(cert_issuer_parse("letsencrypt", URL, &i), -EINVAL);
    cr_assert_eq(cert_issuer_parse("", URL, &i), -EINVAL);
    cr_assert_eq(cert_issuer_parse("Local", URL, &i), -EINVAL);
    cr_assert_eq(cert_issuer_parse("local-ca", URL, &i), -EINVAL);
    cr_assert_eq(cert_issuer_parse("acme", "", &i), -ENOENT, "acme without certificate.acme.directory_url");
    cr_assert_eq(cert_issuer_parse("acme", NULL, &i), -ENOENT);
    cr_assert_eq(cert_issuer_parse("acme:http://acme.example/dir", URL, &i), -EPROTONOSUPPORT);
    cr_assert_eq(cert_issuer_parse("acme:", URL, &i), -EPROTONOSUPPORT);
    cr_assert_eq(cert_issuer_parse("acme:https://", URL, &i), -EPROTONOSUPPORT);
    cr_assert_eq(cert_issuer_parse("acme", "http://acme.example/dir", &i), -EPROTONOSUPPORT, "directory_url is checked too");
    cr_assert_eq(i.kind, CERT_ISSUER_FILE);
    cr_assert_str_eq(i.name, "kept");
}

Test(issuer_list, the_pauses_double_as_the_refresh_backoff)
{
    cr_assert_eq(cert_issuer_pause(0), 0);
    cr_assert_eq(cert_issuer_pause(1), 1 * SEC);
    cr_assert_eq(cert_issuer_pause(2), 2 * SEC);
    cr_assert_eq(cert_issuer_pause(3), 4 * SEC);
    cr_assert_eq(cert_issuer_pause(9), 256 * SEC);
    cr_assert_eq(cert_issuer_pause(10), CERT_BACKOFF_MAX);
    cr_assert_eq(cert_issuer_pause(1000), CERT_BACKOFF_MAX);
}

Test(issuer_list, the_budget_is_the_pauses_between_the_attempts)
{
    cr_assert_eq(cert_issuer_budget(0), 0);
    cr_assert_eq(cert_issuer_budget(1), 0, "one attempt: no pause");
    cr_assert_eq(cert_issuer_budget(2), 1 * SEC);
    cr_assert_eq(cert_issuer_budget(3), 3 * SEC, "the default: 1 s + 2 s");
    cr_assert_eq(cert_issuer_budget(10), 511 * SEC, "the most certificate.issuer_attempts allows: under 9 minutes");
}

Test(issuer_list, the_first_ca_keeps_the_account_of_old)
{
    char name[64];
    cr_assert_eq(cert_acme_account_file(URL, URL, name, sizeof name), 0);
    cr_assert_str_eq(name, "account.key.pem");
    cr_assert_eq(cert_acme_account_file("https://127.0.0.1:14001/dir", URL, name, sizeof name), 0);
    cr_assert_eq(strlen(name), strlen("account-0123456789abcdef.key.pem"), "%s", name);
    cr_assert_eq(strncmp(name, "account-", 8), 0, "%s", name);
    char other[64];
    cr_assert_eq(cert_acme_account_file("https://127.0.0.1:14002/dir", URL, other, sizeof other), 0);
    cr_assert_str_neq(name, other, "one account per CA");
    cr_assert_eq(cert_acme_account_file("https://127.0.0.1:14001/dir", "", other, sizeof other), 0);
    cr_assert_str_eq(name, other, "the same CA, the same file");
    cr_assert_eq(cert_acme_account_file(URL, URL, name, 8), -ENAMETOOLONG);
}
