/* Unit tests for the crypto module: published vectors, codecs, compare, AES-GCM secrets. */
#include "imp/crypto.h"

#include "imp/mem.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

/* Lowercase hex of a digest, for comparing against published vectors. */
static const char *hex32(const uint8_t d[32])
{
    static char buf[65];
    imp_hex_encode(d, 32, buf);
    return buf;
}

static void fill(uint8_t *p, uint8_t v, size_t n)
{
    memset(p, v, n);
}

/* ---- HMAC-SHA256: RFC 4231 cases 1, 2, 3, 4, 6, 7 ---- */

typedef struct {
    int id;
    uint8_t key[131];
    size_t keylen;
    uint8_t data[160];
    size_t datalen;
    const char *mac;
} rfc4231_t;

static void rfc4231_case(int i, rfc4231_t *c)
{
    static const char tc6[] = "Test Using Larger Than Block-Size Key - Hash Key First";
    static const char tc7[] = "This is a test using a larger than block-size key and a larger than "
                              "block-size data. The key needs to be hashed before being used by "
                              "the HMAC algorithm.";
    memset(c, 0, sizeof(*c));
    switch (i) {
    case 0:
        c->id = 1;
        fill(c->key, 0x0b, c->keylen = 20);
        memcpy(c->data, "Hi There", c->datalen = 8);
        c->mac = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7";
        break;
    case 1:
        c->id = 2;
        memcpy(c->key, "Jefe", c->keylen = 4);
        memcpy(c->data, "what do ya want for nothing?", c->datalen = 28);
        c->mac = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        break;
    case 2:
        c->id = 3;
        fill(c->key, 0xaa, c->keylen = 20);
        fill(c->data, 0xdd, c->datalen = 50);
        c->mac = "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe";
        break;
    case 3:
        c->id = 4;
        for (c->keylen = 0; c->keylen < 25; c->keylen++)
            c->key[c->keylen] = (uint8_t)(c->keylen + 1);
        fill(c->data, 0xcd, c->datalen = 50);
        c->mac = "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b";
        break;
    case 4:
        c->id = 6;
        fill(c->key, 0xaa, c->keylen = 131);
        memcpy(c->data, tc6, c->datalen = strlen(tc6));
        c->mac = "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54";
        break;
    default:
        c->id = 7;
        fill(c->key, 0xaa, c->keylen = 131);
        memcpy(c->data, tc7, c->datalen = strlen(tc7));
        c->mac = "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2";
        break;
    }
}

START_TEST(hmac_rfc4231)
{
    rfc4231_t c;
    rfc4231_case(_i, &c);
    uint8_t out[32];

    imp_hmac_t *h = imp_hmac_new(c.key, c.keylen);
    imp_hmac_sha256(h, c.data, c.datalen, out);
    ck_assert_msg(strcmp(hex32(out), c.mac) == 0, "case %d: %s", c.id, hex32(out));
    /* The keyed context is reusable: a second message and then the first again. */
    imp_hmac_sha256(h, "other", 5, out);
    imp_hmac_sha256(h, c.data, c.datalen, out);
    ck_assert_str_eq(hex32(out), c.mac);
    imp_hmac_free(h);

    memset(out, 0, sizeof(out));
    imp_hmac_sha256_once(c.key, c.keylen, c.data, c.datalen, out);
    ck_assert_str_eq(hex32(out), c.mac);
}
END_TEST

START_TEST(hmac_parts_equal_concatenation)
{
    /* Standard Webhooks: HMAC(secret, id "." timestamp "." body). */
    const char *id = "msg_1", *ts = "1700000000", *body = "{\"a\":1}";
    imp_iov_t parts[] = {
        {id, strlen(id)}, {".", 1}, {NULL, 0}, {ts, strlen(ts)}, {".", 1}, {body, strlen(body)},
    };
    uint8_t a[32], b[32];
    imp_hmac_t *h = imp_hmac_new("whsec", 5);
    imp_hmac_sha256_parts(h, parts, IMP_ARRAY_LEN(parts), a);
    imp_hmac_sha256(h, "msg_1.1700000000.{\"a\":1}", 24, b);
    ck_assert_mem_eq(a, b, 32);
    ck_assert_str_eq(hex32(a), "c4d952609efbb88fac54cee7c893c0d9e416b540598625118e96c8ff6ab7f762");
    imp_hmac_free(h);
}
END_TEST

