/* HMAC, SHA-256, constant-time compare, codecs, random bytes and AES-256-GCM secrets. */
#include "imp/crypto.h"

#include "imp/log.h"
#include "imp/mem.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <stdlib.h>
#include <string.h>

#define GCM_NONCE_LEN 12
#define GCM_TAG_LEN 16
#define TOKEN_PREFIX "v1:"
#define TOKEN_PREFIX_LEN (sizeof(TOKEN_PREFIX) - 1)

/* OpenSSL's int-sized length arguments: longer inputs are fed in chunks of this size. */
#define OSSL_CHUNK ((size_t)1 << 30)

/* OpenSSL refusing valid arguments means memory exhaustion or a broken installation. */
static void ossl_fail(const char *call)
{
    char reason[256];
    ERR_error_string_n(ERR_get_error(), reason, sizeof(reason));
    IMP_LOG_ERROR("openssl failure", IMP_LS("call", call), IMP_LS("reason", reason));
    abort();
}

#define OSSL_CHECK(expr)                                                                           \
    do {                                                                                           \
        if (!(expr))                                                                               \
            ossl_fail(#expr);                                                                      \
    } while (0)

/* ---- HMAC-SHA256 ---- */

struct imp_hmac {
    EVP_MAC_CTX *keyed; /* initialised with the key; only ever duplicated */
};

imp_hmac_t *imp_hmac_new(const void *key, size_t keylen)
{
    /* OpenSSL takes a NULL key to mean "keep the previous one", so an empty key needs a
     * non-NULL pointer. */
    static const uint8_t empty_key[1];
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };

    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    OSSL_CHECK(mac != NULL);
    imp_hmac_t *h = imp_malloc(sizeof(*h));
    h->keyed = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac); /* the context holds its own reference */
    OSSL_CHECK(h->keyed != NULL);
    OSSL_CHECK(EVP_MAC_init(h->keyed, keylen ? key : empty_key, keylen, params) == 1);
    return h;
}

void imp_hmac_free(imp_hmac_t *h)
{
    if (h == NULL)
        return;
    EVP_MAC_CTX_free(h->keyed);
    free(h);
}

static void mac_update(EVP_MAC_CTX *ctx, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        size_t n = len < OSSL_CHUNK ? len : OSSL_CHUNK;
        OSSL_CHECK(EVP_MAC_update(ctx, p, n) == 1);
        p += n;
        len -= n;
    }
}

void imp_hmac_sha256_parts(imp_hmac_t *h, const imp_iov_t *parts, size_t n,
                           uint8_t out[IMP_HMAC_SHA256_LEN])
{
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(h->keyed);
    OSSL_CHECK(ctx != NULL);
    for (size_t i = 0; i < n; i++)
        mac_update(ctx, parts[i].base, parts[i].len);
    size_t outlen = 0;
    OSSL_CHECK(EVP_MAC_final(ctx, out, &outlen, IMP_HMAC_SHA256_LEN) == 1);
    OSSL_CHECK(outlen == IMP_HMAC_SHA256_LEN);
    EVP_MAC_CTX_free(ctx);
}

void imp_hmac_sha256(imp_hmac_t *h, const void *data, size_t len, uint8_t out[IMP_HMAC_SHA256_LEN])
{
    imp_iov_t part = {data, len};
    imp_hmac_sha256_parts(h, &part, 1, out);
}

void imp_hmac_sha256_once(const void *key, size_t keylen, const void *data, size_t len,
                          uint8_t out[IMP_HMAC_SHA256_LEN])
{
    imp_hmac_t *h = imp_hmac_new(key, keylen);
    imp_hmac_sha256(h, data, len, out);
    imp_hmac_free(h);
}

/* ---- SHA-256 ---- */

