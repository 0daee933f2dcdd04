/* SPDX-License-Identifier: MIT */
/* The dns-01 solver's pure parts (services/certificate/acme-dns01.c, dns-message.c): the TXT value,
 * the UPDATE and query messages byte for byte, the TSIG record and its MAC recomputed here from
 * RFC 8945's layout, and the reading of replies, malformed ones included. The exchanges with a
 * real server are tests/integration/test_dns01.py; a server of this test's own gives the replies knotd
 * never does: signed but never serving the record, unsigned, to another request. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <openssl/hmac.h>

#include "dns01.h"
#include "helpers.h"

TestSuite(dns01, .timeout = 60);

/* ---- the TXT value ---------------------------------------------------------------------------- */

Test(dns01, txt_value_is_base64url_sha256_without_padding)
{
    /* Vectors made apart from this code: printf %s KEYAUTH | openssl dgst -sha256 -binary |
     * basenc --base64url | tr -d = */
    char v[44];
    cr_assert_eq(dns01_txt_value("token.thumbprint", v), 0);
    cr_assert_str_eq(v, "61rBZ_4knHblO0MNoxFsXZ_eTFUHum0B6IVRbhvUn5I");
    cr_assert_eq(dns01_txt_value("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.nysa5Tu9jk3uJiXN3RVl8gyrIqJTjeiNRdQf9J6S9rg", v), 0);
    cr_assert_str_eq(v, "H2Gy6mUwvbrsBrW3esoqKqZWUhhGrkL-yLPGK1xQBNM");
    cr_assert_eq(strlen(v), 43);
    cr_assert_eq(dns01_txt_value("", v), -EINVAL);
    cr_assert_eq(dns01_txt_value(NULL, v), -EINVAL);
}

/* ---- messages --------------------------------------------------------------------------------- */

Test(dns01, update_adds_then_deletes_one_txt_record)
{
    static const uint8_t add[] = {
        0x12, 0x34, 0x28, 0x00, 0,   1,   0,   0,   0,   1,   0,   0,                     /* id, UPDATE, ZO 1, PR 0, UP 1, AD 0 */
        7,    'e',  'x',  'a',  'm', 'p', 'l', 'e', 4,   't', 'e', 's', 't', 0,           /* zone example.test. */
        0,    6,    0,    1,                                                              /* SOA IN */
        1,    'a',  7,    'e',  'x', 'a', 'm', 'p', 'l', 'e', 4,   't', 'e', 's', 't', 0, /* a.example.test. */
        0,    16,   0,    1,    0,   0,   0,   60,  0,   4,   3,   'a', 'b', 'c',         /* TXT IN 60 "abc" */
    };
    dns01_message m;
    cr_assert_eq(dns01_build_update(&m, 0x1234, "Example.Test.", "A.example.test", "abc", 60, DNS01_UPDATE_ADD), 0);
    cr_assert_eq(m.size, sizeof add);
    cr_assert_arr_eq(m.data, add, sizeof add);

    cr_assert_eq(dns01_build_update(&m, 0x1234, "example.test", "a.example.test", "abc", 60, DNS01_UPDATE_DELETE), 0);
    cr_assert_eq(m.size, sizeof add);
    /* RFC 2136 §2.5.4: class NONE, TTL 0, the same RDATA. */
    static const uint8_t del_rr[] = { 0, 16, 0, 254, 0, 0, 0, 0, 0, 4, 3, 'a', 'b', 'c' };
    cr_assert_arr_eq(m.data, add, sizeof add - sizeof del_rr);
    cr_assert_arr_eq(m.data + sizeof add - sizeof del_rr, del_rr, sizeof del_rr);
}

