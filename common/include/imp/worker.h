/* The worker runtime: exactly-once effects over at-least-once Kafka.
 *
 * A worker supplies a handler; the runtime owns the protocol (ARCHITECTURE.md §5):
 *
 *   poll → parse the envelope (malformed → dead letter, class poison)
 *        → BEGIN → inbox upsert (already done → skip: a duplicate)
 *        → handler inside the transaction; events it emits go to the outbox table
 *        → COMMIT → publish the outbox rows (acks=all), mark them published
 *        → store the consumed offsets.
 *
 * Several events share one transaction. When a handler fails, the transaction is rolled
 * back and the batch is run again with a savepoint around every event after the ones that
 * succeeded, so one bad event costs one retry of its batch and never re-runs the handler
 * that failed.
 *
 * The class of the handler's error decides (imp/error.h):
 *   infra     - stop consuming (pause every partition), back off, run the same batch again.
 *               Order is kept, nothing is skipped, no offset is stored meanwhile.
 *   retriable - the event goes to imp.retry.<worker>.v1 with attempt + 1 and notbefore =
 *               now + exponential backoff with jitter; past max_attempts it is a dead letter.
 *   poison    - dead letter at once.
 *   fatal     - the process stops (exit status 1) without storing the event's offset.
 * A dead letter is a dead_letters row plus an event on imp.dlq.<worker>.v1, both written in
 * the transaction that also stores the decision in the inbox, so a redelivered copy of the
 * event is not dead-lettered twice.
 *
 * The retry topic is consumed with the input topics. An event whose notbefore lies in the
 * future pauses its partition until then (other partitions go on; nothing spins).
 *
 * Outbox rows left unpublished (a crash between COMMIT and publish, Kafka down) are
 * published by the relay: at start-up, after a failed publish (the worker stops consuming
 * until its backlog is out, so events leave in order), and every relay interval for rows
 * older than the relay grace. Published rows are purged after the outbox retention.
 *
 * Rebalancing: the runtime polls only between batches; on revoke, messages of the revoked
 * partitions that were fetched but not processed are dropped without storing their offsets.
 * SIGTERM/SIGINT: the current batch finishes, offsets are committed, the consumer leaves.
 */
#ifndef IMP_WORKER_H
#define IMP_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imp/config.h"
#include "imp/envelope.h"
#include "imp/error.h"
#include "imp/kafka.h"
#include "imp/pg.h"

typedef struct imp_worker imp_worker_t;
typedef struct imp_worker_ctx imp_worker_ctx_t;

/* Runtime settings every worker reads from its environment (see IMP_WORKER_CONFIG). */
typedef struct {
    char *kafka_brokers;
    char *pg_dsn;
    char *log_level;
    char *group_id;          /* "" → "imperium-<worker>" */
    long long batch_max;     /* events per transaction */
    long long batch_wait_ms; /* how long to wait to fill a batch after the first event */
    long long max_attempts;  /* attempts before a retriable failure is a dead letter */
    long long retry_base_ms; /* backoff of the first retry */
    long long retry_max_ms;  /* backoff cap */
    long long infra_max_ms;  /* cap of the in-place backoff on infra errors */
    long long relay_interval_ms;
    long long relay_grace_ms;
    long long outbox_retention_ms;
    long long inbox_retention_ms;
    long long publish_timeout_ms;
    long long metrics_port; /* 0: no metrics listener */
    char *metrics_host;
    char *consumer_props; /* librdkafka overrides "name=value,…" */
    char *producer_props;
} imp_worker_settings_t;

/* Config table entries for imp_worker_settings_t embedded as member `field` of the
 * binary's settings struct `type`. Put IMP_WORKER_CONFIG(settings_t, rt) in the table. */
