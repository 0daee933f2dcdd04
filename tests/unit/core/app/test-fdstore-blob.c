/* SPDX-License-Identifier: MIT */
/* The format of a kept blob (core/app/fdstore-blob.c): what passes, and each refusal's errno. */
#include <stdio.h>

#include <openssl/evp.h>

#include <criterion/criterion.h>

#include "fdstore-internal.h"
#include "macro-internal.h"

static const uint8_t KEY[32] = "0123456789abcdef0123456789abcde";
static const uint8_t OTHER_KEY[32] = "0123456789abcdef0123456789abcdX";
static const char PAYLOAD[] = "tokens\0with a NUL inside";

static keel_build_id build;
static uint8_t *blob;
static size_t blob_size;

/* A blob of PAYLOAD from @b under @name into blob. */
static void pack(const keel_build_id *b, const char *name)
{
    free(blob);
    blob_size = keel__fdstore_blob_size(b, name, sizeof PAYLOAD);
    blob = malloc(blob_size);
    cr_assert_not_null(blob);
    cr_assert_eq(keel__fdstore_pack(b, name, PAYLOAD, sizeof PAYLOAD, KEY, sizeof KEY, blob), 0);
}

static int unpack(const keel_build_id *b, const char *name, const void *key, size_t size, char *error)
{
    const uint8_t *payload = NULL;
    size_t n = 0;
    int r = keel__fdstore_unpack(b, name, blob, size, key, sizeof KEY, &payload, &n, error);
    if (r >= 0) {
        cr_assert_eq(n, sizeof PAYLOAD);
        cr_assert_eq(memcmp(payload, PAYLOAD, n), 0);
        cr_assert_eq(payload, blob + blob_size - 32 - n, "in place, before the HMAC");
    }
    return r;
}

static void setup(void)
{
    cr_assert_eq(keel__build_id(&build), 0, "gcc and clang on Debian link a GNU build id");
    pack(&build, "token-cache");
}

static void teardown(void)
{
    free(blob);
    blob = NULL;
}

TestSuite(fdstore_blob, .init = setup, .fini = teardown, .timeout = 30);

Test(fdstore_blob, round_trip)
{
    char error[KEEL_FDSTORE_ERROR_MAX] = "";
    cr_assert_eq(unpack(&build, "token-cache", KEY, blob_size, error), 0, "%s", error);
    cr_assert_eq(blob_size, 20 + build.size + strlen("token-cache") + sizeof PAYLOAD + 32);
    cr_assert_eq(memcmp(blob, "KEELBLOB\x01\x00", 10), 0, "magic and version 1, little-endian");

    /* An empty payload is a payload. */
    blob_size = keel__fdstore_blob_size(&build, "empty", 0);
    cr_assert_eq(keel__fdstore_pack(&build, "empty", NULL, 0, KEY, sizeof KEY, blob), 0);
    const uint8_t *payload = NULL;
    size_t n = 1;
    cr_assert_eq(keel__fdstore_unpack(&build, "empty", blob, blob_size, KEY, sizeof KEY, &payload, &n, NULL), 0);
    cr_assert_eq(n, 0);
}

Test(fdstore_blob, the_mac_is_hmac_sha256_of_everything_before_it)
{
    uint8_t mac[32];
    size_t n = 0;
    cr_assert_not_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, KEY, sizeof KEY, blob, blob_size - 32, mac, sizeof mac, &n));
    cr_assert_eq(n, 32);
    cr_assert_eq(memcmp(mac, blob + blob_size - 32, 32), 0);
}

Test(fdstore_blob, another_key_or_any_altered_byte_is_a_bad_mac)
{
    char error[KEEL_FDSTORE_ERROR_MAX] = "";
    cr_assert_eq(unpack(&build, "token-cache", OTHER_KEY, blob_size, error), -EKEYREJECTED);
    cr_assert_str_eq(error, "its HMAC does not verify: saved under another key, or altered");
    /* Every byte of the payload and of the HMAC: the header's are refused for what they say. */
    for (size_t i = blob_size - 32 - sizeof PAYLOAD; i < blob_size; i++) {
        blob[i] ^= 0x01;
        cr_assert_eq(unpack(&build, "token-cache", KEY, blob_size, NULL), -EKEYREJECTED, "byte %zu", i);
        blob[i] ^= 0x01;
    }
    cr_assert_eq(unpack(&build, "token-cache", KEY, blob_size, NULL), 0);
}

Test(fdstore_blob, another_build_is_stale)
{
    keel_build_id other = build;
    other.bytes[0] ^= 0xff;
    char error[KEEL_FDSTORE_ERROR_MAX] = "";
    cr_assert_eq(unpack(&other, "token-cache", KEY, blob_size, error), -ESTALE);
    cr_assert(strstr(error, "saved by another build of the program (build id "), "%s", error);
    /* A build id of another length (another linker's choice) too. */
    other = build;
    other.size = 16;
    cr_assert_eq(unpack(&other, "token-cache", KEY, blob_size, NULL), -ESTALE);
    /* The MAC would verify: the build is what refuses it. */
    pack(&other, "token-cache");
    cr_assert_eq(unpack(&other, "token-cache", KEY, blob_size, NULL), 0);
    cr_assert_eq(unpack(&build, "token-cache", KEY, blob_size, NULL), -ESTALE);
}

