/* SPDX-License-Identifier: MIT */
/* The few DNS messages the dns-01 solver sends and reads (RFC 1035, RFC 2136 UPDATE) and their TSIG
 * signatures (RFC 8945), by hand: docs/decisions/0031 says why not ldns. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "dns01.h"

#define CLASS_IN      1
#define CLASS_NONE    254 /* RFC 2136 §2.5.4: delete this RR */
#define CLASS_ANY     255
#define OPCODE_UPDATE (5 << 11)
#define TSIG_FUDGE    300 /* RFC 8945 §10: the recommended clock skew allowance */
#define HEADER_SIZE   12

static const char *const algorithm_names[_DNS01_ALGORITHM_MAX] = {
    [DNS01_HMAC_SHA256] = "hmac-sha256.",
    [DNS01_HMAC_SHA512] = "hmac-sha512.",
};

static const EVP_MD *algorithm_md(dns01_algorithm a)
{
    return a == DNS01_HMAC_SHA512 ? EVP_sha512() : EVP_sha256();
}

/* ---- writing ---------------------------------------------------------------------------------- */

/* Appending never overruns: a message that would is refused as a whole (-E2BIG) at the end. */
typedef struct writer {
    dns01_message *m;
    bool overflow;
} writer;

static void put(writer *w, const void *p, size_t n)
{
    if (w->overflow || n > sizeof w->m->data - w->m->size) {
        w->overflow = true;
        return;
    }
    memcpy(w->m->data + w->m->size, p, n);
    w->m->size += n;
}

static void put16(writer *w, uint16_t v)
{
    put(w, (uint8_t[]){ v >> 8, v & 0xff }, 2);
}

static void put32(writer *w, uint32_t v)
{
    put(w, (uint8_t[]){ v >> 24, v >> 16 & 0xff, v >> 8 & 0xff, v & 0xff }, 4);
}

static void put48(writer *w, uint64_t v)
{
    put16(w, (uint16_t) (v >> 32));
    put32(w, (uint32_t) v);
}

/* @name ("www.example.test" or "www.example.test.") as uncompressed labels, lower-cased: TSIG
 * wants the canonical form (RFC 8945 §4.3.3), and names compare without case anyway. */
static int put_name(writer *w, const char *name)
{
    size_t total = 1;
    for (const char *p = name; *p;) {
        size_t n = strcspn(p, ".");
        if (n == 0 || n > 63)
            return -EINVAL;
        total += n + 1;
        uint8_t label[64] = { (uint8_t) n };
        for (size_t i = 0; i < n; i++)
            label[i + 1] = (uint8_t) tolower((unsigned char) p[i]);
        put(w, label, n + 1);
        p += n;
        if (*p == '.')
            p++;
    }
    put(w, "", 1);
    return total > DNS01_NAME_MAX ? -EINVAL : 0;
}

static void put_header(writer *w, uint16_t id, uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns, uint16_t ar)
{
    w->m->size = 0;
    put16(w, id);
    put16(w, flags);
    put16(w, qd);
    put16(w, an);
    put16(w, ns);
    put16(w, ar);
}

static int done(writer *w)
{
    return w->overflow ? -E2BIG : 0;
}

int dns01_build_update(dns01_message *m, uint16_t id, const char *zone, const char *owner, const char *value, uint32_t ttl,
                       dns01_update_op op)
{
    size_t len = strlen(value);
    if (len > 255)
        return -EINVAL;
    writer w = { .m = m };
    put_header(&w, id, OPCODE_UPDATE, 1, 0, 1, 0);
    int r = put_name(&w, zone);
    put16(&w, DNS01_TYPE_SOA);
    put16(&w, CLASS_IN);
    if (r >= 0)
        r = put_name(&w, owner);
    put16(&w, DNS01_TYPE_TXT);
    /* RFC 2136 §2.5.1 adds with the zone's class, §2.5.4 deletes one RR with class NONE, TTL 0. */
    put16(&w, op == DNS01_UPDATE_ADD ? CLASS_IN : CLASS_NONE);
    put32(&w, op == DNS01_UPDATE_ADD ? ttl : 0);
    put16(&w, (uint16_t) (len + 1));
    put(&w, (uint8_t[]){ (uint8_t) len }, 1);
    put(&w, value, len);
    return r < 0 ? r : done(&w);
}

