/* Meta's WhatsApp Cloud API: POST {api_url}/{phone_number_id}/messages with a Bearer
 * access_token. Meta takes no idempotency key: an ambiguous send is never repeated. */
#include "send.h"

#include "imp/mem.h"

#include <stdio.h>
#include <string.h>

static imp_error_t *wa_build(const send_msg_t *m, const send_channel_t *ch, const char *base,
                             const char *opid, send_req_t *req)
{
    (void)opid;
    const char *token = NULL;
    imp_error_t *err = send_secret(ch, "access_token", &token);
    if (err != NULL)
        return err;
    const char *phone = json_string_value(json_object_get(ch->settings, "phone_number_id"));
    if (phone == NULL || phone[0] == '\0' || strchr(phone, '/') != NULL)
        return imp_error_new(IMP_ERR_POISON, "setting_missing",
                             "the whatsapp channel has no phone_number_id");
    json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:{s:s}}", "messaging_product", "whatsapp",
                             "recipient_type", "individual", "to", m->recipient, "type", "text",
                             "text", "body", m->text);
    if (m->reply_to != NULL)
        json_object_set_new(body, "context", json_pack("{s:s}", "message_id", m->reply_to));
    char path[128];
    snprintf(path, sizeof(path), "/%s/messages", phone);
    req->url = send_url_join(base, path);
    req->body = send_json_take(body);
    send_req_header(req, "Authorization: Bearer %s", token);
    send_req_header(req, "Content-Type: application/json");
    return NULL;
}

static char *wa_message_id(const char *body, size_t len)
{
    json_t *doc = json_loadb(body, len, 0, NULL);
    const char *id = json_string_value(
        json_object_get(json_array_get(json_object_get(doc, "messages"), 0), "id"));
    char *out = id ? imp_strdup(id) : NULL;
    json_decref(doc);
    return out;
}

const send_provider_t send_provider_whatsapp = {
    .name = "whatsapp", .idempotent = false, .build = wa_build, .message_id = wa_message_id};
