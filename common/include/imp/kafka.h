/* Kafka producer and consumer wrappers over librdkafka (2.0.2).
 *
 * Producer: acks=all, enable.idempotence=true, linger.ms=1, bounded delivery.timeout.ms.
 * A message is delivered only when its delivery report says PERSISTED; anything else is
 * reported as an error. Delivery reports are served (and on_delivery called) on the thread
 * that calls imp_kafka_producer_poll / _flush / imp_kafka_produce_sync.
 *
 * Consumer: a group member with eager rebalancing (partition.assignment.strategy=range),
 * auto.offset.reset=earliest, enable.auto.commit=true and enable.auto.offset.store=false.
 * Nothing is committed that the application has not stored: store an offset (the offset of
 * the NEXT message to read) once the message's effects are durable; librdkafka commits the
 * stored offsets every auto.commit.interval.ms, on revoke and on close.
 * imp_kafka_consumer_commit_sync forces a commit of what is stored now.
 *
 * Error classes (imp/error.h) for Kafka failures:
 *   infra  - queue full, transport, all brokers down, timed out, not enough replicas,
 *            leader changes, coordinator unavailable, anything librdkafka retries itself
 *   poison - message too large, invalid message/record, invalid partition or argument
 *   fatal  - idempotence fatal errors (rd_kafka_fatal_error), authentication/authorization,
 *            bad configuration
 * Error codes are "kafka_<what>" (kafka_produce, kafka_delivery, kafka_timeout, kafka_config,
 * kafka_consume, kafka_commit, kafka_not_assigned, kafka_fatal, ...); the librdkafka error
 * name (e.g. "_MSG_TIMED_OUT", "NOT_ENOUGH_REPLICAS") is the error's detail.
 *
 * Threading: a producer may be used for produce from several threads; poll/flush/produce_sync
 * from several threads is safe, but a delivery report runs on whichever thread polls it.
 * A consumer belongs to one thread.
 */
#ifndef IMP_KAFKA_H
#define IMP_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "imp/error.h"

/* ---- configuration overrides ---------------------------------------------------------- */

/* One librdkafka property, e.g. {"linger.ms", "2"} or {"compression.type", "lz4"}. */
typedef struct {
    const char *name;
    const char *value;
} imp_kafka_prop_t;

/* A list of overrides applied after the defaults (so they win). Borrowed by the _new
 * functions for the duration of the call only. */
typedef struct {
    const imp_kafka_prop_t *items;
    size_t count;
} imp_kafka_props_t;

/* Parse "name=value,name=value" (as found in an IMP_KAFKA_*_PROPS variable) into props.
 * Whitespace around names and values is trimmed; an empty or NULL text gives zero items.
 * On success release with imp_kafka_props_dispose. Malformed text → fatal "kafka_config". */
imp_error_t *imp_kafka_props_parse(const char *text, imp_kafka_props_t *out);
void imp_kafka_props_dispose(imp_kafka_props_t *props);

/* Map a librdkafka error code to an error class (see the table above). */
imp_err_class_t imp_kafka_err_class(rd_kafka_resp_err_t err);

/* New error of the class imp_kafka_err_class(err): code as given, message
 * "<what>: <rd_kafka_err2str>", detail rd_kafka_err2name(err). */
imp_error_t *imp_kafka_error_new(rd_kafka_resp_err_t err, const char *code, const char *what);

/* ---- producer ------------------------------------------------------------------------- */

typedef struct imp_kafka_producer imp_kafka_producer_t;

/* A header to attach to a produced message. value may be NULL (a null header). */
typedef struct {
    const char *name;
    const void *value;
    size_t value_len;
} imp_kafka_header_t;

#define IMP_KAFKA_PARTITION_ANY (-1) /* partition chosen by key (murmur2_random, as Java) */

