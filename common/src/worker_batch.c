/* One batch of consumed events through the protocol, in one transaction: inbox dedupe,
 * handlers, retries and dead letters, outbox, commit. */
#include "worker_internal.h"

#include "imp/crypto.h"
#include "imp/log.h"
#include "imp/mem.h"
#include "imp/trace.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Mark the batch's items as new, or as duplicates of work already done. A retried event
 * (attempt > 0) is new while the inbox holds an earlier attempt that failed retriably. */
#define SQL_INBOX_CLAIM                                                                            \
    "INSERT INTO inbox (worker, operation_id, tenant_id, state, attempt) "                         \
    "SELECT $1, u.op, u.tenant, 'done', u.att "                                                    \
    "FROM unnest($2::uuid[], $3::uuid[], $4::int[]) AS u(op, tenant, att) "                        \
    "ON CONFLICT (worker, operation_id) DO UPDATE "                                                \
    "SET state = 'done', attempt = EXCLUDED.attempt, processed_at = now() "                        \
    "WHERE inbox.state = 'retrying' AND inbox.attempt < EXCLUDED.attempt "                         \
    "RETURNING operation_id::text"

#define SQL_INBOX_DECIDE                                                                           \
    "INSERT INTO inbox (worker, operation_id, tenant_id, state, attempt) "                         \
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (worker, operation_id) DO UPDATE "                    \
    "SET state = EXCLUDED.state, attempt = EXCLUDED.attempt, processed_at = now()"

#define SQL_DEAD_LETTER                                                                            \
    "INSERT INTO dead_letters (worker, class, reason, topic, kafka_partition, kafka_offset, "      \
    "kafka_key, operation_id, tenant_id, attempt, envelope, headers) "                             \
    "VALUES ($1, $2, $3, $4, $5, $6, $7::bytea, $8, $9, $10, $11::bytea, $12::jsonb) "             \
    "ON CONFLICT (worker, topic, kafka_partition, kafka_offset) DO UPDATE "                        \
    "SET class = EXCLUDED.class, reason = EXCLUDED.reason, attempt = EXCLUDED.attempt, "           \
    "envelope = EXCLUDED.envelope, headers = EXCLUDED.headers, created_at = now(), "               \
    "replayed_at = NULL WHERE dead_letters.replayed_at IS NOT NULL"

void worker_item_reset(worker_item_t *it)
{
    it->state = ITEM_NEW;
    worker_outs_clear(&it->outs);
}

void worker_item_dispose(worker_item_t *it)
{
    imp_kafka_msg_free(it->msg);
    if (it->parsed)
        imp_envelope_dispose(&it->ev);
    imp_error_free(it->bad);
    imp_error_free(it->fail);
    worker_outs_clear(&it->outs);
    free(it->outs.v);
    memset(it, 0, sizeof(*it));
}

/* Length of the valid UTF-8 sequence (no NUL) at s with len bytes left, or 0. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t n = c == 0                   ? 0
               : c < 0x80               ? 1
               : c >= 0xc2 && c <= 0xdf ? 2
               : (c >> 4) == 0xe        ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4
                                        : 0;
    if (n == 0 || n > len)
        return 0;
    for (size_t k = 1; k < n; k++)
        if ((s[k] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* True when s[0..len) is text Postgres accepts (UTF-8, no NUL). */
static bool valid_text(const void *data, size_t len)
{
    const unsigned char *s = data;
    for (size_t i = 0, n; i < len; i += n)
        if ((n = utf8_seq(s + i, len - i)) == 0)
            return false;
    return true;
}

/* A copy of s that Postgres accepts as text: bytes outside valid sequences become '?'. */
static char *text_copy(const char *s)
{
    size_t len = strlen(s);
    char *out = imp_strndup(s, len);
    for (size_t i = 0, n; i < len; i += n) {
        if ((n = utf8_seq((const unsigned char *)out + i, len - i)) == 0) {
            out[i] = '?';
            n = 1;
        }
    }
    return out;
}

static const char *item_tenant(const worker_item_t *it)
{
    return it->parsed && worker_is_uuid(it->ev.tenantid) ? it->ev.tenantid : NULL;
}

/* The message key for the retry and DLQ copies; a key that is not text is dropped (it only
 * chose the partition). */
