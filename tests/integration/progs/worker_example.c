/* The example worker the runtime tests drive: consumes imp.test.v1, records one effect row
 * per handled event, and fails on demand.
 *
 * Effects go to example_effects (created by the test), without a unique constraint, so a
 * handler that ran twice for one event shows up as two rows. Failures:
 *   data.fail = "poison" | "retriable"         fail that way on every attempt
 *   IMP_EXAMPLE_RETRIABLE_PCT=P                 P% of events (by operation id) fail
 *                                               retriably while IMP_EXAMPLE_FAULT_FILE exists;
 *                                               half of them recover on their second attempt
 *   IMP_EXAMPLE_EMIT_TOPIC=T                    emit one derived event per event to T
 *   IMP_EXAMPLE_SLEEP_US=N                      sleep N µs per event (makes kill tests bite)
 *   IMP_EXAMPLE_NOOP=1                          no effect row (benchmarks of the runtime alone)
 *   IMP_EXAMPLE_DEFERRED=1                      write the effect row with imp_pg_exec_deferred;
 *                                               data.fail = "deferred_poison" then makes that
 *                                               statement fail in Postgres (NULL seq: 23502)
 *   IMP_EXAMPLE_READ=1                          read before writing, as most handlers do: the
 *                                               previous event's deferred write goes out with
 *                                               this read, and its failure is returned here
 */
#include "imp/log.h"
#include "imp/mem.h"
#include "imp/opid.h"
#include "imp/worker.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    imp_worker_settings_t rt;
    long long retriable_pct;
    char *fault_file;
    char *emit_topic;
    long long sleep_us;
    bool noop;
    bool deferred;
    bool read;
    char *topic;
} settings_t;

static const imp_config_entry_t config_table[] = {
    IMP_WORKER_CONFIG(settings_t, rt),
    {"IMP_EXAMPLE_RETRIABLE_PCT", IMP_CFG_INT, "0", 0, 100, 0,
     "percent of events that fail retriably while the fault file exists",
     offsetof(settings_t, retriable_pct)},
    {"IMP_EXAMPLE_FAULT_FILE", IMP_CFG_STRING, "", 0, 0, 0,
     "while this file exists the retriable faults are on", offsetof(settings_t, fault_file)},
    {"IMP_EXAMPLE_EMIT_TOPIC", IMP_CFG_STRING, "", 0, 0, 0,
     "emit one derived event per event to this topic (empty: none)",
     offsetof(settings_t, emit_topic)},
    {"IMP_EXAMPLE_SLEEP_US", IMP_CFG_INT, "0", 0, 1000000, 0, "sleep per event",
     offsetof(settings_t, sleep_us)},
    {"IMP_EXAMPLE_NOOP", IMP_CFG_BOOL, "false", 0, 0, 0, "record no effect row",
     offsetof(settings_t, noop)},
    {"IMP_EXAMPLE_DEFERRED", IMP_CFG_BOOL, "false", 0, 0, 0,
     "write the effect row as a deferred statement", offsetof(settings_t, deferred)},
    {"IMP_EXAMPLE_READ", IMP_CFG_BOOL, "false", 0, 0, 0, "read the event's effect rows first",
     offsetof(settings_t, read)},
    {"IMP_EXAMPLE_TOPIC", IMP_CFG_STRING, "imp.test.v1", 0, 0, 0, "the input topic",
     offsetof(settings_t, topic)},
};

static settings_t settings;

static unsigned id_hash(const char *id)
{
    unsigned h = 2166136261u;
    for (const char *c = id; *c; c++)
        h = (h ^ (unsigned char)*c) * 16777619u;
    return h;
}

