/* imperium-dlq purge: delete dead letters matching filters (only with --yes), audited. */
#include "dlq.h"

#include "imp/mem.h"

#include <stdlib.h>
#include <string.h>

#define SQL_AUDIT                                                                                  \
    "INSERT INTO audit_log (tenant_id, actor, action, target, after) "                             \
    "VALUES (NULL, $1, 'dlq.purge', 'dead_letters', $2::jsonb)"

static int preview(imp_pg_t *pg, const dlq_where_t *where, const char *filters)
{
    long long total = 0, unreplayed = 0;
    imp_error_t *err = dlq_rows_count(pg, where, &total, &unreplayed);
    if (err != NULL)
        return dlq_fail("purge", err);
    printf("would delete %lld dead letter%s (%lld never replayed) matching %s\n", total,
           total == 1 ? "" : "s", unreplayed, filters);
    printf("nothing deleted: add --yes to delete them\n");
    return DLQ_EXIT_PARTIAL;
}

static imp_error_t *delete_rows(imp_pg_t *pg, const dlq_where_t *where, const char *actor,
                                const dlq_args_t *a, const char *tenant, long long *count)
{
    char *sql = imp_asprintf("DELETE FROM dead_letters d WHERE %s", where->sql);
    imp_pg_result_t *res = NULL;
    char *after_text = NULL;
    imp_error_t *err = imp_pg_tx_begin(pg);
    if (err != NULL)
        goto out;
    err = imp_pg_exec(pg, sql, where->n, where->params, &res);
    if (err != NULL)
        goto out;
    *count = imp_pg_result_affected(res);
    json_t *after = json_pack("{s:I, s:o}", "count", (json_int_t)*count, "filters",
                              dlq_filter_json(&a->filter, tenant));
    after_text = json_dumps(after, JSON_COMPACT);
    json_decref(after);
    const char *params[] = {actor, after_text};
    /* A platform action: audit_log accepts it from imperium_app with no tenant set. */
    err = imp_pg_set_tenant(pg, NULL);
    if (err == NULL)
        err = imp_pg_exec(pg, SQL_AUDIT, 2, params, NULL);
    if (err == NULL)
        err = imp_pg_tx_commit(pg);
out:
    if (err != NULL)
        imp_pg_tx_rollback(pg);
    imp_pg_result_free(res);
    free(after_text);
    free(sql);
    return err;
}

int dlq_cmd_purge(imp_pg_t *pg, const dlq_settings_t *s, const dlq_args_t *a)
{
    char tenant[37];
    dlq_where_t where;
    imp_error_t *err = dlq_resolve_tenant(pg, &a->filter, tenant);
    if (err != NULL)
        return dlq_fail("purge", err);
    const char *t = tenant[0] ? tenant : NULL;
    dlq_where_build(&a->filter, t, &where);
    json_t *fj = dlq_filter_json(&a->filter, t);
    char *filters = json_object_size(fj) ? json_dumps(fj, JSON_COMPACT) : imp_strdup("(all)");
    json_decref(fj);
    int rc = DLQ_EXIT_OK;
    if (!a->yes) {
        rc = preview(pg, &where, filters);
    } else {
        long long count = 0;
        err = delete_rows(pg, &where, s->actor, a, t, &count);
        if (err != NULL)
            rc = dlq_fail("purge", err);
        else
            printf("deleted %lld dead letter%s matching %s\n", count, count == 1 ? "" : "s",
                   filters);
    }
    free(filters);
    return rc;
}
