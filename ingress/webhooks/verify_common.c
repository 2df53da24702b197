/* Helpers shared by the verifiers: keyed HMAC, errors, Standard Webhooks secrets. */
#include "core_internal.h"

#include <string.h>

void ing_key_mac(const ing_key_t *k, const imp_iov_t *parts, size_t n,
                 uint8_t out[IMP_HMAC_SHA256_LEN])
{
    if (k->hmac != NULL) {
        imp_hmac_sha256_parts(k->hmac, parts, n, out);
        return;
    }
    imp_hmac_t *h = imp_hmac_new(k->key, k->len);
    imp_hmac_sha256_parts(h, parts, n, out);
    imp_hmac_free(h);
}

imp_error_t *ing_sig_error(const char *code, const char *msg)
{
    return imp_error_new(IMP_ERR_POISON, code, "%s", msg);
}

int ing_whsec_decode(const char *text, size_t len, uint8_t *out, size_t cap, size_t *outlen)
{
    static const char prefix[] = "whsec_";
    if (text == NULL || out == NULL || outlen == NULL)
        return -1;
    if (len >= sizeof(prefix) - 1 && memcmp(text, prefix, sizeof(prefix) - 1) == 0) {
        text += sizeof(prefix) - 1;
        len -= sizeof(prefix) - 1;
    }
    if (len == 0 || imp_base64_decode(text, len, out, cap, outlen) != 0 || *outlen == 0)
        return -1;
    return 0;
}