Test(dns01, names_and_values_that_are_not_are_refused)
{
    dns01_message m;
    char label64[80] = "";
    memset(label64, 'x', 64);
    cr_assert_eq(dns01_build_update(&m, 1, "example.test", label64, "v", 60, DNS01_UPDATE_ADD), -EINVAL);
    cr_assert_eq(dns01_build_update(&m, 1, "example..test", "a.example.test", "v", 60, DNS01_UPDATE_ADD), -EINVAL);
    cr_assert_eq(dns01_build_update(&m, 1, "", "a.example.test", "v", 60, DNS01_UPDATE_ADD), 0); /* the root zone */
    char value[300];
    memset(value, 'v', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    cr_assert_eq(dns01_build_update(&m, 1, "example.test", "a.example.test", value, 60, DNS01_UPDATE_ADD), -EINVAL);
    char name[300] = "";
    for (int i = 0; i < 40; i++)
        strcat(name, "abcdef.");
    cr_assert_eq(dns01_build_query(&m, 1, name, DNS01_TYPE_TXT), -EINVAL); /* 281 bytes in wire form */
    char canon[DNS01_NAME_MAX + 1];
    cr_assert_eq(dns01_name_canonical("Www.Example.TEST", canon), 0);
    cr_assert_str_eq(canon, "www.example.test.");
}

/* ---- TSIG --------------------------------------------------------------------------------------- */

static dns01_key test_key(dns01_algorithm a)
{
    dns01_key k = { .name = "keel-test.", .algorithm = a, .secret_size = 32 };
    for (size_t i = 0; i < k.secret_size; i++)
        k.secret[i] = (uint8_t) i;
    return k;
}

static const uint8_t key_name_wire[] = { 9, 'k', 'e', 'e', 'l', '-', 't', 'e', 's', 't', 0 };
static const uint8_t sha256_wire[] = { 11, 'h', 'm', 'a', 'c', '-', 's', 'h', 'a', '2', '5', '6', 0 };

/* The MAC RFC 8945 §4.3 defines, over the pieces as this test writes them out. */
static void expected_mac(const dns01_key *k, const uint8_t *prefix, size_t prefix_size, const uint8_t *msg, size_t msg_size,
                         uint64_t now, uint16_t error, uint8_t *ret, unsigned *ret_size)
{
    uint8_t in[1024];
    size_t n = 0;
    if (prefix_size)
        memcpy(in + n, prefix, prefix_size), n += prefix_size;
    memcpy(in + n, msg, msg_size), n += msg_size;
    memcpy(in + n, key_name_wire, sizeof key_name_wire), n += sizeof key_name_wire;
    const uint8_t class_ttl[] = { 0, 255, 0, 0, 0, 0 };
    memcpy(in + n, class_ttl, sizeof class_ttl), n += sizeof class_ttl;
    memcpy(in + n, sha256_wire, sizeof sha256_wire), n += sizeof sha256_wire;
    const uint8_t vars[] = { 0,
                             0,
                             (uint8_t) (now >> 24),
                             (uint8_t) (now >> 16),
                             (uint8_t) (now >> 8),
                             (uint8_t) now,
                             1,
                             44,
                             (uint8_t) (error >> 8),
                             (uint8_t) error,
                             0,
                             0 };
    memcpy(in + n, vars, sizeof vars), n += sizeof vars;
    cr_assert_not_null(HMAC(EVP_sha256(), k->secret, (int) k->secret_size, in, n, ret, ret_size));
}

Test(dns01, sign_appends_the_tsig_record_of_rfc8945)
{
    dns01_key k = test_key(DNS01_HMAC_SHA256);
    dns01_message m;
    cr_assert_eq(dns01_build_query(&m, 0xabcd, "example.test", DNS01_TYPE_SOA), 0);
    dns01_message unsigned_msg = m;
    uint8_t mac[64], want[64];
    size_t mac_size = 0;
    unsigned want_size = 0;
    cr_assert_eq(dns01_sign(&m, &k, 1700000000, mac, &mac_size), 0);
    expected_mac(&k, NULL, 0, unsigned_msg.data, unsigned_msg.size, 1700000000, 0, want, &want_size);
    cr_assert_eq(mac_size, 32);
    cr_assert_arr_eq(mac, want, 32);

    cr_assert_eq(m.data[11], 1); /* ARCOUNT */
    const uint8_t *rr = m.data + unsigned_msg.size;
    cr_assert_arr_eq(rr, key_name_wire, sizeof key_name_wire);
    rr += sizeof key_name_wire;
    const uint8_t head[] = { 0, 250, 0, 255, 0, 0, 0, 0, 0, 13 + 6 + 2 + 2 + 32 + 6 };
    cr_assert_arr_eq(rr, head, sizeof head);
    rr += sizeof head;
    cr_assert_arr_eq(rr, sha256_wire, sizeof sha256_wire);
    rr += sizeof sha256_wire;
    const uint8_t time_fudge_size[] = { 0, 0, 0x65, 0x53, 0xf1, 0x00, 1, 44, 0, 32 };
    cr_assert_arr_eq(rr, time_fudge_size, sizeof time_fudge_size);
    rr += sizeof time_fudge_size + 32;
    const uint8_t tail[] = { 0xab, 0xcd, 0, 0, 0, 0 };
    cr_assert_arr_eq(rr, tail, sizeof tail);
    cr_assert_eq(rr + sizeof tail, m.data + m.size);
}

/* Signs the reply @m to @request_mac as a server does (RFC 8945 §5.3), with @error. */
static void sign_reply(const dns01_key *k, const uint8_t *request_mac, size_t mac_size, uint16_t error, dns01_message *m)
{
    uint8_t prefix[2 + 64] = { 0, (uint8_t) mac_size }, mac[64];
    memcpy(prefix + 2, request_mac, mac_size);
    unsigned size = 0;
    uint64_t now = (uint64_t) time(NULL);
    expected_mac(k, prefix, 2 + mac_size, m->data, m->size, now, error, mac, &size);
    uint8_t *p = m->data + m->size;
    memcpy(p, key_name_wire, sizeof key_name_wire), p += sizeof key_name_wire;
    const uint8_t head[] = { 0, 250, 0, 255, 0, 0, 0, 0, 0, 13 + 10 + 32 + 6 };
    memcpy(p, head, sizeof head), p += sizeof head;
    memcpy(p, sha256_wire, sizeof sha256_wire), p += sizeof sha256_wire;
    const uint8_t vars[] = {
        0, 0, (uint8_t) (now >> 24), (uint8_t) (now >> 16), (uint8_t) (now >> 8), (uint8_t) now, 1, 44, 0, 32
    };
    memcpy(p, vars, sizeof vars), p += sizeof vars;
    memcpy(p, mac, 32), p += 32;
    const uint8_t tail[] = { m->data[0], m->data[1], (uint8_t) (error >> 8), (uint8_t) error, 0, 0 };
    memcpy(p, tail, sizeof tail), p += sizeof tail;
    m->size = (size_t) (p - m->data);
    m->data[11]++;
}

/* A reply to @request_mac, signed, with @error. */
static void signed_reply(const dns01_key *k, const uint8_t *request_mac, size_t mac_size, uint16_t error, dns01_message *ret)
{
    cr_assert_eq(dns01_build_query(ret, 0x0102, "example.test", DNS01_TYPE_SOA), 0);
    ret->data[2] |= 0x80; /* QR */
    sign_reply(k, request_mac, mac_size, error, ret);
}

Test(dns01, a_reply_is_verified_against_the_request_mac)
{
    dns01_key k = test_key(DNS01_HMAC_SHA256);
    uint8_t request_mac[32];
    memset(request_mac, 0x5a, sizeof request_mac);
    dns01_message r;
    signed_reply(&k, request_mac, sizeof request_mac, 0, &r);
    dns01_reply reply;
    cr_assert_eq(dns01_parse_reply(r.data, r.size, &k, request_mac, sizeof request_mac, &reply), 0);
    cr_assert_eq(reply.id, 0x0102);
    cr_assert(reply.tsig);
    cr_assert(reply.tsig_verified);
    cr_assert_eq(reply.tsig_error, 0);

    /* A record after the TSIG record, which its MAC does not cover: not verified. */
    dns01_message longer = r;
    static const uint8_t extra[] = { 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0 };
    memcpy(longer.data + longer.size, extra, sizeof extra);
    longer.size += sizeof extra;
    longer.data[11] = 2;
    cr_assert_eq(dns01_parse_reply(longer.data, longer.size, &k, request_mac, sizeof request_mac, &reply), 0);
    cr_assert_not(reply.tsig_verified);

    /* Another request's MAC, another secret, a flipped bit: not verified. */
    request_mac[0] ^= 1;
    cr_assert_eq(dns01_parse_reply(r.data, r.size, &k, request_mac, sizeof request_mac, &reply), 0);
    cr_assert_not(reply.tsig_verified);
    request_mac[0] ^= 1;
    dns01_key other = k;
    other.secret[0] ^= 1;
    cr_assert_eq(dns01_parse_reply(r.data, r.size, &other, request_mac, sizeof request_mac, &reply), 0);
    cr_assert_not(reply.tsig_verified);
    r.data[3] ^= 1;
    cr_assert_eq(dns01_parse_reply(r.data, r.size, &k, request_mac, sizeof request_mac, &reply), 0);
    cr_assert_not(reply.tsig_verified);

    signed_reply(&k, request_mac, sizeof request_mac, DNS01_TSIG_BADSIG, &r);
    cr_assert_eq(dns01_parse_reply(r.data, r.size, &k, request_mac, sizeof request_mac, &reply), 0);
    cr_assert_eq(reply.tsig_error, DNS01_TSIG_BADSIG);
}

/* ---- reading replies -------------------------------------------------------------------------- */

/* _acme-challenge.example.test. TXT, answered with a compressed owner. */
static const uint8_t txt_reply[] = {
    0,   7,   0x84, 0,   0,    1,   0,   1,  0,   0,   0,   0,   15,  '_', 'a', 'c', 'm', 'e', '-', 'c', 'h',
    'a', 'l', 'l',  'e', 'n',  'g', 'e', 7,  'e', 'x', 'a', 'm', 'p', 'l', 'e', 4,   't', 'e', 's', 't', 0,
    0,   16,  0,    1,   0xc0, 12,  0,   16, 0,   1,   0,   0,   0,   60,  0,   4,   3,   'x', 'y', 'z',
};

Test(dns01, txt_answers_are_found_through_compression)
{
    const char *name = "_acme-challenge.example.test";
    cr_assert_eq(dns01_reply_has_txt(txt_reply, sizeof txt_reply, name, "xyz"), 1);
    cr_assert_eq(dns01_reply_has_txt(txt_reply, sizeof txt_reply, "_ACME-challenge.example.test.", "xyz"), 1);
    cr_assert_eq(dns01_reply_has_txt(txt_reply, sizeof txt_reply, name, "xy"), 0);
    cr_assert_eq(dns01_reply_has_txt(txt_reply, sizeof txt_reply, "example.test", "xyz"), 0);
    dns01_reply reply;
    cr_assert_eq(dns01_parse_reply(txt_reply, sizeof txt_reply, NULL, NULL, 0, &reply), 0);
    cr_assert_eq(reply.id, 7);
    cr_assert_eq(reply.rcode, 0);
    cr_assert_not(reply.tsig);
}

Test(dns01, malformed_replies_are_ebadmsg)
{
    const char *name = "_acme-challenge.example.test";
    for (size_t n = 0; n < sizeof txt_reply; n++)
        cr_assert_eq(dns01_reply_has_txt(txt_reply, n, name, "xyz"), -EBADMSG, "truncated at %zu", n);
    uint8_t loop[sizeof txt_reply];
    memcpy(loop, txt_reply, sizeof loop);
    loop[45] = 0xc0, loop[46] = 45; /* the answer's owner points at itself */
    cr_assert_eq(dns01_reply_has_txt(loop, sizeof loop, name, "xyz"), -EBADMSG);
    /* A label "e.ample" would read as two: such a name is no name of ours. */
    uint8_t dotted[sizeof txt_reply];
    memcpy(dotted, txt_reply, sizeof dotted);
    dotted[30] = '.';
    cr_assert_eq(dns01_reply_has_txt(dotted, sizeof dotted, "_acme-challenge.e.ample.test", "xyz"), -EBADMSG);
    dotted[30] = '\0';
    cr_assert_eq(dns01_reply_has_txt(dotted, sizeof dotted, name, "xyz"), -EBADMSG);
    dns01_reply reply;
    uint8_t query[sizeof txt_reply];
    memcpy(query, txt_reply, sizeof query);
    query[2] &= 0x7f; /* not a reply */
    cr_assert_eq(dns01_parse_reply(query, sizeof query, NULL, NULL, 0, &reply), -EBADMSG);
}

Test(dns01, the_zone_is_the_owner_of_the_soa_in_authority)
{
    /* NXDOMAIN for _acme-challenge.www.example.test. SOA, the zone's SOA in authority. */
    static const uint8_t nx[] = {
        0,   9,    0x84, 3,   0, 1,   0,   0,   0, 1,   0,   0,   15,  '_', 'a', 'c', 'm', 'e',  '-', 'c', 'h', 'a', 'l', 'l',
        'e', 'n',  'g',  'e', 3, 'w', 'w', 'w', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 4,   't',  'e', 's', 't', 0,   0,   6,
        0,   1,    0xc0, 32,  0, 6,   0,   1,   0, 0,   0,   60,  0,   33,  2,   'n', 's', 0xc0, 32,  5,   'a', 'd', 'm', 'i',
        'n', 0xc0, 32,   0,   0, 0,   1,   0,   0, 14,  16,  0,   0,   2,   88,  0,   1,   81,   128, 0,   0,   0,   60,
    };
    char zone[DNS01_NAME_MAX + 1] = "";
    cr_assert_eq(dns01_reply_soa_owner(nx, sizeof nx, zone), 0);
    cr_assert_str_eq(zone, "example.test.");
    cr_assert_eq(dns01_reply_soa_owner(nx, sizeof nx - 1, zone), -EBADMSG); /* RDATA shorter than it says */
    cr_assert_eq(dns01_reply_soa_owner(txt_reply, sizeof txt_reply, zone), -ENOENT);
}

Test(dns01, rcodes_have_their_names)
{
    char b[16];
    cr_assert_str_eq(dns01_rcode_name(0, b), "NOERROR");
    cr_assert_str_eq(dns01_rcode_name(5, b), "REFUSED");
    cr_assert_str_eq(dns01_rcode_name(9, b), "NOTAUTH");
    cr_assert_str_eq(dns01_rcode_name(16, b), "BADSIG");
    cr_assert_str_eq(dns01_rcode_name(18, b), "BADTIME");
    cr_assert_str_eq(dns01_rcode_name(12, b), "RCODE12");
}

/* ---- the solver's configuration --------------------------------------------------------------- */

static dns01_config config_with_secret(const char *secret, mode_t mode)
{
    char *path = test_write_file(test_tmpdir(), "tsig.secret", secret);
    cr_assert_eq(chmod(path, mode), 0);
    return (dns01_config){ .server = { .host = "127.0.0.1", .port = 53 },
                           .zone = "example.test",
                           .tsig_name = "Keel-Test",
                           .tsig_algorithm = DNS01_HMAC_SHA512,
                           .tsig_secret_file = path,
                           .timeout = KEEL_USEC_PER_SEC };
}

Test(dns01, a_solver_reads_its_key_once)
{
    dns01_config c = config_with_secret("AAECAwQFBgcICQoLDA0ODw==\n", 0600);
    cert_error e = { .text = "" };
    _cleanup_(dns01_solver_freep) dns01_solver *s = NULL;
    cr_assert_eq(dns01_solver_new(&c, &s, &e), 0, "%s", e.text);
    cr_assert_not_null(s);
    free(c.tsig_secret_file);
}

Test(dns01, a_solver_refuses_what_it_cannot_use)
{
    cert_error e = { .text = "" };
    dns01_solver *s = NULL;
    dns01_config c = config_with_secret("AAECAwQFBgcICQoLDA0ODw==", 0644);
    cr_assert_eq(dns01_solver_new(&c, &s, &e), -EACCES);
    cr_assert(strstr(e.text, "are too open"), "%s", e.text);
    free(c.tsig_secret_file);

    c = config_with_secret("not base64!", 0600);
    cr_assert_eq(dns01_solver_new(&c, &s, &e), -EINVAL);
    cr_assert(strstr(e.text, "is not a base64 key"), "%s", e.text);
    free(c.tsig_secret_file);

    c = config_with_secret("AAECAwQFBgcICQoLDA0ODw==", 0600);
    c.server = (keel_address){ .host = "ns.example.test", .port = 53 };
    cr_assert_eq(dns01_solver_new(&c, &s, &e), -EINVAL);
    cr_assert_str_eq(e.text, "certificate.acme.dns01.server 'ns.example.test:53' is not a numeric address and port");
    c.server = (keel_address){ .host = "::1", .port = 5353 };
    c.tsig_name = "";
    cr_assert_eq(dns01_solver_new(&c, &s, &e), -EINVAL);
    cr_assert(strstr(e.text, "set certificate.acme.dns01.tsig_name"), "%s", e.text);
    c.tsig_name = "a..b";
    cr_assert_eq(dns01_solver_new(&c, &s, &e), -EINVAL);
    c.tsig_name = "keel-test";
    c.tsig_algorithm = _DNS01_ALGORITHM_MAX;
    cr_assert_eq(dns01_solver_new(&c, &s, &e), -EINVAL);
    cr_assert_null(s);
    free(c.tsig_secret_file);
}

/* ---- the solver against a server of this test's own -------------------------------------------- */

/* How the server answers an UPDATE; every query it answers with no record. */
typedef enum fake_mode {
    FAKE_SIGNED,   /* NOERROR, signed: the update is done */
    FAKE_UNSIGNED, /* NOERROR without a TSIG record */
    FAKE_OTHER_ID, /* NOERROR, signed, to another request id */
} fake_mode;

typedef struct fake {
    int listen_fd;
    uint16_t port;
    fake_mode mode;
    pthread_t thread;
} fake;

static bool read_exactly(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        ssize_t k = poll(&pfd, 1, 5000) == 1 ? read(fd, p, n) : -1;
        if (k <= 0)
            return false;
        p += k, n -= (size_t) k;
    }
    return true;
}

