/* Coalescing: a conversation's messages gather in one pending burst (a `turns` row) until
 * its due time, then become one imp.turn.requested.v1. The burst lives in Postgres, so the
 * scheduler (the runtime's tick) finds it after a crash or a rebalance, in any process. */
#include "dialog.h"

#include "imp/log.h"
#include "imp/mem.h"
#include "imp/opid.h"

#include <stdlib.h>
#include <string.h>

/* The window starts at the ingress time of the burst's first message and is not extended
 * by later ones: a customer who keeps typing still gets an answer within the window. */
#define SQL_BURST_ADD                                                                              \
    "INSERT INTO turns (tenant_id, conversation_id, message_ids, last_message_id, "                \
    "first_received_at, due_at, traceparent) VALUES ($1::uuid, $2::uuid, ARRAY[$3::uuid], "        \
    "$3::uuid, to_timestamp($4::bigint / 1000.0), "                                                \
    "to_timestamp($4::bigint / 1000.0) + $5::bigint * interval '1 millisecond', "                  \
    "$6) " DIALOG_SQL_BURST_JOIN " RETURNING id::text"

#define SQL_BURST_LOAD                                                                             \
    "SELECT t.last_message_id::text, "                                                             \
    "(extract(epoch FROM t.first_received_at) * 1000)::bigint::text, coalesce(t.traceparent, "     \
    "''), "                                                                                        \
    "c.id::text, c.state, c.channel_kind, c.conversation_key, "                                    \
    "coalesce(c.customer->>'recipient', '') "                                                      \
    "FROM turns t JOIN conversations c ON c.tenant_id = t.tenant_id AND c.id = t.conversation_id " \
    "WHERE t.id = $1::uuid AND t.state = 'pending'"

/* One index probe per message of the burst (LIMIT keeps the planner from turning the lookup
 * into a scan of the tenant's messages). */
#define SQL_BURST_MESSAGES                                                                         \
    "SELECT m.id, m.operation_id::text, m.body, m.provider_message_id, m.kind "                    \
    "FROM turns t CROSS JOIN LATERAL unnest(t.message_ids) WITH ORDINALITY AS u(op, n) "           \
    "CROSS JOIN LATERAL (SELECT id, operation_id, body, provider_message_id, kind FROM messages "  \
    "WHERE operation_id = u.op LIMIT 1) m WHERE t.id = $1::uuid ORDER BY u.n"

/* Earlier customer messages and what the customer was answered (bot or manager); forwards
 * and escalations went to the manager, not to the customer. */
#define SQL_HISTORY                                                                                \
    "SELECT direction, body FROM (SELECT id, direction, body FROM messages "                       \
    "WHERE tenant_id = $1::uuid AND conversation_id = $2::uuid AND id < $3::bigint "               \
    "AND " DIALOG_SQL_HISTORY_FILTER " ORDER BY id DESC LIMIT $4::int) h ORDER BY id"

#define SQL_BURST_DONE                                                                             \
    "UPDATE turns SET state = $2, operation_id = $3::uuid, emitted_at = now() "                    \
    "WHERE id = $1::uuid"

typedef struct {
    char last_opid[40];
    long long received_ms;
    char traceparent[64];
    dialog_conv_t conv;
} burst_t;

