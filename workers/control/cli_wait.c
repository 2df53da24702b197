/* Waiting for a command's outcome: poll operations (under the command's tenant) and
 * dead_letters until one of them says what became of it, print it, and show the secrets the
 * command generated, once. */
#include "control.h"

#include "imp/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SQL_OUTCOME                                                                                \
    "SELECT status, coalesce(error, result->>'message', ''), secrets_enc, result::text "           \
    "FROM operations WHERE operation_id = $1"
#define SQL_DEAD_LETTER                                                                            \
    "SELECT reason FROM dead_letters WHERE worker = '" CONTROL_WORKER "' "                         \
    "AND operation_id = $1 AND replayed_at IS NULL ORDER BY id DESC LIMIT 1"
/* The dead letter of a command forwarded to another worker (under a derived id). */
#define SQL_DEAD_LETTER_OF                                                                         \
    "SELECT reason FROM dead_letters WHERE worker = $2 AND operation_id = $1 "                     \
    "AND replayed_at IS NULL ORDER BY id DESC LIMIT 1"
/* Done by the worker, yet no outcome under this tenant: the id was used by another command. */
#define SQL_USED_ELSEWHERE                                                                         \
    "SELECT coalesce(tenant_id::text, 'none') FROM inbox WHERE worker = '" CONTROL_WORKER "' "     \
    "AND operation_id = $1 AND state = 'done'"
#define SQL_FORGET_SECRETS                                                                         \
    "UPDATE operations SET secrets_enc = NULL, updated_at = now() WHERE operation_id = $1"

#define POLL_MIN_MS 100
#define POLL_MAX_MS 500

typedef struct {
    char *status; /* succeeded | failed | rejected; NULL while none is known */
    char *message;
    char *secrets_enc;
    char *result; /* operations.result as JSON text, or NULL */
    bool pending; /* an operations row says pending: another worker finishes it */
} seen_t;

static void seen_dispose(seen_t *seen)
{
    free(seen->status);
    free(seen->message);
    free(seen->secrets_enc);
    free(seen->result);
    memset(seen, 0, sizeof(*seen));
}

static long long monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *dup_value(const imp_pg_result_t *res, int col)
{
    const char *v = imp_pg_result_value(res, 0, col);
    return v ? imp_strdup(v) : NULL;
}

static imp_error_t *look_in(imp_pg_t *pg, const char *sql, const char *opid, imp_pg_result_t **res)
{
    const char *params[] = {opid};
    return imp_pg_exec_cached(pg, sql, 1, params, res);
}

/* A dead letter of the forwarded command ends the wait too. */
static imp_error_t *look_forwarded(imp_pg_t *pg, const cli_wait_opts_t *o, seen_t *seen)
{
    if (o == NULL || o->worker == NULL)
        return NULL;
    imp_pg_result_t *res = NULL;
    const char *params[] = {o->operation_id, o->worker};
    imp_error_t *err = imp_pg_exec_cached(pg, SQL_DEAD_LETTER_OF, 2, params, &res);
    if (err == NULL && imp_pg_result_rows(res) == 1) {
        seen->status = imp_strdup("rejected");
        seen->message = imp_asprintf("%s: %s", o->finisher ? o->finisher : o->worker,
                                     imp_pg_result_value(res, 0, 0));
    }
    imp_pg_result_free(res);
    return err;
}

/* One look: the outcome, else a dead letter. One snapshot for all of it: otherwise the
 * worker's commit can land between two statements, and its inbox row be seen without the
 * outcome committed with it ("already used by another command"). */
