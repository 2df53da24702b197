/* A customer's message: its conversation, its row, and where it goes next (a turn, or the
 * manager chat when a human has the conversation). */
#include "dialog.h"

#include "imp/log.h"
#include "imp/mem.h"
#include "imp/opid.h"

#include <stdlib.h>
#include <string.h>

#define SQL_TENANT                                                                                 \
    "SELECT (SELECT settings->>'coalesce_ms' FROM tenants WHERE id = $1::uuid), "                  \
    "(SELECT settings->>'manager_chat_id' FROM channels WHERE tenant_id = $1::uuid "               \
    "AND kind = 'telegram' AND enabled AND settings ? 'manager_chat_id' "                          \
    "ORDER BY (name = 'default') DESC, created_at LIMIT 1)"

#define SQL_CONV_COLS                                                                              \
    "id::text, state, channel_kind, conversation_key, coalesce(customer->>'recipient', '')"

/* The message, and (when it is new) the conversation's customer details and last time, in
 * one statement. */
#define SQL_MESSAGE_INSERT                                                                         \
    "WITH m AS (INSERT INTO messages (tenant_id, conversation_id, direction, operation_id, kind, " \
    "body, payload, provider_message_id) VALUES ($1::uuid, $2::uuid, 'in', $3::uuid, $4, $5, "     \
    "$6::jsonb, $7) ON CONFLICT (operation_id) DO NOTHING RETURNING id), "                         \
    "c AS (UPDATE conversations SET customer = customer || $8::jsonb, updated_at = now(), "        \
    "last_message_at = greatest(last_message_at, to_timestamp($9::bigint / 1000.0)) "              \
    "WHERE id = $2::uuid AND EXISTS (SELECT 1 FROM m)) "                                           \
    "SELECT id::text FROM m"

#define SQL_CONV_BY_KEY "SELECT " SQL_CONV_COLS " FROM conversations WHERE conversation_key = $1"

/* A customer message not in handover, in one statement (docs/dialog.md): the message (`m`),
 * then its turn (`t`) only when the message was inserted now, so a redelivered message never
 * gets a second turn. $1 … $9 as for SQL_MESSAGE_INSERT, $10 the traceparent, $11 the turn's
 * operation id (window 0) or the window in ms. */
#define SQL_RECV_MESSAGE(values)                                                                   \
    "m AS (INSERT INTO messages (tenant_id, conversation_id, direction, operation_id, kind, "      \
    "body, payload, provider_message_id) " values " ON CONFLICT (operation_id) DO NOTHING "        \
    "RETURNING id AS row_id, conversation_id)"

#define SQL_RECV_TURN_COLS                                                                         \
    "t AS (INSERT INTO turns (tenant_id, conversation_id, message_ids, last_message_id, "          \
    "first_received_at, due_at, traceparent"

/* Window 0: the message is the turn, stored as emitted (unless a burst left from a larger
 * window is pending: cond). */
#define SQL_RECV_TURN_NOW(cond)                                                                    \
    SQL_RECV_TURN_COLS ", state, operation_id, emitted_at) SELECT $1::uuid, m.conversation_id, "   \
                       "ARRAY[$3::uuid], $3::uuid, to_timestamp($9::bigint / 1000.0), "            \
                       "to_timestamp($9::bigint / 1000.0), $10, 'emitted', $11::uuid, now() "      \
                       "FROM m" cond " RETURNING 1)"

/* A window: the message starts the conversation's pending burst or joins it. */
#define SQL_RECV_BURST                                                                             \
    SQL_RECV_TURN_COLS ") SELECT $1::uuid, m.conversation_id, ARRAY[$3::uuid], $3::uuid, "         \
                       "to_timestamp($9::bigint / 1000.0), to_timestamp($9::bigint / 1000.0) + "   \
                       "$11::bigint * interval '1 millisecond', $10 FROM m " DIALOG_SQL_BURST_JOIN \
                       " RETURNING 1)"

/* A conversation found ($2 its id): the message, the conversation's customer details and
 * last time (`c`), the turn, and (hist) the history before the message. One row per history
 * message (direction NULL: none): the message's row id and the turns inserted; no row when
 * the message was stored before. */
