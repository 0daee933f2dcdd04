/* SPDX-License-Identifier: MIT */
/*
 * The format of a kept blob (docs/decisions/0020), integers little-endian:
 *
 *     offset  size
 *     0       8    magic "KEELBLOB"
 *     8       2    format version (1)
 *     10      1    build id size B (1..64)
 *     11      1    name size N (1..255)
 *     12      8    payload size P (at most KEEL_FDSTORE_SIZE_MAX)
 *     20      B    the GNU build id of the program that wrote it
 *     20+B    N    the name it was saved under
 *     20+B+N  P    the payload
 *     end-32  32   HMAC-SHA256, under the caller's key, of every byte before it
 *
 * The build id is the program's, not libkeel's: the payload is the program's format, which any
 * rebuild may change, while this envelope has its own version. The HMAC comes from libcrypto,
 * opened on first use so that libkeel links no crypto library (decisions 11, 15, 19).
 */
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "fdstore-internal.h"
#include "macro-internal.h"

#define MAGIC         "KEELBLOB"
#define VERSION       1
#define HEADER_SIZE   KEEL_FDSTORE_HEADER_SIZE
#define MAC_SIZE      KEEL_FDSTORE_MAC_SIZE
#define SHOWN_ID_SIZE 8 /* bytes of a build id a reason shows */

/* ---- the build id --------------------------------------------------------------------------- */

static keel_build_id program_build_id;
static pthread_once_t build_id_once = PTHREAD_ONCE_INIT;

static size_t note_align(size_t n, size_t align)
{
    return (n + align - 1) & ~(align - 1);
}

/* The NT_GNU_BUILD_ID note among the @size bytes of notes at @notes, if any. */
static void find_note(const uint8_t *notes, size_t size, size_t align, keel_build_id *ret)
{
    for (size_t off = 0; off + sizeof(ElfW(Nhdr)) <= size;) {
        ElfW(Nhdr) h;
        memcpy(&h, notes + off, sizeof h);
        size_t name = off + sizeof h, desc = name + note_align(h.n_namesz, align), next = desc + note_align(h.n_descsz, align);
        if (next > size || next <= off)
            return;
        if (h.n_type == NT_GNU_BUILD_ID && h.n_namesz == 4 && memcmp(notes + name, "GNU", 4) == 0 && h.n_descsz > 0 &&
            h.n_descsz <= KEEL_BUILD_ID_MAX) {
            memcpy(ret->bytes, notes + desc, h.n_descsz);
            ret->size = h.n_descsz;
            return;
        }
        off = next;
    }
}

/* dl_iterate_phdr() gives the program itself first. */
static int program_notes(struct dl_phdr_info *info, size_t size, void *userdata)
{
    for (ElfW(Half) i = 0; i < info->dlpi_phnum && ((keel_build_id *) userdata)->size == 0; i++) {
        const ElfW(Phdr) *p = &info->dlpi_phdr[i];
        if (p->p_type == PT_NOTE)
            find_note((const uint8_t *) (info->dlpi_addr + p->p_vaddr), p->p_memsz, p->p_align == 8 ? 8 : 4, userdata);
    }
    return 1;
}

static void read_build_id(void)
{
    (void) dl_iterate_phdr(program_notes, &program_build_id);
}

int keel__build_id(keel_build_id *ret)
{
    (void) pthread_once(&build_id_once, read_build_id);
    if (program_build_id.size == 0)
        return -ENOEXEC;
    *ret = program_build_id;
    return 0;
}

/* ---- HMAC-SHA256 from libcrypto ------------------------------------------------------------- */

static struct {
    __typeof__(EVP_Q_mac) *mac;
    __typeof__(CRYPTO_memcmp) *memcmp;
} crypto;
static pthread_once_t crypto_once = PTHREAD_ONCE_INIT;

/* Loaded once and never unloaded: OpenSSL 3 marks libcrypto never-unload anyway, and in the agent
 * it is linked already, so this only takes a reference. */
