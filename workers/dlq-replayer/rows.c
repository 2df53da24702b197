/* Dead-letter rows: filters as SQL, the queries list/show/replay share, rows as JSON. */
#include "dlq.h"

#include "imp/envelope.h"
#include "imp/mem.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define SQL_ROWS                                                                                   \
    "SELECT d.id, to_char(d.created_at AT TIME ZONE 'UTC', " DLQ_SQL_RFC3339 "), d.worker, "       \
    "d.class, d.reason, d.topic, d.kafka_partition, d.kafka_offset, d.kafka_key, "                 \
    "d.operation_id, d.tenant_id, d.attempt, d.envelope, d.headers::text, "                        \
    "to_char(d.replayed_at AT TIME ZONE 'UTC', " DLQ_SQL_RFC3339 "), d.replayed_by, "              \
    "d.replay_count, i.state, i.attempt, "                                                         \
    "to_char(i.processed_at AT TIME ZONE 'UTC', " DLQ_SQL_RFC3339 "), " DLQ_SQL_DEAD_AGAIN         \
    " FROM dead_letters d LEFT JOIN inbox i "                                                      \
    "ON i.worker = d.worker AND i.operation_id = d.operation_id "

enum {
    COL_ID,
    COL_CREATED,
    COL_WORKER,
    COL_CLASS,
    COL_REASON,
    COL_TOPIC,
    COL_PARTITION,
    COL_OFFSET,
    COL_KEY,
    COL_OPID,
    COL_TENANT,
    COL_ATTEMPT,
    COL_ENVELOPE,
    COL_HEADERS,
    COL_REPLAYED_AT,
    COL_REPLAYED_BY,
    COL_REPLAY_COUNT,
    COL_INBOX_STATE,
    COL_INBOX_ATTEMPT,
    COL_INBOX_AT,
    COL_DEAD_AGAIN,
};

/* ---- filters ------------------------------------------------------------------------------- */

static void add_cond(dlq_where_t *w, const char *fmt, const char *value)
{
    assert(w->n < (int)IMP_ARRAY_LEN(w->params));
    size_t len = strlen(w->sql);
    if (len > 0) {
        snprintf(w->sql + len, sizeof(w->sql) - len, " AND ");
        len = strlen(w->sql);
    }
    if (value == NULL) {
        snprintf(w->sql + len, sizeof(w->sql) - len, "%s", fmt);
        return;
    }
    snprintf(w->buf[w->n], sizeof(w->buf[w->n]), "%s", value);
    w->params[w->n] = w->buf[w->n];
    w->n++;
    /* fmt holds one %d: the parameter's number. */
    snprintf(w->sql + len, sizeof(w->sql) - len, fmt, w->n);
}

void dlq_where_build(const dlq_filter_t *f, const char *tenant_id, dlq_where_t *w)
{
    memset(w, 0, sizeof(*w));
    char num[32];
    if (f->worker != NULL)
        add_cond(w, "d.worker = $%d", f->worker);
    if (tenant_id != NULL)
        add_cond(w, "d.tenant_id = $%d::uuid", tenant_id);
    if (f->cls != NULL)
        add_cond(w, "d.class = $%d", f->cls);
    if (f->since_ms != 0) {
        snprintf(num, sizeof(num), "%lld", (long long)f->since_ms);
        add_cond(w, "d.created_at >= 'epoch'::timestamptz + $%d::bigint * interval '1 ms'", num);
    }
    if (f->before_ms != 0) {
        snprintf(num, sizeof(num), "%lld", (long long)f->before_ms);
        add_cond(w, "d.created_at < 'epoch'::timestamptz + $%d::bigint * interval '1 ms'", num);
    }
    if (f->replayed_only)
        add_cond(w, "d.replayed_at IS NOT NULL", NULL);
    else if (!f->with_replayed)
        add_cond(w, "(d.replayed_at IS NULL OR " DLQ_SQL_DEAD_AGAIN ")", NULL);
    if (w->sql[0] == '\0')
        snprintf(w->sql, sizeof(w->sql), "true");
}

imp_error_t *dlq_resolve_tenant(imp_pg_t *pg, const dlq_filter_t *f, char *out)
{
    out[0] = '\0';
    if (f->tenant == NULL)
        return NULL;
    if (dlq_is_uuid(f->tenant)) {
        for (int i = 0; i < 36; i++)
            out[i] = (char)(f->tenant[i] >= 'A' && f->tenant[i] <= 'F' ? f->tenant[i] + 32
                                                                       : f->tenant[i]);
        out[36] = '\0';
        return NULL;
    }
    const char *params[] = {f->tenant};
    char *id = NULL;
    imp_error_t *err =
        imp_pg_exec_scalar(pg, "SELECT imp_tenant_id_by_slug($1)::text", 1, params, &id);
    if (err != NULL)
        return err;
    if (id == NULL)
        return imp_error_new(IMP_ERR_POISON, "dlq_tenant", "no tenant has the slug \"%s\"",
                             f->tenant);
    snprintf(out, 37, "%s", id);
    free(id);
    return NULL;
}