START_TEST(hmac_empty_key_and_message)
{
    uint8_t out[32];
    imp_hmac_t *h = imp_hmac_new(NULL, 0);
    imp_hmac_sha256(h, NULL, 0, out);
    ck_assert_str_eq(hex32(out),
                     "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
    imp_hmac_free(h);
    imp_hmac_free(NULL);
}
END_TEST

/* ---- SHA-256: FIPS 180-2 examples ---- */

START_TEST(sha256_vectors)
{
    uint8_t out[32];
    imp_sha256("abc", 3, out);
    ck_assert_str_eq(hex32(out),
                     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    imp_sha256(NULL, 0, out);
    ck_assert_str_eq(hex32(out),
                     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    ck_assert_uint_eq(strlen(m448) * 8, 448);
    imp_sha256(m448, strlen(m448), out);
    ck_assert_str_eq(hex32(out),
                     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    char *million = imp_malloc(1000000);
    memset(million, 'a', 1000000);
    imp_sha256(million, 1000000, out);
    ck_assert_str_eq(hex32(out),
                     "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(million);
}
END_TEST

/* ---- Constant-time comparison ---- */

START_TEST(equal_fixed_length)
{
    uint8_t a[32], b[32];
    for (int i = 0; i < 32; i++)
        a[i] = b[i] = (uint8_t)(i * 7);
    ck_assert(imp_crypto_equal(a, b, 32));
    ck_assert(imp_crypto_equal(a, b, 0));
    for (int i = 0; i < 32; i++) {
        b[i] ^= 0x01;
        ck_assert_msg(!imp_crypto_equal(a, b, 32), "difference at %d not seen", i);
        b[i] ^= 0x81;
        ck_assert(!imp_crypto_equal(a, b, 32));
        b[i] ^= 0x80;
    }
    ck_assert(imp_crypto_equal(a, b, 32));
}
END_TEST

START_TEST(equal_variable_length)
{
    const char *secret = "s3cr3t-token";
    size_t n = strlen(secret);
    ck_assert(imp_crypto_equal_str(secret, n, "s3cr3t-token", n));
    ck_assert(!imp_crypto_equal_str(secret, n, "s3cr3t-tokeN", n));
    ck_assert(!imp_crypto_equal_str(secret, n, "X3cr3t-token", n));
    ck_assert(!imp_crypto_equal_str(secret, n, "s3cr3t-toke", n - 1));   /* a prefix */
    ck_assert(!imp_crypto_equal_str(secret, n, "s3cr3t-tokenX", n + 1)); /* an extension */
    ck_assert(!imp_crypto_equal_str(secret, n, "", 0));
    ck_assert(!imp_crypto_equal_str("", 0, secret, n));
    ck_assert(imp_crypto_equal_str("", 0, "", 0));
    ck_assert(imp_crypto_equal_str(NULL, 0, NULL, 0));
    /* Embedded NULs are content, not terminators. */
    ck_assert(imp_crypto_equal_str("a\0b", 3, "a\0b", 3));
    ck_assert(!imp_crypto_equal_str("a\0b", 3, "a\0c", 3));
}
END_TEST

/* ---- Random ---- */

START_TEST(random_bytes)
{
    uint8_t a[32] = {0}, b[32] = {0}, zero[32] = {0};
    imp_crypto_random(a, sizeof(a));
    imp_crypto_random(b, sizeof(b));
    ck_assert(memcmp(a, zero, 32) != 0);
    ck_assert(memcmp(a, b, 32) != 0);
    imp_crypto_random(NULL, 0);
    imp_crypto_wipe(a, sizeof(a));
    ck_assert_mem_eq(a, zero, 32);
}
END_TEST

/* ---- Hex ---- */

START_TEST(hex_roundtrip)
{
    uint8_t all[256], back[256];
    char text[513];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    imp_hex_encode(all, 256, text);
    ck_assert_uint_eq(strlen(text), 512);
    ck_assert(strncmp(text, "000102", 6) == 0);
    ck_assert_str_eq(text + 500, "fafbfcfdfeff");
    size_t n = 0;
    ck_assert_int_eq(imp_hex_decode(text, 512, back, sizeof(back), &n), 0);
    ck_assert_uint_eq(n, 256);
    ck_assert_mem_eq(all, back, 256);

    ck_assert_int_eq(imp_hex_decode("DEADbeef", 8, back, 4, &n), 0);
    ck_assert_uint_eq(n, 4);
    ck_assert_mem_eq(back, "\xde\xad\xbe\xef", 4);
    ck_assert_int_eq(imp_hex_decode("", 0, back, 0, &n), 0);
    ck_assert_uint_eq(n, 0);
    imp_hex_encode(NULL, 0, text);
    ck_assert_str_eq(text, "");
}
END_TEST

START_TEST(hex_rejects)
{
    uint8_t out[8];
    size_t n = 99;
    ck_assert_int_eq(imp_hex_decode("abc", 3, out, sizeof(out), &n), -1); /* odd */
    ck_assert_int_eq(imp_hex_decode("0g", 2, out, sizeof(out), &n), -1);  /* not hex */
    ck_assert_int_eq(imp_hex_decode("zz", 2, out, sizeof(out), &n), -1);
    ck_assert_int_eq(imp_hex_decode(" 0a", 3, out, sizeof(out), &n), -1); /* space */
    ck_assert_int_eq(imp_hex_decode("0a\n", 3, out, sizeof(out), &n), -1);
    ck_assert_int_eq(imp_hex_decode("0x0a", 4, out, sizeof(out), &n), -1); /* prefix */
    ck_assert_int_eq(imp_hex_decode("00112233", 8, out, 3, &n), -1);       /* too long */
    ck_assert_int_eq(imp_hex_decode("0\0", 2, out, sizeof(out), &n), -1);  /* NUL */
    ck_assert_uint_eq(n, 99);
}
END_TEST

/* ---- Base64: RFC 4648 §10 ---- */

static const char *const b64_plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
static const char *const b64_std_vec[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                          "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
static const char *const b64_url_vec[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};

START_TEST(base64_rfc4648)
{
    const char *plain = b64_plain[_i];
    size_t len = strlen(plain);
    char text[16];
    uint8_t back[16];
    size_t n = 0;

    ck_assert_uint_eq(imp_base64_encode(plain, len, text), strlen(b64_std_vec[_i]));
    ck_assert_str_eq(text, b64_std_vec[_i]);
    ck_assert_uint_eq(IMP_BASE64_ENCODED_LEN(len), strlen(b64_std_vec[_i]));
    ck_assert_int_eq(imp_base64_decode(text, strlen(text), back, len, &n), 0);
    ck_assert_uint_eq(n, len);
    ck_assert_mem_eq(back, plain, len);
    ck_assert_uint_le(len, IMP_BASE64_DECODED_MAX(strlen(text)));

    ck_assert_uint_eq(imp_base64url_encode(plain, len, text), strlen(b64_url_vec[_i]));
    ck_assert_str_eq(text, b64_url_vec[_i]);
    ck_assert_uint_eq(IMP_BASE64URL_ENCODED_LEN(len), strlen(b64_url_vec[_i]));
    ck_assert_int_eq(imp_base64url_decode(text, strlen(text), back, len, &n), 0);
    ck_assert_uint_eq(n, len);
    ck_assert_mem_eq(back, plain, len);
    ck_assert_uint_le(len, IMP_BASE64_DECODED_MAX(strlen(text)));
}
END_TEST

START_TEST(base64_alphabets)
{
    static const uint8_t bytes[] = {0xfb, 0xff, 0xfe};
    char text[8];
    uint8_t back[3];
    size_t n = 0;
    imp_base64_encode(bytes, 3, text);
    ck_assert_str_eq(text, "+//+");
    imp_base64url_encode(bytes, 3, text);
    ck_assert_str_eq(text, "-__-");
    ck_assert_int_eq(imp_base64_decode("+//+", 4, back, 3, &n), 0);
    ck_assert_mem_eq(back, bytes, 3);
    ck_assert_int_eq(imp_base64url_decode("-__-", 4, back, 3, &n), 0);
    ck_assert_mem_eq(back, bytes, 3);
    ck_assert_int_eq(imp_base64_decode("-__-", 4, back, 3, &n), -1);
    ck_assert_int_eq(imp_base64url_decode("+//+", 4, back, 3, &n), -1);
}
END_TEST

START_TEST(base64_roundtrip_lengths)
{
    uint8_t data[64], back[64];
    char text[IMP_BASE64_ENCODED_LEN(64) + 1];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof(data); len++) {
        size_t n = 0;
        size_t tl = imp_base64_encode(data, len, text);
        ck_assert_int_eq(imp_base64_decode(text, tl, back, len, &n), 0);
        ck_assert_uint_eq(n, len);
        ck_assert_mem_eq(back, data, len);
        tl = imp_base64url_encode(data, len, text);
        ck_assert_int_eq(imp_base64url_decode(text, tl, back, len, &n), 0);
        ck_assert_uint_eq(n, len);
        ck_assert_mem_eq(back, data, len);
        /* A buffer one byte short is refused rather than overrun. */
        if (len > 0)
            ck_assert_int_eq(imp_base64url_decode(text, tl, back, len - 1, &n), -1);
    }
}
END_TEST

static const char *const b64_std_bad[] = {
    "Zg",                /* missing padding */
    "Zg=",               /* length not a multiple of 4 */
    "Z===",              /* three pads */
    "====",              /* only padding */
    "=Zg=",              /* padding first */
    "Zg==Zg==",          /* padding in the middle */
    "Zm9v====",          /* too much padding */
    "Zh==",              /* non-zero unused bits: "f" is only Zg== */
    "Zm9=",              /* non-zero unused bits: "fo" is only Zm8= */
    "Zm9v\n",            /* line break */
    "Zm 9v",             /* space */
    "Zm9v YmFy", "Zm-v", /* URL alphabet */
    "Zm_v",      "Zm9*", "Zm9\x80",
};

START_TEST(base64_rejects)
{
    uint8_t out[16];
    size_t n = 99;
    const char *t = b64_std_bad[_i];
    ck_assert_msg(imp_base64_decode(t, strlen(t), out, sizeof(out), &n) == -1, "accepted %s", t);
    ck_assert_uint_eq(n, 99);
}
END_TEST

START_TEST(base64_rejects_misc)
{
    uint8_t out[16];
    size_t n = 0;
    /* Embedded NUL counts as a character, not the end. */
    ck_assert_int_eq(imp_base64_decode("Zm9v\0\0\0\0", 8, out, sizeof(out), &n), -1);
    /* Output larger than the buffer. */
    ck_assert_int_eq(imp_base64_decode("Zm9vYmFy", 8, out, 5, &n), -1);
    ck_assert_int_eq(imp_base64_decode("Zm9vYmE=", 8, out, 5, &n), 0);
    /* base64url: no padding at all, no 1-mod-4 lengths, canonical bits, its own alphabet. */
    ck_assert_int_eq(imp_base64url_decode("Zg==", 4, out, sizeof(out), &n), -1);
    ck_assert_int_eq(imp_base64url_decode("Zm8=", 4, out, sizeof(out), &n), -1);
    ck_assert_int_eq(imp_base64url_decode("Z", 1, out, sizeof(out), &n), -1);
    ck_assert_int_eq(imp_base64url_decode("Zm9vY", 5, out, sizeof(out), &n), -1);
    ck_assert_int_eq(imp_base64url_decode("Zh", 2, out, sizeof(out), &n), -1);
    ck_assert_int_eq(imp_base64url_decode("Zm+v", 4, out, sizeof(out), &n), -1);
    ck_assert_int_eq(imp_base64url_decode("Zm/v", 4, out, sizeof(out), &n), -1);
    ck_assert_int_eq(imp_base64url_decode("Zm9v\n", 5, out, sizeof(out), &n), -1);
}
END_TEST

/* ---- AES-256-GCM secrets ---- */

static const uint8_t key_a[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                  16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};

static char *seal_ok(const uint8_t *key, const char *plain, size_t len, const char *aad)
{
    char *token = NULL;
    imp_error_t *err = imp_crypto_seal(key, plain, len, aad, aad ? strlen(aad) : 0, &token);
    ck_assert_ptr_null(err);
    ck_assert_ptr_nonnull(token);
    return token;
}

/* Open and expect an error of class poison with the given code. */
static void open_fails(const uint8_t *key, const char *token, const char *aad, const char *code)
{
    uint8_t *plain = (uint8_t *)"sentinel";
    size_t len = 99;
    imp_error_t *err = imp_crypto_open(key, token, aad, aad ? strlen(aad) : 0, &plain, &len);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
    ck_assert_str_eq(imp_error_code(err), code);
    ck_assert_ptr_null(plain);
    ck_assert_uint_eq(len, 0);
    imp_error_free(err);
}

START_TEST(aes_roundtrip)
{
    const char *secret = "bot-token:123456:ABC-def";
    char *token = seal_ok(key_a, secret, strlen(secret), "tenant-7");
    ck_assert(strncmp(token, "v1:", 3) == 0);
    ck_assert_uint_eq(strlen(token), 3 + IMP_BASE64_ENCODED_LEN(12 + strlen(secret) + 16));

    uint8_t *plain = NULL;
    size_t len = 0;
    ck_assert_ptr_null(imp_crypto_open(key_a, token, "tenant-7", 8, &plain, &len));
    ck_assert_uint_eq(len, strlen(secret));
    ck_assert_str_eq((char *)plain, secret);

    /* A fresh nonce per seal: the same secret seals differently every time. */
    char *again = seal_ok(key_a, secret, strlen(secret), "tenant-7");
    ck_assert_str_ne(token, again);

    imp_crypto_wipe(plain, len);
    free(plain);
    free(token);
    free(again);
}
END_TEST

START_TEST(aes_binary_and_empty)
{
    uint8_t *plain = NULL;
    size_t len = 0;
    char *token = seal_ok(key_a, "a\0b\xff", 4, NULL);
    ck_assert_ptr_null(imp_crypto_open(key_a, token, NULL, 0, &plain, &len));
    ck_assert_uint_eq(len, 4);
    ck_assert_mem_eq(plain, "a\0b\xff", 5); /* and the trailing NUL */
    free(plain);
    free(token);

    token = seal_ok(key_a, "", 0, "t");
    ck_assert_uint_eq(strlen(token), 3 + IMP_BASE64_ENCODED_LEN(28));
    ck_assert_ptr_null(imp_crypto_open(key_a, token, "t", 1, &plain, &len));
    ck_assert_uint_eq(len, 0);
    ck_assert_uint_eq(plain[0], 0);
    free(plain);
    free(token);
}
END_TEST

/* A token made by another implementation (Python's cryptography AESGCM) from the documented
 * format: key 00..1f, nonce 64..6f, aad "tenant-7". */
START_TEST(aes_interop_vector)
{
    const char *token =
        "v1:ZGVmZ2hpamtsbW5vKnSqSw2GPftQWG7a6VFfy3iDREmmCJYUjeJNhVi5RYDfmld5hje1Rg==";
    uint8_t *plain = NULL;
    size_t len = 0;
    ck_assert_ptr_null(imp_crypto_open(key_a, token, "tenant-7", 8, &plain, &len));
    ck_assert_str_eq((char *)plain, "bot-token:123456:ABC-def");
    free(plain);
    open_fails(key_a, token, "tenant-8", "secret_auth");
}
END_TEST

START_TEST(aes_tamper_every_byte)
{
    const char *secret = "webhook-secret";
    char *token = seal_ok(key_a, secret, strlen(secret), "tenant-1");
    const char *b64 = token + 3;
    size_t rawlen = 0;
    uint8_t raw[64];
    ck_assert_int_eq(imp_base64_decode(b64, strlen(b64), raw, sizeof(raw), &rawlen), 0);
    ck_assert_uint_eq(rawlen, 12 + strlen(secret) + 16);

    /* Every byte of nonce, ciphertext and tag, every bit position. */
    char forged[3 + IMP_BASE64_ENCODED_LEN(64) + 1];
    memcpy(forged, "v1:", 3);
    for (size_t i = 0; i < rawlen; i++) {
        for (int bit = 0; bit < 8; bit++) {
            raw[i] ^= (uint8_t)(1u << bit);
            imp_base64_encode(raw, rawlen, forged + 3);
            open_fails(key_a, forged, "tenant-1", "secret_auth");
            raw[i] ^= (uint8_t)(1u << bit);
        }
    }
    /* Truncated (the tag shortened) and extended. */
    imp_base64_encode(raw, rawlen - 1, forged + 3);
    open_fails(key_a, forged, "tenant-1", "secret_auth");
    raw[rawlen] = 0;
    imp_base64_encode(raw, rawlen + 1, forged + 3);
    open_fails(key_a, forged, "tenant-1", "secret_auth");
    free(token);
}
END_TEST

START_TEST(aes_wrong_key_or_aad)
{
    uint8_t key_b[32];
    memcpy(key_b, key_a, 32);
    key_b[31] ^= 1;
    char *token = seal_ok(key_a, "s", 1, "tenant-1");
    open_fails(key_b, token, "tenant-1", "secret_auth");
    open_fails(key_a, token, "tenant-2", "secret_auth");
    open_fails(key_a, token, "tenant-1 ", "secret_auth");
    open_fails(key_a, token, NULL, "secret_auth");
    free(token);

    token = seal_ok(key_a, "s", 1, NULL);
    open_fails(key_a, token, "tenant-1", "secret_auth");
    free(token);
}
END_TEST

START_TEST(aes_malformed_tokens)
{
    open_fails(key_a, NULL, NULL, "secret_malformed");
    open_fails(key_a, "", NULL, "secret_malformed");
    open_fails(key_a, "v2:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL, "secret_malformed");
    open_fails(key_a, "V1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL, "secret_malformed");
    open_fails(key_a, "v1:", NULL, "secret_malformed");
    open_fails(key_a, "v1:AAAA", NULL, "secret_malformed"); /* shorter than nonce + tag */
    open_fails(key_a, "v1:!!!!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL, "secret_malformed");
    open_fails(key_a, "v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL, "secret_malformed");
    /* 28 bytes of zeros: well-formed, but the tag does not verify. */
    open_fails(key_a, "v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", NULL, "secret_auth");
}
END_TEST

START_TEST(aes_too_large)
{
    size_t len = IMP_CRYPTO_SEAL_MAX + 1;
    char *big = imp_calloc(1, len);
    char *token = (char *)"sentinel";
    imp_error_t *err = imp_crypto_seal(key_a, big, len, NULL, 0, &token);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
    ck_assert_str_eq(imp_error_code(err), "secret_too_large");
    ck_assert_ptr_null(token);
    imp_error_free(err);

    token = seal_ok(key_a, big, IMP_CRYPTO_SEAL_MAX, NULL);
    uint8_t *plain = NULL;
    size_t plen = 0;
    ck_assert_ptr_null(imp_crypto_open(key_a, token, NULL, 0, &plain, &plen));
    ck_assert_uint_eq(plen, IMP_CRYPTO_SEAL_MAX);
    ck_assert_mem_eq(plain, big, plen);
    free(plain);
    free(token);
    free(big);
}
END_TEST

/* ---- Key parsing ---- */

START_TEST(key_parse_ok)
{
    uint8_t key[32];
    ck_assert_ptr_null(imp_crypto_key_parse(
        "IMP_SECRETS_KEY", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        key));
    ck_assert_mem_eq(key, key_a, 32);
    memset(key, 0, sizeof(key));
    ck_assert_ptr_null(imp_crypto_key_parse(
        "IMP_SECRETS_KEY", "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
        key));
    ck_assert_mem_eq(key, key_a, 32);
    memset(key, 0, sizeof(key));
    ck_assert_ptr_null(imp_crypto_key_parse("IMP_SECRETS_KEY",
                                            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", key));
    ck_assert_mem_eq(key, key_a, 32);
}
END_TEST

typedef struct {
    const char *text;
    const char *says; /* a phrase the message must contain */
} bad_key_t;

static const bad_key_t bad_keys[] = {
    {NULL, "is empty"},
    {"", "is empty"},
    {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1", "has 63 characters"},
    {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0", "has 65 characters"},
    {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", "has 65 characters"},
    {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1eXY", "is not hex"},
    {"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", "has 43 characters"},
    {"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8*", "not the base64 of 32 bytes"},
    {"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g", "not the base64 of 32 bytes"},
    {"0000000000000000000000000000000000000000000000000000000000000000", "all zeros"},
    {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "all zeros"},
    {"correct horse battery staple", "has 28 characters"},
};

START_TEST(key_parse_errors)
{
    const bad_key_t *b = &bad_keys[_i];
    uint8_t key[32];
    memset(key, 0x5a, sizeof(key));
    imp_error_t *err = imp_crypto_key_parse("IMP_SECRETS_KEY", b->text, key);
    ck_assert_ptr_nonnull(err);
    const char *msg = imp_error_message(err);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_FATAL);
    ck_assert_str_eq(imp_error_code(err), "config");
    ck_assert_msg(strncmp(msg, "IMP_SECRETS_KEY ", 16) == 0, "does not name the variable: %s", msg);
    ck_assert_msg(strstr(msg, b->says) != NULL, "case %d: \"%s\" lacks \"%s\"", _i, msg, b->says);
    if (b->text != NULL && strlen(b->text) > 8) {
        char head[9];
        memcpy(head, b->text, 8);
        head[8] = '\0';
        ck_assert_msg(strstr(msg, head) == NULL, "message echoes the key: %s", msg);
    }
    /* The output is untouched on error. */
    for (int i = 0; i < 32; i++)
        ck_assert_uint_eq(key[i], 0x5a);
    imp_error_free(err);
}
END_TEST

static Suite *crypto_suite(void)
{
    Suite *s = suite_create("crypto");
    TCase *tc = tcase_create("hmac");
    tcase_add_loop_test(tc, hmac_rfc4231, 0, 6);
    tcase_add_test(tc, hmac_parts_equal_concatenation);
    tcase_add_test(tc, hmac_empty_key_and_message);
    suite_add_tcase(s, tc);

    tc = tcase_create("digest_compare_random");
    tcase_add_test(tc, sha256_vectors);
    tcase_add_test(tc, equal_fixed_length);
    tcase_add_test(tc, equal_variable_length);
    tcase_add_test(tc, random_bytes);
    suite_add_tcase(s, tc);

    tc = tcase_create("codecs");
    tcase_add_test(tc, hex_roundtrip);
    tcase_add_test(tc, hex_rejects);
    tcase_add_loop_test(tc, base64_rfc4648, 0, (int)IMP_ARRAY_LEN(b64_plain));
    tcase_add_test(tc, base64_alphabets);
    tcase_add_test(tc, base64_roundtrip_lengths);
    tcase_add_loop_test(tc, base64_rejects, 0, (int)IMP_ARRAY_LEN(b64_std_bad));
    tcase_add_test(tc, base64_rejects_misc);
    suite_add_tcase(s, tc);

    tc = tcase_create("secrets");
    tcase_add_test(tc, aes_roundtrip);
    tcase_add_test(tc, aes_binary_and_empty);
    tcase_add_test(tc, aes_interop_vector);
    tcase_add_test(tc, aes_tamper_every_byte);
    tcase_add_test(tc, aes_wrong_key_or_aad);
    tcase_add_test(tc, aes_malformed_tokens);
    tcase_add_test(tc, aes_too_large);
    tcase_add_test(tc, key_parse_ok);
    tcase_add_loop_test(tc, key_parse_errors, 0, (int)IMP_ARRAY_LEN(bad_keys));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(crypto_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