static void load_crypto(void)
{
    void *dl = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
    void *mac = dl ? dlsym(dl, "EVP_Q_mac") : NULL, *cmp = dl ? dlsym(dl, "CRYPTO_memcmp") : NULL;
    if (!mac || !cmp) {
        keel_log_debug("Failed to load HMAC-SHA256 from libcrypto.so.3: %s", dl ? "EVP_Q_mac or CRYPTO_memcmp missing" : dlerror());
        if (dl)
            (void) dlclose(dl);
        return;
    }
    /* Object pointer to function pointer through memcpy, as POSIX's dlsym() allows. */
    memcpy(&crypto.mac, &mac, sizeof mac);
    memcpy(&crypto.memcmp, &cmp, sizeof cmp);
}

static int hmac_sha256(const void *key, size_t key_size, const uint8_t *data, size_t size, uint8_t ret[MAC_SIZE])
{
    size_t n = 0;
    (void) pthread_once(&crypto_once, load_crypto);
    if (!crypto.mac)
        return -ELIBACC;
    if (!crypto.mac(NULL, "HMAC", NULL, "SHA256", NULL, key, key_size, data, size, ret, MAC_SIZE, &n) || n != MAC_SIZE)
        return -ELIBACC;
    return 0;
}

/* ---- the envelope --------------------------------------------------------------------------- */

static void put_le(uint8_t *p, uint64_t v, size_t bytes)
{
    for (size_t i = 0; i < bytes; i++)
        p[i] = (uint8_t) (v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, size_t bytes)
{
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; i++)
        v |= (uint64_t) p[i] << (8 * i);
    return v;
}

/* systemd's fdname_is_valid(), of @n bytes, not empty. */
static bool name_valid(const char *name, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char) name[i] < ' ' || (unsigned char) name[i] > '~' || name[i] == ':')
            return false;
    return n > 0 && n <= KEEL_FDSTORE_NAME_MAX;
}

bool keel__fdstore_name_valid(const char *name)
{
    return name && name_valid(name, strnlen(name, KEEL_FDSTORE_NAME_MAX + 1));
}

size_t keel__fdstore_blob_size(const keel_build_id *build, const char *name, size_t size)
{
    return HEADER_SIZE + build->size + strlen(name) + size + MAC_SIZE;
}

int keel__fdstore_pack(const keel_build_id *build, const char *name, const void *data, size_t size, const void *key,
                       size_t key_size, uint8_t *out)
{
    size_t n = strlen(name);
    assert(build->size > 0 && build->size <= KEEL_BUILD_ID_MAX && n > 0 && n <= KEEL_FDSTORE_NAME_MAX);
    memcpy(out, MAGIC, 8);
    put_le(out + 8, VERSION, 2);
    out[10] = (uint8_t) build->size;
    out[11] = (uint8_t) n;
    put_le(out + 12, size, 8);
    uint8_t *p = out + HEADER_SIZE;
    memcpy(p, build->bytes, build->size);
    p += build->size;
    memcpy(p, name, n);
    p += n;
    if (size > 0)
        memcpy(p, data, size);
    p += size;
    return hmac_sha256(key, key_size, out, (size_t) (p - out), p);
}

int keel__fdstore_refuse(char *error, int r, const char *fmt, ...)
{
    va_list ap;
    if (!error)
        return r;
    va_start(ap, fmt);
    (void) vsnprintf(error, KEEL_FDSTORE_ERROR_MAX, fmt, ap);
    va_end(ap);
    return r;
}

static char *hex(const uint8_t *bytes, size_t size, char buf[2 * SHOWN_ID_SIZE + 4])
{
    size_t shown = MIN(size, (size_t) SHOWN_ID_SIZE);
    for (size_t i = 0; i < shown; i++)
        (void) snprintf(buf + 2 * i, 3, "%02x", bytes[i]);
    (void) snprintf(buf + 2 * shown, 4, "%s", shown < size ? "…" : "");
    return buf;
}

