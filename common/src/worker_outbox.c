/* The outbox: emitted events written in the handler's transaction, published after commit,
 * and the relay that publishes whatever a crash or a Kafka outage left behind. */
#include "worker_internal.h"

#include "imp/log.h"
#include "imp/mem.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- array literals ---------------------------------------------------------------------- */

void worker_arr_init(worker_arr_t *a)
{
    a->cap = 256;
    a->p = imp_malloc(a->cap);
    a->p[0] = '{';
    a->len = 1;
    a->count = 0;
}

static void arr_reserve(worker_arr_t *a, size_t more)
{
    if (a->len + more + 2 <= a->cap)
        return;
    while (a->len + more + 2 > a->cap)
        a->cap *= 2;
    a->p = imp_realloc(a->p, a->cap);
}

void worker_arr_add(worker_arr_t *a, const char *v, size_t len)
{
    if (a->count++ > 0) {
        arr_reserve(a, 1);
        a->p[a->len++] = ',';
    }
    if (v == NULL) {
        arr_reserve(a, 4);
        memcpy(a->p + a->len, "NULL", 4);
        a->len += 4;
        return;
    }
    /* Quoted, with " and \ escaped: every element round-trips whatever its bytes. */
    arr_reserve(a, len * 2 + 2);
    a->p[a->len++] = '"';
    for (size_t i = 0; i < len; i++) {
        if (v[i] == '"' || v[i] == '\\')
            a->p[a->len++] = '\\';
        a->p[a->len++] = v[i];
    }
    a->p[a->len++] = '"';
}

const char *worker_arr_finish(worker_arr_t *a)
{
    arr_reserve(a, 1);
    a->p[a->len++] = '}';
    a->p[a->len] = '\0';
    return a->p;
}

void worker_arr_dispose(worker_arr_t *a)
{
    free(a->p);
    a->p = NULL;
}

bool worker_is_uuid(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : strchr("0123456789abcdefABCDEF", s[i]) == NULL || s[i] == 0)
            return false;
    }
    return true;
}

int64_t worker_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- outs -------------------------------------------------------------------------------- */

void worker_outs_push(worker_outs_t *o, const char *topic, const char *key, const char *payload,
                      size_t payload_len, const char *headers, const char *tenant, const char *opid)
{
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 2;
        o->v = imp_realloc(o->v, o->cap * sizeof(*o->v));
    }
    worker_out_t *out = &o->v[o->n++];
    memset(out, 0, sizeof(*out));
    out->topic = imp_strdup(topic);
    out->key = key ? imp_strdup(key) : NULL;
    out->payload = imp_strndup(payload, payload_len);
    out->payload_len = payload_len;
    out->headers = headers ? imp_strdup(headers) : NULL;
    if (worker_is_uuid(tenant))
        memcpy(out->tenant, tenant, 37);
    if (worker_is_uuid(opid))
        memcpy(out->opid, opid, 37);
}

void worker_outs_clear(worker_outs_t *o)
{
    for (size_t i = 0; i < o->n; i++) {
        free(o->v[i].topic);
        free(o->v[i].key);
        free(o->v[i].payload);
        free(o->v[i].headers);
    }
    o->n = 0;
}

/* ---- insert ------------------------------------------------------------------------------ */

#define SQL_OUTBOX_INSERT                                                                          \
    "INSERT INTO outbox (topic, key, payload, headers, tenant_id, operation_id) "                  \
    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::uuid[], "           \
    "$6::uuid[]) RETURNING id"

#define SQL_OUTBOX_MARK                                                                            \
    "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[]) AND published_at IS NULL"

/* Marks waiting past this many ride in a statement of their own at the next settle. */
#define MARKS_MAX 2000

/* The ids Kafka acknowledged, as a bigint[] literal (caller disposes). */
static void acked_literal(const imp_worker_t *w, worker_arr_t *ids)
{
    worker_arr_init(ids);
    char num[32];
    for (size_t i = 0; i < w->nacked; i++) {
        int len = snprintf(num, sizeof(num), "%lld", w->acked[i]);
        worker_arr_add(ids, num, (size_t)len);
    }
}

