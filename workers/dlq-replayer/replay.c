/* imperium-dlq replay: each dead letter back to its original topic with its original key and
 * operation id, one Postgres transaction per dead letter (row lock, inbox, audit, outbox),
 * then the outbox relay publishes (publish.c). */
#include "dlq.h"

#include "imp/envelope.h"
#include "imp/mem.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Header names the worker runtime reads to learn where an event was first consumed from
 * (common/src/worker_internal.h): kept on a replay, so a later dead letter of the same event
 * still names its first origin. */
#define HDR_ORIGIN_TOPIC "imp-origin-topic"
#define HDR_ORIGIN_PARTITION "imp-origin-partition"
#define HDR_ORIGIN_OFFSET "imp-origin-offset"

#define SQL_LOCK                                                                                   \
    "SELECT worker, topic, kafka_partition, kafka_offset, kafka_key, operation_id, tenant_id, "    \
    "envelope, to_char(replayed_at AT TIME ZONE 'UTC', " DLQ_SQL_RFC3339 "), replayed_by, "        \
    "replay_count, " DLQ_SQL_DEAD_AGAIN " FROM dead_letters d WHERE id = $1 FOR UPDATE"

#define SQL_INBOX_LOCK                                                                             \
    "SELECT state, attempt FROM inbox WHERE worker = $1 AND operation_id = $2 FOR UPDATE"

#define SQL_INBOX_DELETE                                                                           \
    "DELETE FROM inbox WHERE worker = $1 AND operation_id = $2 AND state = 'dead'"

#define SQL_MARK                                                                                   \
    "UPDATE dead_letters SET replayed_at = now(), replayed_by = $2, "                              \
    "replay_count = replay_count + 1 WHERE id = $1 "                                               \
    "RETURNING to_char(replayed_at AT TIME ZONE 'UTC', " DLQ_SQL_RFC3339 "), replay_count"

#define SQL_OUTBOX                                                                                 \
    "INSERT INTO outbox (topic, key, payload, headers, tenant_id, operation_id) "                  \
    "VALUES ($1, $2, $3, $4::jsonb, $5::uuid, $6::uuid) RETURNING id"

#define SQL_AUDIT                                                                                  \
    "INSERT INTO audit_log (tenant_id, actor, action, target, operation_id, before, after) "       \
    "VALUES ($1::uuid, $2, 'dlq.replay', $3, $4::uuid, $5::jsonb, $6::jsonb)"

typedef enum { OUT_REPLAYED, OUT_ALREADY, OUT_NOT_FOUND, OUT_FAILED } outcome_t;

/* What one dead letter's replay did. */
typedef struct {
    outcome_t kind;
    long long outbox_id;
    char line[768];
} result_t;

/* The locked dead_letters row: values borrowed from the result. */
typedef struct {
    long long id;
    const char *worker, *topic, *partition, *offset, *opid, *tenant;
    const char *replayed_at, *replayed_by;
    int replay_count;
    bool dead_again;
    unsigned char *key, *envelope;
    size_t key_len, envelope_len;
} locked_t;

/* What goes to the outbox. */
typedef struct {
    char *payload;
    char *key;
    char *headers;
    bool raw; /* the envelope did not parse: its bytes as they are */
} replay_msg_t;

static void msg_dispose(replay_msg_t *m)
{
    free(m->payload);
    free(m->key);
    free(m->headers);
}

static void set_line(result_t *res, outcome_t kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_line(result_t *res, outcome_t kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->line, sizeof(res->line), fmt, ap);
    va_end(ap);
    res->kind = kind;
}

/* ---- the event to send ---------------------------------------------------------------------- */

/* The stored envelope as a fresh first attempt: attempt 0, no notbefore, no dlq member. */
static bool reset_envelope(const locked_t *row, char **out)
{
    imp_envelope_t ev;
    imp_error_t *err = imp_envelope_parse((const char *)row->envelope, row->envelope_len, &ev);
    if (err != NULL) {
        imp_error_free(err);
        return false;
    }
    ev.attempt = 0;
    ev.notbefore_ms = 0;
    if (ev.has_dlq) {
        free(ev.dlq.reason);
        memset(&ev.dlq, 0, sizeof(ev.dlq));
        ev.has_dlq = false;
    }
    err = imp_envelope_serialize(&ev, out);
    imp_envelope_dispose(&ev);
    /* A parsed envelope always serializes; if one did not, it goes out as stored. */
    bool ok = err == NULL;
    imp_error_free(err);
    return ok;
}

