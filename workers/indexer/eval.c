/* The quality check: a tenant's test questions searched against one version (hybrid
 * retrieval, common/src/retrieval.c) with hit@1, hit@k and the questions that missed. Used
 * by `kb eval` and by the promotion gate. */
#include "indexer.h"

#include "imp/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQL_QUESTIONS                                                                              \
    "SELECT question, expected_source, expected_fragment FROM kb_eval_questions "                  \
    "WHERE tenant_id = $1 ORDER BY question COLLATE \"C\""
#define SQL_STORE "UPDATE kb_versions SET eval = $3::jsonb WHERE tenant_id = $1 AND id = $2"

static json_t *missed_entry(const imp_retrieval_eval_question_t *q, int rank, double confidence)
{
    json_t *m = json_pack("{s:s, s:i, s:f}", "question", q->question, "rank", rank, "confidence",
                          confidence);
    if (q->source != NULL)
        json_object_set_new(m, "source", json_string(q->source));
    if (q->fragment != NULL)
        json_object_set_new(m, "fragment", json_string(q->fragment));
    return m;
}

static json_t *report_of(const indexer_version_t *v, const imp_retrieval_eval_question_t *q,
                         const imp_retrieval_eval_t *e)
{
    json_t *missed = json_array();
    for (size_t i = 0; i < e->questions; i++)
        if (e->rank[i] < 1 || (size_t)e->rank[i] > e->k)
            json_array_append_new(missed, missed_entry(&q[i], e->rank[i], e->confidence[i]));
    double n = e->questions ? (double)e->questions : 1;
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:o}", "version", (json_int_t)v->number,
                     "k", (json_int_t)e->k, "questions", (json_int_t)e->questions, "hit1",
                     (json_int_t)e->hit1, "hitk", (json_int_t)e->hitk, "hit_at_1",
                     (double)e->hit1 / n, "hit_at_k", (double)e->hitk / n, "missed", missed);
}

/* A failure of the evaluation itself: retriable and infra errors go to the runtime; the
 * others (another embedder, a rejected input) make the outcome. Takes err. */
static imp_error_t *cannot(indexer_op_t *op, const indexer_version_t *v, imp_error_t *err,
                           indexer_outcome_t *out)
{
    imp_err_class_t cls = imp_error_class(err);
    if (cls == IMP_ERR_INFRA || cls == IMP_ERR_RETRIABLE || cls == IMP_ERR_FATAL)
        return err;
    indexer_fail(out, indexer_result(op), "version %lld cannot be evaluated: %s", v->number,
                 imp_error_message(err));
    imp_error_free(err);
    return NULL;
}

static imp_error_t *run(indexer_op_t *op, const indexer_version_t *v, imp_pg_result_t *qres,
                        long long k, json_t **report, indexer_outcome_t *out)
{
    int n = imp_pg_result_rows(qres);
    imp_retrieval_eval_question_t *q = imp_calloc((size_t)n, sizeof(*q));
    for (int i = 0; i < n; i++)
        q[i] = (imp_retrieval_eval_question_t){.question = imp_pg_result_value(qres, i, 0),
                                               .source = imp_pg_result_value(qres, i, 1),
                                               .fragment = imp_pg_result_value(qres, i, 2)};
    imp_retrieval_index_t *idx = NULL;
    imp_retrieval_eval_t e = {0};
    imp_error_t *err = imp_retrieval_index_load(op->pg, op->tenant_id, v->id, &idx);
    if (err == NULL && (err = imp_retrieval_index_check_embedder(idx, op->ix->emb)) != NULL)
        err = cannot(op, v, err, out);
    else if (err == NULL && (err = imp_retrieval_eval(op->pg, idx, op->ix->emb, q, (size_t)n,
                                                      (size_t)k, NULL, &e)) != NULL)
        err = cannot(op, v, err, out);
    else if (err == NULL)
        *report = report_of(v, q, &e);
    imp_retrieval_eval_dispose(&e);
    imp_retrieval_index_unref(idx);
    free(q);
    return err;
}

imp_error_t *indexer_eval_run(indexer_op_t *op, const indexer_version_t *v, long long k,
                              json_t **report, indexer_outcome_t *out)
{
    imp_pg_result_t *res = NULL;
    const char *params[] = {op->tenant_id};
    *report = NULL;
    imp_error_t *err = imp_pg_exec_cached(op->pg, SQL_QUESTIONS, 1, params, &res);
    if (err == NULL && imp_pg_result_rows(res) == 0)
        indexer_fail(out, indexer_result(op),
                     "version %lld cannot be evaluated: %s has no test questions (set them with "
                     "kb questions set)",
                     v->number, op->slug);
    else if (err == NULL)
        err = run(op, v, res, k, report, out);
    imp_pg_result_free(res);
    return err;
}

imp_error_t *indexer_eval_store(indexer_op_t *op, const indexer_version_t *v, const json_t *report)
{
    char *text = json_dumps(report, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
    const char *params[] = {op->tenant_id, v->id, text};
    imp_error_t *err = imp_pg_exec_cached(op->pg, SQL_STORE, 3, params, NULL);
    free(text);
    return err;
}

imp_error_t *indexer_eval(indexer_op_t *op, indexer_outcome_t *out)
{
    indexer_version_t v;
    indexer_settings_t s;
    json_t *report = NULL;
    imp_error_t *err = indexer_version_by_number(op, op->version, &v);
    if (err != NULL)
        return err;
    if (!v.exists) {
        indexer_fail(out, indexer_result(op), "kb %s has no version %lld", op->slug, op->version);
        return NULL;
    }
    if ((err = indexer_settings_read(op, &s)) != NULL)
        return err;
    long long k = op->k > 0 ? op->k : s.eval_k > 0 ? s.eval_k : op->ix->eval_k;
    indexer_settings_dispose(&s);
    err = indexer_eval_run(op, &v, k, &report, out);
    if (err == NULL && report != NULL)
        err = indexer_eval_store(op, &v, report);
    if (err != NULL || report == NULL) {
        if (err == NULL) {
            char *why = imp_asprintf("kb %s: %s", op->slug, out->error);
            free(out->error);
            out->error = why;
            json_object_set_new(out->result, "message", json_string(why));
        }
        json_decref(report);
        return err;
    }
    json_int_t n = json_integer_value(json_object_get(report, "questions"));
    json_t *r = indexer_result(op);
    json_object_set_new(r, "version", json_integer(v.number));
    json_object_set_new(r, "eval", report);
    indexer_succeed(
        out, r, "kb %s version %lld: hit@1 %.3f (%lld/%lld), hit@%lld %.3f (%lld/%lld), %zu missed",
        op->slug, v.number, json_number_value(json_object_get(report, "hit_at_1")),
        (long long)json_integer_value(json_object_get(report, "hit1")), (long long)n, k,
        json_number_value(json_object_get(report, "hit_at_k")),
        (long long)json_integer_value(json_object_get(report, "hitk")), (long long)n,
        json_array_size(json_object_get(report, "missed")));
    return NULL;
}