imp_error_t *worker_outbox_commit(imp_worker_t *w, worker_item_t *items, size_t n)
{
    worker_arr_t cols[6];
    size_t total = 0;
    for (int c = 0; c < 6; c++)
        worker_arr_init(&cols[c]);
    for (size_t i = 0; i < n; i++) {
        worker_outs_t *o = &items[i].outs;
        for (size_t j = 0; j < o->n; j++) {
            worker_out_t *out = &o->v[j];
            worker_arr_add(&cols[0], out->topic, strlen(out->topic));
            worker_arr_add(&cols[1], out->key, out->key ? strlen(out->key) : 0);
            worker_arr_add(&cols[2], out->payload, out->payload_len);
            worker_arr_add(&cols[3], out->headers, out->headers ? strlen(out->headers) : 0);
            worker_arr_add(&cols[4], out->tenant[0] ? out->tenant : NULL, 36);
            worker_arr_add(&cols[5], out->opid[0] ? out->opid : NULL, 36);
            total++;
        }
    }
    imp_pg_batch_t *b = imp_pg_batch_new();
    if (total > 0) {
        const char *params[6];
        for (int c = 0; c < 6; c++)
            params[c] = worker_arr_finish(&cols[c]);
        imp_pg_batch_add_cached(b, SQL_OUTBOX_INSERT, 6, params);
    }
    /* The reports that have arrived: their rows' marks ride with this COMMIT. */
    imp_kafka_producer_poll(w->producer, 0);
    size_t marks = w->nacked;
    if (marks > 0) {
        worker_arr_t ids;
        acked_literal(w, &ids);
        const char *params[] = {worker_arr_finish(&ids)};
        imp_pg_batch_add_cached(b, SQL_OUTBOX_MARK, 1, params);
        worker_arr_dispose(&ids);
    }
    imp_error_t *err = imp_pg_tx_commit_batch(w->pg, b);
    if (err == NULL && total > 0) {
        /* Identity values are drawn in insertion order, so ascending ids match input order. */
        const imp_pg_result_t *res = imp_pg_batch_result(b, 0);
        size_t r = 0;
        for (size_t i = 0; i < n; i++) {
            worker_outs_t *o = &items[i].outs;
            for (size_t j = 0; j < o->n && (int)r < imp_pg_result_rows(res); j++, r++)
                imp_pg_result_get_int64(res, (int)r, 0, &o->v[j].id);
        }
    }
    if (err == NULL && marks > 0) {
        w->nacked -= marks; /* only reports served after the poll above are left */
        memmove(w->acked, w->acked + marks, w->nacked * sizeof(*w->acked));
    }
    imp_pg_batch_free(b);
    for (int c = 0; c < 6; c++)
        worker_arr_dispose(&cols[c]);
    return err;
}

/* ---- publish ----------------------------------------------------------------------------- */

/* Kafka headers from a JSON object text; returns the count, fills hdrs (values borrowed from
 * the returned json, which the caller frees). */
static size_t headers_from_json(const char *text, imp_kafka_header_t *hdrs, size_t cap,
                                json_t **holder)
{
    *holder = NULL;
    if (text == NULL)
        return 0;
    json_t *obj = json_loads(text, 0, NULL);
    if (!json_is_object(obj)) {
        json_decref(obj);
        return 0;
    }
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        if (n == cap || !json_is_string(v))
            continue;
        hdrs[n].name = k;
        hdrs[n].value = json_string_value(v);
        hdrs[n].value_len = json_string_length(v);
        n++;
    }
    *holder = obj;
    return n;
}

/* Every produced outbox row carries a heap ticket as its opaque, and one callback serves
 * every report, so a report that arrives late (after its waiter gave up) still lands safely:
 * relay waits share a reference-counted state; the runtime's own rows report to the worker. */
typedef struct {
    int refs;    /* the waiter's reference plus one per pending ticket */
    int pending; /* reports still due */
    bool *ok;    /* per row: persisted */
} relay_state_t;

typedef struct {
    imp_worker_t *w;   /* the runtime's asynchronous publish, or NULL */
    relay_state_t *rs; /* a relay waiting for its rows, or NULL */
    size_t index;
    long long id;
} ticket_t;