/* A message to produce. Everything is copied by librdkafka during the produce call. */
typedef struct {
    const char *topic;
    int32_t partition; /* IMP_KAFKA_PARTITION_ANY or an explicit partition */
    const void *key;   /* may be NULL */
    size_t key_len;
    const void *value; /* may be NULL (a tombstone on a compacted topic) */
    size_t value_len;
    const imp_kafka_header_t *headers; /* may be NULL */
    size_t nheaders;
    int64_t timestamp_ms; /* 0 = now */
    void *opaque;         /* handed back to on_delivery; never dereferenced here */
} imp_kafka_out_t;

/* Delivery report of an async produce. err is NULL when the message is PERSISTED (then
 * partition and offset are set); otherwise err is borrowed (valid during the call only),
 * partition may be -1 and offset is -1. An error whose detail mentions
 * "POSSIBLY_PERSISTED" may have been written anyway: consumers dedupe, so re-publishing is
 * safe. */
typedef void (*imp_kafka_on_delivery_t)(void *opaque_msg, const imp_error_t *err, int32_t partition,
                                        int64_t offset, void *ctx);

/* Defaults: acks=all, enable.idempotence=true, linger.ms=1, delivery.timeout.ms=30000,
 * compression none, socket.nagle.disable=true. Any librdkafka property may be overridden
 * through extra (NULL = none), e.g. {"linger.ms","2"}, {"delivery.timeout.ms","10000"},
 * {"compression.type","lz4"}. brokers is the bootstrap list ("host:port,host:port").
 * Fails (fatal, "kafka_config") on an unknown property or a bad value. */
imp_kafka_producer_t *imp_kafka_producer_new(const char *brokers, const imp_kafka_props_t *extra,
                                             imp_error_t **err);

/* Destroy the handle. Messages still queued are purged WITHOUT delivery reports: call
 * imp_kafka_producer_flush first. NULL is a no-op. */
void imp_kafka_producer_free(imp_kafka_producer_t *p);

/* Register the delivery callback (before the first produce; may be NULL). */
void imp_kafka_producer_set_on_delivery(imp_kafka_producer_t *p, imp_kafka_on_delivery_t cb,
                                        void *ctx);

/* Enqueue one message (async). NULL means queued: its outcome arrives later through
 * on_delivery. An error means it was NOT queued and on_delivery will not be called for it:
 * infra "kafka_queue_full" when the local queue is full (poll, then retry), poison for a
 * message too large or an unknown partition, fatal after an idempotence fatal error. */
imp_error_t *imp_kafka_produce(imp_kafka_producer_t *p, const imp_kafka_out_t *m);

/* Produce one message and wait (serving delivery reports, including other messages') until
 * its report arrives or timeout_ms passes. NULL only when PERSISTED; partition_out and
 * offset_out (each may be NULL) are then set. On timeout returns infra "kafka_timeout"; the
 * message may still be delivered later (its report is then dropped). m->opaque is ignored. */
imp_error_t *imp_kafka_produce_sync(imp_kafka_producer_t *p, const imp_kafka_out_t *m,
                                    int timeout_ms, int32_t *partition_out, int64_t *offset_out);

/* Serve delivery reports and errors for up to timeout_ms (0 = non-blocking). Returns the
 * number of events served. */
int imp_kafka_producer_poll(imp_kafka_producer_t *p, int timeout_ms);

/* Wait until every queued message has its delivery report (serving them). NULL when the
 * queue drained; infra "kafka_timeout" otherwise. */
imp_error_t *imp_kafka_producer_flush(imp_kafka_producer_t *p, int timeout_ms);

/* Messages (plus requests) waiting for delivery reports. */
int imp_kafka_producer_outq_len(const imp_kafka_producer_t *p);

/* The fatal error that disabled this producer (idempotence), or NULL. New reference. A
 * producer with a fatal error must be freed and re-created (the process usually exits). */
imp_error_t *imp_kafka_producer_fatal(imp_kafka_producer_t *p);

/* Check that the cluster answers a metadata request within timeout_ms (readiness probes).
 * NULL when it does; infra otherwise. */
imp_error_t *imp_kafka_producer_ping(imp_kafka_producer_t *p, int timeout_ms);