static char *item_key(const worker_item_t *it)
{
    if (it->msg->key == NULL || !valid_text(it->msg->key, it->msg->key_len))
        return NULL;
    return imp_strndup(it->msg->key, it->msg->key_len);
}

/* ---- inbox ------------------------------------------------------------------------------- */

/* Claim items[i] for every i in idx[0..n): state ITEM_DONE-to-be (NEW) or ITEM_DUP. */
static imp_error_t *inbox_claim(imp_worker_t *w, worker_item_t *items, const size_t *idx, size_t n)
{
    if (n == 0)
        return NULL;
    worker_arr_t ops, tenants, atts;
    worker_arr_init(&ops);
    worker_arr_init(&tenants);
    worker_arr_init(&atts);
    char num[16];
    for (size_t k = 0; k < n; k++) {
        worker_item_t *it = &items[idx[k]];
        const char *t = item_tenant(it);
        worker_arr_add(&ops, it->ev.id, strlen(it->ev.id));
        worker_arr_add(&tenants, t, t ? strlen(t) : 0);
        int len = snprintf(num, sizeof(num), "%d", it->ev.attempt);
        worker_arr_add(&atts, num, (size_t)len);
    }
    const char *params[] = {w->name, worker_arr_finish(&ops), worker_arr_finish(&tenants),
                            worker_arr_finish(&atts)};
    imp_pg_result_t *res = NULL;
    imp_error_t *err = imp_pg_exec_cached(w->pg, SQL_INBOX_CLAIM, 4, params, &res);
    if (err == NULL) {
        /* Every claimed id came back; the rest were done before. Ids are unique in a batch. */
        int rows = imp_pg_result_rows(res);
        for (size_t k = 0; k < n; k++)
            items[idx[k]].state = ITEM_DUP;
        /* Rows come back in input order in practice; search from the last match on, so the
         * usual case is linear and any order is still right. */
        size_t from = 0;
        for (int r = 0; r < rows; r++) {
            const char *op = imp_pg_result_value(res, r, 0);
            for (size_t step = 0; step < n; step++) {
                size_t k = (from + step) % n;
                worker_item_t *it = &items[idx[k]];
                if (it->state == ITEM_DUP && strcasecmp(it->ev.id, op) == 0) {
                    it->state = ITEM_NEW;
                    from = k + 1;
                    break;
                }
            }
        }
    }
    imp_pg_result_free(res);
    worker_arr_dispose(&ops);
    worker_arr_dispose(&tenants);
    worker_arr_dispose(&atts);
    return err;
}

static imp_error_t *inbox_decide(imp_worker_t *w, worker_item_t *it, const char *state)
{
    if (!it->parsed)
        return NULL;
    char att[16];
    snprintf(att, sizeof(att), "%d", it->ev.attempt);
    const char *params[] = {w->name, it->ev.id, item_tenant(it), state, att};
    return imp_pg_exec_cached(w->pg, SQL_INBOX_DECIDE, 5, params, NULL);
}

/* ---- retries and dead letters ------------------------------------------------------------ */

static char *origin_headers(const worker_item_t *it, const char *reason, imp_err_class_t cls)
{
    json_t *h = json_object();
    json_object_set_new(h, WORKER_HDR_ORIGIN_TOPIC, json_string(it->origin_topic));
    char num[32];
    snprintf(num, sizeof(num), "%d", it->origin_partition);
    json_object_set_new(h, WORKER_HDR_ORIGIN_PARTITION, json_string(num));
    snprintf(num, sizeof(num), "%lld", (long long)it->origin_offset);
    json_object_set_new(h, WORKER_HDR_ORIGIN_OFFSET, json_string(num));
    if (reason != NULL) {
        json_object_set_new(h, WORKER_HDR_DLQ_REASON, json_string(reason));
        json_object_set_new(h, WORKER_HDR_DLQ_CLASS, json_string(imp_err_class_name(cls)));
    }
    char *text = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    return text;
}

