/* imperium-ingress: the parts of the server and how they meet (internal to this binary).
 *
 *   main.c       settings table, start-up, supervision (producer pings), shutdown
 *   server.c     h2o: one event loop, listener (SO_REUSEPORT) and producer per thread; routes
 *   webhook.c    tenant webhooks: verify → rate limit → normalize → envelopes → produce;
 *                Meta's GET handshake
 *   ops.c        the operator's Telegram bot webhook → imp.ops.v1
 *   produce.c    per-thread producer bridged into the loop; tickets that answer a request
 *                once every delivery report is in
 *   directory.c  the tenant directory read from imp.tenants.v1 on a thread of its own
 *   ratelimit.c  per-tenant token buckets
 *   problem.c    RFC 9457 answers
 *   stats.c      the binary's metrics
 *
 * Threads: the loop threads serve requests and own everything reachable from their
 * ing_thread_t; the directory thread writes the directory; the main thread pings the
 * producers. What crosses threads: tenants (refcounted, immutable but for each thread's own
 * HMAC slots), rate-limit buckets (locked), metrics (atomic), readiness flags (atomic). */
#ifndef ING_INGRESS_H
#define ING_INGRESS_H

#define H2O_USE_LIBUV 0

#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <h2o.h>

#include "imp/crypto.h"
#include "imp/error.h"
#include "imp/kafka.h"
#include "imp/opid.h"
#include "imp/trace.h"
#include "ingress_core.h"

#define ING_SOURCE "imperium/ingress"
#define ING_TOPIC_INBOUND "imp.inbound.v1"
#define ING_TOPIC_OPS "imp.ops.v1"
#define ING_TOPIC_TENANTS "imp.tenants.v1"
#define ING_TYPE_OPS_UPDATE "imp.ops.update.v1"
#define ING_TYPE_TENANT_SNAPSHOT "imp.tenant.snapshot.v1"
/* The tenantid of platform events (the operator's bot): the nil UUID. It passes the
 * envelope's tenantid rule, parses as a UUID wherever one is expected, and no tenant can
 * have it (tenant ids are random UUIDs). */
#define ING_PLATFORM_TENANT "00000000-0000-0000-0000-000000000000"
#define ING_MAX_THREADS 64

/* ---- settings (main.c) -------------------------------------------------------------------- */

typedef struct {
    char *brokers;
    char *listen;
    long long threads;
    long long max_body;
    char *secret_key;
    long long ack_timeout_ms;
    double rate;
    long long burst;
    char *ops_secret;
    long long sig_tolerance_ms;
    char *log_level;
    char *producer_props;
    char *consumer_props;
} ing_settings_t;

typedef struct ing_directory ing_directory_t;
typedef struct ing_ratelimit ing_ratelimit_t;
typedef struct ing_server ing_server_t;
typedef struct ing_producer ing_producer_t;

/* Everything the loops share, built by main before the server starts. */
typedef struct {
    const ing_settings_t *settings;
    imp_kafka_props_t producer_props;
    imp_kafka_props_t consumer_props;
    ing_directory_t *directory;
    ing_ratelimit_t *ratelimit;
    int tolerance_s;
} ing_app_t;

/* ---- routes and metrics (stats.c) --------------------------------------------------------- */

/* The first four follow ing_channel_t, so a channel is its own route. */
typedef enum {
    ING_ROUTE_GENERIC,
    ING_ROUTE_CHATFLOW,
    ING_ROUTE_WHATSAPP,
    ING_ROUTE_TELEGRAM,
    ING_ROUTE_HANDSHAKE,
    ING_ROUTE_OPS,
    ING_ROUTE_LIVEZ,
    ING_ROUTE_READYZ,
    ING_ROUTE_METRICS,
    ING_ROUTE_OTHER,
    ING_ROUTE_COUNT
} ing_route_t;

/* Register every metric (once, before the loops start). */
void ing_stats_init(ing_directory_t *dir);
/* One answered request. */
void ing_stats_request(ing_route_t route, int status);
/* A request whose answer waits for delivery reports: +1 when it starts, -1 when answered. */
void ing_stats_waiting(int delta);
/* Time from the request's arrival to its answer after produce; persisted or not. */
void ing_stats_ack(double seconds, bool persisted);
/* A produce that failed: "queue_full", "produce", "delivery" or "timeout". */
void ing_stats_produce_error(const char *reason);

/* ---- per-request facts (webhook.c, ops.c, problem.c, produce.c) ----------------------------- */

typedef struct {
    ing_route_t route;
    imp_trace_t trace; /* this request's span: a child of the caller's, or a new trace */
    char traceparent[IMP_TRACEPARENT_LEN + 1];
    uint64_t start_ns; /* CLOCK_MONOTONIC at arrival */
} ing_reqinfo_t;