/* The underlying handle (borrowed), for event-loop bridging, e.g.
 * rd_kafka_queue_io_event_enable(rd_kafka_queue_get_main(rk), fd, "1", 1). Do not set a
 * delivery callback on it or destroy it. Serving its main queue with rd_kafka_poll(rk, 0)
 * is equivalent to imp_kafka_producer_poll. */
rd_kafka_t *imp_kafka_producer_handle(imp_kafka_producer_t *p);

/* ---- consumer ------------------------------------------------------------------------- */

typedef struct imp_kafka_consumer imp_kafka_consumer_t;

/* A partition (and, where it applies, an offset). */
typedef struct {
    const char *topic;
    int32_t partition;
    int64_t offset; /* RD_KAFKA_OFFSET_INVALID (-1001) when not applicable */
} imp_kafka_tp_t;

/* A consumed message. The struct and everything it points to belong to the message and
 * live until imp_kafka_msg_free. key/value point into librdkafka's buffer (no copy). */
typedef struct {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const void *key; /* NULL when the message has no key */
    size_t key_len;
    const void *value; /* NULL for a tombstone */
    size_t value_len;
    int64_t timestamp_ms;              /* -1 when unavailable */
    const imp_kafka_header_t *headers; /* in wire order; NULL when none */
    size_t nheaders;
    void *priv_; /* private */
} imp_kafka_msg_t;

void imp_kafka_msg_free(imp_kafka_msg_t *msg);

/* The last header called name: 0 with value and len set (borrowed) when found, -1 if not. */
int imp_kafka_msg_header(const imp_kafka_msg_t *msg, const char *name, const void **value,
                         size_t *len);

/* Rebalance callbacks, called from inside imp_kafka_consumer_poll.
 * on_assign runs after the partitions are assigned (fetching starts from the committed
 * offset, or earliest); it may pause or seek them. on_revoke runs while the partitions are
 * still assigned, before they are taken away: finish or abandon in-flight work and store
 * offsets only for work whose effects are durable — the wrapper commits what is stored
 * right after on_revoke returns. Lists are borrowed for the call. */
typedef void (*imp_kafka_on_rebalance_t)(imp_kafka_consumer_t *c, const imp_kafka_tp_t *parts,
                                         size_t n, void *ctx);

/* Defaults: group.id as given, partition.assignment.strategy=range (eager),
 * auto.offset.reset=earliest, enable.auto.commit=true, auto.commit.interval.ms=1000,
 * enable.auto.offset.store=false, session.timeout.ms=10000, heartbeat.interval.ms=2000,
 * enable.partition.eof=false, queued.min.messages=1000000 (the 2.0.2 fetcher stalls ~1 s
 * per partition past it), fetch.wait.max.ms=100, socket.nagle.disable=true.
 * Overrides through extra (NULL = none). Subscribes to topics[0..ntopics). The group join
 * happens during the first polls. Fails fatal "kafka_config" on a bad property. */
imp_kafka_consumer_t *imp_kafka_consumer_new(const char *brokers, const char *group_id,
                                             const char *const *topics, size_t ntopics,
                                             const imp_kafka_props_t *extra, imp_error_t **err);

/* Close (if not yet closed) and destroy. NULL is a no-op. */
void imp_kafka_consumer_free(imp_kafka_consumer_t *c);

/* Register rebalance callbacks (either may be NULL); call before the first poll. */
void imp_kafka_consumer_set_rebalance(imp_kafka_consumer_t *c, imp_kafka_on_rebalance_t on_assign,
                                      imp_kafka_on_rebalance_t on_revoke, void *ctx);

/* Wait up to timeout_ms for one message. Returns NULL and sets *out to a message (free it
 * with imp_kafka_msg_free) or to NULL when none arrived. Consumer errors (all brokers down,
 * a failed fetch) are logged and returned with *out = NULL: infra or poison errors are
 * informational (the consumer keeps going by itself; keep polling, maybe back off); a fatal
 * error means the consumer is unusable. Rebalance callbacks run inside this call. */
