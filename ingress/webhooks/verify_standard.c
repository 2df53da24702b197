/* Standard Webhooks verification (generic and chatflow channels). */
#include "core_internal.h"

#include <string.h>

/* Unix seconds have at most 12 digits until the year 33658: more is not a timestamp. */
#define TS_MAX_DIGITS 12

typedef struct {
    uint8_t mac[ING_STANDARD_MAX_SIGS][IMP_HMAC_SHA256_LEN];
    size_t n;
} sigs_t;

static const char *header(ing_header_fn h, void *ctx, const char *name, size_t *len)
{
    *len = 0;
    const char *v = h(ctx, name, len);
    if (v == NULL)
        *len = 0;
    return v != NULL && *len > 0 ? v : NULL;
}

/* webhook-id: printable ASCII without spaces, so it can go into ids and logs unchanged. */
static bool id_ok(const char *id, size_t len)
{
    if (len > ING_WEBHOOK_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)id[i] < 0x21 || (unsigned char)id[i] > 0x7e)
            return false;
    return true;
}

static bool parse_ts(const char *s, size_t len, int64_t *out)
{
    if (len > TS_MAX_DIGITS)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static bool within(int64_t ts, int64_t now_s, int tolerance_s)
{
    /* Unsigned differences cannot overflow whatever now_s is. */
    uint64_t tol = tolerance_s > 0 ? (uint64_t)tolerance_s : 0;
    uint64_t d = ts >= now_s ? (uint64_t)ts - (uint64_t)now_s : (uint64_t)now_s - (uint64_t)ts;
    return d <= tol;
}

/* Collect the well-formed "v1,<base64 of 32 bytes>" entries; others (another version, no
 * comma, bad base64, a wrong length) are skipped, as the reference implementations do by
 * comparing whole strings. */
static void parse_sigs(const char *s, size_t len, sigs_t *out)
{
    out->n = 0;
    size_t i = 0;
    while (i < len && out->n < ING_STANDARD_MAX_SIGS) {
        while (i < len && s[i] == ' ')
            i++;
        size_t start = i;
        while (i < len && s[i] != ' ')
            i++;
        size_t elen = i - start;
        const char *e = s + start;
        size_t got = 0;
        if (elen > 3 && memcmp(e, "v1,", 3) == 0 &&
            imp_base64_decode(e + 3, elen - 3, out->mac[out->n], IMP_HMAC_SHA256_LEN, &got) == 0 &&
            got == IMP_HMAC_SHA256_LEN)
            out->n++;
    }
}

static bool any_match(const ing_key_t *keys, size_t nkeys, const sigs_t *sigs,
                      const imp_iov_t parts[5])
{
    bool ok = false;
    for (size_t k = 0; k < nkeys; k++) {
        if (keys[k].len == 0 || keys[k].key == NULL)
            continue; /* an empty secret must never authenticate anything */
        uint8_t expect[IMP_HMAC_SHA256_LEN];
        ing_key_mac(&keys[k], parts, 5, expect);
        for (size_t i = 0; i < sigs->n; i++)
            ok |= imp_crypto_equal(expect, sigs->mac[i], IMP_HMAC_SHA256_LEN);
        imp_crypto_wipe(expect, sizeof(expect));
    }
    return ok;
}

imp_error_t *ing_verify_standard(const ing_key_t *keys, size_t nkeys, ing_header_fn h, void *ctx,
                                 const char *body, size_t len, int64_t now_s, int tolerance_s,
                                 char *id_out, size_t cap)
{
    if (h == NULL || id_out == NULL || cap == 0 || (body == NULL && len > 0))
        return ing_sig_error("sig_missing", "verifier called without headers or body");
    id_out[0] = '\0';
    size_t idlen, tslen, siglen;
    const char *id = header(h, ctx, "webhook-id", &idlen);
    const char *ts = header(h, ctx, "webhook-timestamp", &tslen);
    const char *sig = header(h, ctx, "webhook-signature", &siglen);
    if (id == NULL || ts == NULL || sig == NULL)
        return ing_sig_error("sig_missing", "a webhook-id, webhook-timestamp or "
                                            "webhook-signature header is missing");
    if (!id_ok(id, idlen) || idlen >= cap)
        return ing_sig_error("sig_missing", "webhook-id is malformed");
    int64_t t;
    if (!parse_ts(ts, tslen, &t))
        return ing_sig_error("sig_missing", "webhook-timestamp is not unix seconds");
    if (!within(t, now_s, tolerance_s))
        return ing_sig_error("sig_timestamp", "webhook-timestamp is outside the tolerance");
    sigs_t sigs;
    parse_sigs(sig, siglen, &sigs);
    if (sigs.n == 0)
        return ing_sig_error("sig_missing", "webhook-signature has no v1 signature");
    const imp_iov_t parts[5] = {
        {id, idlen}, {".", 1}, {ts, tslen}, {".", 1}, {body, len},
    };
    if (nkeys == 0 || keys == NULL || !any_match(keys, nkeys, &sigs, parts))
        return ing_sig_error("sig_mismatch", "no signature matches");
    memcpy(id_out, id, idlen);
    id_out[idlen] = '\0';
    return NULL;
}