static imp_error_t *schedule_retry(imp_worker_t *w, worker_item_t *it)
{
    int next = it->ev.attempt + 1;
    long long delay = imp_worker_backoff_ms(w->s.retry_base_ms, w->s.retry_max_ms, next);
    if (imp_error_retry_after_ms(it->fail) > delay)
        delay = imp_error_retry_after_ms(it->fail);
    int saved_attempt = it->ev.attempt;
    int64_t saved_nb = it->ev.notbefore_ms;
    it->ev.attempt = next;
    it->ev.notbefore_ms = worker_now_ms() + delay;
    char *payload = NULL;
    imp_error_t *err = imp_envelope_serialize(&it->ev, &payload);
    it->ev.attempt = saved_attempt;
    it->ev.notbefore_ms = saved_nb;
    if (err != NULL)
        return err;
    char *headers = origin_headers(it, NULL, 0);
    char *key = item_key(it);
    worker_outs_push(&it->outs, w->retry_topic, key, payload, strlen(payload), headers,
                     it->ev.tenantid, it->ev.id);
    free(key);
    free(headers);
    free(payload);
    IMP_LOG_INFO("event scheduled for retry", IMP_LI("attempt", next), IMP_LI("delay_ms", delay),
                 IMP_LE(it->fail));
    return inbox_decide(w, it, "retrying");
}

/* The DLQ topic's copy: the envelope with its dlq member, or the raw bytes when unparsable. */
static imp_error_t *dlq_payload(imp_worker_t *w, worker_item_t *it, const imp_error_t *why,
                                char **out, size_t *len)
{
    if (!it->parsed) {
        /* The raw bytes; bytes that are not text travel base64-encoded (header
         * imp-dlq-encoding: base64). The dead_letters row keeps them exactly. */
        const char *v = it->msg->value ? it->msg->value : "";
        if (valid_text(v, it->msg->value_len)) {
            *len = it->msg->value_len;
            *out = imp_strndup(v, *len);
        } else {
            *out = imp_malloc(IMP_BASE64_ENCODED_LEN(it->msg->value_len) + 1);
            *len = imp_base64_encode(v, it->msg->value_len, *out);
            (*out)[*len] = '\0';
        }
        return NULL;
    }
    imp_error_t *err = imp_envelope_set_dlq(
        &it->ev, w->name, imp_error_class(why), imp_error_message(why), it->origin_topic,
        it->origin_partition, it->origin_offset, worker_now_ms());
    if (err == NULL)
        err = imp_envelope_serialize(&it->ev, out);
    if (err == NULL)
        *len = strlen(*out);
    return err;
}

static imp_error_t *dead_letter(imp_worker_t *w, worker_item_t *it, const imp_error_t *why)
{
    char part[16], off[32], att[16];
    snprintf(part, sizeof(part), "%d", it->origin_partition);
    snprintf(off, sizeof(off), "%lld", (long long)it->origin_offset);
    snprintf(att, sizeof(att), "%d", it->parsed ? it->ev.attempt : 0);
    char *key_hex = it->msg->key ? imp_pg_bytea_hex(it->msg->key, it->msg->key_len) : NULL;
    char *env_hex = imp_pg_bytea_hex(it->msg->value ? it->msg->value : "", it->msg->value_len);
    char *reason = text_copy(imp_error_message(why));
    char *headers = origin_headers(it, reason, imp_error_class(why));
    bool raw_b64 =
        !it->parsed && !valid_text(it->msg->value ? it->msg->value : "", it->msg->value_len);
    const char *params[] = {w->name,
                            imp_err_class_name(imp_error_class(why)),
                            reason,
                            it->origin_topic,
                            part,
                            off,
                            key_hex,
                            it->parsed && worker_is_uuid(it->ev.id) ? it->ev.id : NULL,
                            item_tenant(it),
                            att,
                            env_hex,
                            headers};
    char *payload = NULL, *key = NULL;
    size_t len = 0;
    imp_error_t *err = imp_pg_exec_cached(w->pg, SQL_DEAD_LETTER, 12, params, NULL);
    if (err == NULL)
        err = dlq_payload(w, it, why, &payload, &len);
    if (err == NULL && raw_b64) {
        json_t *h = json_loads(headers, 0, NULL);
        json_object_set_new(h, WORKER_HDR_DLQ_ENCODING, json_string("base64"));
        free(headers);
        headers = json_dumps(h, JSON_COMPACT);
        json_decref(h);
    }
    if (err == NULL) {
        key = item_key(it);
        worker_outs_push(&it->outs, w->dlq_topic, key, payload, len, headers,
                         it->parsed ? it->ev.tenantid : NULL, it->parsed ? it->ev.id : NULL);
        err = inbox_decide(w, it, "dead");
    }
    IMP_LOG_WARN("event dead-lettered", IMP_LS("topic", it->origin_topic),
                 IMP_LI("partition", it->origin_partition), IMP_LI("offset", it->origin_offset),
                 IMP_LE(why));
    free(key);
    free(payload);
    free(key_hex);
    free(env_hex);
    free(headers);
    free(reason);
    return err;
}

