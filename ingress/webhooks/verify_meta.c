/* Meta (WhatsApp Cloud API) verification: X-Hub-Signature-256 and the GET handshake. */
#include "core_internal.h"

#include <string.h>

#define SIG_PREFIX "sha256="
#define SIG_PREFIX_LEN (sizeof(SIG_PREFIX) - 1)
#define CHALLENGE_MAX 128
/* Longest verify token looked at (Meta's form allows far less). */
#define TOKEN_MAX 512

imp_error_t *ing_verify_meta(const ing_key_t *keys, size_t nkeys, ing_header_fn h, void *ctx,
                             const char *body, size_t len)
{
    if (h == NULL || (body == NULL && len > 0))
        return ing_sig_error("sig_missing", "verifier called without headers or body");
    size_t slen = 0;
    const char *sig = h(ctx, "x-hub-signature-256", &slen);
    uint8_t given[IMP_HMAC_SHA256_LEN];
    size_t glen = 0;
    if (sig == NULL || slen != SIG_PREFIX_LEN + 2 * IMP_HMAC_SHA256_LEN ||
        memcmp(sig, SIG_PREFIX, SIG_PREFIX_LEN) != 0 ||
        imp_hex_decode(sig + SIG_PREFIX_LEN, slen - SIG_PREFIX_LEN, given, sizeof(given), &glen) !=
            0)
        return ing_sig_error("sig_missing", "x-hub-signature-256 is missing or malformed");
    const imp_iov_t part = {body, len};
    bool ok = false;
    for (size_t k = 0; keys != NULL && k < nkeys; k++) {
        if (keys[k].len == 0 || keys[k].key == NULL)
            continue; /* an empty app secret must never authenticate anything */
        uint8_t expect[IMP_HMAC_SHA256_LEN];
        ing_key_mac(&keys[k], &part, 1, expect);
        ok |= imp_crypto_equal(expect, given, sizeof(given));
        imp_crypto_wipe(expect, sizeof(expect));
    }
    return ok ? NULL : ing_sig_error("sig_mismatch", "x-hub-signature-256 does not match");
}

/* ---- GET handshake ---- */

typedef struct {
    const char *mode, *token, *challenge;
    size_t mode_len, token_len, challenge_len;
} hub_params_t;

/* The first value of each hub.* parameter; later duplicates are ignored. */
static void parse_query(const char *q, size_t qlen, hub_params_t *p)
{
    memset(p, 0, sizeof(*p));
    size_t i = 0;
    while (i < qlen) {
        size_t start = i;
        while (i < qlen && q[i] != '&')
            i++;
        const char *kv = q + start;
        size_t kvlen = i - start;
        i++; /* past '&' */
        const char *eq = memchr(kv, '=', kvlen);
        if (eq == NULL)
            continue;
        size_t klen = (size_t)(eq - kv), vlen = kvlen - klen - 1;
        const char **slot = NULL;
        size_t *slot_len = NULL;
        if (klen == 8 && memcmp(kv, "hub.mode", 8) == 0) {
            slot = &p->mode;
            slot_len = &p->mode_len;
        } else if (klen == 16 && memcmp(kv, "hub.verify_token", 16) == 0) {
            slot = &p->token;
            slot_len = &p->token_len;
        } else if (klen == 13 && memcmp(kv, "hub.challenge", 13) == 0) {
            slot = &p->challenge;
            slot_len = &p->challenge_len;
        }
        if (slot != NULL && *slot == NULL) {
            *slot = eq + 1;
            *slot_len = vlen;
        }
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* application/x-www-form-urlencoded value → bytes; false when malformed or too long. */
static bool form_decode(const char *s, size_t len, char *out, size_t cap, size_t *outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (o == cap)
            return false;
        if (s[i] == '%') {
            int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return false;
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = s[i] == '+' ? ' ' : s[i];
        }
    }
    *outlen = o;
    return true;
}

static bool challenge_ok(const char *s, size_t len)
{
    if (len == 0 || len > CHALLENGE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

imp_error_t *ing_verify_meta_handshake(const ing_key_t *tokens, size_t n, const char *query,
                                       size_t qlen, const char **challenge, size_t *clen)
{
    if (challenge == NULL || clen == NULL || (query == NULL && qlen > 0))
        return ing_sig_error("sig_missing", "handshake called without a query");
    *challenge = NULL;
    *clen = 0;
    hub_params_t p;
    parse_query(query, qlen, &p);
    char token[TOKEN_MAX];
    size_t tlen = 0;
    if (p.mode == NULL || p.mode_len != 9 || memcmp(p.mode, "subscribe", 9) != 0)
        return ing_sig_error("sig_missing", "hub.mode is not subscribe");
    if (p.token == NULL || p.token_len == 0 ||
        !form_decode(p.token, p.token_len, token, sizeof(token), &tlen) || tlen == 0)
        return ing_sig_error("sig_missing", "hub.verify_token is missing or malformed");
    if (p.challenge == NULL || !challenge_ok(p.challenge, p.challenge_len))
        return ing_sig_error("sig_missing", "hub.challenge is missing or malformed");
    bool ok = false;
    for (size_t k = 0; tokens != NULL && k < n; k++)
        if (tokens[k].len > 0 && tokens[k].key != NULL)
            ok |= imp_crypto_equal_str(tokens[k].key, tokens[k].len, token, tlen);
    imp_crypto_wipe(token, sizeof(token));
    if (!ok)
        return ing_sig_error("sig_mismatch", "hub.verify_token does not match");
    *challenge = p.challenge;
    *clen = p.challenge_len;
    return NULL;
}