int dns01_build_query(dns01_message *m, uint16_t id, const char *name, uint16_t type)
{
    writer w = { .m = m };
    put_header(&w, id, 0, 1, 0, 0, 0);
    int r = put_name(&w, name);
    put16(&w, type);
    put16(&w, CLASS_IN);
    return r < 0 ? r : done(&w);
}

/* The TSIG variables after the key name (RFC 8945 §4.3.3), as both the MAC input and the record
 * carry them, from the algorithm name to the time signed and fudge. */
static void put_tsig_head(writer *w, const dns01_key *k, uint64_t now)
{
    (void) put_name(w, algorithm_names[k->algorithm]);
    put48(w, now);
    put16(w, TSIG_FUDGE);
}

int dns01_sign(dns01_message *m, const dns01_key *k, uint64_t now, uint8_t ret_mac[static 64], size_t *ret_mac_size)
{
    /* The MAC covers the message as it is and then the variables; neither includes the record. */
    _cleanup_free_ dns01_message *input = malloc(sizeof *input);
    if (!input)
        return -ENOMEM;
    *input = *m;
    writer in = { .m = input };
    int r = put_name(&in, k->name);
    put16(&in, CLASS_ANY);
    put32(&in, 0);
    put_tsig_head(&in, k, now);
    put16(&in, 0); /* error */
    put16(&in, 0); /* other len */
    if (r < 0 || (r = done(&in)) < 0)
        return r;
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned mac_size = 0;
    if (!HMAC(algorithm_md(k->algorithm), k->secret, (int) k->secret_size, input->data, input->size, mac, &mac_size))
        return -EIO;

    writer w = { .m = m };
    size_t rdlength_at;
    (void) put_name(&w, k->name);
    put16(&w, DNS01_TYPE_TSIG);
    put16(&w, CLASS_ANY);
    put32(&w, 0);
    rdlength_at = m->size;
    put16(&w, 0);
    put_tsig_head(&w, k, now);
    put16(&w, (uint16_t) mac_size);
    put(&w, mac, mac_size);
    put16(&w, (uint16_t) (m->data[0] << 8 | m->data[1])); /* original id */
    put16(&w, 0);
    put16(&w, 0);
    if ((r = done(&w)) < 0)
        return r;
    size_t rdlength = m->size - rdlength_at - 2;
    m->data[rdlength_at] = (uint8_t) (rdlength >> 8);
    m->data[rdlength_at + 1] = (uint8_t) rdlength;
    m->data[11]++; /* ARCOUNT: our messages have no other additional record */
    memcpy(ret_mac, mac, mac_size);
    *ret_mac_size = mac_size;
    return 0;
}

/* ---- reading ---------------------------------------------------------------------------------- */

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t) (p[0] << 8 | p[1]);
}

/* The name at *@pos, following compression pointers (at most as many as the message could hold),
 * as lower-case text ending in '.'; *@pos moves past it. -EBADMSG for a label holding '.' or NUL. */
static int read_name(const uint8_t *data, size_t size, size_t *pos, char ret[static DNS01_NAME_MAX + 1])
{
    size_t p = *pos, out = 0, end = 0;
    for (unsigned jumps = 0;; jumps++) {
        if (p >= size || jumps > size / 2)
            return -EBADMSG;
        uint8_t n = data[p];
        if ((n & 0xc0) == 0xc0) {
            if (p + 1 >= size)
                return -EBADMSG;
            if (!end)
                end = p + 2;
            p = (size_t) (n & 0x3f) << 8 | data[p + 1];
            continue;
        }
        if (n & 0xc0 || p + 1 + n > size || out + n + 1 > DNS01_NAME_MAX)
            return -EBADMSG;
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            /* Legal in a label, but the text form would read another name: no name we ask about has them. */
            if (data[p + 1 + i] == '.' || data[p + 1 + i] == '\0')
                return -EBADMSG;
            ret[out++] = (char) tolower(data[p + 1 + i]);
        }
        ret[out++] = '.';
        p += 1 + n;
    }
    if (out == 0)
        ret[out++] = '.';
    ret[out] = '\0';
    *pos = end ? end : p + 1;
    return 0;
}