/* The reply to @req: its header and first question or zone section, then a TSIG record. */
static void answer_request(const fake *f, const dns01_message *req, dns01_message *ret)
{
    size_t end = 12;
    while (req->data[end])
        end += 1u + req->data[end];
    end += 1 + 4;
    memcpy(ret->data, req->data, end);
    ret->size = end;
    ret->data[2] |= 0x80;
    memset(ret->data + 6, 0, 6); /* AN/PR, NS/UP, AR/AD */
    bool update = (req->data[2] >> 3 & 0xf) == 5;
    if (!update || f->mode == FAKE_UNSIGNED)
        return;
    dns01_key k = test_key(DNS01_HMAC_SHA256);
    if (f->mode == FAKE_OTHER_ID)
        ret->data[1] ^= 1;
    sign_reply(&k, req->data + req->size - 6 - 32, 32, 0, ret);
}

static void *fake_serve(void *userdata)
{
    fake *f = userdata;
    for (;;) {
        int fd = accept(f->listen_fd, NULL, NULL);
        if (fd < 0)
            return NULL; /* shut down */
        uint8_t len[2];
        dns01_message req, reply;
        while (read_exactly(fd, len, 2) && (req.size = (size_t) (len[0] << 8 | len[1])) <= sizeof req.data &&
               read_exactly(fd, req.data, req.size)) {
            answer_request(f, &req, &reply);
            uint8_t out[2 + sizeof reply.data] = { (uint8_t) (reply.size >> 8), (uint8_t) reply.size };
            memcpy(out + 2, reply.data, reply.size);
            if (write(fd, out, 2 + reply.size) != (ssize_t) (2 + reply.size))
                break;
        }
        close(fd);
    }
}