static void relay_state_unref(relay_state_t *rs)
{
    if (--rs->refs > 0)
        return;
    free(rs->ok);
    free(rs);
}

static void async_delivered(imp_worker_t *w, long long id, const imp_error_t *err);

static void on_ticket(void *opaque, const imp_error_t *err, int32_t partition, int64_t offset,
                      void *ctx)
{
    (void)partition;
    (void)offset;
    (void)ctx;
    ticket_t *t = opaque;
    if (t->rs != NULL) {
        t->rs->ok[t->index] = err == NULL;
        t->rs->pending--;
        if (err != NULL)
            IMP_LOG_WARN("outbox event not persisted", IMP_LE(err));
        relay_state_unref(t->rs);
    } else {
        async_delivered(t->w, t->id, err);
    }
    free(t);
}

/* Produce one row with its ticket, waiting out a full local queue until deadline_ms. The
 * ticket is freed here when the row was not queued. */
static bool produce_row(imp_kafka_producer_t *p, const worker_out_t *o, ticket_t *t,
                        int64_t deadline_ms)
{
    imp_kafka_header_t hdrs[8];
    json_t *holder = NULL;
    size_t nh = headers_from_json(o->headers, hdrs, 8, &holder);
    imp_kafka_out_t m = {
        .topic = o->topic,
        .partition = IMP_KAFKA_PARTITION_ANY,
        .key = o->key,
        .key_len = o->key ? strlen(o->key) : 0,
        .value = o->payload,
        .value_len = o->payload_len,
        .headers = nh ? hdrs : NULL,
        .nheaders = nh,
        .opaque = t,
    };
    imp_error_t *err;
    while ((err = imp_kafka_produce(p, &m)) != NULL &&
           strcmp(imp_error_code(err), "kafka_queue_full") == 0 && worker_now_ms() < deadline_ms) {
        imp_error_free(err);
        imp_kafka_producer_poll(p, 10);
    }
    json_decref(holder);
    if (err != NULL) {
        IMP_LOG_WARN("outbox event not queued", IMP_LS("topic", o->topic), IMP_LE(err));
        imp_error_free(err);
        free(t);
        return false;
    }
    return true;
}

/* Produce outs[0..n) (pointers) and wait for their reports; ok[i] tells which persisted. */
static void publish_outs(imp_kafka_producer_t *p, worker_out_t **outs, size_t n, bool *ok,
                         int timeout_ms)
{
    imp_kafka_producer_set_on_delivery(p, on_ticket, NULL);
    relay_state_t *rs = imp_calloc(1, sizeof(*rs));
    rs->ok = imp_calloc(n ? n : 1, sizeof(*rs->ok));
    rs->refs = 1;
    int64_t deadline = worker_now_ms() + timeout_ms;
    for (size_t i = 0; i < n; i++) {
        ticket_t *t = imp_calloc(1, sizeof(*t));
        t->rs = rs;
        t->index = i;
        rs->refs++;
        rs->pending++;
        if (!produce_row(p, outs[i], t, deadline)) {
            rs->refs--;
            rs->pending--;
        }
    }
    while (rs->pending > 0 && worker_now_ms() < deadline)
        imp_kafka_producer_poll(p, 10);
    /* Reports still missing count as unpublished: the relay sends those rows again (a late
     * duplicate is harmless, consumers dedupe). Their tickets keep rs alive until then. */
    memcpy(ok, rs->ok, n * sizeof(*ok));
    relay_state_unref(rs);
}

static imp_error_t *mark_published(imp_pg_t *pg, worker_out_t **outs, size_t n, const bool *ok)
{
    worker_arr_t ids;
    worker_arr_init(&ids);
    char num[32];
    for (size_t i = 0; i < n; i++) {
        if (!ok[i])
            continue;
        int len = snprintf(num, sizeof(num), "%lld", outs[i]->id);
        worker_arr_add(&ids, num, (size_t)len);
    }
    imp_error_t *err = NULL;
    if (ids.count > 0) {
        const char *params[] = {worker_arr_finish(&ids)};
        err = imp_pg_exec_cached(pg,
                                 "UPDATE outbox SET published_at = now() "
                                 "WHERE id = ANY($1::bigint[]) AND published_at IS NULL",
                                 1, params, NULL);
    }
    worker_arr_dispose(&ids);
    return err;
}