#define SQL_RECV_VALUES "VALUES ($1::uuid, $2::uuid, 'in', $3::uuid, $4, $5, $6::jsonb, $7)"
#define SQL_RECV_TOUCH                                                                             \
    "c AS (UPDATE conversations SET customer = customer || $8::jsonb, updated_at = now(), "        \
    "last_message_at = greatest(last_message_at, to_timestamp($9::bigint / 1000.0)) "              \
    "WHERE id = $2::uuid AND EXISTS (SELECT 1 FROM m))"
#define SQL_RECV_FOUND_ROW                                                                         \
    "SELECT m.row_id::text, (SELECT count(*) FROM t), h.direction, h.body FROM m"
#define SQL_RECV_FOUND(turn, hist)                                                                 \
    "WITH " SQL_RECV_MESSAGE(SQL_RECV_VALUES) ", " SQL_RECV_TOUCH ", " turn " " SQL_RECV_FOUND_ROW \
                                              " " hist

/* The history ($12 messages at most), read only when the turn leaves now. */
#define SQL_RECV_HISTORY                                                                           \
    "LEFT JOIN LATERAL (SELECT id, direction, body FROM messages WHERE tenant_id = $1::uuid "      \
    "AND conversation_id = $2::uuid AND id < m.row_id AND " DIALOG_SQL_HISTORY_FILTER " "          \
    "AND EXISTS (SELECT 1 FROM t) ORDER BY id DESC LIMIT $12::int) h ON true ORDER BY h.id"

#define SQL_RECV_PENDING                                                                           \
    " WHERE NOT EXISTS (SELECT 1 FROM turns WHERE tenant_id = $1::uuid "                           \
    "AND conversation_id = $2::uuid AND state = 'pending')"

#define SQL_RECEIVE_FOUND_NOW SQL_RECV_FOUND(SQL_RECV_TURN_NOW(SQL_RECV_PENDING), SQL_RECV_HISTORY)
#define SQL_RECV_NO_HISTORY "CROSS JOIN (SELECT NULL::text, NULL::text) h(direction, body)"
#define SQL_RECEIVE_FOUND_BURST SQL_RECV_FOUND(SQL_RECV_BURST, SQL_RECV_NO_HISTORY)

/* A conversation not found ($2 the channel kind, $12 the key): inserted with its customer
 * details and last time, then the message and the turn (a new conversation has no history
 * and no burst). One row: the conversation (SQL_CONV_COLS), the message's row id (NULL:
 * stored before), the turns inserted and two NULL history columns; no row when another
 * transaction inserted the conversation meanwhile (nothing is written then). */
#define SQL_RECV_CONV                                                                              \
    "cv AS (INSERT INTO conversations (tenant_id, channel_id, channel_kind, conversation_key, "    \
    "customer, last_message_at) VALUES ($1::uuid, (SELECT id FROM channels "                       \
    "WHERE tenant_id = $1::uuid AND kind = $2 ORDER BY (name = 'default') DESC, created_at "       \
    "LIMIT 1), $2, $12, $8::jsonb, to_timestamp($9::bigint / 1000.0)) "                            \
    "ON CONFLICT (tenant_id, conversation_key) DO NOTHING "                                        \
    "RETURNING id, state, channel_kind, conversation_key, customer)"
#define SQL_RECV_CONV_VALUES "SELECT $1::uuid, cv.id, 'in', $3::uuid, $4, $5, $6::jsonb, $7 FROM cv"
#define SQL_RECV_CONV_ROW                                                                          \
    "SELECT " SQL_CONV_COLS ", row_id::text, (SELECT count(*) FROM t), NULL::text, NULL::text "    \
    "FROM cv LEFT JOIN m ON true"
#define SQL_RECV_NEW(turn)                                                                         \
    "WITH " SQL_RECV_CONV ", " SQL_RECV_MESSAGE(SQL_RECV_CONV_VALUES) ", " turn                    \
                                                                      " " SQL_RECV_CONV_ROW

#define SQL_RECEIVE_NEW_NOW SQL_RECV_NEW(SQL_RECV_TURN_NOW(""))
#define SQL_RECEIVE_NEW_BURST SQL_RECV_NEW(SQL_RECV_BURST)