void imp_sha256(const void *data, size_t len, uint8_t out[IMP_SHA256_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    OSSL_CHECK(ctx != NULL);
    OSSL_CHECK(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1);
    OSSL_CHECK(EVP_DigestUpdate(ctx, len ? data : "", len) == 1);
    unsigned int outlen = 0;
    OSSL_CHECK(EVP_DigestFinal_ex(ctx, out, &outlen) == 1);
    OSSL_CHECK(outlen == IMP_SHA256_LEN);
    EVP_MD_CTX_free(ctx);
}

/* ---- Constant-time comparison ---- */

bool imp_crypto_equal(const void *a, const void *b, size_t n)
{
    if (n == 0)
        return true;
    return CRYPTO_memcmp(a, b, n) == 0;
}

bool imp_crypto_equal_str(const void *expected, size_t elen, const void *given, size_t glen)
{
    if (glen == 0)
        return elen == 0;
    /* With different lengths, compare given against itself: the same work is done, the
     * answer is false either way, and nothing past the shorter value is read. */
    const void *ref = elen == glen ? expected : given;
    int diff = CRYPTO_memcmp(ref, given, glen);
    return (diff | (elen != glen)) == 0;
}

/* ---- Random ---- */

void imp_crypto_random(void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        size_t chunk = n < OSSL_CHUNK ? n : OSSL_CHUNK;
        OSSL_CHECK(RAND_bytes(p, (int)chunk) == 1);
        p += chunk;
        n -= chunk;
    }
}

void imp_crypto_wipe(void *p, size_t n)
{
    if (p != NULL && n > 0)
        OPENSSL_cleanse(p, n);
}

/* ---- Hex ---- */

static int hex_val(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void imp_hex_encode(const void *data, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * len] = '\0';
}

int imp_hex_decode(const char *text, size_t textlen, uint8_t *out, size_t cap, size_t *outlen)
{
    if (textlen % 2 != 0 || textlen / 2 > cap)
        return -1;
    for (size_t i = 0; i < textlen / 2; i++) {
        int hi = hex_val((unsigned char)text[2 * i]);
        int lo = hex_val((unsigned char)text[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    *outlen = textlen / 2;
    return 0;
}

/* ---- Base64 ---- */

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64_encode(const uint8_t *in, size_t len, char *out, const char *alphabet, bool pad)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
        out[o++] = alphabet[v & 63];
    }
    size_t rest = len - i;
    if (rest > 0) {
        uint32_t v = (uint32_t)in[i] << 16 | (rest == 2 ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        if (rest == 2)
            out[o++] = alphabet[v >> 6 & 63];
        else if (pad)
            out[o++] = '=';
        if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

size_t imp_base64_encode(const void *data, size_t len, char *out)
{
    return b64_encode(data, len, out, b64_std, true);
}

size_t imp_base64url_encode(const void *data, size_t len, char *out)
{
    return b64_encode(data, len, out, b64_url, false);
}

static int b64_val(unsigned char c, const char *alphabet)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (unsigned char)alphabet[62])
        return 62;
    if (c == (unsigned char)alphabet[63])
        return 63;
    return -1;
}

/* Decode base64 without padding: every character from the alphabet, a length that is not
 * 1 mod 4, and zero bits in the last character's unused low bits. */
static int b64_decode_bare(const char *text, size_t len, const char *alphabet, uint8_t *out,
                           size_t cap, size_t *outlen)
{
    if (len % 4 == 1)
        return -1;
    size_t need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (need > cap)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_val((unsigned char)text[i], alphabet);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0)
        return -1;
    *outlen = o;
    return 0;
}

int imp_base64_decode(const char *text, size_t textlen, uint8_t *out, size_t cap, size_t *outlen)
{
    if (textlen % 4 != 0)
        return -1;
    size_t pad = 0;
    while (pad < 2 && pad < textlen && text[textlen - 1 - pad] == '=')
        pad++;
    /* A third '=' stays in the body, where it is not in the alphabet. */
    return b64_decode_bare(text, textlen - pad, b64_std, out, cap, outlen);
}

int imp_base64url_decode(const char *text, size_t textlen, uint8_t *out, size_t cap, size_t *outlen)
{
    return b64_decode_bare(text, textlen, b64_url, out, cap, outlen);
}

/* ---- AES-256-GCM ---- */

/* Feed data through the cipher; out NULL feeds associated data. */
static void cipher_update(EVP_CIPHER_CTX *ctx, uint8_t *out, const uint8_t *in, size_t len)
{
    while (len > 0) {
        size_t n = len < OSSL_CHUNK ? len : OSSL_CHUNK;
        int outl = 0;
        OSSL_CHECK(EVP_CipherUpdate(ctx, out, &outl, in, (int)n) == 1);
        OSSL_CHECK((size_t)outl == n);
        in += n;
        if (out != NULL)
            out += n;
        len -= n;
    }
}

static EVP_CIPHER_CTX *gcm_start(const uint8_t *key, const uint8_t *nonce, int enc, const void *aad,
                                 size_t aadlen)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    OSSL_CHECK(ctx != NULL);
    /* AES-GCM's default IV length is 12 bytes, the size we use. */
    OSSL_CHECK(EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce, enc) == 1);
    cipher_update(ctx, NULL, aad, aadlen);
    return ctx;
}