static void async_delivered(imp_worker_t *w, long long id, const imp_error_t *err)
{
    w->inflight--;
    if (err != NULL) {
        /* The row stays unpublished; the relay sends the backlog again, in id order. */
        if (!w->backlog)
            IMP_LOG_WARN("outbox event not persisted; draining the outbox", IMP_LE(err));
        w->backlog = true;
        imp_metrics_inc(w->m_publish_failed);
        return;
    }
    if (w->nacked == w->capacked) {
        w->capacked = w->capacked ? w->capacked * 2 : 1024;
        w->acked = imp_realloc(w->acked, w->capacked * sizeof(*w->acked));
    }
    w->acked[w->nacked++] = id;
    imp_metrics_inc(w->m_published);
}

void worker_outbox_attach(imp_worker_t *w)
{
    imp_kafka_producer_set_on_delivery(w->producer, on_ticket, NULL);
}

void worker_outbox_publish(imp_worker_t *w, worker_item_t *items, size_t n)
{
    int64_t deadline = worker_now_ms() + w->s.publish_timeout_ms;
    /* With a backlog, newer rows wait for the relay too, so they leave after older ones. */
    for (size_t i = 0; i < n && !w->backlog; i++) {
        for (size_t j = 0; j < items[i].outs.n && !w->backlog; j++) {
            ticket_t *t = imp_calloc(1, sizeof(*t));
            t->w = w;
            t->id = items[i].outs.v[j].id;
            if (produce_row(w->producer, &items[i].outs.v[j], t, deadline))
                w->inflight++;
            else
                w->backlog = true;
        }
    }
    imp_kafka_producer_poll(w->producer, 0);
}

void worker_outbox_settle(imp_worker_t *w, int wait_ms, bool mark)
{
    if (wait_ms > 0 && w->inflight > 0) {
        int64_t deadline = worker_now_ms() + wait_ms;
        while (w->inflight > 0 && worker_now_ms() < deadline)
            imp_kafka_producer_poll(w->producer, 10);
        if (w->inflight > 0)
            w->backlog = true; /* reports still missing: let the relay make sure */
    } else {
        imp_kafka_producer_poll(w->producer, 0);
    }
    if (w->nacked == 0 || (!mark && w->nacked < MARKS_MAX))
        return;
    worker_arr_t ids;
    acked_literal(w, &ids);
    const char *params[] = {worker_arr_finish(&ids)};
    imp_error_t *err = imp_pg_exec_cached(w->pg, SQL_OUTBOX_MARK, 1, params, NULL);
    worker_arr_dispose(&ids);
    if (err != NULL) {
        /* The events are out; the rows stay unpublished and the relay sends them again
         * (consumers dedupe). */
        IMP_LOG_WARN("could not mark outbox rows published", IMP_LE(err));
        imp_error_free(err);
    }
    w->nacked = 0;
}

/* ---- relay ------------------------------------------------------------------------------- */

static void outs_from_rows(const imp_pg_result_t *res, worker_out_t *rows, worker_out_t **ptrs)
{
    for (int r = 0; r < imp_pg_result_rows(res); r++) {
        worker_out_t *o = &rows[r];
        memset(o, 0, sizeof(*o));
        imp_pg_result_get_int64(res, r, 0, &o->id);
        o->topic = (char *)imp_pg_result_value(res, r, 1);
        o->key = (char *)imp_pg_result_value(res, r, 2);
        o->payload = (char *)imp_pg_result_value(res, r, 3);
        o->payload_len = strlen(o->payload);
        o->headers = (char *)imp_pg_result_value(res, r, 4);
        ptrs[r] = o;
    }
}

/* For the rest of the transaction: the planner may use neither sequential nor bitmap scans,
 * which read the whole table or every page an index names (below: why). */
