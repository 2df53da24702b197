/* The outbound state machine: pending → sending → sent | failed | unknown (docs/send.md).
 *
 * The claim (pending → sending) and the failures that make the runtime roll its transaction
 * back (back to pending, or failed) commit on a second connection, so they survive that
 * rollback; the settled states of a successful handler (sent, unknown) are written in the
 * runtime's transaction together with the delivery event. */
#include "send.h"

#include "imp/log.h"
#include "imp/opid.h"
#include "imp/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first claim of an operation in one statement: a new row is inserted as sending, attempt
 * 1; an existing one is left as it is (the no-op update only takes its lock) and goes through
 * the locked path below. xmax = 0 tells a row this statement inserted. */
#define SQL_CLAIM_NEW                                                                              \
    "INSERT INTO outbound (tenant_id, operation_id, conversation_id, channel, recipient, "         \
    "purpose, text, state, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7, 'sending', 1) "           \
    "ON CONFLICT (operation_id) DO UPDATE SET updated_at = outbound.updated_at "                   \
    "RETURNING xmax = 0"
/* A claim never waits long for a lock (a batch larger than one could otherwise wait for its
 * own transaction). */
#define SQL_LOCK_TIMEOUT "SELECT set_config('lock_timeout', '5s', true)"
#define SQL_LOCK                                                                                   \
    "SELECT state, attempts, provider_message_id, last_error, "                                    \
    "coalesce(greatest(0, ceil(extract(epoch FROM next_attempt_at - clock_timestamp()) * "         \
    "1000)), 0)::bigint FROM outbound WHERE operation_id = $1 FOR UPDATE"
#define SQL_SENDING                                                                                \
    "UPDATE outbound SET state = 'sending', attempts = attempts + 1, next_attempt_at = NULL, "     \
    "updated_at = now() WHERE operation_id = $1 RETURNING attempts"
#define SQL_SETTLE                                                                                 \
    "UPDATE outbound SET state = $2, provider_message_id = coalesce($3, provider_message_id), "    \
    "last_error = $4, next_attempt_at = NULL, updated_at = now() WHERE operation_id = $1"
/* The turn's send_ms (docs/answers.md: qc writes the trace, send adds send_ms): from qc emitting
 * the customer's reply (the outbound event's time) to the provider's 2xx. The trace is found
 * by the draft, the outbound event's cause. */
#define SQL_TRACE_SEND_MS                                                                          \
    "UPDATE message_traces SET send_ms = $3::int WHERE tenant_id = $1::uuid "                      \
    "AND draft_id = $2::uuid AND send_ms IS NULL"
#define SQL_RELEASE                                                                                \
    "UPDATE outbound SET state = 'pending', last_error = $2, next_attempt_at = CASE WHEN $3 > 0 "  \
    "THEN clock_timestamp() + $3 * interval '1 millisecond' END, updated_at = now() "              \
    "WHERE operation_id = $1"
#define SQL_OUTBOX                                                                                 \
    "INSERT INTO outbox (topic, key, payload, tenant_id, operation_id) "                           \
    "VALUES ($1, $2, $3, $4, $5)"

#define INTERRUPTED                                                                                \
    "interrupted: the send has no recorded result and the provider takes no "                      \
    "idempotency key, so it is not sent again"

void send_claim_dispose(send_claim_t *c)
{
    free(c->provider_message_id);
    free(c->last_error);
    c->provider_message_id = NULL;
    c->last_error = NULL;
}

/* BEGIN on the claim connection, scoped to the tenant, with the lock timeout. */
static imp_error_t *claim_begin(imp_pg_t *pg, const char *tenant)
{
    imp_error_t *err = imp_pg_tx_begin(pg);
    if (err == NULL)
        err = imp_pg_exec_cached(pg, SQL_LOCK_TIMEOUT, 0, NULL, NULL);
    if (err == NULL)
        err = imp_pg_set_tenant(pg, tenant);
    return err;
}

static imp_error_t *claim_end(imp_pg_t *pg, imp_error_t *err)
{
    if (err == NULL)
        return imp_pg_tx_commit(pg);
    imp_pg_tx_rollback(pg);
    return err;
}

static char *dup_or_null(const char *s)
{
    return s ? imp_strdup(s) : NULL;
}