static char *origin_headers(const locked_t *row)
{
    json_t *h = json_pack("{s:s, s:s, s:s}", HDR_ORIGIN_TOPIC, row->topic, HDR_ORIGIN_PARTITION,
                          row->partition, HDR_ORIGIN_OFFSET, row->offset);
    char *text = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    return text;
}

/* Build the outbox message, or explain in res why this dead letter cannot be replayed. */
static bool build_msg(const locked_t *row, replay_msg_t *m, result_t *res)
{
    memset(m, 0, sizeof(*m));
    if (row->key != NULL && !dlq_utf8_text(row->key, row->key_len)) {
        set_line(res, OUT_FAILED,
                 "cannot replay: its Kafka key is not UTF-8 text, which the outbox cannot carry");
        return false;
    }
    if (!reset_envelope(row, &m->payload)) {
        if (row->envelope_len == 0) {
            set_line(res, OUT_FAILED, "cannot replay: the stored envelope is empty");
            return false;
        }
        if (!dlq_utf8_text(row->envelope, row->envelope_len)) {
            set_line(res, OUT_FAILED,
                     "cannot replay: the envelope is not UTF-8 text, which the "
                     "outbox cannot carry (imperium-dlq show %lld)",
                     row->id);
            return false;
        }
        m->payload = imp_strndup((const char *)row->envelope, row->envelope_len);
        m->raw = true;
    }
    m->key = row->key ? imp_strndup((const char *)row->key, row->key_len) : NULL;
    m->headers = origin_headers(row);
    return true;
}

/* ---- one dead letter, one transaction ------------------------------------------------------ */

static void locked_load(const imp_pg_result_t *res, long long id, locked_t *row)
{
    memset(row, 0, sizeof(*row));
    row->id = id;
    row->worker = imp_pg_result_value(res, 0, 0);
    row->topic = imp_pg_result_value(res, 0, 1);
    row->partition = imp_pg_result_value(res, 0, 2);
    row->offset = imp_pg_result_value(res, 0, 3);
    if (imp_pg_result_get_bytea(res, 0, 4, &row->key, &row->key_len) != 0)
        row->key = NULL;
    row->opid = imp_pg_result_value(res, 0, 5);
    row->tenant = imp_pg_result_value(res, 0, 6);
    if (imp_pg_result_get_bytea(res, 0, 7, &row->envelope, &row->envelope_len) != 0) {
        row->envelope = imp_calloc(1, 1);
        row->envelope_len = 0;
    }
    row->replayed_at = imp_pg_result_value(res, 0, 8);
    row->replayed_by = imp_pg_result_value(res, 0, 9);
    long long count = 0;
    imp_pg_result_get_int64(res, 0, 10, &count);
    row->replay_count = (int)count;
    imp_pg_result_get_bool(res, 0, 11, &row->dead_again);
}

/* The inbox row of the event: its state before (a new heap string, NULL when none) and
 * whether it was deleted (only a 'dead' row is: anything else means the worker already did
 * or is doing the work, and replaying must not undo that). */
static imp_error_t *reset_inbox(imp_pg_t *pg, const locked_t *row, char **state, bool *deleted)
{
    *state = NULL;
    *deleted = false;
    if (row->opid == NULL)
        return NULL;
    const char *params[] = {row->worker, row->opid};
    imp_pg_result_t *res = NULL;
    imp_error_t *err = imp_pg_exec(pg, SQL_INBOX_LOCK, 2, params, &res);
    if (err == NULL && imp_pg_result_rows(res) == 1)
        *state = imp_strdup(imp_pg_result_value(res, 0, 0));
    imp_pg_result_free(res);
    if (err != NULL || *state == NULL || strcmp(*state, "dead") != 0)
        return err;
    *deleted = true;
    return imp_pg_exec(pg, SQL_INBOX_DELETE, 2, params, NULL);
}