#define IMP_WORKER_CONFIG(type, field)                                                             \
    {"IMP_KAFKA_BROKERS",                                                                          \
     IMP_CFG_STRING,                                                                               \
     NULL,                                                                                         \
     0,                                                                                            \
     0,                                                                                            \
     0,                                                                                            \
     "Kafka bootstrap servers (host:port,...)",                                                    \
     offsetof(type, field.kafka_brokers)},                                                         \
        {"IMP_PG_DSN",                                                                             \
         IMP_CFG_STRING,                                                                           \
         NULL,                                                                                     \
         0,                                                                                        \
         0,                                                                                        \
         IMP_CFG_SECRET,                                                                           \
         "Postgres connection string of the application role",                                     \
         offsetof(type, field.pg_dsn)},                                                            \
        {"IMP_LOG_LEVEL",                                                                          \
         IMP_CFG_STRING,                                                                           \
         "info",                                                                                   \
         0,                                                                                        \
         0,                                                                                        \
         0,                                                                                        \
         "debug, info, warn or error",                                                             \
         offsetof(type, field.log_level)},                                                         \
        {"IMP_WORKER_GROUP",                                                                       \
         IMP_CFG_STRING,                                                                           \
         "",                                                                                       \
         0,                                                                                        \
         0,                                                                                        \
         0,                                                                                        \
         "Kafka consumer group (empty: imperium-<worker>)",                                        \
         offsetof(type, field.group_id)},                                                          \
        {"IMP_WORKER_BATCH",                                                                       \
         IMP_CFG_INT,                                                                              \
         "500",                                                                                    \
         1,                                                                                        \
         10000,                                                                                    \
         0,                                                                                        \
         "events per transaction",                                                                 \
         offsetof(type, field.batch_max)},                                                         \
        {"IMP_WORKER_BATCH_WAIT",                                                                  \
         IMP_CFG_DURATION,                                                                         \
         "0",                                                                                      \
         0,                                                                                        \
         1000,                                                                                     \
         0,                                                                                        \
         "how long to wait to fill a batch after its first event (0: what has arrived)",           \
         offsetof(type, field.batch_wait_ms)},                                                     \
        {"IMP_WORKER_MAX_ATTEMPTS",                                                                \
         IMP_CFG_INT,                                                                              \
         "5",                                                                                      \
         1,                                                                                        \
         100,                                                                                      \
         0,                                                                                        \
         "attempts before a retriable failure becomes a dead letter",                              \
         offsetof(type, field.max_attempts)},                                                      \
        {"IMP_WORKER_RETRY_BASE",                                                                  \
         IMP_CFG_DURATION,                                                                         \
         "1s",                                                                                     \
         1,                                                                                        \
         3600000,                                                                                  \
         0,                                                                                        \
         "backoff before the first retry (doubles each attempt, with jitter)",                     \
         offsetof(type, field.retry_base_ms)},                                                     \
        {"IMP_WORKER_RETRY_MAX",                                                                   \
         IMP_CFG_DURATION,                                                                         \
         "5m",                                                                                     \
         1,                                                                                        \
         86400000,                                                                                 \
         0,                                                                                        \
         "backoff cap",                                                                            \
         offsetof(type, field.retry_max_ms)},                                                      \
        {"IMP_WORKER_INFRA_BACKOFF_MAX",                                                           \
         IMP_CFG_DURATION,                                                                         \
         "5s",                                                                                     \
         10,                                                                                       \
         600000,                                                                                   \
         0,                                                                                        \
         "cap of the in-place backoff while Postgres or Kafka is unreachable",                     \
         offsetof(type, field.infra_max_ms)},                                                      \
        {"IMP_WORKER_RELAY_INTERVAL",                                                              \
         IMP_CFG_DURATION,                                                                         \
         "5s",                                                                                     \
         100,                                                                                      \
         3600000,                                                                                  \
         0,                                                                                        \
         "how often the outbox relay looks for unpublished rows",                                  \
         offsetof(type, field.relay_interval_ms)},                                                 \
        {"IMP_WORKER_RELAY_GRACE",                                                                 \
         IMP_CFG_DURATION,                                                                         \
         "10s",                                                                                    \
         0,                                                                                        \
         3600000,                                                                                  \
         0,                                                                                        \
         "age of an unpublished outbox row before the periodic relay takes it",                    \
         offsetof(type, field.relay_grace_ms)},                                                    \
        {"IMP_WORKER_OUTBOX_RETENTION",                                                            \
         IMP_CFG_DURATION,                                                                         \
         "1h",                                                                                     \
         0,                                                                                        \
         604800000,                                                                                \
         0,                                                                                        \
         "how long published outbox rows are kept",                                                \
         offsetof(type, field.outbox_retention_ms)},                                               \
        {"IMP_WORKER_INBOX_RETENTION",                                                             \
         IMP_CFG_DURATION,                                                                         \
         "14d",                                                                                    \
         3600000,                                                                                  \
         31536000000,                                                                              \
         0,                                                                                        \
         "how long the inbox remembers a handled event (longer than any consumed topic keeps it)", \
         offsetof(type, field.inbox_retention_ms)},                                                \
        {"IMP_WORKER_PUBLISH_TIMEOUT",                                                             \
         IMP_CFG_DURATION,                                                                         \
         "10s",                                                                                    \
         100,                                                                                      \
         300000,                                                                                   \
         0,                                                                                        \
         "how long to wait for Kafka to acknowledge published events",                             \
         offsetof(type, field.publish_timeout_ms)},                                                \
        {"IMP_METRICS_PORT",                                                                       \
         IMP_CFG_INT,                                                                              \
         "0",                                                                                      \
         0,                                                                                        \
         65535,                                                                                    \
         0,                                                                                        \
         "port of /livez, /readyz and /metrics (0: none)",                                         \
         offsetof(type, field.metrics_port)},                                                      \
        {"IMP_METRICS_HOST",                                                                       \
         IMP_CFG_STRING,                                                                           \
         "127.0.0.1",                                                                              \
         0,                                                                                        \
         0,                                                                                        \
         0,                                                                                        \
         "address of the metrics listener",                                                        \
         offsetof(type, field.metrics_host)},                                                      \
        {"IMP_KAFKA_CONSUMER_PROPS",                                                               \
         IMP_CFG_STRING,                                                                           \
         "",                                                                                       \
         0,                                                                                        \
         0,                                                                                        \
         0,                                                                                        \
         "librdkafka consumer overrides, name=value,... (e.g. session.timeout.ms=6000)",           \
         offsetof(type, field.consumer_props)},                                                    \
    {                                                                                              \
        "IMP_KAFKA_PRODUCER_PROPS", IMP_CFG_STRING, "", 0, 0, 0,                                   \
            "librdkafka producer overrides, name=value,... (e.g. linger.ms=2)",                    \
            offsetof(type, field.producer_props)                                                   \
    }