static imp_error_t *load_burst(imp_pg_t *pg, const char *turn_id, burst_t *b, bool *found)
{
    imp_pg_result_t *res = NULL;
    const char *params[] = {turn_id};
    imp_error_t *err = imp_pg_exec_cached(pg, SQL_BURST_LOAD, 1, params, &res);
    if (err != NULL)
        return err;
    *found = imp_pg_result_rows(res) == 1;
    if (*found) {
        snprintf(b->last_opid, sizeof(b->last_opid), "%s", imp_pg_result_value(res, 0, 0));
        b->received_ms = atoll(imp_pg_result_value(res, 0, 1));
        snprintf(b->traceparent, sizeof(b->traceparent), "%s", imp_pg_result_value(res, 0, 2));
        snprintf(b->conv.id, sizeof(b->conv.id), "%s", imp_pg_result_value(res, 0, 3));
        snprintf(b->conv.state, sizeof(b->conv.state), "%s", imp_pg_result_value(res, 0, 4));
        snprintf(b->conv.channel, sizeof(b->conv.channel), "%s", imp_pg_result_value(res, 0, 5));
        snprintf(b->conv.key, sizeof(b->conv.key), "%s", imp_pg_result_value(res, 0, 6));
        snprintf(b->conv.recipient, sizeof(b->conv.recipient), "%s",
                 imp_pg_result_value(res, 0, 7));
    }
    imp_pg_result_free(res);
    return NULL;
}

/* History rows (direction and body in columns col and col + 1; a row whose direction is
 * NULL holds none) as the turn's history (appended to out). */
static void history_rows(const imp_pg_result_t *res, int col, json_t *out)
{
    for (int r = 0; r < imp_pg_result_rows(res); r++) {
        const char *dir = imp_pg_result_value(res, r, col);
        if (dir == NULL)
            continue;
        bool in = strcmp(dir, "in") == 0;
        json_array_append_new(out, json_pack("{s:s, s:s}", "role", in ? "user" : "assistant",
                                             "text", imp_pg_result_value(res, r, col + 1)));
    }
}

static imp_error_t *history(imp_pg_t *pg, const char *tenant_id, const char *conv_id,
                            const char *before_id, json_t *out)
{
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", DIALOG_HISTORY);
    const char *params[] = {tenant_id, conv_id, before_id, lim};
    imp_pg_result_t *res = NULL;
    imp_error_t *err = imp_pg_exec_cached(pg, SQL_HISTORY, 4, params, &res);
    if (err == NULL)
        history_rows(res, 0, out);
    imp_pg_result_free(res);
    return err;
}

/* One message of a burst. */
typedef struct {
    const char *opid;
    const char *body; /* NULL or "": no words */
    const char *kind;
    const char *provider_id; /* NULL: none */
} burst_msg_t;

/* The turn's data from the burst's messages (oldest first). */
static json_t *turn_data(const burst_t *b, const burst_msg_t *m, int n, json_t *hist)
{
    json_t *ids = json_array();
    char *question = imp_strdup("");
    for (int r = 0; r < n; r++) {
        json_array_append_new(ids, json_string(m[r].opid));
        if (m[r].body == NULL || m[r].body[0] == '\0')
            continue;
        char *q = question[0] ? imp_asprintf("%s\n%s", question, m[r].body) : imp_strdup(m[r].body);
        free(question);
        question = q;
    }
    if (question[0] == '\0' && n > 0) { /* a photo without caption, a sticker … */
        free(question);
        question = imp_asprintf("[%s]", m[n - 1].kind);
    }
    const char *reply_to = n > 0 ? m[n - 1].provider_id : NULL;
    json_t *d = json_object();
    json_object_set_new(d, "conversation_id", json_string(b->conv.id));
    json_object_set_new(d, "channel", json_string(b->conv.channel));
    json_object_set_new(d, "conversation_key", json_string(b->conv.key));
    json_object_set_new(d, "recipient", json_string(b->conv.recipient));
    json_object_set_new(d, "message_ids", ids);
    json_object_set_new(d, "question", json_string(question));
    json_object_set_new(d, "reply_to", reply_to ? json_string(reply_to) : json_null());
    json_object_set_new(d, "history", hist);
    json_object_set_new(d, "received_at_ms", json_integer(b->received_ms));
    free(question);
    return d;
}

/* Emit the turn of burst b (its messages m[0..n)), history before its first message row:
 * hist_rows (from column hist_col) when it was read already, else read now. */