static imp_error_t *mark_replayed(imp_pg_t *pg, const locked_t *row, const char *actor,
                                  char **replayed_at, int *count)
{
    char num[32];
    snprintf(num, sizeof(num), "%lld", row->id);
    const char *params[] = {num, actor};
    imp_pg_result_t *res = NULL;
    imp_error_t *err = imp_pg_exec(pg, SQL_MARK, 2, params, &res);
    if (err == NULL) {
        *replayed_at = imp_strdup(imp_pg_result_value(res, 0, 0));
        long long c = 0;
        imp_pg_result_get_int64(res, 0, 1, &c);
        *count = (int)c;
    }
    imp_pg_result_free(res);
    return err;
}

static imp_error_t *insert_outbox(imp_pg_t *pg, const locked_t *row, const replay_msg_t *m,
                                  long long *outbox_id)
{
    const char *params[] = {row->topic, m->key, m->payload, m->headers, row->tenant, row->opid};
    imp_pg_result_t *res = NULL;
    imp_error_t *err = imp_pg_exec(pg, SQL_OUTBOX, 6, params, &res);
    if (err == NULL)
        imp_pg_result_get_int64(res, 0, 0, outbox_id);
    imp_pg_result_free(res);
    return err;
}

static imp_error_t *insert_audit(imp_pg_t *pg, const locked_t *row, const char *actor,
                                 json_t *before, json_t *after)
{
    char *target = imp_asprintf("dead_letter:%lld", row->id);
    char *b = json_dumps(before, JSON_COMPACT);
    char *a = json_dumps(after, JSON_COMPACT);
    /* audit_log is tenant-scoped (row-level security): write as the dead letter's tenant. */
    imp_error_t *err = imp_pg_set_tenant(pg, row->tenant);
    if (err == NULL) {
        const char *params[] = {row->tenant, actor, target, row->opid, b, a};
        err = imp_pg_exec(pg, SQL_AUDIT, 6, params, NULL);
    }
    free(target);
    free(b);
    free(a);
    return err;
}

static json_t *audit_before(const locked_t *row, const char *inbox_state)
{
    return json_pack("{s:o, s:o, s:i, s:o}", "replayed_at",
                     row->replayed_at ? json_string(row->replayed_at) : json_null(), "replayed_by",
                     row->replayed_by ? json_string(row->replayed_by) : json_null(), "replay_count",
                     row->replay_count, "inbox_state",
                     inbox_state ? json_string(inbox_state) : json_null());
}

static json_t *audit_after(const locked_t *row, const char *actor, const char *replayed_at,
                           int count, const char *inbox_state, bool deleted, const replay_msg_t *m,
                           long long outbox_id)
{
    return json_pack("{s:s, s:s, s:i, s:o, s:s, s:I, s:s}", "replayed_at", replayed_at,
                     "replayed_by", actor, "replay_count", count, "inbox_state",
                     deleted || inbox_state == NULL ? json_null() : json_string(inbox_state),
                     "topic", row->topic, "outbox_id", (json_int_t)outbox_id, "envelope",
                     m->raw ? "raw" : "reset");
}

static void describe(result_t *res, const locked_t *row, const replay_msg_t *m,
                     const char *inbox_state, bool deleted)
{
    const char *inbox = deleted               ? "its dead inbox row removed"
                        : row->opid == NULL   ? "no operation id"
                        : inbox_state == NULL ? "no inbox row"
                        : !strcmp(inbox_state, "done")
                            ? "inbox says done: the worker will skip it as a duplicate"
                            : "inbox row kept";
    set_line(res, OUT_REPLAYED, "replayed to %s (operation_id %s; %s%s%s)", row->topic,
             row->opid ? row->opid : "-", inbox,
             row->dead_again ? "; it had died again since its last replay" : "",
             m->raw ? "; the envelope did not parse, its bytes are sent as they are" : "");
}

/* The steps after the row is locked and found replayable. */
static imp_error_t *replay_locked(imp_pg_t *pg, const locked_t *row, const char *actor,
                                  result_t *res)
{
    replay_msg_t m;
    char *inbox_state = NULL, *replayed_at = NULL;
    bool deleted = false;
    int count = 0;
    json_t *before = NULL, *after = NULL;
    if (!build_msg(row, &m, res))
        return NULL;
    imp_error_t *err = reset_inbox(pg, row, &inbox_state, &deleted);
    if (err == NULL)
        err = mark_replayed(pg, row, actor, &replayed_at, &count);
    if (err == NULL)
        err = insert_outbox(pg, row, &m, &res->outbox_id);
    if (err == NULL) {
        before = audit_before(row, inbox_state);
        after =
            audit_after(row, actor, replayed_at, count, inbox_state, deleted, &m, res->outbox_id);
        err = insert_audit(pg, row, actor, before, after);
    }
    if (err == NULL)
        describe(res, row, &m, inbox_state, deleted);
    json_decref(before);
    json_decref(after);
    free(inbox_state);
    free(replayed_at);
    msg_dispose(&m);
    return err;
}