static void tenant_from_row(const imp_pg_result_t *res, dialog_tenant_t *out)
{
    out->coalesce_ms = DIALOG_DEFAULT_COALESCE_MS;
    const char *w = imp_pg_result_value(res, 0, 0);
    char *end = NULL;
    long long v = w ? strtoll(w, &end, 10) : -1;
    if (w != NULL && end != w && *end == '\0' && v >= 0)
        out->coalesce_ms = v > DIALOG_MAX_COALESCE_MS ? DIALOG_MAX_COALESCE_MS : v;
    const char *m = imp_pg_result_value(res, 0, 1);
    snprintf(out->manager_chat_id, sizeof(out->manager_chat_id), "%s", m ? m : "");
}

imp_error_t *dialog_load_tenant(imp_pg_t *pg, const char *tenant_id, dialog_tenant_t *out)
{
    imp_pg_result_t *res = NULL;
    const char *params[] = {tenant_id};
    imp_error_t *err = imp_pg_exec_cached(pg, SQL_TENANT, 1, params, &res);
    if (err == NULL)
        tenant_from_row(res, out);
    imp_pg_result_free(res);
    return err;
}

static void conv_from_row(const imp_pg_result_t *res, dialog_conv_t *c)
{
    snprintf(c->id, sizeof(c->id), "%s", imp_pg_result_value(res, 0, 0));
    snprintf(c->state, sizeof(c->state), "%s", imp_pg_result_value(res, 0, 1));
    snprintf(c->channel, sizeof(c->channel), "%s", imp_pg_result_value(res, 0, 2));
    snprintf(c->key, sizeof(c->key), "%s", imp_pg_result_value(res, 0, 3));
    snprintf(c->recipient, sizeof(c->recipient), "%s", imp_pg_result_value(res, 0, 4));
}

imp_error_t *dialog_load_conv(imp_pg_t *pg, const char *id, const char *key, dialog_conv_t *out,
                              bool *found)
{
    imp_pg_result_t *res = NULL;
    const char *params[] = {id ? id : key};
    imp_error_t *err = imp_pg_exec_cached(
        pg,
        id ? "SELECT " SQL_CONV_COLS " FROM conversations WHERE id = $1::uuid" : SQL_CONV_BY_KEY, 1,
        params, &res);
    if (err != NULL)
        return err;
    *found = imp_pg_result_rows(res) == 1;
    if (*found)
        conv_from_row(res, out);
    imp_pg_result_free(res);
    return NULL;
}

/* Where a reply to this conversation goes on its channel: WhatsApp's customer number, the
 * chat (Telegram, ChatFlow), else the conversation id of the key ("generic:<id>"). */
static const char *recipient_of(json_t *data, const char *channel, const char *key)
{
    const char *r = "";
    if (strcmp(channel, "whatsapp") == 0)
        r = dialog_str(data, "sender.id");
    if (r[0] == '\0')
        r = dialog_str(data, "chat.id");
    if (r[0] == '\0') {
        const char *colon = strchr(key, ':');
        r = colon ? colon + 1 : key;
    }
    return r;
}

/* The customer's words: the text, else a media caption; NULL when the message has none. */
static const char *body_of(json_t *data)
{
    json_t *text = json_object_get(json_object_get(data, "message"), "text");
    if (json_is_string(text))
        return json_string_value(text);
    const char *caption = dialog_str(data, "message.media.caption");
    return caption[0] ? caption : NULL;
}

/* The message's columns, the parameters $1 … $9 of SQL_MESSAGE_INSERT ($2 the conversation
 * id, $8 the customer details; both left NULL here); msg's fields point into ev. */
typedef struct {
    char *payload;
    char ms[32];
    const char *params[12];
} msg_row_t;

static void msg_row(const imp_envelope_t *ev, msg_row_t *row, dialog_msg_t *msg)
{
    json_t *payload = json_object();
    json_object_set(payload, "message", json_object_get(ev->data, "message"));
    if (json_object_get(ev->data, "sender") != NULL)
        json_object_set(payload, "sender", json_object_get(ev->data, "sender"));
    json_object_set_new(payload, "received_at_ms", json_integer(ev->time_ms));
    row->payload = json_dumps(payload, JSON_COMPACT);
    json_decref(payload);
    const char *kind = dialog_str(ev->data, "message.kind");
    const char *pid = dialog_str(ev->data, "message.id");
    snprintf(row->ms, sizeof(row->ms), "%lld", (long long)ev->time_ms);
    *msg = (dialog_msg_t){.opid = ev->id,
                          .body = body_of(ev->data),
                          .kind = kind[0] ? kind : "text",
                          .provider_id = pid[0] ? pid : NULL};
    const char *p[] = {ev->tenantid,     NULL, ev->id, msg->kind, msg->body, row->payload,
                       msg->provider_id, NULL, row->ms};
    memcpy(row->params, p, sizeof(p));
}

