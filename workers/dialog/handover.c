/* Handover: a human manager in the tenant's Telegram manager chat has the conversation.
 * Customer messages are forwarded there; a manager's reply to a forward or an escalation
 * goes to the customer; /release gives the conversation back to the bot. */
#include "dialog.h"

#include "imp/log.h"
#include "imp/mem.h"
#include "imp/opid.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define SQL_OUT_INSERT                                                                             \
    "INSERT INTO messages (tenant_id, conversation_id, direction, operation_id, kind, body, "      \
    "payload) VALUES ($1::uuid, $2::uuid, 'out', $3::uuid, 'text', $4, $5::jsonb) "                \
    "ON CONFLICT (operation_id) DO NOTHING RETURNING id"

#define SQL_FORWARD_SOURCE                                                                         \
    "SELECT coalesce(body, '[' || kind || ']'), coalesce(payload->'sender'->>'name', "             \
    "payload->'sender'->>'username', payload->'sender'->>'id', '') "                               \
    "FROM messages WHERE operation_id = $1::uuid"

/* The customer conversation a manager's message answers: the one whose forward or
 * escalation (sent to the manager chat) has that provider message id. */
#define SQL_REPLIED_CONV                                                                           \
    "SELECT conversation_id::text FROM messages WHERE tenant_id = $1::uuid "                       \
    "AND provider_message_id = $2 AND direction = 'out' "                                          \
    "AND payload->>'purpose' IN ('forward', 'escalation') ORDER BY id DESC LIMIT 1"

#define SQL_CONV_BY_NAME                                                                           \
    "SELECT id::text FROM conversations WHERE conversation_key = $1 "                              \
    "OR substr(conversation_key, strpos(conversation_key, ':') + 1) = $1 "                         \
    "ORDER BY (conversation_key = $1) DESC, last_message_at DESC NULLS LAST LIMIT 1"

#define SQL_SET_STATE                                                                              \
    "UPDATE conversations SET state = $2, assignee = $3, updated_at = now() WHERE id = $1::uuid"

/* Record an outbound message in the conversation; *fresh false when it was recorded before
 * (this is a redelivery: emit nothing). */
static imp_error_t *record_out(imp_pg_t *pg, const char *tenant_id, const char *conv_id,
                               const char *opid, const char *text, json_t *payload, bool *fresh)
{
    char *ptext = json_dumps(payload, JSON_COMPACT);
    const char *params[] = {tenant_id, conv_id, opid, text, ptext};
    imp_pg_result_t *res = NULL;
    imp_error_t *err = imp_pg_exec_cached(pg, SQL_OUT_INSERT, 5, params, &res);
    *fresh = err == NULL && imp_pg_result_rows(res) == 1;
    imp_pg_result_free(res);
    free(ptext);
    return err;
}

static json_t *out_payload(const char *purpose, const char *channel, const char *recipient)
{
    return json_pack("{s:s, s:s, s:s}", "purpose", purpose, "channel", channel, "recipient",
                     recipient);
}

imp_error_t *dialog_forward(imp_worker_ctx_t *ctx, const char *tenant_id, const dialog_conv_t *conv,
                            const char *message_opid, const char *manager_chat_id,
                            const char *traceparent)
{
    imp_pg_t *pg = imp_worker_ctx_pg(ctx);
    char opid[IMP_UUID_STR_SIZE];
    imp_error_t *err = imp_opid_derive(message_opid, "forward", opid);
    if (err != NULL)
        return err;
    imp_pg_result_t *res = NULL;
    const char *params[] = {message_opid};
    err = imp_pg_exec_cached(pg, SQL_FORWARD_SOURCE, 1, params, &res);
    if (err != NULL)
        return err;
    if (imp_pg_result_rows(res) != 1) {
        imp_pg_result_free(res);
        return imp_error_new(IMP_ERR_POISON, "dialog_forward", "message %s not found",
                             message_opid);
    }
    const char *who = imp_pg_result_value(res, 0, 1);
    char *text = imp_asprintf("%s (%s):\n%s", who[0] ? who : conv->recipient, conv->key,
                              imp_pg_result_value(res, 0, 0));
    imp_pg_result_free(res);
    json_t *payload = out_payload("forward", "telegram", manager_chat_id);
    bool fresh = false;
    err = record_out(pg, tenant_id, conv->id, opid, text, payload, &fresh);
    json_decref(payload);
    if (err == NULL && fresh) {
        dialog_event_t e = {.id = opid,
                            .type = "imp.outbound.message.v1",
                            .tenant_id = tenant_id,
                            .subject = conv->key,
                            .causationid = message_opid,
                            .traceparent = traceparent};
        err = dialog_emit(
            ctx, DIALOG_TOPIC_OUTBOUND, &e,
            dialog_outbound_data(conv->id, "telegram", manager_chat_id, text, "forward", NULL));
    }
    free(text);
    return err;
}

/* A message to the manager chat (purpose notice), id derive(manager message, step). */
static imp_error_t *notice(imp_worker_ctx_t *ctx, const imp_envelope_t *ev, const char *subject,
                           const char *conv_id, const char *manager_chat_id, const char *text)
{
    char opid[IMP_UUID_STR_SIZE];
    imp_error_t *err = imp_opid_derive(ev->id, "notice", opid);
    if (err != NULL)
        return err;
    dialog_event_t e = {.id = opid,
                        .type = "imp.outbound.message.v1",
                        .tenant_id = ev->tenantid,
                        .subject = subject,
                        .causationid = ev->id,
                        .traceparent = ev->traceparent};
    return dialog_emit(ctx, DIALOG_TOPIC_OUTBOUND, &e,
                       dialog_outbound_data(conv_id, "telegram", manager_chat_id, text, "notice",
                                            dialog_str(ev->data, "message.id")));
}