/* Decide from the locked row; may update it. */
static imp_error_t *decide(imp_pg_t *pg, const imp_envelope_t *ev, bool idempotent,
                           const imp_pg_result_t *row, send_claim_t *out)
{
    snprintf(out->state, sizeof(out->state), "%s", imp_pg_result_value(row, 0, 0));
    long long n = 0;
    imp_pg_result_get_int64(row, 0, 1, &n);
    out->attempts = (int)n;
    out->provider_message_id = dup_or_null(imp_pg_result_value(row, 0, 2));
    out->last_error = dup_or_null(imp_pg_result_value(row, 0, 3));
    imp_pg_result_get_int64(row, 0, 4, &out->wait_ms);
    const char *params[] = {ev->id, "unknown", NULL, INTERRUPTED};
    if (strcmp(out->state, "sent") == 0 || strcmp(out->state, "unknown") == 0) {
        out->kind = CLAIM_DONE;
        return NULL;
    }
    if (strcmp(out->state, "sending") == 0 && !idempotent) {
        out->kind = CLAIM_DONE;
        snprintf(out->state, sizeof(out->state), "unknown");
        free(out->last_error);
        out->last_error = imp_strdup(INTERRUPTED);
        IMP_LOG_WARN("interrupted send not repeated", IMP_LS("state", "unknown"));
        return imp_pg_exec_cached(pg, SQL_SETTLE, 4, params, NULL);
    }
    if (out->wait_ms > 0) {
        out->kind = CLAIM_DEFER;
        return NULL;
    }
    imp_pg_result_t *res = NULL;
    imp_error_t *err = imp_pg_exec_cached(pg, SQL_SENDING, 1, (const char *[]){ev->id}, &res);
    if (err == NULL) {
        imp_pg_result_get_int64(res, 0, 0, &n);
        out->attempts = (int)n;
        out->kind = CLAIM_SEND;
        snprintf(out->state, sizeof(out->state), "sending");
    }
    imp_pg_result_free(res);
    return err;
}

/* The common case, a message seen for the first time: its settings, the insert as sending and
 * the commit in one round trip (a pipelined batch outside a transaction is one transaction).
 * *fresh: the row is new and claimed. */
static imp_error_t *claim_new(send_t *st, const imp_envelope_t *ev, const send_msg_t *m,
                              bool *fresh)
{
    const char *tenant[] = {ev->tenantid};
    const char *ins[] = {ev->tenantid, ev->id, m->conversation_id, m->channel, m->recipient,
                         m->purpose,   m->text};
    imp_pg_batch_t *b = imp_pg_batch_new();
    imp_pg_batch_add_cached(b, SQL_LOCK_TIMEOUT, 0, NULL);
    imp_pg_batch_add_cached(b, IMP_PG_SET_TENANT_SQL, 1, tenant);
    imp_pg_batch_add_cached(b, SQL_CLAIM_NEW, 7, ins);
    imp_error_t *err = imp_pg_batch_run(st->claim_pg, b);
    const imp_pg_result_t *res = imp_pg_batch_result(b, 2);
    *fresh = err == NULL && imp_pg_result_rows(res) == 1 &&
             strcmp(imp_pg_result_value(res, 0, 0), "t") == 0;
    imp_pg_batch_free(b);
    return err;
}

imp_error_t *send_claim_new_many(send_t *st, const imp_envelope_t *const *evs,
                                 const send_msg_t *const *ms, size_t n, bool *fresh)
{
    imp_pg_batch_t *b = imp_pg_batch_new();
    imp_pg_batch_add_cached(b, SQL_LOCK_TIMEOUT, 0, NULL);
    for (size_t i = 0; i < n; i++) {
        const char *tenant[] = {evs[i]->tenantid};
        const char *ins[] = {evs[i]->tenantid, evs[i]->id,       ms[i]->conversation_id,
                             ms[i]->channel,   ms[i]->recipient, ms[i]->purpose,
                             ms[i]->text};
        imp_pg_batch_add_cached(b, IMP_PG_SET_TENANT_SQL, 1, tenant);
        imp_pg_batch_add_cached(b, SQL_CLAIM_NEW, 7, ins);
    }
    imp_error_t *err = imp_pg_batch_run(st->claim_pg, b);
    for (size_t i = 0; i < n; i++) {
        const imp_pg_result_t *res = imp_pg_batch_result(b, 2 + 2 * i);
        fresh[i] = err == NULL && imp_pg_result_rows(res) == 1 &&
                   strcmp(imp_pg_result_value(res, 0, 0), "t") == 0;
    }
    imp_pg_batch_free(b);
    return err;
}

imp_error_t *send_claim(send_t *st, const imp_envelope_t *ev, const send_msg_t *m, bool idempotent,
                        send_claim_t *out)
{
    memset(out, 0, sizeof(*out));
    bool fresh = false;
    imp_error_t *err = claim_new(st, ev, m, &fresh);
    if (err != NULL)
        return err;
    if (fresh) {
        out->kind = CLAIM_SEND;
        out->attempts = 1;
        snprintf(out->state, sizeof(out->state), "sending");
        return NULL;
    }
    /* Seen before (a redelivery, a retry, another tenant's id): decide under the row's lock. */
    imp_pg_t *pg = st->claim_pg;
    imp_pg_result_t *res = NULL;
    err = claim_begin(pg, ev->tenantid);
    if (err == NULL)
        err = imp_pg_exec_cached(pg, SQL_LOCK, 1, (const char *[]){ev->id}, &res);
    if (err == NULL && imp_pg_result_rows(res) != 1)
        err = imp_error_new(IMP_ERR_POISON, "outbound_foreign",
                            "operation id %s belongs to another tenant's outbound", ev->id);
    if (err == NULL)
        err = decide(pg, ev, idempotent, res, out);
    imp_pg_result_free(res);
    return claim_end(pg, err);
}