static imp_error_t *index_scans_only(imp_pg_t *pg)
{
    return imp_pg_exec_cached(pg,
                              "SELECT set_config('enable_seqscan', 'off', true), "
                              "set_config('enable_bitmapscan', 'off', true)",
                              0, NULL, NULL);
}

imp_error_t *imp_worker_relay_once(imp_pg_t *pg, imp_kafka_producer_t *producer,
                                   long long older_than_ms, int limit, int timeout_ms,
                                   int *published)
{
    char age[32], lim[16];
    snprintf(age, sizeof(age), "%lld", older_than_ms);
    snprintf(lim, sizeof(lim), "%d", limit);
    const char *params[] = {age, lim};
    imp_pg_result_t *res = NULL;
    worker_out_t *rows = NULL;
    worker_out_t **ptrs = NULL;
    bool *ok = NULL;
    *published = 0;

    imp_error_t *err = imp_pg_tx_begin(pg);
    if (err != NULL)
        return err;
    /* The unpublished rows in id order, through the partial index: an index scan marks the
     * entries of rows published since (dead to every transaction) as dead in the index, so
     * each entry costs one visit in all; a bitmap scan, which the planner prefers when it
     * expects few rows, would visit every such row's heap page on every pass; a sequential
     * scan, every row of the retention period. SKIP LOCKED: relays of several processes
     * share the backlog instead of racing for it. */
    err = index_scans_only(pg);
    if (err == NULL)
        err = imp_pg_exec(pg,
                          "SELECT id, topic, key, payload, headers::text FROM outbox "
                          "WHERE published_at IS NULL "
                          "AND created_at <= now() - $1::bigint * interval '1 millisecond' "
                          "ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
                          2, params, &res);
    if (err != NULL)
        goto out;
    int n = imp_pg_result_rows(res);
    if (n == 0)
        goto out;
    rows = imp_calloc((size_t)n, sizeof(*rows));
    ptrs = imp_calloc((size_t)n, sizeof(*ptrs));
    ok = imp_calloc((size_t)n, sizeof(*ok));
    outs_from_rows(res, rows, ptrs);
    publish_outs(producer, ptrs, (size_t)n, ok, timeout_ms);
    err = mark_published(pg, ptrs, (size_t)n, ok);
    if (err != NULL)
        goto out;
    for (int i = 0; i < n; i++)
        *published += ok[i];
    if (*published < n)
        err = imp_error_new(IMP_ERR_INFRA, "outbox_publish",
                            "%d of %d outbox events could not be published", n - *published, n);
out:
    if (err == NULL || imp_error_class(err) != IMP_ERR_INFRA ||
        strcmp(imp_error_code(err), "outbox_publish") == 0) {
        imp_error_t *cerr = imp_pg_tx_commit(pg);
        if (err == NULL)
            err = cerr;
        else
            imp_error_free(cerr);
    } else {
        imp_pg_tx_rollback(pg);
    }
    free(rows);
    free(ptrs);
    free(ok);
    imp_pg_result_free(res);
    return err;
}

imp_error_t *worker_outbox_drain(imp_worker_t *w)
{
    worker_outbox_settle(w, (int)w->s.publish_timeout_ms, true);
    for (;;) {
        int published = 0;
        imp_error_t *err = imp_worker_relay_once(w->pg, w->producer, 0, 500,
                                                 (int)w->s.publish_timeout_ms, &published);
        worker_outbox_attach(w);
        if (err != NULL)
            return err;
        imp_metrics_add(w->m_published, (uint64_t)published);
        if (published < 500)
            return NULL;
    }
}

#define WORKER_PURGE_MIN_MS 5000

/* Commit a purge's transaction, or roll it back and say why: a failed purge is tried again
 * at the next tick. */
static void end_purge(imp_worker_t *w, imp_error_t *err, const char *failed)
{
    if (err == NULL)
        err = imp_pg_tx_commit(w->pg);
    else
        imp_pg_tx_rollback(w->pg);
    if (err != NULL) {
        IMP_LOG_WARN(failed, IMP_LE(err));
        imp_error_free(err);
    }
}

/* Any worker forgets any worker's inbox rows older than its retention, the oldest first and
 * 10,000 at a time through the index on processed_at, so the rows of a worker that no longer
 * runs go too. One purger at a time: the others find the advisory lock taken and skip their
 * turn. Index scans only, as for the outbox: statistics older than the last burst of inserts
 * would make most of the table look old. */