static void fake_start(fake *f, fake_mode mode)
{
    *f = (fake){ .listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), .mode = mode };
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    cr_assert_eq(bind(f->listen_fd, (struct sockaddr *) &a, sizeof a), 0);
    cr_assert_eq(listen(f->listen_fd, 8), 0);
    cr_assert_eq(getsockname(f->listen_fd, (struct sockaddr *) &a, &len), 0);
    f->port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&f->thread, NULL, fake_serve, f), 0);
}

static void fake_stop(fake *f)
{
    (void) shutdown(f->listen_fd, SHUT_RDWR); /* accept() returns */
    cr_assert_eq(pthread_join(f->thread, NULL), 0);
    close(f->listen_fd);
}

static int present_stopped(const fake *f, keel_usec_t propagation, const dns01_stop *stop, cert_error *e);

static int present_at(const fake *f, keel_usec_t propagation, cert_error *e)
{
    return present_stopped(f, propagation, NULL, e);
}

static int present_stopped(const fake *f, keel_usec_t propagation, const dns01_stop *stop, cert_error *e)
{
    /* The secret of test_key(): bytes 0 to 31. */
    dns01_config c = config_with_secret("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", 0600);
    c.server = (keel_address){ .host = "127.0.0.1", .port = f->port };
    c.tsig_name = "keel-test";
    c.tsig_algorithm = DNS01_HMAC_SHA256;
    c.propagation = propagation;
    _cleanup_(dns01_solver_freep) dns01_solver *s = NULL;
    int r = dns01_solver_new(&c, &s, e);
    free(c.tsig_secret_file);
    if (r >= 0 && stop)
        dns01_solver_set_stop(s, stop);
    return r < 0 ? r : dns01_present(s, "www.example.test", "token.thumbprint", e);
}