imp_error_t *send_release(send_t *st, const imp_envelope_t *ev, const char *error,
                          long long wait_ms)
{
    char wait[32];
    snprintf(wait, sizeof(wait), "%lld", wait_ms);
    const char *params[] = {ev->id, error, wait};
    imp_error_t *err = claim_begin(st->claim_pg, ev->tenantid);
    if (err == NULL)
        err = imp_pg_exec_cached(st->claim_pg, SQL_RELEASE, 3, params, NULL);
    return claim_end(st->claim_pg, err);
}

imp_error_t *send_fail(send_t *st, const imp_envelope_t *ev, const char *error,
                       imp_envelope_t *delivery, const char *key)
{
    char *payload = NULL;
    imp_error_t *err = imp_envelope_serialize(delivery, &payload);
    if (err == NULL)
        err = claim_begin(st->claim_pg, ev->tenantid);
    const char *settle[] = {ev->id, "failed", NULL, error};
    if (err == NULL)
        err = imp_pg_exec_cached(st->claim_pg, SQL_SETTLE, 4, settle, NULL);
    const char *box[] = {SEND_TOPIC_DELIVERY, key, payload, ev->tenantid, delivery->id};
    if (err == NULL)
        err = imp_pg_exec_cached(st->claim_pg, SQL_OUTBOX, 5, box, NULL);
    if (payload != NULL)
        err = claim_end(st->claim_pg, err);
    free(payload);
    imp_envelope_dispose(delivery);
    return err;
}

/* Deferred: it goes out with the next event's first statement or the batch's COMMIT. The row
 * exists: the claim committed it, under the same tenant, before the call. */
imp_error_t *send_record(imp_pg_t *pg, const imp_envelope_t *ev, const char *state,
                         const char *provider_message_id, const char *error)
{
    const char *params[] = {ev->id, state, provider_message_id, error};
    return imp_pg_exec_deferred(pg, SQL_SETTLE, 4, params);
}

imp_error_t *send_trace_ms(imp_pg_t *pg, const imp_envelope_t *ev, const send_msg_t *m)
{
    uint8_t u[IMP_UUID_LEN];
    if (strcmp(m->purpose, "answer") != 0 && strcmp(m->purpose, "safe_reply") != 0)
        return NULL;
    if (imp_uuid_parse(ev->causationid, strlen(ev->causationid), u) != 0)
        return NULL; /* not caused by a draft: no trace */
    int64_t ms = imp_envelope_time_now_ms() - ev->time_ms;
    char buf[24];
    snprintf(buf, sizeof(buf), "%lld", (long long)(ms < 0 ? 0 : ms > INT32_MAX ? INT32_MAX : ms));
    const char *params[] = {ev->tenantid, ev->causationid, buf};
    return imp_pg_exec_deferred(pg, SQL_TRACE_SEND_MS, 3, params);
}

char *send_event_key(const imp_envelope_t *ev, const send_msg_t *m)
{
    if (ev->subject != NULL)
        return imp_asprintf("%s:%s", ev->tenantid, ev->subject);
    if (m->conversation_id != NULL)
        return imp_asprintf("%s:%s", ev->tenantid, m->conversation_id);
    return imp_strdup(ev->tenantid);
}

imp_error_t *send_delivery_event(const imp_envelope_t *ev, const send_msg_t *m, const char *status,
                                 const char *provider_message_id, const char *error, int attempts,
                                 imp_envelope_t *out)
{
    char step[32], id[IMP_UUID_STR_SIZE];
    snprintf(step, sizeof(step), "delivery:%s", status);
    imp_error_t *err = imp_opid_derive(ev->id, step, id);
    if (err != NULL) {
        imp_envelope_init(out);
        return err;
    }
    json_t *data =
        json_pack("{s:s, s:s, s:s, s:s, s:i}", "outbound_id", ev->id, "channel", m->channel,
                  "purpose", m->purpose, "status", status, "attempts", attempts);
    json_object_set_new(data, "conversation_id",
                        m->conversation_id ? json_string(m->conversation_id) : json_null());
    json_object_set_new(data, "provider_message_id",
                        provider_message_id ? json_string(provider_message_id) : json_null());
    json_object_set_new(data, "error", error ? json_string(error) : json_null());
    return imp_envelope_derive(out, ev, id, SEND_SOURCE, SEND_TYPE_DELIVERY, data);
}
