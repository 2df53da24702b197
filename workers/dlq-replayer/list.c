/* imperium-dlq list and show: dead letters as a table, as one JSON array, or one in full. */
#include "dlq.h"

#include "imp/envelope.h"
#include "imp/mem.h"

#include <stdlib.h>
#include <string.h>

#define REASON_CELL_MAX 60

/* "2026-05-01T03:04:05.678Z" → "2026-05-01T03:04:05Z" (new heap string); NULL → "-". */
static char *short_time(const char *ts)
{
    if (ts == NULL)
        return imp_strdup("-");
    if (strlen(ts) < 19)
        return imp_strdup(ts);
    return imp_asprintf("%.19sZ", ts);
}

/* ---- list ---------------------------------------------------------------------------------- */

static char *replayed_cell(const dlq_row_t *r)
{
    char *t = short_time(r->replayed_at);
    if (!r->dead_again)
        return t;
    char *cell = imp_asprintf("%s, dead again", t);
    free(t);
    return cell;
}

static const char *const list_header[] = {"ID",       "DEAD SINCE",   "WORKER", "CLASS",
                                          "ORIGIN",   "OPERATION_ID", "TENANT", "ATTEMPT",
                                          "REPLAYED", "REASON"};

static void print_table(const dlq_rows_t *rows)
{
    dlq_table_t t;
    dlq_table_init(&t, list_header, IMP_ARRAY_LEN(list_header));
    for (size_t i = 0; i < rows->n; i++) {
        const dlq_row_t *r = &rows->v[i];
        char *cells[IMP_ARRAY_LEN(list_header)] = {
            imp_asprintf("%lld", r->id),
            short_time(r->created_at),
            dlq_cell(r->worker, 32),
            imp_strdup(r->cls),
            imp_asprintf("%s/%d/%lld", r->topic, r->partition, r->offset),
            dlq_cell(r->operation_id, 36),
            dlq_cell(r->tenant_id, 36),
            imp_asprintf("%d", r->attempt),
            replayed_cell(r),
            dlq_cell(r->reason, REASON_CELL_MAX),
        };
        dlq_table_add(&t, cells);
    }
    dlq_table_print(&t, stdout);
    dlq_table_dispose(&t);
}

static void print_json_array(const dlq_rows_t *rows)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < rows->n; i++)
        json_array_append_new(arr, dlq_row_json(&rows->v[i]));
    json_dumpf(arr, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
    json_decref(arr);
}

int dlq_cmd_list(imp_pg_t *pg, const dlq_args_t *a)
{
    char tenant[37];
    dlq_where_t where;
    dlq_rows_t rows = {0};
    long long total = 0, unreplayed = 0;
    imp_error_t *err = dlq_resolve_tenant(pg, &a->filter, tenant);
    if (err != NULL)
        return dlq_fail("list", err);
    dlq_where_build(&a->filter, tenant[0] ? tenant : NULL, &where);
    err = dlq_rows_query(pg, &where, a->filter.limit, &rows);
    if (err == NULL && rows.n == (size_t)a->filter.limit)
        err = dlq_rows_count(pg, &where, &total, &unreplayed);
    if (err != NULL)
        return dlq_fail("list", err);
    if (a->json)
        print_json_array(&rows);
    else if (rows.n > 0)
        print_table(&rows);
    else
        printf("no dead letters match%s\n",
               a->filter.with_replayed ? "" : " (replayed ones are hidden; --all shows them)");
    if (total > (long long)rows.n)
        fprintf(stderr, "showing the newest %zu of %lld; narrow the filters or raise --limit\n",
                rows.n, total);
    dlq_rows_dispose(&rows);
    return DLQ_EXIT_OK;
}

/* ---- show ---------------------------------------------------------------------------------- */

static void print_field(const char *name, const char *value)
{
    printf("  %-14s %s\n", name, value ? value : "-");
}