Test(fdstore_blob, every_truncation_and_an_extra_byte_are_malformed)
{
    char error[KEEL_FDSTORE_ERROR_MAX] = "";
    for (size_t n = 0; n < blob_size; n++)
        cr_assert_eq(unpack(&build, "token-cache", KEY, n, error), -EBADMSG, "%zu bytes: %s", n, error);
    cr_assert(strstr(error, ": cut short"), "%s", error);
    uint8_t *longer = realloc(blob, blob_size + 1);
    cr_assert_not_null(longer);
    blob = longer;
    blob[blob_size] = 0;
    cr_assert_eq(unpack(&build, "token-cache", KEY, blob_size + 1, error), -EBADMSG);
}

Test(fdstore_blob, another_name_is_refused)
{
    char error[KEEL_FDSTORE_ERROR_MAX] = "";
    cr_assert_eq(unpack(&build, "token-cachf", KEY, blob_size, error), -EBADSLT);
    cr_assert_str_eq(error, "saved under another name ('token-cache')");
    cr_assert_eq(unpack(&build, "token", KEY, blob_size, NULL), -EBADSLT);
    cr_assert_eq(unpack(&build, "token-cache-2", KEY, blob_size, NULL), -EBADSLT);
}

Test(fdstore_blob, oversized)
{
    /* A header that claims more than a blob may carry, whatever follows it. */
    for (size_t i = 0; i < 8; i++)
        blob[12 + i] = 0xff;
    char error[KEEL_FDSTORE_ERROR_MAX] = "";
    cr_assert_eq(unpack(&build, "token-cache", KEY, blob_size, error), -EFBIG);
    cr_assert(strstr(error, "over the 67108864 allowed"), "%s", error);
    /* Saving more than that is refused before anything is read or made. */
    cr_assert_eq(keel_fdstore_save("token-cache", PAYLOAD, KEEL_FDSTORE_SIZE_MAX + 1, KEY, sizeof KEY), -EFBIG);
}

Test(fdstore_blob, bad_magic_version_and_header)
{
    blob[0] = 'k';
    cr_assert_eq(unpack(&build, "token-cache", KEY, blob_size, NULL), -EBADMSG);
    blob[0] = 'K';
    blob[8] = 2;
    cr_assert_eq(unpack(&build, "token-cache", KEY, blob_size, NULL), -EPROTONOSUPPORT);
    blob[8] = 1;
    blob[10] = 0; /* no build id */
    cr_assert_eq(unpack(&build, "token-cache", KEY, blob_size, NULL), -EBADMSG);
    blob[10] = (uint8_t) build.size;
    blob[20 + build.size + 5] = ':'; /* "token:cache" is no FDNAME */
    cr_assert_eq(unpack(&build, "token:cache", KEY, blob_size, NULL), -EBADMSG);
}

Test(fdstore_blob, names_and_keys_systemd_and_hmac_take)
{
    char longest[KEEL_FDSTORE_NAME_MAX + 2];
    memset(longest, 'n', sizeof longest);
    longest[KEEL_FDSTORE_NAME_MAX] = '\0';
    cr_assert(keel__fdstore_name_valid(longest));
    cr_assert(keel__fdstore_name_valid("a name with spaces~"));
    longest[KEEL_FDSTORE_NAME_MAX] = 'n';
    longest[KEEL_FDSTORE_NAME_MAX + 1] = '\0';
    const char *bad[] = { "", "a:b", "new\nline", "tab\t", "del\x7f", "caf\xc3\xa9", longest, NULL };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        cr_assert_not(keel__fdstore_name_valid(bad[i]), "%s", bad[i] ? bad[i] : "NULL");
        cr_assert_eq(keel_fdstore_save(bad[i], "x", 1, KEY, sizeof KEY), -EINVAL);
        cr_assert_eq(keel_fdstore_remove(bad[i]), -EINVAL);
        cr_assert_not(keel_fdstore_passed(bad[i]));
    }
    void *data = NULL;
    size_t size = 0;
    cr_assert_eq(keel_fdstore_save("ok", "x", 1, KEY, KEEL_FDSTORE_KEY_MIN - 1), -EINVAL);
    cr_assert_eq(keel_fdstore_save("ok", NULL, 1, KEY, sizeof KEY), -EINVAL);
    cr_assert_eq(keel_fdstore_load("ok", NULL, sizeof KEY, &data, &size, NULL), -EINVAL);
    cr_assert_eq(keel_fdstore_load("ok", KEY, sizeof KEY, NULL, &size, NULL), -EINVAL);
}

Test(fdstore_blob, the_build_id_is_the_programs_gnu_build_id)
{
    /* As binutils reads it from the file. */
    char cmd[256], line[512], hex[2 * KEEL_BUILD_ID_MAX + 1] = "";
    (void) snprintf(cmd, sizeof cmd, "readelf -n /proc/%d/exe 2>/dev/null", (int) getpid());
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    while (fgets(line, sizeof line, p))
        if (sscanf(line, " Build ID: %128[0-9a-f]", hex) == 1)
            break;
    (void) pclose(p);
    cr_assert_eq(strlen(hex), 2 * build.size, "readelf says '%s'", hex);
    for (size_t i = 0; i < build.size; i++) {
        unsigned byte;
        cr_assert_eq(sscanf(hex + 2 * i, "%2x", &byte), 1);
        cr_assert_eq(byte, build.bytes[i], "byte %zu", i);
    }
}
