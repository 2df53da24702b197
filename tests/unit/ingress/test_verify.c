/* Unit tests for the ingress verifiers: Standard Webhooks, Meta, Telegram, Meta's handshake. */
#include "../../../ingress/webhooks/verify_common.c"
#include "../../../ingress/webhooks/verify_meta.c"
#include "../../../ingress/webhooks/verify_standard.c"
#include "../../../ingress/webhooks/verify_telegram.c"

#include "imp/mem.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- request headers ---- */

typedef struct {
    const char *name, *value;
} hdr_t;

typedef struct {
    hdr_t h[8];
    size_t n;
} hdrs_t;

static const char *lookup(void *ctx, const char *name, size_t *len)
{
    hdrs_t *hs = ctx;
    for (size_t i = 0; i < hs->n; i++) {
        if (strcasecmp(hs->h[i].name, name) == 0) {
            *len = strlen(hs->h[i].value);
            return hs->h[i].value;
        }
    }
    return NULL;
}

/* The verdict as text: "ok" or the error's code (the error is freed). */
static const char *verdict(imp_error_t *err)
{
    static char buf[64];
    if (err == NULL)
        return "ok";
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
    snprintf(buf, sizeof(buf), "%s", imp_error_code(err));
    imp_error_free(err);
    return buf;
}

/* ---- Standard Webhooks ---- */

/* The vector published with the Standard Webhooks reference libraries. */
#define SPEC_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SPEC_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SPEC_TS "1614265330"
#define SPEC_NOW 1614265330
#define SPEC_BODY "{\"test\": 2432232314}"
#define SPEC_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

/* Our own vector, computed with Python:
 *   key = b"imperium-test-secret-0123456789ab"
 *   base64(hmac.new(key, b"msg_2mQk7Zq1.1732150000." + OWN_BODY, hashlib.sha256).digest()) */
#define OWN_KEY "imperium-test-secret-0123456789ab"
#define OWN_WHSEC "whsec_aW1wZXJpdW0tdGVzdC1zZWNyZXQtMDEyMzQ1Njc4OWFi"
#define OWN_ID "msg_2mQk7Zq1"
#define OWN_TS "1732150000"
#define OWN_NOW 1732150000
#define OWN_BODY                                                                                   \
    "{\"conversation\":\"c-1\",\"sender\":{\"id\":\"u-7\",\"name\":\"Анна\"},"                 \
    "\"message\":{\"id\":\"m-1\",\"text\":\"Привет\"}}"
#define OWN_SIG "v1,s5DOHULl8Jc9DR60lLU4K7nDgLorz3TuctLx9QFcisI="

/* A signature that is well formed but matches nothing. */
#define OTHER_SIG "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

static uint8_t spec_key[64];
static size_t spec_key_len;

static void setup_keys(void)
{
    ck_assert_int_eq(ing_whsec_decode(SPEC_SECRET, strlen(SPEC_SECRET), spec_key, sizeof(spec_key),
                                      &spec_key_len),
                     0);
    ck_assert_uint_eq(spec_key_len, 24);
}

static hdrs_t std_headers(const char *id, const char *ts, const char *sig)
{
    hdrs_t hs = {.n = 0};
    if (id)
        hs.h[hs.n++] = (hdr_t){"Webhook-Id", id};
    if (ts)
        hs.h[hs.n++] = (hdr_t){"webhook-timestamp", ts};
    if (sig)
        hs.h[hs.n++] = (hdr_t){"WEBHOOK-SIGNATURE", sig};
    return hs;
}

/* Verify the spec body with the spec key (and optionally a second key first). */
static const char *spec_verify(const char *id, const char *ts, const char *sig, const char *body,
                               int64_t now)
{
    ing_key_t key = {.key = spec_key, .len = spec_key_len};
    hdrs_t hs = std_headers(id, ts, sig);
    char out[ING_WEBHOOK_ID_MAX + 1] = "untouched";
    const char *v = verdict(
        ing_verify_standard(&key, 1, lookup, &hs, body, strlen(body), now, 300, out, sizeof(out)));
    if (strcmp(v, "ok") == 0)
        ck_assert_str_eq(out, id);
    else
        ck_assert_str_eq(out, "");
    return v;
}