static imp_error_t *look(imp_pg_t *pg, const char *tenant_id, const char *opid,
                         const cli_wait_opts_t *o, seen_t *seen)
{
    imp_pg_result_t *res = NULL;
    imp_error_t *err = imp_pg_tx_begin_with(pg, "ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    if (err == NULL)
        err = imp_pg_set_tenant(pg, tenant_id);
    if (err == NULL)
        err = look_in(pg, SQL_OUTCOME, opid, &res);
    if (err == NULL && imp_pg_result_rows(res) == 1 &&
        strcmp(imp_pg_result_value(res, 0, 0), "pending") != 0) {
        seen->status = dup_value(res, 0);
        seen->message = dup_value(res, 1);
        seen->secrets_enc = dup_value(res, 2);
        seen->result = dup_value(res, 3);
    } else if (err == NULL && imp_pg_result_rows(res) == 1) {
        seen->pending = true;
    }
    imp_pg_result_free(res);
    res = NULL;
    if (err == NULL && seen->status == NULL)
        err = look_in(pg, SQL_DEAD_LETTER, opid, &res);
    if (err == NULL && seen->status == NULL && imp_pg_result_rows(res) == 1) {
        seen->status = imp_strdup("rejected");
        seen->message = dup_value(res, 0);
    }
    imp_pg_result_free(res);
    res = NULL;
    if (err == NULL && seen->status == NULL)
        err = look_forwarded(pg, o, seen);
    if (err == NULL && seen->status == NULL && !seen->pending)
        err = look_in(pg, SQL_USED_ELSEWHERE, opid, &res);
    if (err == NULL && res != NULL && seen->status == NULL && imp_pg_result_rows(res) == 1) {
        seen->status = imp_strdup("rejected");
        seen->message = imp_asprintf("operation id %s was already used by another command "
                                     "(tenant %s): use a new one",
                                     opid, imp_pg_result_value(res, 0, 0));
    }
    imp_pg_result_free(res);
    if (err == NULL)
        err = imp_pg_tx_commit(pg);
    else
        imp_pg_tx_rollback(pg);
    return err;
}

static imp_error_t *forget_secrets(imp_pg_t *pg, const char *tenant_id, const char *opid)
{
    imp_error_t *err = imp_pg_tx_begin(pg);
    if (err == NULL)
        err = imp_pg_set_tenant(pg, tenant_id);
    if (err == NULL)
        err = look_in(pg, SQL_FORGET_SECRETS, opid, NULL);
    if (err == NULL)
        return imp_pg_tx_commit(pg);
    imp_pg_tx_rollback(pg);
    return err;
}

/* Print the generated secrets, then drop them from operations: they are shown once. */
static void show_generated(imp_pg_t *pg, const cli_settings_t *s, const char *tenant_id,
                           const char *opid, const char *token)
{
    if (!s->have_key) {
        fprintf(stderr,
                "%s: secrets were generated; set IMP_SECRET_KEY and run the same command with "
                "--operation-id %s to see them\n",
                CONTROL_BINARY, opid);
        return;
    }
    char aad[CONTROL_AAD_MAX];
    control_aad_operation(tenant_id, opid, aad);
    json_t *secrets = NULL;
    imp_error_t *err = control_open_json(s->key, token, aad, &secrets);
    if (err != NULL) {
        cli_report("could not open the generated secrets", err);
        imp_error_free(err);
        return;
    }
    fprintf(stderr,
            "%s: generated secrets follow; they are shown this once: configure them at "
            "the provider now\n",
            CONTROL_BINARY);
    const char *name;
    json_t *v;
    json_object_foreach(secrets, name, v)
    {
        printf("secret %s=%s\n", name, json_string_value(v));
    }
    json_decref(secrets);
    if (fflush(stdout) != 0 || ferror(stdout))
        return;
    err = forget_secrets(pg, tenant_id, opid);
    if (err != NULL) {
        cli_report("could not drop the generated secrets from operations", err);
        imp_error_free(err);
    }
}

static int report(imp_pg_t *pg, const cli_settings_t *s, const char *tenant_id, const char *opid,
                  const seen_t *seen, const cli_wait_opts_t *o)
{
    printf("operation %s: %s: %s\n", opid, seen->status, seen->message);
    if (o != NULL && o->print != NULL) {
        json_t *result = seen->result ? json_loads(seen->result, 0, NULL) : NULL;
        o->print(result, seen->status, o->arg);
        json_decref(result);
    }
    fflush(stdout);
    if (seen->secrets_enc != NULL)
        show_generated(pg, s, tenant_id, opid, seen->secrets_enc);
    fflush(stdout);
    return strcmp(seen->status, "succeeded") == 0 ? CONTROL_EXIT_OK : CONTROL_EXIT_FAILED;
}

int cli_wait(imp_pg_t *pg, const cli_settings_t *s, const char *tenant_id, const char *operation_id,
             long long timeout_ms)
{
    return cli_wait_opts(pg, s, tenant_id, operation_id, timeout_ms, NULL);
}

int cli_wait_opts(imp_pg_t *pg, const cli_settings_t *s, const char *tenant_id,
                  const char *operation_id, long long timeout_ms, const cli_wait_opts_t *o)
{
    long long deadline = monotonic_ms() + timeout_ms;
    int pause_ms = POLL_MIN_MS;
    imp_error_t *last = NULL;
    bool pending = false;
    for (;;) {
        seen_t seen = {0};
        imp_error_t *err = look(pg, tenant_id, operation_id, o, &seen);
        if (err == NULL && seen.status != NULL) {
            int rc = report(pg, s, tenant_id, operation_id, &seen, o);
            seen_dispose(&seen);
            imp_error_free(last);
            return rc;
        }
        pending = pending || seen.pending;
        seen_dispose(&seen);
        if (err != NULL) {
            imp_error_free(last);
            last = err;
        }
        if (monotonic_ms() >= deadline)
            break;
        usleep((useconds_t)pause_ms * 1000);
        pause_ms = pause_ms * 2 > POLL_MAX_MS ? POLL_MAX_MS : pause_ms * 2;
    }
    if (last != NULL) {
        cli_report("reading the outcome", last);
        imp_error_free(last);
    }
    if (pending)
        fprintf(stderr,
                "%s: no outcome for operation %s within %lld ms: imperium-control accepted it "
                "and %s is still working on it; wait again with --operation-id %s\n",
                CONTROL_BINARY, operation_id, timeout_ms,
                o != NULL && o->finisher != NULL ? o->finisher : "another worker", operation_id);
    else
        fprintf(stderr,
                "%s: no outcome for operation %s within %lld ms: the command is in %s and takes "
                "effect when imperium-control consumes it; wait again with --operation-id %s\n",
                CONTROL_BINARY, operation_id, timeout_ms, CONTROL_TOPIC_COMMANDS, operation_id);
    printf("operation %s: %s\n", operation_id, pending ? "pending" : "unknown");
    return CONTROL_EXIT_UNKNOWN;
}