/* The handler: called inside the batch's transaction for each new event. Returns NULL on
 * success or an error whose class decides the event's fate. It may use the transaction
 * through imp_worker_ctx_pg and emit events with imp_worker_emit. A handler with effects
 * outside Postgres (an HTTP call) must run with batch_max = 1, make them idempotent, or
 * remember them by message (imp_worker_ctx_topic/partition/offset, as imperium-send does): the
 * runtime runs a successful handler again when a later event of its batch fails or its commit
 * fails. */
typedef imp_error_t *(*imp_worker_handler_t)(imp_worker_ctx_t *ctx, const imp_envelope_t *ev,
                                             void *user);

typedef struct {
    const char *name;          /* "dialog": inbox key, retry/dlq topics, group and source names */
    const char *const *topics; /* input topics; the retry topic is added by the runtime */
    size_t ntopics;
    imp_worker_handler_t handler;
    void *user;
    /* Extra readiness, called from the metrics listener's thread (NULL: none). The runtime is
     * ready when it has started and is not backing off from an infra error. */
    bool (*ready)(void *user, char *reason, size_t cap);
    /* Periodic work, e.g. a scheduler of delayed events (NULL: none). Called from the loop
     * between batches about every tick_ms (0: 100 ms), in a transaction of its own. ctx has
     * no event: imp_worker_ctx_pg starts without a tenant (choose one, or another, with
     * imp_worker_ctx_set_tenant); imp_worker_emit writes to the outbox of this transaction
     * and the events are published after COMMIT, like a handler's. An error rolls the
     * transaction back and the next tick comes at least a second later; fatal stops the
     * worker. Keep one tick short (bound the work it takes): batches wait meanwhile. */
    imp_error_t *(*on_tick)(imp_worker_ctx_t *ctx, void *user);
    long long tick_ms;
    /* Optional: called once per run of a batch, in its transaction, after the inbox has set
     * the duplicates aside and before the handlers, with the events about to be handled, in
     * order (ctx[i] as event i's handler gets it: imp_worker_ctx_pg reads as its tenant; no
     * emits, no writes). For work that gains from being done for the batch together:
     * imperium-send makes its provider calls concurrently here. The handler is still called
     * for every event and decides its outcome, so it must find what prepare did (by message)
     * and do the work itself where prepare skipped it. Not called for the events of a batch
     * run one at a time after a failure (those are handled one by one). */
    void (*prepare)(imp_worker_ctx_t *const *ctx, size_t n, void *user);
} imp_worker_def_t;