START_TEST(std_spec_vector)
{
    ck_assert_str_eq(spec_verify(SPEC_ID, SPEC_TS, SPEC_SIG, SPEC_BODY, SPEC_NOW), "ok");
}
END_TEST

START_TEST(std_own_python_vector)
{
    uint8_t key[64];
    size_t klen;
    ck_assert_int_eq(ing_whsec_decode(OWN_WHSEC, strlen(OWN_WHSEC), key, sizeof(key), &klen), 0);
    ck_assert_uint_eq(klen, strlen(OWN_KEY));
    ck_assert_mem_eq(key, OWN_KEY, klen);
    ing_key_t k = {.key = key, .len = klen};
    hdrs_t hs = std_headers(OWN_ID, OWN_TS, OWN_SIG);
    char out[64];
    ck_assert_str_eq(verdict(ing_verify_standard(&k, 1, lookup, &hs, OWN_BODY, strlen(OWN_BODY),
                                                 OWN_NOW, 300, out, sizeof(out))),
                     "ok");
    ck_assert_str_eq(out, OWN_ID);
    /* Through a pre-keyed context, the same verdict. */
    k.hmac = imp_hmac_new(key, klen);
    ck_assert_str_eq(verdict(ing_verify_standard(&k, 1, lookup, &hs, OWN_BODY, strlen(OWN_BODY),
                                                 OWN_NOW, 300, out, sizeof(out))),
                     "ok");
    imp_hmac_free(k.hmac);
}
END_TEST

START_TEST(std_tampered_body)
{
    ck_assert_str_eq(spec_verify(SPEC_ID, SPEC_TS, SPEC_SIG, "{\"test\": 2432232315}", SPEC_NOW),
                     "sig_mismatch");
    ck_assert_str_eq(spec_verify(SPEC_ID, SPEC_TS, SPEC_SIG, "", SPEC_NOW), "sig_mismatch");
    /* The id and the timestamp are signed too. */
    ck_assert_str_eq(spec_verify("msg_other", SPEC_TS, SPEC_SIG, SPEC_BODY, SPEC_NOW),
                     "sig_mismatch");
    ck_assert_str_eq(spec_verify(SPEC_ID, "1614265331", SPEC_SIG, SPEC_BODY, SPEC_NOW),
                     "sig_mismatch");
}
END_TEST

START_TEST(std_wrong_secret)
{
    ing_key_t key = {.key = (const uint8_t *)OWN_KEY, .len = strlen(OWN_KEY)};
    hdrs_t hs = std_headers(SPEC_ID, SPEC_TS, SPEC_SIG);
    char out[64];
    ck_assert_str_eq(verdict(ing_verify_standard(&key, 1, lookup, &hs, SPEC_BODY, strlen(SPEC_BODY),
                                                 SPEC_NOW, 300, out, sizeof(out))),
                     "sig_mismatch");
}
END_TEST

START_TEST(std_rotated_signatures)
{
    /* Two signatures, the second valid; the first valid; a third version skipped. */
    ck_assert_str_eq(spec_verify(SPEC_ID, SPEC_TS, OTHER_SIG " " SPEC_SIG, SPEC_BODY, SPEC_NOW),
                     "ok");
    ck_assert_str_eq(spec_verify(SPEC_ID, SPEC_TS, SPEC_SIG " " OTHER_SIG, SPEC_BODY, SPEC_NOW),
                     "ok");
    ck_assert_str_eq(
        spec_verify(SPEC_ID, SPEC_TS, "v1a,c29tZXRoaW5n  " SPEC_SIG " ", SPEC_BODY, SPEC_NOW),
        "ok");
    /* A malformed entry next to a valid one is skipped, as the reference libraries do. */
    ck_assert_str_eq(spec_verify(SPEC_ID, SPEC_TS, "v1,!!! " SPEC_SIG, SPEC_BODY, SPEC_NOW), "ok");
    /* Two signatures, neither valid. */
    ck_assert_str_eq(spec_verify(SPEC_ID, SPEC_TS, OTHER_SIG " " OTHER_SIG, SPEC_BODY, SPEC_NOW),
                     "sig_mismatch");
}
END_TEST