static imp_error_t *emit_turn(imp_worker_ctx_t *ctx, const char *tenant_id, const burst_t *b,
                              const burst_msg_t *m, int n, const char *first_row, const char *opid,
                              const imp_pg_result_t *hist_rows, int hist_col)
{
    json_t *hist = json_array();
    imp_error_t *err = NULL;
    if (hist_rows != NULL)
        history_rows(hist_rows, hist_col, hist);
    else if (first_row != NULL)
        err = history(imp_worker_ctx_pg(ctx), tenant_id, b->conv.id, first_row, hist);
    if (err != NULL) {
        json_decref(hist);
        return err;
    }
    dialog_event_t e = {.id = opid,
                        .type = "imp.turn.requested.v1",
                        .tenant_id = tenant_id,
                        .subject = b->conv.key,
                        .causationid = b->last_opid,
                        .traceparent = b->traceparent};
    return dialog_emit(ctx, DIALOG_TOPIC_TURN, &e, turn_data(b, m, n, hist));
}

static imp_error_t *mark(imp_pg_t *pg, const char *turn_id, const char *state, const char *opid)
{
    const char *params[] = {turn_id, state, opid};
    return imp_pg_exec_cached(pg, SQL_BURST_DONE, 3, params, NULL);
}

/* The conversation went to handover while the burst waited: its messages go to the
 * manager instead of the bot. */
static imp_error_t *forward_burst(imp_worker_ctx_t *ctx, const char *tenant_id, const char *turn_id,
                                  const burst_t *b, const imp_pg_result_t *msgs)
{
    imp_pg_t *pg = imp_worker_ctx_pg(ctx);
    dialog_tenant_t tenant;
    imp_error_t *err = dialog_load_tenant(pg, tenant_id, &tenant);
    for (int r = 0; err == NULL && r < imp_pg_result_rows(msgs); r++)
        if (tenant.manager_chat_id[0] != '\0')
            err = dialog_forward(ctx, tenant_id, &b->conv, imp_pg_result_value(msgs, r, 1),
                                 tenant.manager_chat_id, b->traceparent);
    return err ? err : mark(imp_worker_ctx_pg(ctx), turn_id, "forwarded", NULL);
}

/* Emit the pending burst turn_id (of the transaction's tenant) as one turn. */
static imp_error_t *emit_burst(imp_worker_ctx_t *ctx, const char *tenant_id, const char *turn_id)
{
    imp_pg_t *pg = imp_worker_ctx_pg(ctx);
    burst_t b;
    bool found = false;
    imp_pg_result_t *msgs = NULL;
    burst_msg_t *m = NULL;
    char opid[IMP_UUID_STR_SIZE];
    imp_error_t *err = load_burst(pg, turn_id, &b, &found);
    if (err != NULL || !found)
        goto out; /* emitted meanwhile */
    const char *params[] = {turn_id};
    err = imp_pg_exec_cached(pg, SQL_BURST_MESSAGES, 1, params, &msgs);
    if (err != NULL)
        goto out;
    if (strcmp(b.conv.state, "handover") == 0) {
        err = forward_burst(ctx, tenant_id, turn_id, &b, msgs);
        goto out;
    }
    int n = imp_pg_result_rows(msgs);
    m = imp_calloc(n > 0 ? (size_t)n : 1, sizeof(*m));
    for (int r = 0; r < n; r++)
        m[r] = (burst_msg_t){.opid = imp_pg_result_value(msgs, r, 1),
                             .body = imp_pg_result_value(msgs, r, 2),
                             .provider_id = imp_pg_result_value(msgs, r, 3),
                             .kind = imp_pg_result_value(msgs, r, 4)};
    err = imp_opid_derive(b.last_opid, "turn", opid);
    if (err == NULL)
        err = emit_turn(ctx, tenant_id, &b, m, n, n > 0 ? imp_pg_result_value(msgs, 0, 0) : NULL,
                        opid, NULL, 0);
    if (err == NULL)
        err = mark(pg, turn_id, "emitted", opid);
out:
    free(m);
    imp_pg_result_free(msgs);
    return err;
}