static imp_error_t *injected_failure(const imp_envelope_t *ev)
{
    const char *fail = json_string_value(json_object_get(ev->data, "fail"));
    if (fail != NULL && strcmp(fail, "poison") == 0)
        return imp_error_new(IMP_ERR_POISON, "example_poison", "event asked to be poison");
    if (fail != NULL && strcmp(fail, "retriable") == 0)
        return imp_error_new(IMP_ERR_RETRIABLE, "example_retriable", "event asked to fail");
    if (settings.retriable_pct == 0 || settings.fault_file[0] == '\0' ||
        access(settings.fault_file, F_OK) != 0)
        return NULL;
    unsigned h = id_hash(ev->id);
    if (h % 100 >= (unsigned)settings.retriable_pct)
        return NULL;
    if ((h / 100) % 2 == 0 && ev->attempt >= 1)
        return NULL; /* the transient half recovers on its retry */
    return imp_error_new(IMP_ERR_RETRIABLE, "example_fault", "injected fault (attempt %d)",
                         ev->attempt);
}

static imp_error_t *record_effect(imp_worker_ctx_t *ctx, const imp_envelope_t *ev)
{
    char seq[32], att[16];
    snprintf(seq, sizeof(seq), "%lld",
             (long long)json_integer_value(json_object_get(ev->data, "seq")));
    snprintf(att, sizeof(att), "%d", ev->attempt);
    const char *params[] = {ev->id, seq, att, ev->tenantid[0] ? ev->tenantid : NULL};
    if (settings.read) {
        imp_error_t *err = imp_pg_exec_cached(
            imp_worker_ctx_pg(ctx), "SELECT count(*) FROM example_effects WHERE operation_id = $1",
            1, params, NULL);
        if (err != NULL)
            return err;
    }
    const char *sql = "INSERT INTO example_effects (operation_id, seq, attempt, tenant) "
                      "VALUES ($1, $2, $3, $4)";
    if (!settings.deferred)
        return imp_pg_exec_cached(imp_worker_ctx_pg(ctx), sql, 4, params, NULL);
    const char *fail = json_string_value(json_object_get(ev->data, "fail"));
    if (fail != NULL && strcmp(fail, "deferred_poison") == 0)
        params[1] = NULL; /* seq is NOT NULL: the insert fails when it reaches Postgres */
    return imp_pg_exec_deferred(imp_worker_ctx_pg(ctx), sql, 4, params);
}

static imp_error_t *emit_derived(imp_worker_ctx_t *ctx, const imp_envelope_t *ev)
{
    char id[IMP_UUID_STR_SIZE];
    imp_error_t *err = imp_opid_derive(ev->id, "example.out", id);
    if (err != NULL)
        return err;
    imp_envelope_t out;
    err = imp_envelope_derive(&out, ev, id, "imperium/example", "imp.test.v1",
                              json_deep_copy(ev->data));
    if (err != NULL)
        return err;
    return imp_worker_emit(ctx, settings.emit_topic, ev->subject, &out);
}

static imp_error_t *handle(imp_worker_ctx_t *ctx, const imp_envelope_t *ev, void *user)
{
    (void)user;
    if (settings.sleep_us > 0)
        usleep((useconds_t)settings.sleep_us);
    imp_error_t *err = injected_failure(ev);
    if (err == NULL && !settings.noop)
        err = record_effect(ctx, ev);
    if (err == NULL && settings.emit_topic[0] != '\0')
        err = emit_derived(ctx, ev);
    return err;
}

int main(int argc, char **argv)
{
    /* The input topic is needed before imp_worker_main loads the settings (IMP_EXAMPLE_TOPIC
     * is in the table for --help and validation). */
    const char *topics[1];
    imp_worker_def_t def = {
        .name = "example",
        .topics = topics,
        .ntopics = 1,
        .handler = handle,
    };
    topics[0] = getenv("IMP_EXAMPLE_TOPIC") ? getenv("IMP_EXAMPLE_TOPIC") : "imp.test.v1";
    return imp_worker_main(argc, argv, "imperium-example", "The runtime tests' example worker.",
                           config_table, IMP_ARRAY_LEN(config_table), &settings,
                           offsetof(settings_t, rt), &def);
}