/* Record the fate of an event that will not be handled now. */
static imp_error_t *record_failure(imp_worker_t *w, worker_item_t *it)
{
    worker_outs_clear(&it->outs);
    it->state = ITEM_FAILED;
    if (!it->parsed)
        return dead_letter(w, it, it->bad);
    if (imp_error_class(it->fail) == IMP_ERR_RETRIABLE && it->ev.attempt + 1 < w->s.max_attempts)
        return schedule_retry(w, it);
    if (imp_error_class(it->fail) == IMP_ERR_RETRIABLE) {
        imp_error_t *why = imp_error_new(IMP_ERR_RETRIABLE, imp_error_code(it->fail),
                                         "gave up after %d attempts: %s", it->ev.attempt + 1,
                                         imp_error_message(it->fail));
        imp_error_t *err = dead_letter(w, it, why);
        imp_error_free(why);
        return err;
    }
    return dead_letter(w, it, it->fail);
}

/* ---- handlers ---------------------------------------------------------------------------- */

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static imp_error_t *run_handler(imp_worker_t *w, worker_item_t *it)
{
    imp_worker_ctx_t ctx = {.w = w, .item = it};
    imp_trace_t tp;
    const char *trace = NULL;
    if (it->ev.traceparent[0]) {
        imp_error_t *terr = imp_trace_parse(it->ev.traceparent, strlen(it->ev.traceparent), &tp);
        if (terr == NULL)
            trace = tp.trace_id;
        imp_error_free(terr);
    }
    imp_log_set_context(it->ev.tenantid, it->ev.id, trace);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    imp_error_t *err = w->def.handler(&ctx, &it->ev, w->def.user);
    imp_metrics_observe(w->m_latency, seconds_since(&t0));
    imp_log_clear_context();
    return err;
}

/* A failed handler's error that stops the whole batch. */
static bool stops_batch(const imp_error_t *err)
{
    return imp_error_class(err) == IMP_ERR_INFRA || imp_error_class(err) == IMP_ERR_FATAL;
}

/* def.prepare with the items of idx (nidx > 0) that the inbox did not find done. */
static void run_prepare(imp_worker_t *w, worker_item_t *items, const size_t *idx, size_t nidx)
{
    imp_worker_ctx_t *ctxs = imp_calloc(nidx, sizeof(*ctxs));
    imp_worker_ctx_t **ptrs = imp_calloc(nidx, sizeof(*ptrs));
    size_t n = 0;
    for (size_t k = 0; k < nidx; k++) {
        if (items[idx[k]].state == ITEM_DUP)
            continue;
        ctxs[n] = (imp_worker_ctx_t){.w = w, .item = &items[idx[k]]};
        ptrs[n] = &ctxs[n];
        n++;
    }
    if (n > 0)
        w->def.prepare(ptrs, n, w->def.user);
    free(ptrs);
    free(ctxs);
}

/* A deferred write that failed (imp/pg.h) is the failure of the handler that queued it,
 * whichever later call carried it: its event is labelled with its index. Returns true, with
 * *failed_at that index and the error on the item, when such a failure aborted the batch. */
static bool blame_deferred(imp_worker_t *w, worker_item_t *items, size_t n, size_t *failed_at)
{
    size_t j;
    const imp_error_t *e = imp_pg_deferred_failure(w->pg, &j);
    if (e == NULL || j >= n || stops_batch(e))
        return false;
    imp_error_free(items[j].fail);
    items[j].fail = imp_error_copy(e);
    *failed_at = j;
    return true;
}

/* Items [0, n): those before `careful` run with a shared claim and no savepoints; from
 * `careful` on, each new item gets a savepoint so its failure undoes only its own work.
 * In the shared part a handler's deferred writes go out with whatever comes next (the next
 * handler's first statement, the COMMIT); in the careful part each handler's are sent before
 * its savepoint is released. */
