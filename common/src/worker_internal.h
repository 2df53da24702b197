/* Internals of the worker runtime shared by worker.c, worker_batch.c and worker_outbox.c. */
#ifndef IMP_WORKER_INTERNAL_H
#define IMP_WORKER_INTERNAL_H

#include "imp/kafka.h"
#include "imp/metrics.h"
#include "imp/pg.h"
#include "imp/worker.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

/* Kafka headers that carry where an event was first consumed from, through its retries, so
 * a dead letter names the original topic and a replay goes back there. */
#define WORKER_HDR_ORIGIN_TOPIC "imp-origin-topic"
#define WORKER_HDR_ORIGIN_PARTITION "imp-origin-partition"
#define WORKER_HDR_ORIGIN_OFFSET "imp-origin-offset"
/* On the DLQ topic, for events that could not be parsed (they travel as raw bytes). */
#define WORKER_HDR_DLQ_REASON "imp-dlq-reason"
#define WORKER_HDR_DLQ_CLASS "imp-dlq-class"
#define WORKER_HDR_DLQ_ENCODING "imp-dlq-encoding"

/* One event to publish (a row of the outbox). */
typedef struct {
    char *topic;
    char *key;     /* NULL: none */
    char *payload; /* the serialized envelope, or the raw bytes of an unparsable dead letter */
    size_t payload_len;
    char *headers; /* JSON object text, NULL: none */
    char tenant[64];
    char opid[40];
    long long id; /* outbox id once inserted */
} worker_out_t;

typedef struct {
    worker_out_t *v;
    size_t n, cap;
} worker_outs_t;

enum item_state {
    ITEM_NEW,    /* not looked at in this transaction yet */
    ITEM_DUP,    /* the inbox says it was already handled */
    ITEM_DONE,   /* handled in this transaction */
    ITEM_FAILED, /* the handler failed (fail holds why); its fate is recorded */
};

/* A consumed message waiting in the queue, with what the runtime learnt about it. */
typedef struct {
    imp_kafka_msg_t *msg;
    bool parsed;
    imp_envelope_t ev; /* when parsed */
    imp_error_t *bad;  /* why it did not parse (poison) */
    imp_error_t *fail; /* a handler failure that decided its fate (kept across reruns) */
    enum item_state state;
    worker_outs_t outs; /* emitted by its handler (or its retry / dead letter) */
    char origin_topic[256];
    int32_t origin_partition;
    int64_t origin_offset;
} worker_item_t;

/* A retry partition paused until its head event's notbefore. */
typedef struct {
    int32_t partition;
    int64_t offset;
    int64_t resume_at_ms;
} worker_wait_t;

struct imp_worker_ctx {
    imp_worker_t *w;
    worker_item_t *item;
};

struct imp_worker {
    imp_worker_def_t def;
    imp_worker_settings_t s;
    char *name;
    char *source;      /* "imperium/<name>" */
    char *retry_topic; /* imp.retry.<name>.v1 */
    char *dlq_topic;   /* imp.dlq.<name>.v1 */
    imp_pg_t *pg;
    imp_kafka_producer_t *producer;
    imp_kafka_consumer_t *consumer;
    imp_metrics_server_t *metrics_server;

    /* The queue of consumed messages, oldest first: [head, tail) of items. */
    worker_item_t *q;
    size_t qhead, qtail, qcap;

    worker_wait_t *waits;
    size_t nwaits, capwaits;

    char tx_tenant[64]; /* app.tenant_id as set in the open transaction */
    bool backlog;       /* a publish failed: drain the outbox before consuming on */
    long long *acked;   /* outbox ids Kafka acknowledged, not yet marked published */
    size_t nacked, capacked;
    int inflight; /* events produced whose delivery report is still due */
    int64_t next_relay_ms;
    int64_t next_purge_ms;
    int64_t next_tick_ms;
    /* The consumer-lag gauges are refreshed by a thread of their own: reading the watermarks
     * is a broker round trip per partition, which the loop must not wait for. */
    pthread_t lag_thread;
    bool lag_running;
    pthread_mutex_t lag_mu;
    pthread_cond_t lag_cv;
    bool lag_stop;
    volatile sig_atomic_t stopping;
    atomic_bool started;
    atomic_bool degraded; /* backing off from an infra error */

    /* Metrics. */
    imp_metrics_counter_t *m_consumed, *m_processed, *m_duplicates, *m_retried, *m_dead, *m_infra,
        *m_published, *m_publish_failed, *m_batches;
    imp_metrics_histogram_t *m_latency, *m_batch_seconds;
};

/* worker_batch.c: run queue items [0, n) through the protocol. NULL when committed; an
 * infra or fatal error otherwise (nothing committed). */
imp_error_t *worker_process_batch(imp_worker_t *w, worker_item_t *items, size_t n);
void worker_item_reset(worker_item_t *it);
/* worker_batch.c: run def.on_tick in a transaction of its own and publish what it emitted. */
imp_error_t *worker_run_tick(imp_worker_t *w);
void worker_item_dispose(worker_item_t *it);

/* worker_outbox.c */
void worker_outs_push(worker_outs_t *o, const char *topic, const char *key, const char *payload,
                      size_t payload_len, const char *headers, const char *tenant,
                      const char *opid);
void worker_outs_clear(worker_outs_t *o);
/* Commit the batch's transaction in one round trip: the handlers' deferred statements, every
 * out of items[0..n) into the outbox (one statement, setting their ids), the published mark
 * of the rows Kafka has acknowledged since the last mark, and COMMIT. On error nothing is
 * committed and the marks wait for the next commit or settle; imp_pg_error_deferred tells a
 * handler's deferred statement from the runtime's own. */
imp_error_t *worker_outbox_commit(imp_worker_t *w, worker_item_t *items, size_t n);
/* Route the producer's delivery reports to the runtime (again after a relay ran). */
void worker_outbox_attach(imp_worker_t *w);
/* Produce the inserted outs of items[0..n) without waiting; reports arrive through
 * worker_outbox_settle. A failure sets w->backlog (the relay then publishes in order). */
void worker_outbox_publish(imp_worker_t *w, worker_item_t *items, size_t n);
/* Serve delivery reports (waiting up to wait_ms for all of them; 0: only what is there) and
 * mark the acknowledged rows published, in a statement of its own when mark is true or the
 * marks have piled up; otherwise they ride with the next batch's COMMIT. */
void worker_outbox_settle(imp_worker_t *w, int wait_ms, bool mark);
/* Drain unpublished rows (all ages); NULL when the outbox is empty. */
imp_error_t *worker_outbox_drain(imp_worker_t *w);
/* The periodic relay and purge. */
void worker_outbox_tick(imp_worker_t *w, int64_t now_ms);

/* A text[] / jsonb[] / uuid[] array literal builder for unnest() parameters. */
typedef struct {
    char *p;
    size_t len, cap;
    size_t count;
} worker_arr_t;
void worker_arr_init(worker_arr_t *a);
void worker_arr_add(worker_arr_t *a, const char *v, size_t len); /* v NULL → NULL element */
const char *worker_arr_finish(worker_arr_t *a);
void worker_arr_dispose(worker_arr_t *a);

bool worker_is_uuid(const char *s);
int64_t worker_now_ms(void);

#endif