/* raw = nonce || ciphertext || tag, nonce already filled in. */
static void gcm_seal(const uint8_t *key, const void *aad, size_t aadlen, const uint8_t *plain,
                     size_t len, uint8_t *raw)
{
    EVP_CIPHER_CTX *ctx = gcm_start(key, raw, 1, aad, aadlen);
    uint8_t *ct = raw + GCM_NONCE_LEN;
    cipher_update(ctx, ct, plain, len);
    int outl = 0;
    OSSL_CHECK(EVP_CipherFinal_ex(ctx, ct + len, &outl) == 1 && outl == 0);
    OSSL_CHECK(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG_LEN, ct + len) == 1);
    EVP_CIPHER_CTX_free(ctx);
}

/* Decrypt raw (nonce || ciphertext || tag, rawlen bytes) into plain; false when the tag does
 * not verify. */
static bool gcm_open(const uint8_t *key, const void *aad, size_t aadlen, const uint8_t *raw,
                     size_t rawlen, uint8_t *plain)
{
    size_t len = rawlen - GCM_NONCE_LEN - GCM_TAG_LEN;
    uint8_t tag[GCM_TAG_LEN];
    memcpy(tag, raw + GCM_NONCE_LEN + len, GCM_TAG_LEN);
    EVP_CIPHER_CTX *ctx = gcm_start(key, raw, 0, aad, aadlen);
    cipher_update(ctx, plain, raw + GCM_NONCE_LEN, len);
    OSSL_CHECK(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG_LEN, tag) == 1);
    int outl = 0;
    bool ok = EVP_CipherFinal_ex(ctx, plain + len, &outl) == 1;
    EVP_CIPHER_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

imp_error_t *imp_crypto_seal(const uint8_t key[IMP_CRYPTO_KEY_LEN], const void *plain, size_t len,
                             const void *aad, size_t aadlen, char **token)
{
    *token = NULL;
    if (len > IMP_CRYPTO_SEAL_MAX)
        return imp_error_new(IMP_ERR_POISON, "secret_too_large",
                             "secret is %zu bytes, more than the %d allowed", len,
                             IMP_CRYPTO_SEAL_MAX);
    size_t rawlen = GCM_NONCE_LEN + len + GCM_TAG_LEN;
    uint8_t *raw = imp_malloc(rawlen);
    imp_crypto_random(raw, GCM_NONCE_LEN);
    gcm_seal(key, aad, aadlen, plain, len, raw);

    char *out = imp_malloc(TOKEN_PREFIX_LEN + IMP_BASE64_ENCODED_LEN(rawlen) + 1);
    memcpy(out, TOKEN_PREFIX, TOKEN_PREFIX_LEN);
    imp_base64_encode(raw, rawlen, out + TOKEN_PREFIX_LEN);
    free(raw);
    *token = out;
    return NULL;
}

static imp_error_t *token_malformed(const char *why)
{
    return imp_error_new(IMP_ERR_POISON, "secret_malformed", "sealed secret is malformed: %s", why);
}

