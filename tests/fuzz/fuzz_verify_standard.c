/* libFuzzer: Standard Webhooks verification. Input: "<webhook-id>\n<webhook-timestamp>\n
 * <webhook-signature>\n<body>"; missing lines are missing headers. A signature line "SIGN"
 * is replaced by the right signature, so the accepting path is explored too. */
#include "fuzz_verify_common.h"

#include <stdio.h>

#define NOW 1614265330

static const uint8_t key_a[] = "imperium-fuzz-key-a";
static const uint8_t key_b[] = "imperium-fuzz-key-b";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *right_signature(const uint8_t *id, size_t idlen, const uint8_t *ts, size_t tslen,
                             const char *body, size_t blen)
{
    const imp_iov_t parts[5] = {{id, idlen}, {".", 1}, {ts, tslen}, {".", 1}, {body, blen}};
    uint8_t mac[IMP_HMAC_SHA256_LEN];
    imp_hmac_t *h = imp_hmac_new(key_b, sizeof(key_b) - 1);
    imp_hmac_sha256_parts(h, parts, 5, mac);
    imp_hmac_free(h);
    char b64[IMP_BASE64_ENCODED_LEN(IMP_HMAC_SHA256_LEN) + 1];
    imp_base64_encode(mac, sizeof(mac), b64);
    return imp_asprintf("v1,bm90IGl0 v1,%s", b64);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_headers_t h = {.n = 0};
    const uint8_t *id = NULL, *ts = NULL, *sig = NULL;
    size_t idlen = 0, tslen = 0, siglen = 0;
    int have_id = fuzz_line(&data, &size, &id, &idlen);
    int have_ts = have_id && fuzz_line(&data, &size, &ts, &tslen);
    int have_sig = have_ts && fuzz_line(&data, &size, &sig, &siglen);
    char *body = fuzz_copy(data, size);
    char *signed_sig = NULL;
    if (have_sig && siglen == 4 && memcmp(sig, "SIGN", 4) == 0) {
        signed_sig = right_signature(id, idlen, ts, tslen, body, size);
        sig = (const uint8_t *)signed_sig;
        siglen = strlen(signed_sig);
    }
    if (have_id)
        fuzz_add(&h, "webhook-id", id, idlen);
    if (have_ts)
        fuzz_add(&h, "webhook-timestamp", ts, tslen);
    if (have_sig)
        fuzz_add(&h, "webhook-signature", sig, siglen);

    const ing_key_t keys[2] = {{.key = key_a, .len = sizeof(key_a) - 1},
                               {.key = key_b, .len = sizeof(key_b) - 1}};
    char out[ING_WEBHOOK_ID_MAX + 1];
    imp_error_t *err =
        ing_verify_standard(keys, 2, fuzz_header, &h, body, size, NOW, 300, out, sizeof(out));
    if (err == NULL) {
        /* Accepted: the id was copied whole, and only a right signature gets here. */
        fuzz_check(signed_sig != NULL && strlen(out) == idlen && memcmp(out, id, idlen) == 0);
    } else {
        const char *code = imp_error_code(err);
        fuzz_check(strcmp(code, "sig_missing") == 0 || strcmp(code, "sig_timestamp") == 0 ||
                   strcmp(code, "sig_mismatch") == 0);
        fuzz_check(out[0] == '\0');
        imp_error_free(err);
    }
    /* The same with only the wrong key never passes. */
    err = ing_verify_standard(keys, 1, fuzz_header, &h, body, size, NOW, 300, out, sizeof(out));
    fuzz_check(err != NULL);
    imp_error_free(err);

    if (have_id) {
        uint8_t key[64];
        size_t klen;
        (void)ing_whsec_decode(h.value[0], idlen, key, sizeof(key), &klen);
    }
    free(signed_sig);
    free(body);
    fuzz_headers_free(&h);
    return 0;
}
