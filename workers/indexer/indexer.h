/* imperium-indexer's internal interfaces: the knowledge-base requests it applies from
 * imp.kb.v1 (build, promote, rollback, eval), what they leave in Postgres (outcome, audit)
 * and on imp.control.v1. docs/knowledge-base-operations.md. */
#ifndef INDEXER_H
#define INDEXER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "imp/embed.h"
#include "imp/envelope.h"
#include "imp/error.h"
#include "imp/pg.h"
#include "imp/retrieval.h"
#include "imp/worker.h"

#define INDEXER_BINARY "imperium-indexer"
#define INDEXER_WORKER "indexer"
#define INDEXER_SOURCE "imperium/indexer"

#define INDEXER_TOPIC_KB "imp.kb.v1"
#define INDEXER_TOPIC_CONTROL "imp.control.v1"
#define INDEXER_TYPE_CHANGED "imp.control.changed.v1"

/* The process: the embedder every build and eval uses (one thread), and defaults. */
typedef struct {
    imp_embedder_t *emb;
    long long eval_k; /* k of hit@k when neither the request nor the tenant says */
} indexer_t;

typedef enum {
    INDEXER_BUILD,
    INDEXER_PROMOTE,
    INDEXER_ROLLBACK,
    INDEXER_EVAL,
} indexer_kind_t;

/* One request being applied, inside the runtime's transaction (app.tenant_id = tenantid). */
typedef struct {
    imp_worker_ctx_t *ctx;
    const imp_envelope_t *ev;
    const indexer_t *ix;
    imp_pg_t *pg;
    indexer_kind_t kind;
    const char *tenant_id;
    const char *command_id; /* the command's operation id: ev->causationid */
    const char *slug;
    const char *actor;
    bool if_changed;   /* build */
    long long version; /* promote, eval */
    long long k;       /* eval: 0 when the request does not say */
} indexer_op_t;

/* What a request came to. failed: it was well formed but could not be applied (error says
 * why); nothing of it was changed. */
typedef struct {
    bool failed;
    char *error;    /* heap; failed only */
    json_t *result; /* owned; "message" is the line the client prints */
} indexer_outcome_t;

/* The runtime's handler (handler.c). */
imp_error_t *indexer_handle(imp_worker_ctx_t *ctx, const imp_envelope_t *ev, void *user);

/* The requests (build.c, versions.c, eval.c). Errors are for the runtime (infra, a retriable
 * embedder failure, a bug); a request that cannot be applied fills a failed outcome. */
imp_error_t *indexer_build(indexer_op_t *op, indexer_outcome_t *out);
imp_error_t *indexer_promote(indexer_op_t *op, indexer_outcome_t *out);
imp_error_t *indexer_rollback(indexer_op_t *op, indexer_outcome_t *out);
imp_error_t *indexer_eval(indexer_op_t *op, indexer_outcome_t *out);

/* ---- versions (versions.c) ---------------------------------------------------------------- */

typedef struct {
    bool exists;
    char id[40];
    long long number;
    char state[16];
} indexer_version_t;

/* The tenant's version by number (exists false when it has none). */
imp_error_t *indexer_version_by_number(indexer_op_t *op, long long number, indexer_version_t *v);

/* ---- evaluation (eval.c) ------------------------------------------------------------------ */

/* The test questions of the tenant run against a version: the JSON the outcome, the client
 * and kb_versions.eval carry: {version, k, questions, hit1, hitk, hit_at_1, hit_at_k,
 * missed: [{question, source?, fragment?, rank, confidence}]}. *report NULL (and a failed
 * outcome) when the version cannot be evaluated (no questions, another embedder). */
imp_error_t *indexer_eval_run(indexer_op_t *op, const indexer_version_t *v, long long k,
                              json_t **report, indexer_outcome_t *out);

/* Store the report in kb_versions.eval. */
imp_error_t *indexer_eval_store(indexer_op_t *op, const indexer_version_t *v, const json_t *report);

/* The tenant's KB settings: kb_min_hit_rate (-1 when unset), kb_eval_k (0 when unset),
 * kb_chunk as JSON text (NULL when unset; heap). */
typedef struct {
    double min_hit_rate;
    long long eval_k;
    char *chunk;
} indexer_settings_t;

imp_error_t *indexer_settings_read(indexer_op_t *op, indexer_settings_t *s);
void indexer_settings_dispose(indexer_settings_t *s);

/* ---- records (records.c) ------------------------------------------------------------------ */

void indexer_fail(indexer_outcome_t *out, json_t *result, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Takes result; adds the message. */
void indexer_succeed(indexer_outcome_t *out, json_t *result, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void indexer_outcome_dispose(indexer_outcome_t *out);

/* {tenant_id, slug}: the start of every result (new reference). */
json_t *indexer_result(const indexer_op_t *op);

/* Upsert the command's operations row (operation_id = the command's id) from out. */
imp_error_t *indexer_record_outcome(indexer_op_t *op, const indexer_outcome_t *out);

/* Append an audit_log row for the command (before/after borrowed, may be NULL). */
imp_error_t *indexer_audit(indexer_op_t *op, const char *action, const json_t *before,
                           const json_t *after);

/* Publish {tenant_id, what: "kb", version} to imp.control.v1 through the outbox. */
imp_error_t *indexer_publish_changed(indexer_op_t *op, long long version);

#endif
