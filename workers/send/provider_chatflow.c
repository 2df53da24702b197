/* ChatFlow: POST {api_url}/v1/messages/send-text with a Bearer api_token and an
 * Idempotency-Key (the outbound operation id), so a re-sent request is delivered once. */
#include "send.h"

#include "imp/mem.h"

#include <string.h>

static imp_error_t *cf_build(const send_msg_t *m, const send_channel_t *ch, const char *base,
                             const char *opid, send_req_t *req)
{
    const char *token = NULL;
    imp_error_t *err = send_secret(ch, "api_token", &token);
    if (err != NULL)
        return err;
    json_t *body = json_pack("{s:s, s:s}", "chat_id", m->recipient, "text", m->text);
    if (m->reply_to != NULL)
        json_object_set_new(body, "reply_to", json_string(m->reply_to));
    req->url = send_url_join(base, "/v1/messages/send-text");
    req->body = send_json_take(body);
    send_req_header(req, "Authorization: Bearer %s", token);
    send_req_header(req, "Idempotency-Key: %s", opid);
    send_req_header(req, "Content-Type: application/json");
    return NULL;
}

static char *cf_message_id(const char *body, size_t len)
{
    json_t *doc = json_loadb(body, len, 0, NULL);
    json_t *id = json_object_get(doc, "message_id");
    if (id == NULL)
        id = json_object_get(doc, "id");
    char *out = NULL;
    if (json_is_string(id))
        out = imp_strdup(json_string_value(id));
    else if (json_is_integer(id))
        out = imp_asprintf("%lld", (long long)json_integer_value(id));
    json_decref(doc);
    return out;
}

const send_provider_t send_provider_chatflow = {
    .name = "chatflow", .idempotent = true, .build = cf_build, .message_id = cf_message_id};