/* ---- rows ---------------------------------------------------------------------------------- */

static char *dup_or_null(const imp_pg_result_t *res, int r, int c)
{
    const char *v = imp_pg_result_value(res, r, c);
    return v ? imp_strdup(v) : NULL;
}

static int int_or(const imp_pg_result_t *res, int r, int c, int dflt)
{
    long long v;
    return imp_pg_result_get_int64(res, r, c, &v) == 0 ? (int)v : dflt;
}

static void row_load(const imp_pg_result_t *res, int r, dlq_row_t *row)
{
    memset(row, 0, sizeof(*row));
    imp_pg_result_get_int64(res, r, COL_ID, &row->id);
    row->created_at = dup_or_null(res, r, COL_CREATED);
    row->worker = dup_or_null(res, r, COL_WORKER);
    row->cls = dup_or_null(res, r, COL_CLASS);
    row->reason = dup_or_null(res, r, COL_REASON);
    row->topic = dup_or_null(res, r, COL_TOPIC);
    row->partition = int_or(res, r, COL_PARTITION, -1);
    imp_pg_result_get_int64(res, r, COL_OFFSET, &row->offset);
    if (imp_pg_result_get_bytea(res, r, COL_KEY, &row->key, &row->key_len) != 0)
        row->key = NULL;
    row->operation_id = dup_or_null(res, r, COL_OPID);
    row->tenant_id = dup_or_null(res, r, COL_TENANT);
    row->attempt = int_or(res, r, COL_ATTEMPT, 0);
    if (imp_pg_result_get_bytea(res, r, COL_ENVELOPE, &row->envelope, &row->envelope_len) != 0) {
        row->envelope = imp_calloc(1, 1);
        row->envelope_len = 0;
    }
    row->headers = dup_or_null(res, r, COL_HEADERS);
    row->replayed_at = dup_or_null(res, r, COL_REPLAYED_AT);
    row->replayed_by = dup_or_null(res, r, COL_REPLAYED_BY);
    row->replay_count = int_or(res, r, COL_REPLAY_COUNT, 0);
    row->inbox_state = dup_or_null(res, r, COL_INBOX_STATE);
    row->inbox_attempt = int_or(res, r, COL_INBOX_ATTEMPT, -1);
    row->inbox_at = dup_or_null(res, r, COL_INBOX_AT);
    imp_pg_result_get_bool(res, r, COL_DEAD_AGAIN, &row->dead_again);
}

static void row_dispose(dlq_row_t *row)
{
    char *strings[] = {row->created_at,  row->worker,       row->cls,         row->reason,
                       row->topic,       row->operation_id, row->tenant_id,   row->headers,
                       row->replayed_at, row->replayed_by,  row->inbox_state, row->inbox_at};
    for (size_t i = 0; i < IMP_ARRAY_LEN(strings); i++)
        free(strings[i]);
    free(row->key);
    free(row->envelope);
}

static imp_error_t *load(imp_pg_t *pg, const char *sql, int nparams, const char *const *params,
                         dlq_rows_t *out)
{
    out->v = NULL;
    out->n = 0;
    imp_pg_result_t *res = NULL;
    imp_error_t *err = imp_pg_exec(pg, sql, nparams, params, &res);
    if (err != NULL)
        return err;
    int n = imp_pg_result_rows(res);
    out->v = imp_calloc(n > 0 ? (size_t)n : 1, sizeof(*out->v));
    for (int r = 0; r < n; r++)
        row_load(res, r, &out->v[r]);
    out->n = (size_t)n;
    imp_pg_result_free(res);
    return NULL;
}

imp_error_t *dlq_rows_query(imp_pg_t *pg, const dlq_where_t *where, long long limit,
                            dlq_rows_t *out)
{
    const char *params[IMP_ARRAY_LEN(where->params) + 1];
    memcpy(params, where->params, sizeof(where->params));
    char lim[32];
    snprintf(lim, sizeof(lim), "%lld", limit > 0 ? limit : -1LL);
    params[where->n] = limit > 0 ? lim : NULL; /* LIMIT NULL: no limit */
    char *sql = imp_asprintf(SQL_ROWS "WHERE %s ORDER BY d.created_at DESC, d.id DESC LIMIT $%d",
                             where->sql, where->n + 1);
    imp_error_t *err = load(pg, sql, where->n + 1, params, out);
    free(sql);
    return err;
}

imp_error_t *dlq_rows_get(imp_pg_t *pg, long long id, dlq_rows_t *out)
{
    char num[32];
    snprintf(num, sizeof(num), "%lld", id);
    const char *params[] = {num};
    return load(pg, SQL_ROWS "WHERE d.id = $1", 1, params, out);
}

