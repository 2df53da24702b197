/* POST /v1/webhooks/ops: updates of the operator's Telegram bot, authenticated by the
 * platform's secret token (IMP_OPS_WEBHOOK_SECRET), onto imp.ops.v1 keyed by chat id for
 * imperium-control. The event belongs to no tenant: tenantid is ING_PLATFORM_TENANT. */
#include "ingress.h"

#include "imp/envelope.h"
#include "imp/log.h"
#include "imp/mem.h"
#include "imp/opid.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHAT_ID_MAX 32

/* An integer or non-empty string id as text; false when v is neither or too long. */
static bool id_text(const json_t *v, char *out, size_t cap)
{
    if (json_is_integer(v))
        return snprintf(out, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v)) < (int)cap;
    if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < cap) {
        memcpy(out, json_string_value(v), json_string_length(v) + 1);
        return true;
    }
    return false;
}

/* The chat an update belongs to: <kind>.chat.id (message, edited_message, channel_post,
 * my_chat_member, …), <kind>.message.chat.id (callback_query), else <kind>.from.id (inline
 * queries). "none" when the update has none of these. */
static void chat_of(json_t *update, char *out, size_t cap)
{
    const char *k;
    json_t *v;
    json_object_foreach(update, k, v)
    {
        if (!json_is_object(v))
            continue;
        json_t *chat = json_object_get(v, "chat");
        json_t *msg_chat = json_object_get(json_object_get(v, "message"), "chat");
        if (id_text(json_object_get(chat, "id"), out, cap) ||
            id_text(json_object_get(msg_chat, "id"), out, cap) ||
            id_text(json_object_get(json_object_get(v, "from"), "id"), out, cap))
            return;
    }
    snprintf(out, cap, "none");
}

/* The envelope of update (taken) into *value; the chat id into chat. */
static imp_error_t *wrap(json_t *update, const ing_reqinfo_t *info, ing_msg_t *m, char *chat,
                         char **value)
{
    char update_id[CHAT_ID_MAX];
    if (!id_text(json_object_get(update, "update_id"), update_id, sizeof(update_id))) {
        json_decref(update);
        return imp_error_new(IMP_ERR_POISON, "bad_update", "the update has no update_id");
    }
    chat_of(update, chat, CHAT_ID_MAX);
    imp_error_t *err = imp_opid_inbound(ING_PLATFORM_TENANT, "ops", update_id, m->opid);
    if (err != NULL) {
        json_decref(update);
        return err;
    }
    imp_envelope_t e;
    if ((err = imp_envelope_new_event(&e, m->opid, ING_SOURCE, ING_TYPE_OPS_UPDATE,
                                      ING_PLATFORM_TENANT, update)) != NULL)
        return err;
    e.subject = imp_asprintf("ops:%s", chat);
    memcpy(e.traceparent, info->traceparent, sizeof(e.traceparent));
    err = imp_envelope_serialize(&e, value);
    imp_envelope_dispose(&e);
    if (err != NULL)
        return err;
    m->topic = ING_TOPIC_OPS;
    m->key = chat;
    m->key_len = strlen(chat);
    m->value = *value;
    m->value_len = strlen(*value);
    return NULL;
}

void ing_ops_post(h2o_req_t *req)
{
    ing_thread_t *thr = ing_thread_of(req);
    const char *secret = thr->app->settings->ops_secret;
    ing_reqinfo_t info;
    ing_reqinfo_init(&info, req, ING_ROUTE_OPS);
    if (*secret == '\0') {
        ing_problem(req, &info, 404, "not-found", "Not Found", "no such route", 0, NULL);
        return;
    }
    if (req->entity.len > (size_t)thr->app->settings->max_body) {
        ing_problem(req, &info, 413, "payload-too-large", "Payload Too Large",
                    "the body is larger than the ingress accepts", 0, NULL);
        return;
    }
    ing_key_t key = {.key = (const uint8_t *)secret, .len = strlen(secret)};
    imp_error_t *err = ing_verify_telegram(&key, 1, ing_req_header, req);
    if (err != NULL) {
        IMP_LOG_INFO("ops webhook rejected", IMP_LS("reason", imp_error_code(err)),
                     IMP_LS("trace_id", info.trace.trace_id));
        imp_error_free(err);
        ing_problem_unauthorized(req, &info);
        return;
    }
    json_t *update = req->entity.base != NULL ? json_loadb(req->entity.base, req->entity.len,
                                                           JSON_REJECT_DUPLICATES, NULL)
                                              : NULL;
    ing_msg_t m = {0};
    char chat[CHAT_ID_MAX] = "", *value = NULL;
    if (json_is_object(update)) {
        err = wrap(update, &info, &m, chat, &value); /* takes update */
    } else {
        json_decref(update);
        err = imp_error_new(IMP_ERR_POISON, "bad_json", "not a JSON object");
    }
    if (err == NULL) {
        ing_produce_and_answer(thr->producer, req, &info, &m, 1);
    } else {
        IMP_LOG_INFO("ops webhook rejected", IMP_LS("reason", imp_error_message(err)),
                     IMP_LS("trace_id", info.trace.trace_id));
        imp_error_free(err);
        ing_problem(req, &info, 400, "malformed-json", "Bad Request",
                    "the body is not a Telegram update", 0, NULL);
    }
    free(value);
}