static imp_error_t *attempt_batch(imp_worker_t *w, worker_item_t *items, size_t n, size_t careful,
                                  size_t *failed_at)
{
    *failed_at = n;
    size_t *idx = imp_malloc((n ? n : 1) * sizeof(*idx));
    size_t nidx = 0;
    for (size_t i = 0; i < n && i < careful; i++)
        if (items[i].parsed && items[i].fail == NULL && items[i].state != ITEM_DUP)
            idx[nidx++] = i;
    for (size_t i = 0; i < n; i++)
        if (items[i].state != ITEM_DUP)
            worker_item_reset(&items[i]);
    w->tx_tenant[0] = '?';
    w->tx_tenant[1] = '\0';

    imp_error_t *err = imp_pg_tx_begin(w->pg);
    if (err == NULL)
        err = inbox_claim(w, items, idx, nidx);
    if (err == NULL && w->def.prepare != NULL && nidx > 0)
        run_prepare(w, items, idx, nidx);
    for (size_t i = 0; i < n && err == NULL; i++) {
        worker_item_t *it = &items[i];
        if (it->state == ITEM_DUP)
            continue;
        if (!it->parsed || it->fail != NULL) {
            err = record_failure(w, it);
            continue;
        }
        if (i >= careful) {
            err = imp_pg_savepoint(w->pg, "imp_event");
            size_t one = i;
            if (err == NULL)
                err = inbox_claim(w, items, &one, 1);
            if (err == NULL && it->state == ITEM_DUP)
                err = imp_pg_savepoint_release(w->pg, "imp_event");
            if (err != NULL || it->state == ITEM_DUP)
                continue;
        }
        imp_pg_defer_label(w->pg, i);
        imp_error_t *herr = run_handler(w, it);
        if (i < careful && blame_deferred(w, items, n, failed_at)) {
            /* This handler (or its predecessor's writes it carried) hit an earlier handler's
             * failed write; whatever it returned, the fault is that handler's. */
            imp_error_free(herr);
            break;
        }
        if (herr == NULL && imp_pg_deferred_count(w->pg) > 0 && i >= careful)
            herr = imp_pg_flush(w->pg);
        if (herr == NULL) {
            it->state = ITEM_DONE;
            if (i >= careful)
                err = imp_pg_savepoint_release(w->pg, "imp_event");
            continue;
        }
        if (stops_batch(herr)) {
            err = herr;
            break;
        }
        it->fail = herr;
        if (i < careful) {
            *failed_at = i;
            break;
        }
        err = imp_pg_savepoint_rollback(w->pg, "imp_event");
        w->tx_tenant[0] = '?'; /* the rollback also undid app.tenant_id */
        if (err == NULL)
            err = record_failure(w, it);
    }
    free(idx);
    imp_pg_defer_label(w->pg, IMP_PG_NO_LABEL);
    if (err != NULL && *failed_at == n && blame_deferred(w, items, n, failed_at)) {
        /* A runtime statement (a retry, a dead letter, a savepoint) carried the failed write */
        imp_error_free(err);
        err = NULL;
    }
    if (err == NULL && *failed_at < n) {
        imp_pg_tx_rollback(w->pg);
        return NULL;
    }
    if (err != NULL) {
        imp_pg_tx_rollback(w->pg);
        return err;
    }
    err = worker_outbox_commit(w, items, n);
    if (err != NULL && blame_deferred(w, items, n, failed_at)) {
        imp_error_free(err);
        return NULL;
    }
    return err;
}

imp_error_t *worker_process_batch(imp_worker_t *w, worker_item_t *items, size_t n)
{
    size_t careful = n;
    for (;;) {
        size_t failed_at = n;
        imp_error_t *err = attempt_batch(w, items, n, careful, &failed_at);
        if (err != NULL) {
            /* Any error here leaves nothing committed; the caller retries in place. A poison
             * error of the runtime's own statements is a bug or a schema problem: treat it
             * like infra rather than dead-lettering innocent events. */
            if (imp_error_class(err) != IMP_ERR_FATAL && imp_error_class(err) != IMP_ERR_INFRA) {
                IMP_LOG_ERROR("runtime statement failed; retrying the batch", IMP_LE(err));
                imp_error_t *wrapped =
                    imp_error_new(IMP_ERR_INFRA, imp_error_code(err), "%s", imp_error_message(err));
                imp_error_free(err);
                err = wrapped;
            }
            for (size_t i = 0; i < n; i++)
                if (items[i].state != ITEM_DUP)
                    worker_item_reset(&items[i]);
            return err;
        }
        if (failed_at == n)
            return NULL;
        /* A handler failed in the fast part: run again, savepoints from the next item on. */
        careful = failed_at + 1;
    }
}