/* The conversation id from a query with one text parameter; "" when none. */
static imp_error_t *find_conv(imp_pg_t *pg, const char *sql, int n, const char *const *params,
                              char out[40])
{
    imp_pg_result_t *res = NULL;
    imp_error_t *err = imp_pg_exec_cached(pg, sql, n, params, &res);
    out[0] = '\0';
    if (err == NULL && imp_pg_result_rows(res) == 1)
        snprintf(out, 40, "%s", imp_pg_result_value(res, 0, 0));
    imp_pg_result_free(res);
    return err;
}

static imp_error_t *replied_conv(imp_pg_t *pg, const imp_envelope_t *ev, char out[40])
{
    const char *reply_to = dialog_str(ev->data, "message.reply_to");
    out[0] = '\0';
    if (reply_to[0] == '\0')
        return NULL;
    const char *params[] = {ev->tenantid, reply_to};
    return find_conv(pg, SQL_REPLIED_CONV, 2, params, out);
}

/* "/release", "/release@bot" or "/release <conversation>": true, and *arg the argument. */
static bool is_release(const char *text, const char **arg)
{
    static const char cmd[] = "/release";
    if (strncmp(text, cmd, sizeof(cmd) - 1) != 0)
        return false;
    const char *p = text + sizeof(cmd) - 1;
    if (*p == '@')
        while (*p != '\0' && !isspace((unsigned char)*p))
            p++;
    if (*p != '\0' && !isspace((unsigned char)*p))
        return false;
    while (isspace((unsigned char)*p))
        p++;
    *arg = p;
    return true;
}

static imp_error_t *release(imp_worker_ctx_t *ctx, const imp_envelope_t *ev,
                            const dialog_tenant_t *tenant, const char *arg)
{
    imp_pg_t *pg = imp_worker_ctx_pg(ctx);
    char conv_id[40], name[256];
    snprintf(name, sizeof(name), "%.*s", (int)strcspn(arg, " \t\r\n"), arg);
    const char *params[] = {name};
    imp_error_t *err = name[0] ? find_conv(pg, SQL_CONV_BY_NAME, 1, params, conv_id)
                               : replied_conv(pg, ev, conv_id);
    if (err != NULL)
        return err;
    if (conv_id[0] == '\0')
        return notice(ctx, ev, ev->subject, NULL, tenant->manager_chat_id,
                      "No such conversation. Reply /release to a forwarded message, or send "
                      "/release <conversation>.");
    dialog_conv_t conv;
    bool found = false;
    err = dialog_load_conv(pg, conv_id, NULL, &conv, &found);
    const char *state_params[] = {conv_id, "bot", NULL};
    if (err == NULL)
        err = imp_pg_exec_cached(pg, SQL_SET_STATE, 3, state_params, NULL);
    if (err != NULL)
        return err;
    char *text = imp_asprintf("Conversation %s is back with the bot.", conv.key);
    err = notice(ctx, ev, conv.key, conv.id, tenant->manager_chat_id, text);
    free(text);
    return err;
}

/* The manager answers the customer: the conversation stays (or goes) in handover. */
static imp_error_t *manager_reply(imp_worker_ctx_t *ctx, const imp_envelope_t *ev,
                                  const char *conv_id, const char *text)
{
    imp_pg_t *pg = imp_worker_ctx_pg(ctx);
    dialog_conv_t conv;
    bool found = false, fresh = false;
    char opid[IMP_UUID_STR_SIZE];
    imp_error_t *err = dialog_load_conv(pg, conv_id, NULL, &conv, &found);
    if (err == NULL)
        err = imp_opid_derive(ev->id, "manager_reply", opid);
    if (err != NULL)
        return err;
    json_t *payload = out_payload("manager_reply", conv.channel, conv.recipient);
    json_object_set(payload, "manager", json_object_get(ev->data, "sender"));
    err = record_out(pg, ev->tenantid, conv.id, opid, text, payload, &fresh);
    json_decref(payload);
    if (err != NULL || !fresh)
        return err;
    const char *who = dialog_str(ev->data, "sender.username");
    const char *params[] = {conv.id, "handover", who[0] ? who : dialog_str(ev->data, "sender.id")};
    err = imp_pg_exec_cached(pg, SQL_SET_STATE, 3, params, NULL);
    if (err != NULL)
        return err;
    dialog_event_t e = {.id = opid,
                        .type = "imp.outbound.message.v1",
                        .tenant_id = ev->tenantid,
                        .subject = conv.key,
                        .causationid = ev->id,
                        .traceparent = ev->traceparent};
    return dialog_emit(
        ctx, DIALOG_TOPIC_OUTBOUND, &e,
        dialog_outbound_data(conv.id, conv.channel, conv.recipient, text, "manager_reply", NULL));
}

imp_error_t *dialog_on_manager(imp_worker_ctx_t *ctx, const imp_envelope_t *ev,
                               const dialog_tenant_t *tenant)
{
    const char *text = dialog_str(ev->data, "message.text");
    const char *arg = NULL;
    if (is_release(text, &arg))
        return release(ctx, ev, tenant, arg);
    char conv_id[40];
    imp_error_t *err = replied_conv(imp_worker_ctx_pg(ctx), ev, conv_id);
    if (err != NULL)
        return err;
    if (conv_id[0] == '\0' || text[0] == '\0') {
        IMP_LOG_DEBUG("manager chat message that answers no forward; ignored");
        return NULL;
    }
    return manager_reply(ctx, ev, conv_id, text);
}