imp_error_t *dialog_emit_stored_turn(imp_worker_ctx_t *ctx, const imp_envelope_t *ev,
                                     const dialog_conv_t *conv, const dialog_msg_t *msg,
                                     const char *turn_opid, const imp_pg_result_t *hist,
                                     int hist_col)
{
    burst_t b = {.received_ms = ev->time_ms, .conv = *conv};
    snprintf(b.last_opid, sizeof(b.last_opid), "%s", msg->opid);
    snprintf(b.traceparent, sizeof(b.traceparent), "%s", ev->traceparent);
    burst_msg_t m = {
        .opid = msg->opid, .body = msg->body, .kind = msg->kind, .provider_id = msg->provider_id};
    return emit_turn(ctx, ev->tenantid, &b, &m, 1, msg->row_id, turn_opid, hist, hist_col);
}

imp_error_t *dialog_coalesce_flush(imp_worker_ctx_t *ctx, const imp_envelope_t *ev,
                                   const dialog_conv_t *conv, const dialog_msg_t *msg)
{
    char at[32];
    snprintf(at, sizeof(at), "%lld", (long long)ev->time_ms);
    const char *params[] = {ev->tenantid, conv->id, msg->opid,
                            at,           "0",      ev->traceparent[0] ? ev->traceparent : NULL};
    imp_pg_result_t *res = NULL;
    imp_error_t *err = imp_pg_exec_cached(imp_worker_ctx_pg(ctx), SQL_BURST_ADD, 6, params, &res);
    if (err == NULL)
        err = emit_burst(ctx, ev->tenantid, imp_pg_result_value(res, 0, 0));
    imp_pg_result_free(res);
    return err;
}

/* One due burst, under a savepoint: a burst that fails for a reason other than an outage
 * is logged and left pending instead of holding back every other tenant's. */
static imp_error_t *tick_one(imp_worker_ctx_t *ctx, const char *tenant_id, const char *turn_id)
{
    imp_error_t *err = imp_worker_ctx_set_tenant(ctx, tenant_id);
    imp_pg_t *pg = imp_worker_ctx_pg(ctx);
    if (err == NULL)
        err = imp_pg_savepoint(pg, "dialog_turn");
    if (err != NULL)
        return err;
    err = emit_burst(ctx, tenant_id, turn_id);
    if (err == NULL)
        return imp_pg_savepoint_release(pg, "dialog_turn");
    if (imp_error_class(err) == IMP_ERR_INFRA || imp_error_class(err) == IMP_ERR_FATAL)
        return err;
    IMP_LOG_ERROR("pending turn not emitted; left pending", IMP_LS("turn", turn_id),
                  IMP_LS("tenant_id", tenant_id), IMP_LE(err));
    imp_error_free(err);
    return imp_pg_savepoint_rollback(pg, "dialog_turn");
}

imp_error_t *dialog_tick(imp_worker_ctx_t *ctx, void *user)
{
    (void)user;
    char lim[32];
    snprintf(lim, sizeof(lim), "%lld", dialog_config.tick_batch);
    const char *params[] = {lim};
    imp_pg_result_t *res = NULL;
    imp_error_t *err = imp_pg_exec_cached(
        imp_worker_ctx_pg(ctx), "SELECT tenant_id::text, turn_id::text FROM dialog_due_turns($1)",
        1, params, &res);
    int n = err == NULL ? imp_pg_result_rows(res) : 0;
    for (int r = 0; err == NULL && r < n; r++)
        err = tick_one(ctx, imp_pg_result_value(res, r, 0), imp_pg_result_value(res, r, 1));
    if (err == NULL && n > 0)
        IMP_LOG_DEBUG("due turns emitted", IMP_LI("count", n));
    imp_pg_result_free(res);
    return err;
}