START_TEST(std_rotated_keys)
{
    ing_key_t keys[2] = {
        {.key = (const uint8_t *)OWN_KEY, .len = strlen(OWN_KEY)},
        {.key = spec_key, .len = spec_key_len},
    };
    hdrs_t hs = std_headers(SPEC_ID, SPEC_TS, SPEC_SIG);
    char out[64];
    /* The second key is the valid one. */
    ck_assert_str_eq(verdict(ing_verify_standard(keys, 2, lookup, &hs, SPEC_BODY, strlen(SPEC_BODY),
                                                 SPEC_NOW, 300, out, sizeof(out))),
                     "ok");
    /* Only the first (wrong) key: rejected. */
    ck_assert_str_eq(verdict(ing_verify_standard(keys, 1, lookup, &hs, SPEC_BODY, strlen(SPEC_BODY),
                                                 SPEC_NOW, 300, out, sizeof(out))),
                     "sig_mismatch");
    /* No keys, or an empty key, never authenticate. */
    ck_assert_str_eq(verdict(ing_verify_standard(keys, 0, lookup, &hs, SPEC_BODY, strlen(SPEC_BODY),
                                                 SPEC_NOW, 300, out, sizeof(out))),
                     "sig_mismatch");
    ing_key_t empty = {.key = (const uint8_t *)"", .len = 0};
    ck_assert_str_eq(
        verdict(ing_verify_standard(&empty, 1, lookup, &hs, SPEC_BODY, strlen(SPEC_BODY), SPEC_NOW,
                                    300, out, sizeof(out))),
        "sig_mismatch");
}
END_TEST

START_TEST(std_timestamp_window)
{
    /* The signature is over the header as sent, so moving "now" is what tests the window. */
    ck_assert_str_eq(spec_verify(SPEC_ID, SPEC_TS, SPEC_SIG, SPEC_BODY, SPEC_NOW + 300), "ok");
    ck_assert_str_eq(spec_verify(SPEC_ID, SPEC_TS, SPEC_SIG, SPEC_BODY, SPEC_NOW - 300), "ok");
    /* Timestamp 301 s in the past, and 301 s in the future. */
    ck_assert_str_eq(spec_verify(SPEC_ID, SPEC_TS, SPEC_SIG, SPEC_BODY, SPEC_NOW + 301),
                     "sig_timestamp");
    ck_assert_str_eq(spec_verify(SPEC_ID, SPEC_TS, SPEC_SIG, SPEC_BODY, SPEC_NOW - 301),
                     "sig_timestamp");
    /* The timestamp is checked before the signature: a stale replay with a bad signature
     * says timestamp. */
    ck_assert_str_eq(spec_verify(SPEC_ID, SPEC_TS, OTHER_SIG, SPEC_BODY, SPEC_NOW + 301),
                     "sig_timestamp");
    /* Extreme clocks do not overflow. */
    ck_assert_str_eq(spec_verify(SPEC_ID, SPEC_TS, SPEC_SIG, SPEC_BODY, INT64_MIN),
                     "sig_timestamp");
    ck_assert_str_eq(spec_verify(SPEC_ID, SPEC_TS, SPEC_SIG, SPEC_BODY, INT64_MAX),
                     "sig_timestamp");
}
END_TEST

