/* Telegram Bot API: POST {api_url}/bot{bot_token}/sendMessage. The URL holds the token: it
 * is never logged. Telegram takes no idempotency key: an ambiguous send is never repeated. */
#include "send.h"

#include "imp/mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static imp_error_t *tg_build(const send_msg_t *m, const send_channel_t *ch, const char *base,
                             const char *opid, send_req_t *req)
{
    (void)opid;
    const char *token = NULL;
    imp_error_t *err = send_secret(ch, "bot_token", &token);
    if (err != NULL)
        return err;
    if (strpbrk(token, "/?#") != NULL)
        return imp_error_new(IMP_ERR_POISON, "secret_malformed",
                             "the telegram bot_token has a character a URL path cannot hold");
    json_t *body = json_pack("{s:s, s:s}", "chat_id", m->recipient, "text", m->text);
    if (m->reply_to != NULL) {
        char *end = NULL;
        errno = 0;
        long long id = strtoll(m->reply_to, &end, 10);
        if (errno == 0 && end != m->reply_to && *end == '\0')
            json_object_set_new(body, "reply_to_message_id", json_integer(id));
    }
    char *path = imp_asprintf("/bot%s/sendMessage", token);
    req->url = send_url_join(base, path);
    imp_crypto_wipe(path, strlen(path));
    free(path);
    req->body = send_json_take(body);
    send_req_header(req, "Content-Type: application/json");
    return NULL;
}

static char *tg_message_id(const char *body, size_t len)
{
    json_t *doc = json_loadb(body, len, 0, NULL);
    json_t *id = json_object_get(json_object_get(doc, "result"), "message_id");
    char *out =
        json_is_integer(id) ? imp_asprintf("%lld", (long long)json_integer_value(id)) : NULL;
    json_decref(doc);
    return out;
}

const send_provider_t send_provider_telegram = {
    .name = "telegram", .idempotent = false, .build = tg_build, .message_id = tg_message_id};