/* A stop that comes at the second pause of the propagation wait. */
static int stop_at_second_pause(keel_usec_t usec, void *userdata)
{
    int *pauses = userdata;
    return ++*pauses >= 2 ? -ECANCELED : 0;
}

Test(dns01, a_stop_ends_the_propagation_wait)
{
    fake f;
    fake_start(&f, FAKE_SIGNED);
    cert_error e = { .text = "" };
    int pauses = 0;
    dns01_stop stop = { .wait = stop_at_second_pause, .userdata = &pauses, .fd = -EBADF };
    keel_usec_t start = keel_now();
    cr_assert_eq(present_stopped(&f, 60 * KEEL_USEC_PER_SEC, &stop, &e), -ECANCELED);
    cr_assert_eq(pauses, 2);
    cr_assert(keel_now() - start < 5 * KEEL_USEC_PER_SEC);
    cr_assert(strstr(e.text, "stopped while waiting for 127.0.0.1:"), "%s", e.text);

    /* A descriptor readable at the stop ends an exchange too, before any pause. */
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(write(p[1], "x", 1), 1);
    stop = (dns01_stop){ .fd = p[0] };
    cr_assert_eq(present_stopped(&f, 60 * KEEL_USEC_PER_SEC, &stop, &e), -ECANCELED);
    cr_assert(strstr(e.text, ": stopped"), "%s", e.text);
    close(p[0]);
    close(p[1]);
    fake_stop(&f);
}