/* Replay dead letter id. A Postgres error is returned (nothing of this dead letter changed);
 * every other outcome is in res. */
static imp_error_t *replay_one(imp_pg_t *pg, long long id, const char *actor, bool again,
                               result_t *res)
{
    char num[32];
    snprintf(num, sizeof(num), "%lld", id);
    const char *params[] = {num};
    imp_pg_result_t *lock = NULL;
    locked_t row = {0};
    memset(res, 0, sizeof(*res));
    imp_error_t *err = imp_pg_tx_begin(pg);
    if (err != NULL)
        return err;
    err = imp_pg_exec(pg, SQL_LOCK, 1, params, &lock);
    if (err != NULL)
        goto out;
    if (imp_pg_result_rows(lock) == 0) {
        set_line(res, OUT_NOT_FOUND, "not found");
        goto out;
    }
    locked_load(lock, id, &row);
    if (row.replayed_at != NULL && !again && !row.dead_again) {
        set_line(res, OUT_ALREADY, "already replayed at %s by %s", row.replayed_at,
                 row.replayed_by ? row.replayed_by : "?");
        goto out;
    }
    err = replay_locked(pg, &row, actor, res);
out:
    if (err == NULL && res->kind == OUT_REPLAYED)
        err = imp_pg_tx_commit(pg);
    else
        imp_pg_tx_rollback(pg);
    free(row.key);
    free(row.envelope);
    imp_pg_result_free(lock);
    return err;
}

/* ---- selection ------------------------------------------------------------------------------ */

static imp_error_t *select_ids(imp_pg_t *pg, const dlq_args_t *a, long long **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    if (a->nids > 0) {
        *ids = imp_malloc(a->nids * sizeof(**ids));
        memcpy(*ids, a->ids, a->nids * sizeof(**ids));
        *n = a->nids;
        return NULL;
    }
    char tenant[37];
    dlq_where_t where;
    imp_error_t *err = dlq_resolve_tenant(pg, &a->filter, tenant);
    if (err != NULL)
        return err;
    dlq_where_build(&a->filter, tenant[0] ? tenant : NULL, &where);
    /* Oldest first: events of one conversation go back in the order they came. */
    char *sql = imp_asprintf("SELECT d.id FROM dead_letters d WHERE %s ORDER BY d.id", where.sql);
    imp_pg_result_t *res = NULL;
    err = imp_pg_exec(pg, sql, where.n, where.params, &res);
    free(sql);
    if (err != NULL)
        return err;
    int rows = imp_pg_result_rows(res);
    *ids = imp_malloc((rows > 0 ? (size_t)rows : 1) * sizeof(**ids));
    for (int r = 0; r < rows; r++)
        imp_pg_result_get_int64(res, r, 0, &(*ids)[r]);
    *n = (size_t)rows;
    imp_pg_result_free(res);
    return NULL;
}

/* ---- the command ---------------------------------------------------------------------------- */

typedef struct {
    size_t replayed, already, not_found, failed;
} tally_t;

static void count_outcome(tally_t *t, outcome_t kind)
{
    switch (kind) {
    case OUT_REPLAYED:
        t->replayed++;
        break;
    case OUT_ALREADY:
        t->already++;
        break;
    case OUT_NOT_FOUND:
        t->not_found++;
        break;
    case OUT_FAILED:
        t->failed++;
        break;
    }
}

static void print_summary(const tally_t *t, bool dry_run)
{
    printf("%s %zu, already replayed %zu, not found %zu", dry_run ? "would replay" : "replayed",
           t->replayed, t->already, t->not_found);
    if (t->failed > 0)
        printf(", not replayable %zu", t->failed);
    printf("\n");
}