/* Create the runtime: connects to Postgres and Kafka, subscribes. */
imp_error_t *imp_worker_new(const imp_worker_def_t *def, const imp_worker_settings_t *settings,
                            imp_worker_t **out);
void imp_worker_free(imp_worker_t *w);

/* Run until imp_worker_stop (or SIGTERM/SIGINT when imp_worker_handle_signals was called).
 * Returns NULL after a clean stop, or the fatal error that stopped it. */
imp_error_t *imp_worker_run(imp_worker_t *w);

/* Ask the loop to stop after the current batch (async-signal-safe). */
void imp_worker_stop(imp_worker_t *w);

/* Install SIGTERM/SIGINT handlers that call imp_worker_stop, and ignore SIGPIPE. */
void imp_worker_handle_signals(imp_worker_t *w);

/* The standard main: config → log → runtime → run. The binary's settings struct embeds
 * imp_worker_settings_t at rt_offset. Returns the process exit status. */
int imp_worker_main(int argc, char **argv, const char *binary, const char *summary,
                    const imp_config_entry_t *table, size_t n, void *settings, size_t rt_offset,
                    imp_worker_def_t *def);

/* Publish unpublished outbox rows (ids in order) now; *published counts them. Used by the
 * runtime and by tools (imperium-dlq) that write outbox rows. older_than_ms: only rows at
 * least that old (0: all). */
imp_error_t *imp_worker_relay_once(imp_pg_t *pg, imp_kafka_producer_t *producer,
                                   long long older_than_ms, int limit, int timeout_ms,
                                   int *published);

/* ---- inside a handler ---------------------------------------------------------------- */

/* The transaction's connection, with app.tenant_id set to the event's tenant (or cleared
 * when the event has none). Borrowed. */
imp_pg_t *imp_worker_ctx_pg(imp_worker_ctx_t *ctx);

/* Emit an event: written to the outbox in this transaction, published after commit.
 * key: the Kafka key (NULL: none). Takes ownership of ev (disposed, even on error). */
imp_error_t *imp_worker_emit(imp_worker_ctx_t *ctx, const char *topic, const char *key,
                             imp_envelope_t *ev);

/* Inside on_tick only: the tenant (a UUID, or NULL for none) that app.tenant_id is set to
 * for the statements that follow. Poison "pg_misuse" in a handler or for a non-UUID. */
imp_error_t *imp_worker_ctx_set_tenant(imp_worker_ctx_t *ctx, const char *tenant_id);

/* Where the event came from (NULL / -1 inside on_tick). */
const char *imp_worker_ctx_topic(const imp_worker_ctx_t *ctx);
/* The event a ctx of prepare or of a handler is about (NULL in on_tick). */
const imp_envelope_t *imp_worker_ctx_event(const imp_worker_ctx_t *ctx);
int32_t imp_worker_ctx_partition(const imp_worker_ctx_t *ctx);
int64_t imp_worker_ctx_offset(const imp_worker_ctx_t *ctx);
/* The worker's name ("dialog"), for deriving sources and operation ids. */
const char *imp_worker_ctx_worker(const imp_worker_ctx_t *ctx);

/* Backoff before retry number `attempt` (1 = first retry): base * 2^(attempt-1), capped,
 * with jitter drawn uniformly from its upper half. Exposed for tests. */
long long imp_worker_backoff_ms(long long base_ms, long long max_ms, int attempt);

#endif