/* Insert the message (and touch its conversation); msg->row_id NULL when its operation id
 * is already there. row_id is msg's storage (at least 24 bytes). */
static imp_error_t *insert_message(imp_pg_t *pg, const imp_envelope_t *ev, const char *conv_id,
                                   const char *customer, dialog_msg_t *msg, char *row_id)
{
    msg_row_t row;
    msg_row(ev, &row, msg);
    row.params[1] = conv_id;
    row.params[7] = customer;
    imp_pg_result_t *res = NULL;
    imp_error_t *err = imp_pg_exec_cached(pg, SQL_MESSAGE_INSERT, 9, row.params, &res);
    if (err == NULL && imp_pg_result_rows(res) == 1) {
        snprintf(row_id, 24, "%s", imp_pg_result_value(res, 0, 0));
        msg->row_id = row_id;
    }
    imp_pg_result_free(res);
    free(row.payload);
    return err;
}

/* A conversation not in handover (found NULL: none found): the message, the conversation
 * when new, and the turn (window 0) or the burst in one statement; then, for window 0, the
 * turn's event. *handled false only when the conversation was inserted meanwhile by another
 * transaction; nothing was written then. */
static imp_error_t *receive(imp_worker_ctx_t *ctx, const imp_envelope_t *ev, long long window_ms,
                            const char *channel, const char *key, const char *customer,
                            const dialog_conv_t *found, bool *handled)
{
    imp_pg_t *pg = imp_worker_ctx_pg(ctx);
    char turn_opid[IMP_UUID_STR_SIZE], win[32], lim[16], row_id[24];
    dialog_msg_t msg;
    msg_row_t row;
    bool now = window_ms == 0;
    *handled = false;
    imp_error_t *err = imp_opid_derive(ev->id, "turn", turn_opid);
    if (err != NULL)
        return err;
    msg_row(ev, &row, &msg);
    snprintf(win, sizeof(win), "%lld", window_ms);
    snprintf(lim, sizeof(lim), "%d", DIALOG_HISTORY);
    row.params[1] = found ? found->id : channel;
    row.params[7] = customer;
    row.params[9] = ev->traceparent[0] ? ev->traceparent : NULL;
    row.params[10] = now ? turn_opid : win;
    row.params[11] = found ? lim : key;
    const char *sql = found ? (now ? SQL_RECEIVE_FOUND_NOW : SQL_RECEIVE_FOUND_BURST)
                            : (now ? SQL_RECEIVE_NEW_NOW : SQL_RECEIVE_NEW_BURST);
    int nparams = found && !now ? 11 : 12; /* a burst of a found conversation reads no history */
    imp_pg_result_t *res = NULL;
    err = imp_pg_exec_cached(pg, sql, nparams, row.params, &res);
    free(row.payload);
    if (err != NULL || imp_pg_result_rows(res) == 0) {
        /* none: a message stored before (found), or a conversation inserted meanwhile */
        *handled = err != NULL || found != NULL;
        imp_pg_result_free(res);
        return err;
    }
    *handled = true;
    dialog_conv_t conv = {0};
    int col = 0;
    if (found != NULL) {
        conv = *found;
    } else {
        conv_from_row(res, &conv);
        col = 5;
    }
    const char *rid = imp_pg_result_value(res, 0, col);
    if (now && rid != NULL) { /* else stored before (nothing more), or the burst waits */
        snprintf(row_id, sizeof(row_id), "%s", rid);
        msg.row_id = row_id;
        if (strcmp(imp_pg_result_value(res, 0, col + 1), "0") != 0)
            err = dialog_emit_stored_turn(ctx, ev, &conv, &msg, turn_opid, res, col + 2);
        else /* a burst is pending: the message joins it, and it leaves now */
            err = dialog_coalesce_flush(ctx, ev, &conv, &msg);
    }
    imp_pg_result_free(res);
    return err;
}

static char *customer_json(json_t *data, const char *recipient)
{
    json_t *c = json_object();
    json_object_set_new(c, "recipient", json_string(recipient));
    static const char *const fields[] = {"id", "name", "username", "phone"};
    for (size_t i = 0; i < IMP_ARRAY_LEN(fields); i++) {
        json_t *v = json_object_get(json_object_get(data, "sender"), fields[i]);
        if (json_is_string(v))
            json_object_set(c, fields[i], v);
    }
    char *text = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    return text;
}