/* pg_advisory_xact_lock key of the inbox purge ("impinbox" in ASCII). */
#define WORKER_INBOX_PURGE_LOCK "7596851744569716600"
#define SQL_INBOX_PURGE                                                                            \
    "DELETE FROM inbox i USING (SELECT worker, operation_id FROM inbox "                           \
    "WHERE processed_at < now() - $1::bigint * interval '1 millisecond' "                          \
    "ORDER BY processed_at LIMIT 10000) old "                                                      \
    "WHERE i.worker = old.worker AND i.operation_id = old.operation_id"

static void purge_inbox(imp_worker_t *w)
{
    char ret[32];
    snprintf(ret, sizeof(ret), "%lld", w->s.inbox_retention_ms);
    const char *params[] = {ret};
    imp_pg_result_t *res = NULL;
    bool mine = false;
    imp_error_t *err = imp_pg_tx_begin(w->pg);
    if (err == NULL)
        err = imp_pg_exec_cached(
            w->pg, "SELECT pg_try_advisory_xact_lock(" WORKER_INBOX_PURGE_LOCK ")", 0, NULL, &res);
    if (err == NULL && imp_pg_result_get_bool(res, 0, 0, &mine) == 0 && mine &&
        (err = index_scans_only(w->pg)) == NULL)
        err = imp_pg_exec_cached(w->pg, SQL_INBOX_PURGE, 1, params, NULL);
    imp_pg_result_free(res);
    end_purge(w, err, "inbox purge failed");
}

void worker_outbox_tick(imp_worker_t *w, int64_t now_ms)
{
    if (now_ms < w->next_relay_ms)
        return;
    w->next_relay_ms = now_ms + w->s.relay_interval_ms;
    worker_outbox_settle(w, (int)w->s.publish_timeout_ms, true);
    int published = 0;
    imp_error_t *err = imp_worker_relay_once(w->pg, w->producer, w->s.relay_grace_ms, 500,
                                             (int)w->s.publish_timeout_ms, &published);
    worker_outbox_attach(w);
    if (err != NULL) {
        IMP_LOG_WARN("outbox relay failed", IMP_LE(err));
        imp_error_free(err);
        return;
    }
    if (published > 0) {
        imp_metrics_add(w->m_published, (uint64_t)published);
        IMP_LOG_INFO("outbox relay published left-over events", IMP_LI("count", published));
    }
    /* The purge scans the published rows: every relay interval, but at most every
     * WORKER_PURGE_MIN_MS (a short relay interval must not turn it into a steady cost). */
    if (now_ms < w->next_purge_ms)
        return;
    w->next_purge_ms =
        now_ms + (w->s.relay_interval_ms > WORKER_PURGE_MIN_MS ? w->s.relay_interval_ms
                                                               : WORKER_PURGE_MIN_MS);
    char ret[32];
    snprintf(ret, sizeof(ret), "%lld", w->s.outbox_retention_ms);
    const char *params[] = {ret};
    /* Ids grow with insertion, so every row below the first one young enough to keep is old
     * enough to go: the primary key finds that boundary, reading only the rows that are
     * purged (and entries of rows purged before, once). A row of a transaction still open
     * is not seen here; once committed it is young, and lies above the boundary it makes.
     * The boundary is unknown when the statement is planned, and then the planner guesses
     * that a third of the table lies below it: only index scans keep it from reading the
     * whole table. */
    err = imp_pg_tx_begin(w->pg);
    if (err == NULL && (err = index_scans_only(w->pg)) == NULL)
        err = imp_pg_exec_cached(
            w->pg,
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE id < coalesce("
            "(SELECT id FROM outbox WHERE created_at >= now() - $1::bigint * interval "
            "'1 millisecond' ORDER BY id LIMIT 1), 9223372036854775807) "
            "AND published_at IS NOT NULL ORDER BY id LIMIT 10000)",
            1, params, NULL);
    end_purge(w, err, "outbox purge failed");
    purge_inbox(w);
}