static void print_envelope(const dlq_row_t *r)
{
    json_t *parsed = NULL;
    if (dlq_utf8_text(r->envelope, r->envelope_len))
        parsed = json_loadb((const char *)r->envelope, r->envelope_len, JSON_DECODE_ANY, NULL);
    if (parsed != NULL) {
        printf("envelope (%zu bytes):\n", r->envelope_len);
        json_dumpf(parsed, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(parsed);
        return;
    }
    char *text = dlq_escape(r->envelope, r->envelope_len);
    printf("envelope (%zu bytes, not JSON; %s):\n%s\n", r->envelope_len,
           dlq_utf8_text(r->envelope, r->envelope_len)
               ? "replay sends these bytes as they are"
               : "not UTF-8 either, so replay cannot carry it through the outbox",
           text);
    free(text);
}

static void print_replay_state(const dlq_row_t *r)
{
    char *line;
    if (r->replayed_at == NULL)
        line = imp_asprintf("no (imperium-dlq replay %lld)", r->id);
    else
        line = imp_asprintf("%s by %s (%d time%s)", r->replayed_at,
                            r->replayed_by ? r->replayed_by : "?", r->replay_count,
                            r->replay_count == 1 ? "" : "s");
    print_field("replayed", line);
    free(line);
    if (r->dead_again) {
        line = imp_asprintf("the worker dead-lettered it again at %s; reason and class above are "
                            "from the first time (its log and imp.dlq.%s.v1 have the new ones); "
                            "imperium-dlq replay %lld sends it again",
                            r->inbox_at ? r->inbox_at : "?", r->worker, r->id);
        print_field("dead again", line);
        free(line);
    }
    if (r->operation_id == NULL)
        line = imp_strdup("- (no operation id: the event did not parse)");
    else if (r->inbox_state == NULL)
        line = imp_strdup("no row (the worker will run the event when it arrives)");
    else
        line = imp_asprintf("%s, attempt %d, at %s", r->inbox_state, r->inbox_attempt,
                            r->inbox_at ? r->inbox_at : "?");
    print_field("inbox", line);
    free(line);
}

static void print_show(const dlq_row_t *r, int64_t now_ms)
{
    char age[32] = "", *line;
    int64_t at;
    if (r->created_at && imp_envelope_time_parse(r->created_at, strlen(r->created_at), &at) == 0)
        dlq_format_age(now_ms - at, age, sizeof(age));
    printf("dead letter %lld\n", r->id);
    print_field("worker", r->worker);
    print_field("class", r->cls);
    line = dlq_escape(r->reason, strlen(r->reason));
    print_field("reason", line);
    free(line);
    line = imp_asprintf("%s (%s ago)", r->created_at, age);
    print_field("dead since", line);
    free(line);
    line = imp_asprintf("%s partition %d offset %lld", r->topic, r->partition, r->offset);
    print_field("origin", line);
    free(line);
    line = r->key ? dlq_escape(r->key, r->key_len) : NULL;
    print_field("key", line);
    free(line);
    print_field("operation_id", r->operation_id);
    print_field("tenant", r->tenant_id);
    line = imp_asprintf("%d", r->attempt);
    print_field("attempt", line);
    free(line);
    print_field("headers", r->headers);
    print_replay_state(r);
    print_envelope(r);
}

int dlq_cmd_show(imp_pg_t *pg, const dlq_args_t *a)
{
    dlq_rows_t rows = {0};
    imp_error_t *err = dlq_rows_get(pg, a->ids[0], &rows);
    if (err != NULL)
        return dlq_fail("show", err);
    int rc = DLQ_EXIT_OK;
    if (rows.n == 0) {
        fprintf(stderr, "%s: show: dead letter %lld not found\n", DLQ_BINARY, a->ids[0]);
        rc = DLQ_EXIT_PARTIAL;
    } else if (a->json) {
        json_t *o = dlq_row_json(&rows.v[0]);
        json_dumpf(o, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(o);
    } else {
        print_show(&rows.v[0], imp_envelope_time_now_ms());
    }
    dlq_rows_dispose(&rows);
    return rc;
}