imp_error_t *imp_kafka_consumer_poll(imp_kafka_consumer_t *c, int timeout_ms,
                                     imp_kafka_msg_t **out);

/* Store offset_of_next (the offset of the next message to consume, i.e. last done + 1) for
 * the next commit. A partition not (or no longer) assigned gives infra "kafka_not_assigned":
 * the offset was not stored, which is right after a revoke. */
imp_error_t *imp_kafka_consumer_store_offset(imp_kafka_consumer_t *c, const char *topic,
                                             int32_t partition, int64_t offset_of_next);

/* Store msg->offset + 1 for msg's partition. */
imp_error_t *imp_kafka_consumer_store_msg(imp_kafka_consumer_t *c, const imp_kafka_msg_t *msg);

/* Commit the stored offsets now and wait for the answer. Nothing stored since the last
 * commit is success. */
imp_error_t *imp_kafka_consumer_commit_sync(imp_kafka_consumer_t *c);

/* Stop / restart fetching one partition. Messages already fetched for a paused partition
 * may still be returned by poll: to retry in place, pause and then seek to the offset to
 * re-read (which discards whatever was prefetched). */
imp_error_t *imp_kafka_consumer_pause(imp_kafka_consumer_t *c, const char *topic,
                                      int32_t partition);
imp_error_t *imp_kafka_consumer_resume(imp_kafka_consumer_t *c, const char *topic,
                                       int32_t partition);
/* The same for every currently assigned partition. */
imp_error_t *imp_kafka_consumer_pause_all(imp_kafka_consumer_t *c);
imp_error_t *imp_kafka_consumer_resume_all(imp_kafka_consumer_t *c);

/* Make the next message returned for the (assigned) partition be the one at offset; works on
 * paused partitions too (reading restarts there on resume). Waits up to timeout_ms. */
imp_error_t *imp_kafka_consumer_seek(imp_kafka_consumer_t *c, const char *topic, int32_t partition,
                                     int64_t offset, int timeout_ms);

/* The current assignment: *out is a new array of *n entries (offset = position, i.e. next
 * offset poll will return, or RD_KAFKA_OFFSET_INVALID); free with imp_kafka_tp_list_free. */
imp_error_t *imp_kafka_consumer_assignment(imp_kafka_consumer_t *c, imp_kafka_tp_t **out,
                                           size_t *n);
void imp_kafka_tp_list_free(imp_kafka_tp_t *list, size_t n);

/* Consumer lag of one assigned partition. */
typedef struct {
    char *topic;
    int32_t partition;
    int64_t committed; /* committed offset in the group, -1 when none */
    int64_t position;  /* next offset poll will return, -1 when unknown */
    int64_t low;       /* low watermark (first retained offset), -1 when unknown */
    int64_t high;      /* high watermark (offset of the next message produced), -1 when unknown */
    int64_t lag;       /* high - committed (when nothing is committed: high - low, else high -
                          position); -1 when unknown */
} imp_kafka_lag_t;

/* Lag of every assigned partition: the group's committed offsets from the coordinator
 * (blocking, bounded by timeout_ms), and the watermarks of the consumer's last fetch of each
 * partition (no request: unknown before the first fetch; librdkafka knows the low watermark
 * only with statistics.interval.ms set). *out is a new array of *n entries; free with
 * imp_kafka_lag_free. */
imp_error_t *imp_kafka_consumer_lag(imp_kafka_consumer_t *c, int timeout_ms, imp_kafka_lag_t **out,
                                    size_t *n);
void imp_kafka_lag_free(imp_kafka_lag_t *lag, size_t n);

/* Leave the group cleanly: revoke (on_revoke runs), commit the stored offsets, leave.
 * Idempotent. After close only imp_kafka_consumer_free may be called. */
imp_error_t *imp_kafka_consumer_close(imp_kafka_consumer_t *c);

/* The underlying handle (borrowed); do not destroy it or change its callbacks. */
rd_kafka_t *imp_kafka_consumer_handle(imp_kafka_consumer_t *c);

#endif