/* Fill info for req: route, trace from a valid traceparent header (else a new one). */
void ing_reqinfo_init(ing_reqinfo_t *info, h2o_req_t *req, ing_route_t route);

uint64_t ing_now_ns(void);

/* ing_header_fn over an h2o_req_t (ctx): the first header called name (lower case). */
const char *ing_req_header(void *ctx, const char *name, size_t *len);

/* ---- the loop threads (server.c) ----------------------------------------------------------- */

/* One loop thread. Everything h2o (loop, context, sockets) and the producer are made and
 * freed by the thread itself: h2o 2.2.5 keeps a per-thread (__thread) recycling allocator for
 * socket buffers, and a buffer made on one thread and grown or freed on another corrupts the
 * heap. */
typedef struct {
    h2o_context_t ctx; /* req->conn->ctx points here: see ing_thread_of */
    h2o_accept_ctx_t accept_ctx;
    h2o_evloop_t *loop;
    h2o_socket_t *listener;
    int listen_fd;       /* bound by the main thread, adopted by the loop */
    h2o_socket_t *waker; /* read end of wake_pipe */
    int wake_pipe[2];
    pthread_t tid;
    bool started;
    sem_t ready; /* posted once the thread has set itself up (start_err says how) */
    imp_error_t *start_err;
    atomic_bool stopping;
    atomic_bool kafka_ok; /* the producer's last ping answered (main writes, /readyz reads) */
    int index;            /* 0..threads-1: this thread's slot in per-thread tables */
    ing_app_t *app;
    h2o_globalconf_t *config;
    ing_producer_t *producer;
} ing_thread_t;

static inline ing_thread_t *ing_thread_of(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(ing_thread_t, ctx, req->conn->ctx);
}

/* Bind IMP_INGRESS_LISTEN once per thread (SO_REUSEPORT), create each thread's producer and
 * start the loops. NULL and *err (fatal) when the address cannot be bound or a producer
 * cannot be made. */
ing_server_t *ing_server_start(ing_app_t *app, imp_error_t **err);
int ing_server_port(const ing_server_t *s);
/* Ask every producer's cluster for metadata (blocking, up to timeout_ms each) and record
 * the outcome for /readyz. Called from the main thread. */
void ing_server_ping(ing_server_t *s, int timeout_ms);
/* true when every producer answered its last ping. Any thread. */
bool ing_server_producers_ok(const ing_server_t *s);
/* Stop accepting, answer what is waiting for delivery reports (up to the ack timeout),
 * close connections, join and free. NULL is a no-op. */
void ing_server_stop(ing_server_t *s);

/* GET /readyz on any loop thread (server.c reads this through the app). */
bool ing_ready(ing_server_t *s, char *reason, size_t cap);

/* ---- handlers (webhook.c, ops.c) ---------------------------------------------------------- */

/* POST /v1/webhooks/{channel}/{slug} (slug: the raw path segment). */
void ing_webhook_post(h2o_req_t *req, ing_channel_t ch, h2o_iovec_t slug);
/* GET /v1/webhooks/whatsapp/{slug}: Meta's subscription handshake. */
void ing_webhook_handshake(h2o_req_t *req, h2o_iovec_t slug);
/* POST /v1/webhooks/ops. */
void ing_ops_post(h2o_req_t *req);

/* ---- answers (problem.c) ------------------------------------------------------------------ */

/* An application/problem+json answer {type, title, status, detail, trace_id}; type is
 * "urn:imperium:problem:<name>". retry_after_s > 0 adds Retry-After; opid (may be NULL) adds
 * X-Operation-Id. Counts the request in the metrics. */
void ing_problem(h2o_req_t *req, const ing_reqinfo_t *info, int status, const char *name,
                 const char *title, const char *detail, int retry_after_s, const char *opid);

/* The common problems, with fixed titles and details. */
void ing_problem_unauthorized(h2o_req_t *req, const ing_reqinfo_t *info);
void ing_problem_unavailable(h2o_req_t *req, const ing_reqinfo_t *info, const char *detail,
                             const char *opid);

/* Make the errors h2o answers by itself, before routing (413 for a body over
 * max_request_entity_size, 400 for a malformed request), problems as well. */
void ing_problem_filter_register(h2o_hostconf_t *host);

/* A 2xx or plain answer: body copied into the request's pool, counted in the metrics. */
void ing_answer(h2o_req_t *req, ing_route_t route, int status, const char *ctype, const char *body,
                size_t len);

/* ---- produce (produce.c) ------------------------------------------------------------------ */