/* A message in a handover conversation: stored, and forwarded to the manager chat. */
static imp_error_t *to_manager(imp_worker_ctx_t *ctx, const imp_envelope_t *ev,
                               const dialog_tenant_t *tenant, const dialog_conv_t *conv,
                               const char *customer)
{
    dialog_msg_t msg = {0};
    char row_id[24];
    imp_error_t *err = insert_message(imp_worker_ctx_pg(ctx), ev, conv->id, customer, &msg, row_id);
    if (err != NULL || msg.row_id == NULL)
        return err; /* a message stored before does nothing more */
    if (tenant->manager_chat_id[0] == '\0') {
        IMP_LOG_WARN("conversation in handover but the tenant has no manager chat",
                     IMP_LS("conversation", conv->key));
        return NULL;
    }
    return dialog_forward(ctx, ev->tenantid, conv, ev->id, tenant->manager_chat_id,
                          ev->traceparent);
}

static imp_error_t *on_customer(imp_worker_ctx_t *ctx, const imp_envelope_t *ev,
                                const dialog_tenant_t *tenant, const char *channel, const char *key,
                                const dialog_conv_t *found)
{
    char *customer = customer_json(ev->data, recipient_of(ev->data, channel, key));
    dialog_conv_t conv = {0};
    bool handled = false, exists = found != NULL;
    imp_error_t *err = NULL;
    if (found != NULL)
        conv = *found;
    else
        err = receive(ctx, ev, tenant->coalesce_ms, channel, key, customer, NULL, &handled);
    if (err == NULL && !handled && !exists) { /* inserted meanwhile by another transaction */
        err = dialog_load_conv(imp_worker_ctx_pg(ctx), NULL, key, &conv, &exists);
        if (err == NULL && !exists)
            err = imp_error_new(IMP_ERR_RETRIABLE, "conversation_gone",
                                "the conversation was inserted and is gone");
    }
    if (err == NULL && !handled && strcmp(conv.state, "handover") != 0)
        err = receive(ctx, ev, tenant->coalesce_ms, channel, key, customer, &conv, &handled);
    if (err == NULL && !handled)
        err = to_manager(ctx, ev, tenant, &conv, customer);
    free(customer);
    return err;
}

imp_error_t *dialog_on_message(imp_worker_ctx_t *ctx, const imp_envelope_t *ev)
{
    uint8_t u[IMP_UUID_LEN];
    if (imp_uuid_parse(ev->tenantid, strlen(ev->tenantid), u) != 0)
        return dialog_bad("tenantid is not a uuid");
    const char *channel = dialog_str(ev->data, "channel");
    const char *key = dialog_str(ev->data, "conversation_key");
    if (channel[0] == '\0' || key[0] == '\0')
        return dialog_bad("data.channel or data.conversation_key is missing");
    /* The tenant's settings and the conversation, if it exists, in one round trip (a
     * manager's message has no use for the latter). */
    dialog_tenant_t tenant;
    dialog_conv_t conv = {0};
    const char *tparams[] = {ev->tenantid}, *cparams[] = {key};
    imp_pg_batch_t *b = imp_pg_batch_new();
    imp_pg_batch_add_cached(b, SQL_TENANT, 1, tparams);
    imp_pg_batch_add_cached(b, SQL_CONV_BY_KEY, 1, cparams);
    imp_error_t *err = imp_pg_batch_run(imp_worker_ctx_pg(ctx), b);
    bool found = false;
    if (err == NULL) {
        tenant_from_row(imp_pg_batch_result(b, 0), &tenant);
        found = imp_pg_result_rows(imp_pg_batch_result(b, 1)) == 1;
        if (found)
            conv_from_row(imp_pg_batch_result(b, 1), &conv);
    }
    imp_pg_batch_free(b);
    if (err != NULL)
        return err;
    if (strcmp(channel, "telegram") == 0 && tenant.manager_chat_id[0] != '\0' &&
        strcmp(dialog_str(ev->data, "chat.id"), tenant.manager_chat_id) == 0)
        return dialog_on_manager(ctx, ev, &tenant);
    return on_customer(ctx, ev, &tenant, channel, key, found ? &conv : NULL);
}