START_TEST(std_missing_headers)
{
    ck_assert_str_eq(spec_verify(NULL, SPEC_TS, SPEC_SIG, SPEC_BODY, SPEC_NOW), "sig_missing");
    ck_assert_str_eq(spec_verify(SPEC_ID, NULL, SPEC_SIG, SPEC_BODY, SPEC_NOW), "sig_missing");
    ck_assert_str_eq(spec_verify(SPEC_ID, SPEC_TS, NULL, SPEC_BODY, SPEC_NOW), "sig_missing");
    ck_assert_str_eq(spec_verify(NULL, NULL, NULL, SPEC_BODY, SPEC_NOW), "sig_missing");
    ck_assert_str_eq(spec_verify("", SPEC_TS, SPEC_SIG, SPEC_BODY, SPEC_NOW), "sig_missing");
    ck_assert_str_eq(spec_verify(SPEC_ID, "", SPEC_SIG, SPEC_BODY, SPEC_NOW), "sig_missing");
    ck_assert_str_eq(spec_verify(SPEC_ID, SPEC_TS, "", SPEC_BODY, SPEC_NOW), "sig_missing");
}
END_TEST

START_TEST(std_malformed_headers)
{
    const char *bad_sigs[] = {
        "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",    /* no "v1," */
        "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", /* another version only */
        "v1,",                                             /* empty */
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE",  /* bad padding */
        "v1,g0hM9SsE-OTPJTGt_tmIKtSyZlE3uFJELVlNIOLJ1OE=", /* base64url alphabet */
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1O==", /* 31 bytes */
        "v1,!!!!",                                         /* not base64 */
        "V1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", /* the version is case-sensitive */
        "v1;g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", /* wrong separator */
        "   ",                                             /* only spaces */
    };
    for (size_t i = 0; i < IMP_ARRAY_LEN(bad_sigs); i++)
        ck_assert_msg(strcmp(spec_verify(SPEC_ID, SPEC_TS, bad_sigs[i], SPEC_BODY, SPEC_NOW),
                             "sig_missing") == 0,
                      "signature %zu", i);
    const char *bad_ts[] = {"-1614265330", "1614265330.5",   "+1614265330",
                            " 1614265330", "16142653300000", "0x60367"};
    for (size_t i = 0; i < IMP_ARRAY_LEN(bad_ts); i++)
        ck_assert_msg(strcmp(spec_verify(SPEC_ID, bad_ts[i], SPEC_SIG, SPEC_BODY, SPEC_NOW),
                             "sig_missing") == 0,
                      "timestamp %zu", i);
    ck_assert_str_eq(spec_verify("msg 1", SPEC_TS, SPEC_SIG, SPEC_BODY, SPEC_NOW), "sig_missing");
    char long_id[ING_WEBHOOK_ID_MAX + 2];
    memset(long_id, 'a', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    ck_assert_str_eq(spec_verify(long_id, SPEC_TS, SPEC_SIG, SPEC_BODY, SPEC_NOW), "sig_missing");
}
END_TEST

START_TEST(std_id_out_capacity)
{
    ing_key_t key = {.key = spec_key, .len = spec_key_len};
    hdrs_t hs = std_headers(SPEC_ID, SPEC_TS, SPEC_SIG);
    char out[sizeof(SPEC_ID)];
    /* Exactly enough room for the id and its NUL. */
    ck_assert_str_eq(verdict(ing_verify_standard(&key, 1, lookup, &hs, SPEC_BODY, strlen(SPEC_BODY),
                                                 SPEC_NOW, 300, out, sizeof(out))),
                     "ok");
    ck_assert_str_eq(out, SPEC_ID);
    ck_assert_str_eq(verdict(ing_verify_standard(&key, 1, lookup, &hs, SPEC_BODY, strlen(SPEC_BODY),
                                                 SPEC_NOW, 300, out, sizeof(out) - 1)),
                     "sig_missing");
    ck_assert_str_eq(verdict(ing_verify_standard(&key, 1, NULL, &hs, SPEC_BODY, strlen(SPEC_BODY),
                                                 SPEC_NOW, 300, out, sizeof(out))),
                     "sig_missing");
}
END_TEST

START_TEST(std_signature_limit)
{
    /* Only the first ING_STANDARD_MAX_SIGS well-formed signatures are looked at. */
    char *many = imp_strdup("");
    for (int i = 0; i < ING_STANDARD_MAX_SIGS; i++) {
        char *next = imp_asprintf("%s%s ", many, OTHER_SIG);
        free(many);
        many = next;
    }
    char *last = imp_asprintf("%s%s", many, SPEC_SIG);
    ck_assert_str_eq(spec_verify(SPEC_ID, SPEC_TS, last, SPEC_BODY, SPEC_NOW), "sig_mismatch");
    free(last);
    last = imp_asprintf("%s %s", SPEC_SIG, many);
    ck_assert_str_eq(spec_verify(SPEC_ID, SPEC_TS, last, SPEC_BODY, SPEC_NOW), "ok");
    free(last);
    free(many);
}
END_TEST

START_TEST(whsec_decoding)
{
    uint8_t out[8];
    size_t n;
    ck_assert_int_eq(ing_whsec_decode("whsec_aGVsbG8=", 14, out, sizeof(out), &n), 0);
    ck_assert_uint_eq(n, 5);
    ck_assert_mem_eq(out, "hello", 5);
    ck_assert_int_eq(ing_whsec_decode("aGVsbG8=", 8, out, sizeof(out), &n), 0); /* no prefix */
    ck_assert_int_eq(ing_whsec_decode("whsec_", 6, out, sizeof(out), &n), -1);
    ck_assert_int_eq(ing_whsec_decode("whsec_!!", 8, out, sizeof(out), &n), -1);
    ck_assert_int_eq(ing_whsec_decode("whsec_aGVsbG8gd29ybGQ=", 22, out, sizeof(out), &n), -1);
}
END_TEST

/* ---- Meta ---- */

#define META_SECRET "meta-app-secret"
#define META_BODY "{\"object\":\"whatsapp_business_account\",\"entry\":[]}"
/* python3: hmac.new(b"meta-app-secret", META_BODY, hashlib.sha256).hexdigest() */
#define META_HEX "ee9f05f989bc0aa2693d85691a477f8b8403933cde7959a1c5c6be7ea85e8d3d"

static const char *meta_verify(const char *sig, const char *body, const char *secret2)
{
    ing_key_t keys[2] = {{.key = (const uint8_t *)META_SECRET, .len = strlen(META_SECRET)}};
    size_t n = 1;
    if (secret2 != NULL) {
        keys[0] = (ing_key_t){.key = (const uint8_t *)secret2, .len = strlen(secret2)};
        keys[1] = (ing_key_t){.key = (const uint8_t *)META_SECRET, .len = strlen(META_SECRET)};
        n = 2;
    }
    hdrs_t hs = {.n = 0};
    if (sig != NULL)
        hs.h[hs.n++] = (hdr_t){"X-Hub-Signature-256", sig};
    return verdict(ing_verify_meta(keys, n, lookup, &hs, body, strlen(body)));
}

START_TEST(meta_vectors)
{
    ck_assert_str_eq(meta_verify("sha256=" META_HEX, META_BODY, NULL), "ok");
    ck_assert_str_eq(
        meta_verify("sha256=EE9F05F989BC0AA2693D85691A477F8B8403933CDE7959A1C5C6BE7EA85E8D3D",
                    META_BODY, NULL),
        "ok");
    /* Rotation: the old secret first, the valid one second. */
    ck_assert_str_eq(meta_verify("sha256=" META_HEX, META_BODY, "old-secret"), "ok");
    ck_assert_str_eq(meta_verify("sha256=" META_HEX, META_BODY "\n", NULL), "sig_mismatch");
    ck_assert_str_eq(meta_verify("sha256=" META_HEX,
                                 "{\"object\":\"whatsapp_business_account\",\"entry\":[1]}", NULL),
                     "sig_mismatch");
    ck_assert_str_eq(
        meta_verify("sha256=fe9f05f989bc0aa2693d85691a477f8b8403933cde7959a1c5c6be7ea85e8d3d",
                    META_BODY, NULL),
        "sig_mismatch");
    /* Wrong secret: a verifier holding only another secret. */
    ing_key_t wrong = {.key = (const uint8_t *)"nope", .len = 4};
    hdrs_t hs = {.h = {{"x-hub-signature-256", "sha256=" META_HEX}}, .n = 1};
    ck_assert_str_eq(verdict(ing_verify_meta(&wrong, 1, lookup, &hs, META_BODY, strlen(META_BODY))),
                     "sig_mismatch");
}
END_TEST

START_TEST(meta_malformed)
{
    ck_assert_str_eq(meta_verify(NULL, META_BODY, NULL), "sig_missing");
    ck_assert_str_eq(meta_verify("", META_BODY, NULL), "sig_missing");
    ck_assert_str_eq(meta_verify(META_HEX, META_BODY, NULL), "sig_missing");
    ck_assert_str_eq(meta_verify("sha1=" META_HEX, META_BODY, NULL), "sig_missing");
    ck_assert_str_eq(meta_verify("SHA256=" META_HEX, META_BODY, NULL), "sig_missing");
    ck_assert_str_eq(meta_verify("sha256=" META_HEX "00", META_BODY, NULL), "sig_missing");
    ck_assert_str_eq(
        meta_verify("sha256=ee9f05f989bc0aa2693d85691a477f8b8403933cde7959a1c5c6be7ea85e8d3",
                    META_BODY, NULL),
        "sig_missing");
    ck_assert_str_eq(
        meta_verify("sha256=zz9f05f989bc0aa2693d85691a477f8b8403933cde7959a1c5c6be7ea85e8d3d",
                    META_BODY, NULL),
        "sig_missing");
    ck_assert_str_eq(meta_verify("sha256=", META_BODY, NULL), "sig_missing");
}
END_TEST

/* ---- Telegram ---- */

static const char *tg_verify(const char *given, size_t ntokens)
{
    ing_key_t tokens[2] = {
        {.key = (const uint8_t *)"old-token_A1", .len = 12},
        {.key = (const uint8_t *)"new-token_B2", .len = 12},
    };
    hdrs_t hs = {.n = 0};
    if (given != NULL)
        hs.h[hs.n++] = (hdr_t){"X-Telegram-Bot-Api-Secret-Token", given};
    return verdict(ing_verify_telegram(tokens, ntokens, lookup, &hs));
}

START_TEST(telegram_tokens)
{
    ck_assert_str_eq(tg_verify("old-token_A1", 1), "ok");
    ck_assert_str_eq(tg_verify("new-token_B2", 2), "ok"); /* rotation: the second token */
    ck_assert_str_eq(tg_verify("new-token_B2", 1), "sig_mismatch");
    ck_assert_str_eq(tg_verify("old-token_A", 2), "sig_mismatch");   /* a prefix */
    ck_assert_str_eq(tg_verify("old-token_A12", 2), "sig_mismatch"); /* longer */
    ck_assert_str_eq(tg_verify("OLD-TOKEN_A1", 2), "sig_mismatch");
    ck_assert_str_eq(tg_verify("x", 0), "sig_mismatch");
    ck_assert_str_eq(tg_verify(NULL, 2), "sig_missing");
    ck_assert_str_eq(tg_verify("", 2), "sig_missing");
    /* An empty configured token never matches. */
    ing_key_t empty = {.key = (const uint8_t *)"", .len = 0};
    hdrs_t hs = {.h = {{"x-telegram-bot-api-secret-token", "a"}}, .n = 1};
    ck_assert_str_eq(verdict(ing_verify_telegram(&empty, 1, lookup, &hs)), "sig_mismatch");
}
END_TEST

/* ---- Meta's handshake ---- */

static const char *handshake(const char *query, const char **challenge, size_t *clen)
{
    ing_key_t tokens[2] = {
        {.key = (const uint8_t *)"old token", .len = 9},
        {.key = (const uint8_t *)"verify-me", .len = 9},
    };
    return verdict(ing_verify_meta_handshake(tokens, 2, query, strlen(query), challenge, clen));
}

START_TEST(meta_handshake)
{
    const char *c;
    size_t n;
    const char *q = "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=verify-me";
    ck_assert_str_eq(handshake(q, &c, &n), "ok");
    ck_assert_uint_eq(n, 10);
    ck_assert_mem_eq(c, "1158201444", 10);
    ck_assert_ptr_eq(c, q + 33); /* borrowed from the query */
    /* Percent and '+' encoding in the token; the first of a duplicated parameter wins. */
    ck_assert_str_eq(handshake("hub.verify_token=old+token&hub.mode=subscribe&hub.challenge=42&"
                               "hub.challenge=43",
                               &c, &n),
                     "ok");
    ck_assert_mem_eq(c, "42", 2);
    ck_assert_str_eq(
        handshake("hub.mode=subscribe&hub.verify_token=old%20token&hub.challenge=7", &c, &n), "ok");
    ck_assert_str_eq(
        handshake("hub.mode=subscribe&hub.verify_token=verify-mf&hub.challenge=7", &c, &n),
        "sig_mismatch");
    ck_assert_ptr_null(c);
    ck_assert_uint_eq(n, 0);
    ck_assert_str_eq(
        handshake("hub.mode=subscribe&hub.verify_token=verify-me2&hub.challenge=7", &c, &n),
        "sig_mismatch");
    ck_assert_str_eq(
        handshake("hub.mode=unsubscribe&hub.verify_token=verify-me&hub.challenge=7", &c, &n),
        "sig_missing");
    ck_assert_str_eq(handshake("hub.verify_token=verify-me&hub.challenge=7", &c, &n),
                     "sig_missing");
    ck_assert_str_eq(handshake("hub.mode=subscribe&hub.challenge=7", &c, &n), "sig_missing");
    ck_assert_str_eq(handshake("hub.mode=subscribe&hub.verify_token=&hub.challenge=7", &c, &n),
                     "sig_missing");
    ck_assert_str_eq(handshake("hub.mode=subscribe&hub.verify_token=verify-me", &c, &n),
                     "sig_missing");
    ck_assert_str_eq(
        handshake("hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=<script>", &c, &n),
        "sig_missing");
    ck_assert_str_eq(
        handshake("hub.mode=subscribe&hub.verify_token=verify%2&hub.challenge=7", &c, &n),
        "sig_missing");
    ck_assert_str_eq(handshake("", &c, &n), "sig_missing");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("ingress_verify");
    TCase *std = tcase_create("standard");
    tcase_add_unchecked_fixture(std, setup_keys, NULL);
    tcase_add_test(std, std_spec_vector);
    tcase_add_test(std, std_own_python_vector);
    tcase_add_test(std, std_tampered_body);
    tcase_add_test(std, std_wrong_secret);
    tcase_add_test(std, std_rotated_signatures);
    tcase_add_test(std, std_rotated_keys);
    tcase_add_test(std, std_timestamp_window);
    tcase_add_test(std, std_missing_headers);
    tcase_add_test(std, std_malformed_headers);
    tcase_add_test(std, std_id_out_capacity);
    tcase_add_test(std, std_signature_limit);
    tcase_add_test(std, whsec_decoding);
    suite_add_tcase(s, std);
    TCase *meta = tcase_create("meta");
    tcase_add_test(meta, meta_vectors);
    tcase_add_test(meta, meta_malformed);
    tcase_add_test(meta, meta_handshake);
    suite_add_tcase(s, meta);
    TCase *tg = tcase_create("telegram");
    tcase_add_test(tg, telegram_tokens);
    suite_add_tcase(s, tg);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