imp_error_t *dlq_rows_count(imp_pg_t *pg, const dlq_where_t *where, long long *total,
                            long long *unreplayed)
{
    char *sql = imp_asprintf("SELECT count(*), count(*) FILTER (WHERE d.replayed_at IS NULL) "
                             "FROM dead_letters d WHERE %s",
                             where->sql);
    imp_pg_result_t *res = NULL;
    imp_error_t *err = imp_pg_exec(pg, sql, where->n, where->params, &res);
    free(sql);
    if (err != NULL)
        return err;
    imp_pg_result_get_int64(res, 0, 0, total);
    imp_pg_result_get_int64(res, 0, 1, unreplayed);
    imp_pg_result_free(res);
    return NULL;
}

void dlq_rows_dispose(dlq_rows_t *rows)
{
    for (size_t i = 0; i < rows->n; i++)
        row_dispose(&rows->v[i]);
    free(rows->v);
    rows->v = NULL;
    rows->n = 0;
}

/* ---- JSON ---------------------------------------------------------------------------------- */

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* Bytes as a string member plus "<name>_encoding": text (or json) when they are UTF-8 text
 * (and JSON, when want_json), base64 otherwise. */
static void set_bytes(json_t *obj, const char *name, const unsigned char *buf, size_t len,
                      bool want_json)
{
    char enc_name[64];
    snprintf(enc_name, sizeof(enc_name), "%s_encoding", name);
    if (buf == NULL) {
        json_object_set_new(obj, name, json_null());
        json_object_set_new(obj, enc_name, json_null());
        return;
    }
    bool text = dlq_utf8_text(buf, len);
    if (text && want_json) {
        json_t *parsed = json_loadb((const char *)buf, len, JSON_DECODE_ANY, NULL);
        text = parsed != NULL;
        json_decref(parsed);
    }
    if (text) {
        json_object_set_new(obj, name, json_stringn((const char *)buf, len));
        json_object_set_new(obj, enc_name, json_string(want_json ? "json" : "text"));
        return;
    }
    char *b64 = dlq_base64(buf, len);
    json_object_set_new(obj, name, json_string(b64));
    json_object_set_new(obj, enc_name, json_string("base64"));
    free(b64);
}

json_t *dlq_row_json(const dlq_row_t *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(r->id));
    json_object_set_new(o, "created_at", str_or_null(r->created_at));
    json_object_set_new(o, "worker", str_or_null(r->worker));
    json_object_set_new(o, "class", str_or_null(r->cls));
    json_object_set_new(o, "reason", str_or_null(r->reason));
    json_object_set_new(o, "topic", str_or_null(r->topic));
    json_object_set_new(o, "partition", json_integer(r->partition));
    json_object_set_new(o, "offset", json_integer(r->offset));
    set_bytes(o, "key", r->key, r->key_len, false);
    json_object_set_new(o, "operation_id", str_or_null(r->operation_id));
    json_object_set_new(o, "tenant_id", str_or_null(r->tenant_id));
    json_object_set_new(o, "attempt", json_integer(r->attempt));
    set_bytes(o, "envelope", r->envelope, r->envelope_len, true);
    json_t *headers = r->headers ? json_loads(r->headers, 0, NULL) : NULL;
    json_object_set_new(o, "headers", headers ? headers : json_null());
    json_object_set_new(o, "replayed_at", str_or_null(r->replayed_at));
    json_object_set_new(o, "replayed_by", str_or_null(r->replayed_by));
    json_object_set_new(o, "replay_count", json_integer(r->replay_count));
    json_object_set_new(o, "dead_again", json_boolean(r->dead_again));
    if (r->inbox_state == NULL) {
        json_object_set_new(o, "inbox", json_null());
    } else {
        json_object_set_new(o, "inbox",
                            json_pack("{s:s, s:i, s:o}", "state", r->inbox_state, "attempt",
                                      r->inbox_attempt, "processed_at", str_or_null(r->inbox_at)));
    }
    return o;
}

static void set_time(json_t *o, const char *name, int64_t ms)
{
    char text[IMP_ENVELOPE_TIME_LEN + 1];
    if (ms != 0 && imp_envelope_time_format(ms, text) == 0)
        json_object_set_new(o, name, json_string(text));
}

json_t *dlq_filter_json(const dlq_filter_t *f, const char *tenant_id)
{
    json_t *o = json_object();
    if (f->worker)
        json_object_set_new(o, "worker", json_string(f->worker));
    if (tenant_id)
        json_object_set_new(o, "tenant_id", json_string(tenant_id));
    if (f->cls)
        json_object_set_new(o, "class", json_string(f->cls));
    set_time(o, "since", f->since_ms);
    set_time(o, "before", f->before_ms);
    if (f->replayed_only)
        json_object_set_new(o, "replayed_only", json_true());
    return o;
}