/* A resource record as it lies in the message. */
typedef struct rr {
    char owner[DNS01_NAME_MAX + 1];
    size_t start; /* of the record, its owner name */
    uint16_t type, class;
    size_t rdata, rdlength;
} rr;

static int read_rr(const uint8_t *data, size_t size, size_t *pos, rr *ret)
{
    size_t p = *pos;
    ret->start = p;
    int r = read_name(data, size, &p, ret->owner);
    if (r < 0)
        return r;
    if (p + 10 > size)
        return -EBADMSG;
    ret->type = get16(data + p);
    ret->class = get16(data + p + 2);
    ret->rdlength = get16(data + p + 8);
    ret->rdata = p + 10;
    if (ret->rdata + ret->rdlength > size)
        return -EBADMSG;
    *pos = ret->rdata + ret->rdlength;
    return 0;
}

/* Walks the records after the questions; @fn returns non-zero to stop the walk with that value. */
typedef int (*rr_handler_t)(const uint8_t *data, size_t size, const rr *rec, unsigned section, void *userdata);

static int walk(const uint8_t *data, size_t size, rr_handler_t fn, void *userdata)
{
    if (size < HEADER_SIZE)
        return -EBADMSG;
    size_t pos = HEADER_SIZE;
    char name[DNS01_NAME_MAX + 1];
    for (unsigned i = 0; i < get16(data + 4); i++, pos += 4)
        if (read_name(data, size, &pos, name) < 0 || pos + 4 > size)
            return -EBADMSG;
    for (unsigned section = 1; section <= 3; section++)
        for (unsigned i = 0; i < get16(data + 4 + 2 * section); i++) {
            rr rec;
            int r = read_rr(data, size, &pos, &rec);
            if (r < 0)
                return r;
            if ((r = fn(data, size, &rec, section, userdata)) != 0)
                return r;
        }
    return 0;
}

typedef struct tsig_check {
    const dns01_key *k;
    const uint8_t *request_mac;
    size_t mac_size;
    dns01_reply *reply;
} tsig_check;

/* RFC 8945 §5.3: the MAC of a reply covers the request's MAC, the reply without its TSIG record
 * (ARCOUNT one less, the original id) and the record's variables. */
static int verify_mac(const uint8_t *data, const rr *rec, const tsig_check *c, const uint8_t *mac, size_t mac_size)
{
    _cleanup_free_ dns01_message *input = malloc(sizeof *input);
    if (!input)
        return -ENOMEM;
    input->size = 0;
    writer w = { .m = input };
    put16(&w, (uint16_t) c->mac_size);
    put(&w, c->request_mac, c->mac_size);
    size_t header_at = input->size;
    put(&w, data, rec->start);
    if (w.overflow)
        return -EBADMSG;
    uint16_t arcount = get16(input->data + header_at + 10) - 1;
    input->data[header_at + 10] = (uint8_t) (arcount >> 8);
    input->data[header_at + 11] = (uint8_t) arcount;
    size_t alg_end = rec->rdata, after_mac = rec->rdata;
    char alg[DNS01_NAME_MAX + 1];
    (void) read_name(data, rec->rdata + rec->rdlength, &alg_end, alg);
    after_mac = alg_end + 10 + mac_size;
    memcpy(input->data + header_at, data + after_mac, 2); /* original id */
    (void) put_name(&w, c->k->name);
    put16(&w, CLASS_ANY);
    put32(&w, 0);
    (void) put_name(&w, alg);
    put(&w, data + alg_end, 8);                                                /* time signed, fudge */
    put(&w, data + after_mac + 2, rec->rdata + rec->rdlength - after_mac - 2); /* error, other */
    if (w.overflow)
        return -EBADMSG;
    uint8_t expect[EVP_MAX_MD_SIZE];
    unsigned expect_size = 0;
    if (!HMAC(algorithm_md(c->k->algorithm), c->k->secret, (int) c->k->secret_size, input->data, input->size, expect, &expect_size))
        return -EIO;
    return expect_size == mac_size && CRYPTO_memcmp(expect, mac, mac_size) == 0;
}