/* --dry-run: what replay would do, changing nothing. */
static int dry_run(imp_pg_t *pg, const long long *ids, size_t n, bool again)
{
    tally_t t = {0};
    for (size_t i = 0; i < n; i++) {
        dlq_rows_t rows = {0};
        imp_error_t *err = dlq_rows_get(pg, ids[i], &rows);
        if (err != NULL)
            return dlq_fail("replay", err);
        outcome_t kind = rows.n == 0 ? OUT_NOT_FOUND
                         : rows.v[0].replayed_at != NULL && !rows.v[0].dead_again && !again
                             ? OUT_ALREADY
                             : OUT_REPLAYED;
        count_outcome(&t, kind);
        if (kind == OUT_NOT_FOUND)
            printf("dead letter %lld: not found\n", ids[i]);
        else if (kind == OUT_ALREADY)
            printf("dead letter %lld: already replayed at %s\n", ids[i], rows.v[0].replayed_at);
        else
            printf("dead letter %lld: would replay to %s (operation_id %s)\n", ids[i],
                   rows.v[0].topic, rows.v[0].operation_id ? rows.v[0].operation_id : "-");
        dlq_rows_dispose(&rows);
    }
    print_summary(&t, true);
    return t.not_found > 0 ? DLQ_EXIT_PARTIAL : DLQ_EXIT_OK;
}

/* Replay ids[0..n), printing one line each; the outbox rows of those replayed go to outbox.
 * A Postgres error stops the run (what was replayed before stays replayed). */
static imp_error_t *replay_all(imp_pg_t *pg, const dlq_settings_t *s, const dlq_args_t *a,
                               const long long *ids, size_t n, long long *outbox, size_t *nout,
                               tally_t *t)
{
    for (size_t i = 0; i < n; i++) {
        result_t res;
        imp_error_t *err = replay_one(pg, ids[i], s->actor, a->again, &res);
        if (err != NULL)
            return err;
        printf("dead letter %lld: %s\n", ids[i], res.line);
        fflush(stdout);
        count_outcome(t, res.kind);
        if (res.kind == OUT_REPLAYED)
            outbox[(*nout)++] = res.outbox_id;
    }
    return NULL;
}

/* Publish the events this run replayed, or those an earlier run left in the outbox. With
 * neither, Kafka is left alone: a second replay changes nothing. */
static int publish_replayed(imp_pg_t *pg, const dlq_settings_t *s, const long long *outbox,
                            size_t nout)
{
    long long left = (long long)nout;
    imp_error_t *err = nout > 0 ? NULL : dlq_outbox_unpublished(pg, NULL, 0, &left);
    if (err != NULL)
        return dlq_fail("replay", err);
    if (left == 0)
        return DLQ_EXIT_OK;
    err = dlq_publish(pg, s, outbox, nout, &left);
    return dlq_report_publish(err, left, nout);
}

int dlq_cmd_replay(imp_pg_t *pg, const dlq_settings_t *s, const dlq_args_t *a)
{
    long long *ids = NULL;
    size_t n = 0, nout = 0;
    tally_t t = {0};
    imp_error_t *err = select_ids(pg, a, &ids, &n);
    if (err != NULL)
        return dlq_fail("replay", err);
    if (a->dry_run) {
        int rc = dry_run(pg, ids, n, a->again);
        free(ids);
        return rc;
    }
    if (n == 0)
        printf("no dead letters to replay match (replayed ones are skipped)\n");
    long long *outbox = imp_malloc((n ? n : 1) * sizeof(*outbox));
    err = replay_all(pg, s, a, ids, n, outbox, &nout, &t);
    print_summary(&t, false);
    fflush(stdout);
    int rc;
    if (err != NULL) {
        rc = dlq_fail("replay stopped", err);
        if (nout > 0)
            fprintf(stderr,
                    "%s: the %zu event%s replayed before that wait%s in the outbox for a running "
                    "worker's outbox relay\n",
                    DLQ_BINARY, nout, nout == 1 ? "" : "s", nout == 1 ? "s" : "");
    } else {
        rc = publish_replayed(pg, s, outbox, nout);
        if (rc == DLQ_EXIT_OK && (t.not_found > 0 || t.failed > 0))
            rc = DLQ_EXIT_PARTIAL;
    }
    free(ids);
    free(outbox);
    return rc;
}