Test(dns01, the_issuance_deadline_ends_the_propagation_wait_first)
{
    fake f;
    fake_start(&f, FAKE_SIGNED);
    cert_error e = { .text = "" };
    dns01_stop stop = { .fd = -EBADF, .deadline = keel_now() + 700 * KEEL_USEC_PER_MSEC };
    keel_usec_t start = keel_now();
    cr_assert_eq(present_stopped(&f, 60 * KEEL_USEC_PER_SEC, &stop, &e), -ETIMEDOUT);
    cr_assert(keel_now() - start < 3 * KEEL_USEC_PER_SEC);
    cr_assert(strstr(e.text, "(the end of certificate.acme.timeout)"), "%s", e.text);
    fake_stop(&f);
}

Test(dns01, present_waits_for_the_record_within_its_bound)
{
    fake f;
    fake_start(&f, FAKE_SIGNED);
    cert_error e = { .text = "" };
    cr_assert_eq(present_at(&f, 0, &e), 0, "%s", e.text); /* no wait: the signed NOERROR is enough */
    keel_usec_t start = keel_now();
    cr_assert_eq(present_at(&f, 1200 * KEEL_USEC_PER_MSEC, &e), -ETIMEDOUT);
    keel_usec_t took = keel_now() - start;
    cr_assert(took >= 1200 * KEEL_USEC_PER_MSEC && took < 4 * KEEL_USEC_PER_SEC, "took %llu us", (unsigned long long) took);
    cr_assert(strstr(e.text,
                     "does not answer TXT _acme-challenge.www.example.test. \"61rBZ_4knHblO0MNoxFsXZ_eTFUHum0B6IVRbhvUn5I\" "
                     "1.2s after adding it"),
              "%s", e.text);
    fake_stop(&f);
}