/* The header's sizes against the blob's: -EBADMSG, -EPROTONOSUPPORT, -EFBIG or 0. */
static int check_frame(const uint8_t *blob, size_t blob_size, char *error)
{
    if (blob_size < HEADER_SIZE + MAC_SIZE || memcmp(blob, MAGIC, 8) != 0)
        return keel__fdstore_refuse(error, -EBADMSG, "not a blob of Keel's (%zu bytes%s)", blob_size,
                                    blob_size < HEADER_SIZE + MAC_SIZE ? ", shorter than a header" : ", no " MAGIC " magic");
    uint64_t version = get_le(blob + 8, 2), size = get_le(blob + 12, 8);
    if (version != VERSION)
        return keel__fdstore_refuse(error, -EPROTONOSUPPORT, "format version %u, this build reads %u", (unsigned) version, VERSION);
    if (blob[10] == 0 || blob[10] > KEEL_BUILD_ID_MAX || blob[11] == 0)
        return keel__fdstore_refuse(error, -EBADMSG, "a header with a build id of %u bytes and a name of %u", blob[10], blob[11]);
    if (size > KEEL_FDSTORE_SIZE_MAX)
        return keel__fdstore_refuse(error, -EFBIG, "a payload of %llu bytes, over the %zu allowed", (unsigned long long) size,
                                    KEEL_FDSTORE_SIZE_MAX);
    size_t want = HEADER_SIZE + blob[10] + blob[11] + (size_t) size + MAC_SIZE;
    if (want != blob_size)
        return keel__fdstore_refuse(error, -EBADMSG, "%zu bytes where its header says %zu%s", blob_size, want,
                                    blob_size < want ? ": cut short" : "");
    /* Checked before the HMAC, and shown in a refusal: a name systemd would have taken. */
    if (!name_valid((const char *) blob + HEADER_SIZE + blob[10], blob[11]))
        return keel__fdstore_refuse(error, -EBADMSG, "a name that is no FDNAME");
    return 0;
}

int keel__fdstore_unpack(const keel_build_id *build, const char *name, const uint8_t *blob, size_t blob_size, const void *key,
                         size_t key_size, const uint8_t **ret_payload, size_t *ret_size, char *error)
{
    int r = check_frame(blob, blob_size, error);
    if (r < 0)
        return r;
    const uint8_t *id = blob + HEADER_SIZE, *kept_as = id + blob[10], *payload = kept_as + blob[11];
    size_t size = blob_size - (size_t) (payload - blob) - MAC_SIZE;
    char theirs[2 * SHOWN_ID_SIZE + 4], ours[2 * SHOWN_ID_SIZE + 4];
    if (blob[10] != build->size || memcmp(id, build->bytes, build->size) != 0)
        return keel__fdstore_refuse(error, -ESTALE, "saved by another build of the program (build id %s, this one is %s)",
                                    hex(id, blob[10], theirs), hex(build->bytes, build->size, ours));
    if (blob[11] != strlen(name) || memcmp(kept_as, name, blob[11]) != 0)
        return keel__fdstore_refuse(error, -EBADSLT, "saved under another name ('%.*s')", (int) blob[11], (const char *) kept_as);
    uint8_t mac[MAC_SIZE];
    if ((r = hmac_sha256(key, key_size, blob, blob_size - MAC_SIZE, mac)) < 0)
        return keel__fdstore_refuse(error, r, "libcrypto.so.3 cannot be loaded to check it");
    if (crypto.memcmp(mac, blob + blob_size - MAC_SIZE, MAC_SIZE) != 0)
        return keel__fdstore_refuse(error, -EKEYREJECTED, "its HMAC does not verify: saved under another key, or altered");
    *ret_payload = payload;
    *ret_size = size;
    return 0;
}
