/* UUIDv4/v5, their text form, and the project's operation ids. */
#include "imp/opid.h"

#include "imp/crypto.h"
#include "imp/log.h"
#include "imp/mem.h"

#include <openssl/evp.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

const uint8_t IMP_OPID_NAMESPACE[IMP_UUID_LEN] = {0x07, 0xda, 0x5c, 0xec, 0xed, 0x2a, 0x4c, 0xf7,
                                                  0xa0, 0xae, 0x43, 0xed, 0xb7, 0x14, 0xbc, 0x16};

static void digest_fail(const char *call)
{
    IMP_LOG_ERROR("openssl failure", IMP_LS("call", call));
    abort();
}

/* Version in the high nibble of byte 6, RFC 4122 variant (10xx) in byte 8. */
static void set_version(uint8_t u[IMP_UUID_LEN], unsigned version)
{
    u[6] = (uint8_t)((u[6] & 0x0f) | (version << 4));
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
}

void imp_uuid_v5(const uint8_t ns[IMP_UUID_LEN], const void *name, size_t len,
                 uint8_t out[IMP_UUID_LEN])
{
    uint8_t sha1[EVP_MAX_MD_SIZE];
    unsigned int shalen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, ns, IMP_UUID_LEN) != 1 ||
        EVP_DigestUpdate(ctx, len ? name : "", len) != 1 ||
        EVP_DigestFinal_ex(ctx, sha1, &shalen) != 1 || shalen != 20)
        digest_fail("sha1");
    EVP_MD_CTX_free(ctx);
    memcpy(out, sha1, IMP_UUID_LEN);
    set_version(out, 5);
}

void imp_uuid_v4(uint8_t out[IMP_UUID_LEN])
{
    imp_crypto_random(out, IMP_UUID_LEN);
    set_version(out, 4);
}

void imp_uuid_v4_str(char out[IMP_UUID_STR_SIZE])
{
    uint8_t u[IMP_UUID_LEN];
    imp_uuid_v4(u);
    imp_uuid_format(u, out);
}

/* Byte index at which each hyphen is written (after 4, 6, 8 and 10 bytes). */
static bool hyphen_before(size_t byte)
{
    return byte == 4 || byte == 6 || byte == 8 || byte == 10;
}

void imp_uuid_format(const uint8_t uuid[IMP_UUID_LEN], char out[IMP_UUID_STR_SIZE])
{
    char *o = out;
    for (size_t i = 0; i < IMP_UUID_LEN; i++) {
        if (hyphen_before(i))
            *o++ = '-';
        imp_hex_encode(&uuid[i], 1, o);
        o += 2;
    }
    *o = '\0';
}

int imp_uuid_parse(const char *text, size_t len, uint8_t out[IMP_UUID_LEN])
{
    if (text == NULL || len != IMP_UUID_STR_LEN)
        return -1;
    const char *p = text;
    for (size_t i = 0; i < IMP_UUID_LEN; i++) {
        if (hyphen_before(i) && *p++ != '-')
            return -1;
        size_t got = 0;
        if (imp_hex_decode(p, 2, &out[i], 1, &got) != 0)
            return -1;
        p += 2;
    }
    return 0;
}

static imp_error_t *bad_name(const char *what)
{
    return imp_error_new(IMP_ERR_POISON, "opid_name", "cannot derive an operation id: %s", what);
}

static void opid_of(const char *name, char out[IMP_UUID_STR_SIZE])
{
    uint8_t u[IMP_UUID_LEN];
    imp_uuid_v5(IMP_OPID_NAMESPACE, name, strlen(name), u);
    imp_uuid_format(u, out);
}

static bool plain_part(const char *s)
{
    return s != NULL && *s != '\0' && strchr(s, '|') == NULL;
}

imp_error_t *imp_opid_inbound(const char *tenant_id, const char *channel,
                              const char *provider_event_id, char out[IMP_UUID_STR_SIZE])
{
    out[0] = '\0';
    if (!plain_part(tenant_id))
        return bad_name("tenant id is empty or contains '|'");
    if (!plain_part(channel))
        return bad_name("channel is empty or contains '|'");
    if (provider_event_id == NULL || *provider_event_id == '\0')
        return bad_name("provider event id is empty");
    char *name = imp_asprintf("%s|%s|%s", tenant_id, channel, provider_event_id);
    opid_of(name, out);
    free(name);
    return NULL;
}

imp_error_t *imp_opid_derive(const char *parent_opid, const char *step, char out[IMP_UUID_STR_SIZE])
{
    out[0] = '\0';
    uint8_t parent[IMP_UUID_LEN];
    if (parent_opid == NULL || imp_uuid_parse(parent_opid, strlen(parent_opid), parent) != 0)
        return bad_name("parent operation id is not a uuid");
    if (step == NULL || *step == '\0')
        return bad_name("step is empty");
    char canonical[IMP_UUID_STR_SIZE];
    imp_uuid_format(parent, canonical);
    char *name = imp_asprintf("%s|%s", canonical, step);
    opid_of(name, out);
    free(name);
    return NULL;
}
