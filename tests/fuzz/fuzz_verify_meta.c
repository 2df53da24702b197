/* libFuzzer: Meta's X-Hub-Signature-256 and GET handshake, and Telegram's secret token.
 * Input: "<x-hub-signature-256>\n<body>"; a signature line "SIGN" is replaced by the right
 * one. The whole input is also tried as the handshake's query string, and the first line as
 * the Telegram token. */
#include "fuzz_verify_common.h"

#include <stdio.h>

static const uint8_t secret_a[] = "old-app-secret";
static const uint8_t secret_b[] = "meta-app-secret";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_handshake(const uint8_t *data, size_t size)
{
    const ing_key_t tokens[2] = {{.key = (const uint8_t *)"verify-me", .len = 9},
                                 {.key = (const uint8_t *)"old token", .len = 9}};
    char *query = fuzz_copy(data, size);
    const char *challenge = NULL;
    size_t clen = 0;
    imp_error_t *err = ing_verify_meta_handshake(tokens, 2, query, size, &challenge, &clen);
    if (err == NULL) {
        /* The challenge is borrowed from the query. */
        fuzz_check(challenge >= query && challenge + clen <= query + size && clen > 0);
    } else {
        fuzz_check(challenge == NULL && clen == 0);
        imp_error_free(err);
    }
    free(query);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_handshake(data, size);

    const uint8_t *all = data;
    size_t all_size = size;
    fuzz_headers_t h = {.n = 0};
    const uint8_t *sig = NULL;
    size_t siglen = 0;
    int have_sig = fuzz_line(&data, &size, &sig, &siglen);
    char *body = fuzz_copy(data, size);
    char right[7 + 2 * IMP_HMAC_SHA256_LEN + 1];
    uint8_t mac[IMP_HMAC_SHA256_LEN];
    imp_hmac_sha256_once(secret_b, sizeof(secret_b) - 1, body, size, mac);
    memcpy(right, "sha256=", 7);
    imp_hex_encode(mac, sizeof(mac), right + 7);
    int signed_it = have_sig && siglen == 4 && memcmp(sig, "SIGN", 4) == 0;
    if (signed_it) {
        sig = (const uint8_t *)right;
        siglen = strlen(right);
    }
    /* The only signature that may pass: the right one, hex digits of either case. */
    int valid = have_sig && siglen == strlen(right) && memcmp(sig, right, 7) == 0 &&
                strncasecmp((const char *)sig + 7, right + 7, siglen - 7) == 0;
    if (have_sig)
        fuzz_add(&h, "x-hub-signature-256", sig, siglen);
    const ing_key_t keys[2] = {{.key = secret_a, .len = sizeof(secret_a) - 1},
                               {.key = secret_b, .len = sizeof(secret_b) - 1}};
    imp_error_t *err = ing_verify_meta(keys, 2, fuzz_header, &h, body, size);
    fuzz_check((err == NULL) == valid);
    imp_error_free(err);
    fuzz_headers_free(&h);
    free(body);

    /* Telegram: the first line (or everything) as the token. */
    const uint8_t *tok = all;
    size_t toklen = have_sig ? siglen : all_size;
    if (signed_it)
        toklen = 4;
    fuzz_add(&h, "x-telegram-bot-api-secret-token", tok, toklen);
    const ing_key_t tokens[2] = {{.key = (const uint8_t *)"tg-secret_1", .len = 11},
                                 {.key = (const uint8_t *)"tg-secret_2", .len = 11}};
    err = ing_verify_telegram(tokens, 2, fuzz_header, &h);
    int want = toklen == 11 &&
               (memcmp(tok, "tg-secret_1", 11) == 0 || memcmp(tok, "tg-secret_2", 11) == 0);
    fuzz_check((err == NULL) == want);
    imp_error_free(err);
    fuzz_headers_free(&h);
    return 0;
}