/* Decode the base64 body of a token into a new buffer of at least nonce + tag bytes. */
static imp_error_t *token_decode(const char *token, uint8_t **raw, size_t *rawlen)
{
    if (token == NULL || strncmp(token, TOKEN_PREFIX, TOKEN_PREFIX_LEN) != 0)
        return token_malformed("no \"v1:\" prefix");
    const char *b64 = token + TOKEN_PREFIX_LEN;
    size_t b64len = strlen(b64);
    size_t cap = IMP_BASE64_DECODED_MAX(b64len);
    uint8_t *buf = imp_malloc(cap ? cap : 1);
    imp_error_t *err = NULL;
    if (imp_base64_decode(b64, b64len, buf, cap, rawlen) != 0)
        err = token_malformed("not base64");
    else if (*rawlen < GCM_NONCE_LEN + GCM_TAG_LEN)
        err = token_malformed("too short");
    if (err != NULL) {
        free(buf);
        return err;
    }
    *raw = buf;
    return NULL;
}

imp_error_t *imp_crypto_open(const uint8_t key[IMP_CRYPTO_KEY_LEN], const char *token,
                             const void *aad, size_t aadlen, uint8_t **plain, size_t *len)
{
    *plain = NULL;
    *len = 0;
    uint8_t *raw = NULL;
    size_t rawlen = 0;
    imp_error_t *err = token_decode(token, &raw, &rawlen);
    if (err != NULL)
        return err;

    size_t ptlen = rawlen - GCM_NONCE_LEN - GCM_TAG_LEN;
    uint8_t *pt = imp_malloc(ptlen + 1);
    if (gcm_open(key, aad, aadlen, raw, rawlen, pt)) {
        pt[ptlen] = '\0';
        *plain = pt;
        *len = ptlen;
    } else {
        imp_crypto_wipe(pt, ptlen);
        free(pt);
        err = imp_error_new(IMP_ERR_POISON, "secret_auth",
                            "sealed secret does not authenticate (wrong key, wrong owner or "
                            "tampered)");
    }
    free(raw);
    return err;
}

/* ---- Key parsing ---- */

static imp_error_t *key_error(const char *name, const char *what)
{
    return imp_error_new(IMP_ERR_FATAL, "config",
                         "%s %s; expected 64 hex digits or the base64 of 32 bytes", name, what);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

imp_error_t *imp_crypto_key_parse(const char *name, const char *text,
                                  uint8_t key[IMP_CRYPTO_KEY_LEN])
{
    if (name == NULL)
        name = "key";
    size_t n = text ? strlen(text) : 0;
    if (n == 0)
        return key_error(name, "is empty");
    if (n != 2 * IMP_CRYPTO_KEY_LEN && n != IMP_BASE64_ENCODED_LEN(IMP_CRYPTO_KEY_LEN))
        return imp_error_new(IMP_ERR_FATAL, "config",
                             "%s has %zu characters; expected 64 hex digits or the base64 of "
                             "32 bytes (44 characters)",
                             name, n);

    imp_error_t *err = NULL;
    uint8_t buf[IMP_BASE64_DECODED_MAX(IMP_BASE64_ENCODED_LEN(IMP_CRYPTO_KEY_LEN))];
    size_t got = 0;
    if (n == 2 * IMP_CRYPTO_KEY_LEN) {
        if (imp_hex_decode(text, n, buf, sizeof(buf), &got) != 0)
            err = key_error(name, "has 64 characters but is not hex");
    } else if (imp_base64_decode(text, n, buf, sizeof(buf), &got) != 0 ||
               got != IMP_CRYPTO_KEY_LEN) {
        err = key_error(name, "has 44 characters but is not the base64 of 32 bytes");
    }
    if (err == NULL && all_zero(buf, IMP_CRYPTO_KEY_LEN))
        err = key_error(name, "is all zeros (a placeholder, not a key)");
    if (err == NULL)
        memcpy(key, buf, IMP_CRYPTO_KEY_LEN);
    imp_crypto_wipe(buf, sizeof(buf));
    return err;
}