Test(dns01, a_reply_not_signed_by_the_key_or_to_another_request_fails)
{
    fake f;
    cert_error e = { .text = "" };
    fake_start(&f, FAKE_UNSIGNED);
    cr_assert_eq(present_at(&f, 0, &e), -EBADMSG);
    cr_assert(strstr(e.text, "is not signed by key keel-test. (hmac-sha256)"), "%s", e.text);
    fake_stop(&f);
    fake_start(&f, FAKE_OTHER_ID);
    cr_assert_eq(present_at(&f, 0, &e), -EBADMSG);
    cr_assert(strstr(e.text, "with no DNS reply to it"), "%s", e.text);
    fake_stop(&f);
}

/* ---- a server that never answers, and a stop ---------------------------------------------------- */

/* A listener nobody accepts from: the kernel completes the connection, no reply ever comes. */
static int silent_listen(uint16_t *ret_port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *) &a, sizeof a), 0);
    cr_assert_eq(listen(fd, 8), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *) &a, &len), 0);
    *ret_port = ntohs(a.sin_port);
    return fd;
}

/* A solver for @port whose exchanges may take 30 s, stopped by @stop. */
static dns01_solver *slow_solver(uint16_t port, const dns01_stop *stop)
{
    dns01_config c = config_with_secret("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", 0600);
    c.server = (keel_address){ .host = "127.0.0.1", .port = port };
    c.tsig_name = "keel-test";
    c.tsig_algorithm = DNS01_HMAC_SHA256; /* test_key(), which the fake signs with */
    c.timeout = 30 * KEEL_USEC_PER_SEC;
    cert_error e = { .text = "" };
    dns01_solver *s = NULL;
    cr_assert_eq(dns01_solver_new(&c, &s, &e), 0, "%s", e.text);
    free(c.tsig_secret_file);
    dns01_solver_set_stop(s, stop);
    return s;
}

