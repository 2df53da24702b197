/* Telegram verification: X-Telegram-Bot-Api-Secret-Token against the channel's tokens. */
#include "core_internal.h"

imp_error_t *ing_verify_telegram(const ing_key_t *tokens, size_t ntokens, ing_header_fn h,
                                 void *ctx)
{
    if (h == NULL)
        return ing_sig_error("sig_missing", "verifier called without headers");
    size_t glen = 0;
    const char *given = h(ctx, "x-telegram-bot-api-secret-token", &glen);
    if (given == NULL || glen == 0)
        return ing_sig_error("sig_missing", "x-telegram-bot-api-secret-token is missing");
    /* Every token is compared, so the time says nothing about which one matched. */
    bool ok = false;
    for (size_t k = 0; tokens != NULL && k < ntokens; k++)
        if (tokens[k].len > 0 && tokens[k].key != NULL)
            ok |= imp_crypto_equal_str(tokens[k].key, tokens[k].len, given, glen);
    return ok ? NULL : ing_sig_error("sig_mismatch", "secret token does not match");
}