/* One message of a webhook. key and value are borrowed for the call (librdkafka copies). */
typedef struct {
    const char *topic;
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
    char opid[IMP_UUID_STR_SIZE];
} ing_msg_t;

/* A producer for one loop: its delivery reports arrive through a pipe registered on loop,
 * so they run on the loop's thread. delivery.timeout.ms is ack_timeout_ms. Create, use and
 * free it on the loop's own thread: h2o's socket buffers belong to the thread that made
 * them. */
ing_producer_t *ing_producer_new(h2o_evloop_t *loop, const char *brokers,
                                 const imp_kafka_props_t *props, long long ack_timeout_ms,
                                 imp_error_t **err);
/* Wait (serving reports on the calling thread) until no request waits, up to timeout_ms. */
void ing_producer_drain(ing_producer_t *p, h2o_evloop_t *loop, int timeout_ms);
/* Free (after the loop stopped; reports still due are dropped). NULL is a no-op. */
void ing_producer_free(ing_producer_t *p);
size_t ing_producer_waiting(const ing_producer_t *p);
imp_error_t *ing_producer_ping(ing_producer_t *p, int timeout_ms);

/* Produce msgs[0..n) and answer req: 200 {"accepted": n, "operation_ids": [...]} with
 * X-Operation-Id = msgs[0].opid once every delivery report says PERSISTED; 503 with
 * Retry-After as soon as one fails, cannot be queued, or the ack timeout passes. n >= 1. */
void ing_produce_and_answer(ing_producer_t *p, h2o_req_t *req, const ing_reqinfo_t *info,
                            const ing_msg_t *msgs, size_t n);

/* ---- tenant directory (directory.c) ------------------------------------------------------- */

typedef struct ing_tenant ing_tenant_t;

/* Start the directory thread: read imp.tenants.v1 from the beginning (all partitions
 * assigned, no group), keep following it. key opens the secrets; nthreads sizes each
 * tenant's per-thread HMAC slots. */
ing_directory_t *ing_directory_start(const char *brokers, const imp_kafka_props_t *props,
                                     const uint8_t key[IMP_CRYPTO_KEY_LEN], int nthreads,
                                     imp_error_t **err);
void ing_directory_stop(ing_directory_t *d);
/* true once every partition was read to its end (its first end-of-partition event);
 * otherwise a reason. Any thread, never blocks. */
bool ing_directory_ready(ing_directory_t *d, char *reason, size_t cap);
size_t ing_directory_count(ing_directory_t *d);

/* The tenant called slug[0..len) (new reference) or NULL. Any thread. */
ing_tenant_t *ing_directory_get(ing_directory_t *d, const char *slug, size_t len);
void ing_tenant_release(ing_tenant_t *t);
const char *ing_tenant_id(const ing_tenant_t *t); /* lowercase UUID */
bool ing_tenant_disabled(const ing_tenant_t *t);
/* The verification keys of channel ch valid at now_ms (current, then previous until its
 * deadline): fills out[0..2) and returns how many; 0 when the tenant has no usable channel
 * ch. thread is the caller's ing_thread_t index: its HMAC contexts are made on first use. */
size_t ing_tenant_keys(ing_tenant_t *t, ing_channel_t ch, int thread, int64_t now_ms,
                       ing_key_t out[2]);
/* WhatsApp verify tokens valid at now_ms (for the GET handshake). */
size_t ing_tenant_verify_tokens(ing_tenant_t *t, int64_t now_ms, ing_key_t out[2]);

/* ---- snapshots (snapshot.c) --------------------------------------------------------------- */

/* One imp.tenants.v1 value → a new tenant (one reference). Channels whose secrets cannot be
 * opened are left unusable and logged; a malformed envelope or data is a poison error. */
imp_error_t *ing_snapshot_parse(const char *value, size_t len, const uint8_t *key, int nthreads,
                                ing_tenant_t **out);
ing_tenant_t *ing_tenant_ref(ing_tenant_t *t);
const char *ing_tenant_slug(const ing_tenant_t *t);
int64_t ing_tenant_version(const ing_tenant_t *t);

/* ---- rate limit (ratelimit.c) ------------------------------------------------------------- */

/* Token buckets of burst tokens refilled at rate per second; rate <= 0 disables. */
ing_ratelimit_t *ing_ratelimit_new(double rate, double burst);
void ing_ratelimit_free(ing_ratelimit_t *rl);
/* Take one token from tenant_id's bucket at now_ns: true when allowed; otherwise false and
 * *retry_after_s (>= 1) is when a token will be there. Any thread. */
bool ing_ratelimit_take(ing_ratelimit_t *rl, const char *tenant_id, uint64_t now_ns,
                        int *retry_after_s);

#endif