/* ---- periodic work ------------------------------------------------------------------------ */

imp_error_t *worker_run_tick(imp_worker_t *w)
{
    /* An item without a message stands for the tick: its outs collect what it emits, and
     * its envelope's tenantid is the tenant imp_worker_ctx_set_tenant chose. */
    worker_item_t it;
    memset(&it, 0, sizeof(it));
    imp_envelope_init(&it.ev);
    it.parsed = true;
    imp_worker_ctx_t ctx = {.w = w, .item = &it};
    w->tx_tenant[0] = '?';
    w->tx_tenant[1] = '\0';
    imp_error_t *err = imp_pg_tx_begin(w->pg);
    if (err == NULL)
        err = w->def.on_tick(&ctx, w->def.user);
    if (err == NULL)
        err = worker_outbox_commit(w, &it, 1);
    else
        imp_pg_tx_rollback(w->pg);
    if (err == NULL)
        worker_outbox_publish(w, &it, 1);
    worker_item_dispose(&it);
    return err;
}

imp_error_t *imp_worker_ctx_set_tenant(imp_worker_ctx_t *ctx, const char *tenant_id)
{
    if (ctx->item->msg != NULL || (tenant_id != NULL && !worker_is_uuid(tenant_id)))
        return imp_error_new(IMP_ERR_POISON, "pg_misuse",
                             "imp_worker_ctx_set_tenant: only in on_tick, with a uuid");
    snprintf(ctx->item->ev.tenantid, sizeof(ctx->item->ev.tenantid), "%s",
             tenant_id ? tenant_id : "");
    return NULL;
}

/* ---- the handler's view -------------------------------------------------------------------- */

imp_pg_t *imp_worker_ctx_pg(imp_worker_ctx_t *ctx)
{
    imp_worker_t *w = ctx->w;
    const char *tenant = item_tenant(ctx->item);
    const char *want = tenant ? tenant : "";
    if (strcmp(w->tx_tenant, want) != 0) {
        imp_error_t *err = imp_pg_set_tenant(w->pg, tenant);
        if (err != NULL) {
            /* The transaction is now aborted, so the handler's next statement fails too. */
            IMP_LOG_WARN("could not set the tenant of the transaction", IMP_LE(err));
            imp_error_free(err);
            w->tx_tenant[0] = '?';
            w->tx_tenant[1] = '\0';
        } else {
            snprintf(w->tx_tenant, sizeof(w->tx_tenant), "%s", want);
        }
    }
    return w->pg;
}

imp_error_t *imp_worker_emit(imp_worker_ctx_t *ctx, const char *topic, const char *key,
                             imp_envelope_t *ev)
{
    char *payload = NULL;
    imp_error_t *err = imp_envelope_serialize(ev, &payload);
    if (err == NULL)
        worker_outs_push(&ctx->item->outs, topic, key, payload, strlen(payload), NULL, ev->tenantid,
                         ev->id);
    free(payload);
    imp_envelope_dispose(ev);
    return err;
}

const char *imp_worker_ctx_topic(const imp_worker_ctx_t *ctx)
{
    return ctx->item->msg ? ctx->item->msg->topic : NULL;
}

const imp_envelope_t *imp_worker_ctx_event(const imp_worker_ctx_t *ctx)
{
    return ctx->item->msg ? &ctx->item->ev : NULL;
}

int32_t imp_worker_ctx_partition(const imp_worker_ctx_t *ctx)
{
    return ctx->item->msg ? ctx->item->msg->partition : -1;
}

int64_t imp_worker_ctx_offset(const imp_worker_ctx_t *ctx)
{
    return ctx->item->msg ? ctx->item->msg->offset : -1;
}

const char *imp_worker_ctx_worker(const imp_worker_ctx_t *ctx)
{
    return ctx->w->name;
}

long long imp_worker_backoff_ms(long long base_ms, long long max_ms, int attempt)
{
    long long d = base_ms;
    for (int i = 1; i < attempt && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    /* Jitter over the upper half keeps retries of one burst apart without ever retrying
     * sooner than half the nominal delay. */
    long long half = d / 2;
    return half + (half > 0 ? (long long)(random() % (half + 1)) : 0) + (d - 2 * half);
}
