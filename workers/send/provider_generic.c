/* Generic: POST the reply to the channel's callback_url, signed per Standard Webhooks with
 * the callback_secret. webhook-id is the outbound operation id, so the receiver dedupes a
 * re-sent delivery. The SSRF guard of the HTTP client applies (IMP_SEND_ALLOW_CIDRS). */
#include "send.h"

#include "imp/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WHSEC_PREFIX "whsec_"
#define WHSEC_MAX 64

/* "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>" into out. */
static imp_error_t *sign(const char *secret, const char *id, const char *ts, const char *body,
                         char *out, size_t cap)
{
    if (strncmp(secret, WHSEC_PREFIX, strlen(WHSEC_PREFIX)) != 0)
        return imp_error_new(IMP_ERR_POISON, "secret_malformed",
                             "callback_secret is not a whsec_ secret");
    const char *b64 = secret + strlen(WHSEC_PREFIX);
    uint8_t key[IMP_BASE64_DECODED_MAX(IMP_BASE64_ENCODED_LEN(WHSEC_MAX))];
    size_t keylen = 0;
    if (imp_base64_decode(b64, strlen(b64), key, sizeof(key), &keylen) != 0)
        return imp_error_new(IMP_ERR_POISON, "secret_malformed",
                             "callback_secret is not valid base64");
    imp_iov_t parts[] = {
        {id, strlen(id)}, {".", 1}, {ts, strlen(ts)}, {".", 1}, {body, strlen(body)}};
    imp_hmac_t *h = imp_hmac_new(key, keylen);
    imp_crypto_wipe(key, sizeof(key));
    uint8_t mac[IMP_HMAC_SHA256_LEN];
    imp_hmac_sha256_parts(h, parts, IMP_ARRAY_LEN(parts), mac);
    imp_hmac_free(h);
    char enc[IMP_BASE64_ENCODED_LEN(IMP_HMAC_SHA256_LEN) + 1];
    imp_base64_encode(mac, sizeof(mac), enc);
    snprintf(out, cap, "v1,%s", enc);
    return NULL;
}

static imp_error_t *gen_build(const send_msg_t *m, const send_channel_t *ch, const char *base,
                              const char *opid, send_req_t *req)
{
    (void)base;
    const char *secret = NULL;
    imp_error_t *err = send_secret(ch, "callback_secret", &secret);
    if (err != NULL)
        return err;
    const char *url = json_string_value(json_object_get(ch->settings, "callback_url"));
    if (url == NULL || url[0] == '\0')
        return imp_error_new(IMP_ERR_POISON, "setting_missing",
                             "the generic channel has no callback_url");
    json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "message.outbound", "id", opid,
                             "recipient", m->recipient, "text", m->text, "purpose", m->purpose);
    json_object_set_new(body, "conversation_id",
                        m->conversation_id ? json_string(m->conversation_id) : json_null());
    json_object_set_new(body, "reply_to", m->reply_to ? json_string(m->reply_to) : json_null());
    req->url = imp_strdup(url);
    req->body = send_json_take(body);
    char ts[32], sig[64];
    snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
    if ((err = sign(secret, opid, ts, req->body, sig, sizeof(sig))) != NULL)
        return err;
    send_req_header(req, "Content-Type: application/json");
    send_req_header(req, "webhook-id: %s", opid);
    send_req_header(req, "webhook-timestamp: %s", ts);
    send_req_header(req, "webhook-signature: %s", sig);
    return NULL;
}

static char *gen_message_id(const char *body, size_t len)
{
    json_t *doc = json_loadb(body, len, 0, NULL);
    const char *id = json_string_value(json_object_get(doc, "message_id"));
    char *out = id ? imp_strdup(id) : NULL;
    json_decref(doc);
    return out;
}

const send_provider_t send_provider_generic = {
    .name = "generic", .idempotent = true, .build = gen_build, .message_id = gen_message_id};