static int on_tsig(const uint8_t *data, size_t size, const rr *rec, unsigned section, void *userdata)
{
    tsig_check *c = userdata;
    if (section != 3 || rec->type != DNS01_TYPE_TSIG)
        return 0;
    /* RDATA: algorithm, time (6), fudge (2), MAC size (2), MAC, original id (2), error (2), other. */
    size_t p = rec->rdata, end = rec->rdata + rec->rdlength;
    char alg[DNS01_NAME_MAX + 1];
    if (read_name(data, end, &p, alg) < 0 || p + 10 > end)
        return -EBADMSG;
    size_t mac_size = get16(data + p + 8);
    const uint8_t *mac = data + p + 10;
    if (p + 10 + mac_size + 6 > end)
        return -EBADMSG;
    c->reply->tsig = true;
    c->reply->tsig_error = get16(mac + mac_size + 2);
    c->reply->tsig_time = (uint64_t) get16(data + p) << 32 | (uint32_t) get16(data + p + 2) << 16 | get16(data + p + 4);
    /* RFC 8945 §5.2: the TSIG record is the last; records after it would be covered by no MAC. */
    if (!c->k || end != size || !streq(rec->owner, c->k->name) || !streq(alg, algorithm_names[c->k->algorithm]) || mac_size == 0)
        return 1;
    int r = verify_mac(data, rec, c, mac, mac_size);
    if (r < 0)
        return r;
    c->reply->tsig_verified = r > 0;
    return 1;
}

int dns01_parse_reply(const uint8_t *data, size_t size, const dns01_key *k, const uint8_t *request_mac, size_t mac_size,
                      dns01_reply *ret)
{
    if (size < HEADER_SIZE || !(data[2] & 0x80))
        return -EBADMSG;
    dns01_reply reply = { .id = get16(data), .rcode = data[3] & 0x0f };
    tsig_check c = { .k = k, .request_mac = request_mac, .mac_size = mac_size, .reply = &reply };
    int r = walk(data, size, on_tsig, &c);
    if (r < 0)
        return r;
    *ret = reply;
    return 0;
}

typedef struct txt_match {
    char name[DNS01_NAME_MAX + 1];
    const char *value;
} txt_match;

static int on_txt(const uint8_t *data, size_t size, const rr *rec, unsigned section, void *userdata)
{
    const txt_match *t = userdata;
    size_t len = strlen(t->value);
    return section == 1 && rec->type == DNS01_TYPE_TXT && streq(rec->owner, t->name) && rec->rdlength == len + 1 &&
           data[rec->rdata] == len && memcmp(data + rec->rdata + 1, t->value, len) == 0;
}

int dns01_name_canonical(const char *name, char ret[static DNS01_NAME_MAX + 1])
{
    dns01_message m = { .size = 0 };
    writer w = { .m = &m };
    size_t pos = 0;
    int r = put_name(&w, name);
    return r < 0 ? r : read_name(m.data, m.size, &pos, ret);
}

int dns01_reply_has_txt(const uint8_t *data, size_t size, const char *name, const char *value)
{
    txt_match t = { .value = value };
    int r = dns01_name_canonical(name, t.name);
    return r < 0 ? r : walk(data, size, on_txt, &t);
}

static int on_soa(const uint8_t *data, size_t size, const rr *rec, unsigned section, void *userdata)
{
    if (section > 2 || rec->type != DNS01_TYPE_SOA)
        return 0;
    memcpy(userdata, rec->owner, sizeof rec->owner);
    return 1;
}

int dns01_reply_soa_owner(const uint8_t *data, size_t size, char ret[static DNS01_NAME_MAX + 1])
{
    char owner[DNS01_NAME_MAX + 1];
    int r = walk(data, size, on_soa, owner);
    if (r <= 0)
        return r < 0 ? r : -ENOENT;
    memcpy(ret, owner, sizeof owner);
    return 0;
}

const char *dns01_rcode_name(int rcode, char buf[static 16])
{
    static const char *const names[] = {
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",      "NOTIMP", "REFUSED", "YXDOMAIN",        "YXRRSET",
        "NXRRSET", "NOTAUTH", "NOTZONE",  [16] = "BADSIG", "BADKEY", "BADTIME", [22] = "BADTRUNC",
    };
    if (rcode >= 0 && (size_t) rcode < ELEMENTSOF(names) && names[rcode])
        return names[rcode];
    (void) snprintf(buf, 16, "RCODE%d", rcode);
    return buf;
}