/* A stop without a descriptor (a refresh task's) that comes after @userdata's first asks. */
static bool cancelled_after_a_few(void *userdata)
{
    int *asked = userdata;
    return ++*asked > 3;
}

Test(dns01, a_stop_asked_between_polls_ends_an_exchange_with_a_silent_server)
{
    uint16_t port;
    _cleanup_close_ int silent = silent_listen(&port);
    cr_assert_geq(silent, 0);
    int asked = 0;
    dns01_stop stop = { .cancelled = cancelled_after_a_few, .userdata = &asked, .fd = -EBADF };
    _cleanup_(dns01_solver_freep) dns01_solver *s = slow_solver(port, &stop);
    cert_error e = { .text = "" };
    keel_usec_t start = keel_now();
    cr_assert_eq(dns01_present(s, "www.example.test", "token.thumbprint", &e), -ECANCELED);
    keel_usec_t took = keel_now() - start;
    cr_assert(took < 5 * DNS01_STOP_POLL, "took %llu us", (unsigned long long) took);
    cr_assert(strstr(e.text, "cannot add TXT _acme-challenge.www.example.test. in zone example.test. at 127.0.0.1:"), "%s", e.text);
    cr_assert(strstr(e.text, ": stopped"), "%s", e.text);
}

static bool always(void *userdata)
{
    return true;
}

Test(dns01, a_deletion_at_a_stop_waits_for_a_silent_server_only_briefly)
{
    uint16_t port;
    _cleanup_close_ int silent = silent_listen(&port);
    cr_assert_geq(silent, 0);
    dns01_stop stop = { .cancelled = always, .fd = -EBADF };
    _cleanup_(dns01_solver_freep) dns01_solver *s = slow_solver(port, &stop);
    cert_error e = { .text = "" };
    keel_usec_t start = keel_now();
    cr_assert_eq(dns01_cleanup(s, "www.example.test", "token.thumbprint", &e), -ETIMEDOUT);
    keel_usec_t took = keel_now() - start;
    cr_assert(took >= DNS01_STOP_CLEANUP && took < 3 * DNS01_STOP_CLEANUP, "took %llu us", (unsigned long long) took);
    cr_assert(strstr(e.text, "no reply within 1s (the bound of a deletion at a stop)"), "%s", e.text);
}

Test(dns01, a_deletion_at_a_stop_still_reaches_a_server_that_answers)
{
    fake f;
    fake_start(&f, FAKE_SIGNED);
    dns01_stop stop = { .cancelled = always, .fd = -EBADF };
    _cleanup_(dns01_solver_freep) dns01_solver *s = slow_solver(f.port, &stop);
    cert_error e = { .text = "" };
    cr_assert_eq(dns01_cleanup(s, "www.example.test", "token.thumbprint", &e), 0, "%s", e.text);
    fake_stop(&f);
}
