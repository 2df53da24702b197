/* Prometheus metrics: counters, gauges and histograms in a registry rendered in the text
 * exposition format (version 0.0.4), plus a small h2o listener serving /livez, /readyz and
 * /metrics that any binary embeds with two calls.
 *
 *   static imp_metrics_counter_t *sent;
 *   sent = imp_metrics_counter(imp_metrics_default(), "imperium_send_messages_total",
 *                              "Messages handed to a provider.",
 *                              IMP_LABELS({"provider", "telegram"}, {"result", "ok"}));
 *   imp_metrics_inc(sent);
 *
 * Rules (a breach is a programming error: it is logged and the process aborts, so any test
 * that registers the metric catches it):
 *   - names start with "imperium_" and match [a-zA-Z_:][a-zA-Z0-9_:]*; counters end in
 *     "_total"; use base units (seconds, bytes) and say so in the name;
 *   - label names match [a-zA-Z_][a-zA-Z0-9_]*, do not start with "__", and "le" is reserved;
 *   - label values are fixed at registration: a family is a name, help text, type and label
 *     names; each registration with new label values adds one child (a bounded set, never
 *     a value taken from input). Registering the same name and label values again returns
 *     the existing child. Every child of a family has the same label names, in order.
 *
 * Thread-safety: registration and rendering take the registry's lock; updates (inc, add,
 * set, observe) are lock-free atomics and may be called from any thread. Handles stay valid
 * until the registry is freed (the default registry never is). */
#ifndef IMP_METRICS_H
#define IMP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imp/error.h"

typedef struct imp_metrics imp_metrics_t;
typedef struct imp_metrics_counter imp_metrics_counter_t;
typedef struct imp_metrics_gauge imp_metrics_gauge_t;
typedef struct imp_metrics_histogram imp_metrics_histogram_t;

typedef struct {
    const char *name;
    const char *value;
} imp_label_t;

/* Label pairs as the two trailing arguments (array, count) of a registration call. */
#define IMP_LABELS(...)                                                                            \
    ((const imp_label_t[]){__VA_ARGS__}),                                                          \
        (sizeof((const imp_label_t[]){__VA_ARGS__}) / sizeof(imp_label_t))
#define IMP_NO_LABELS NULL, 0

/* Latency buckets in seconds, 1 ms .. 10 s, for imp_metrics_histogram. */
#define IMP_METRICS_LATENCY_BOUNDS                                                                 \
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
#define IMP_METRICS_LATENCY_BUCKETS                                                                \
    ((const double[]){IMP_METRICS_LATENCY_BOUNDS}),                                                \
        (sizeof((const double[]){IMP_METRICS_LATENCY_BOUNDS}) / sizeof(double))

/* A registry. Most code uses the process-wide default; tests make their own. */
imp_metrics_t *imp_metrics_new(void);
/* Frees the registry and every handle registered in it. NULL is a no-op. */
void imp_metrics_free(imp_metrics_t *m);
/* The process-wide registry that imp_metrics_server_start serves. Never freed. */
imp_metrics_t *imp_metrics_default(void);

/* Register (or find) a child. help is plain text; it is escaped on output.
 * Returned handles are borrowed: owned by the registry. */
imp_metrics_counter_t *imp_metrics_counter(imp_metrics_t *m, const char *name, const char *help,
                                           const imp_label_t *labels, size_t nlabels);
imp_metrics_gauge_t *imp_metrics_gauge(imp_metrics_t *m, const char *name, const char *help,
                                       const imp_label_t *labels, size_t nlabels);
/* bounds: finite upper bounds in strictly increasing order (a trailing +Inf is implied and
 * may be given). All children of a histogram family must use the same bounds. */
imp_metrics_histogram_t *imp_metrics_histogram(imp_metrics_t *m, const char *name, const char *help,
                                               const double *bounds, size_t nbounds,
                                               const imp_label_t *labels, size_t nlabels);

/* Values sampled at render time, for counts another module already keeps (Redis failures,
 * consumer lag). fn is called under the registry lock from the rendering thread: it must
 * be thread-safe, quick and must not touch the registry. A counter's fn must not decrease. */
typedef double (*imp_metrics_sample_fn)(void *ctx);
void imp_metrics_counter_fn(imp_metrics_t *m, const char *name, const char *help,
                            const imp_label_t *labels, size_t nlabels, imp_metrics_sample_fn fn,
                            void *ctx);
void imp_metrics_gauge_fn(imp_metrics_t *m, const char *name, const char *help,
                          const imp_label_t *labels, size_t nlabels, imp_metrics_sample_fn fn,
                          void *ctx);

/* Updates: lock-free, any thread. */
void imp_metrics_inc(imp_metrics_counter_t *c);
void imp_metrics_add(imp_metrics_counter_t *c, uint64_t n);
uint64_t imp_metrics_counter_value(const imp_metrics_counter_t *c);

void imp_metrics_set(imp_metrics_gauge_t *g, double v);
void imp_metrics_gauge_add(imp_metrics_gauge_t *g, double delta); /* negative to decrease */
double imp_metrics_gauge_value(const imp_metrics_gauge_t *g);

/* Count v in the first bucket whose bound is >= v, and add it to the sum. NaN is ignored. */
void imp_metrics_observe(imp_metrics_histogram_t *h, double v);

/* The exposition text of every family, in registration order: "# HELP", "# TYPE", then one
 * line per sample. Histograms give cumulative _bucket{le=...} lines ending with le="+Inf",
 * then _sum and _count. Returns a new heap string (caller frees); *len (optional) is its
 * length. */
char *imp_metrics_render(imp_metrics_t *m, size_t *len);

/* The content type to serve the text with. */
#define IMP_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* ---- the listener ---- */

typedef struct imp_metrics_server imp_metrics_server_t;

/* Readiness, asked on each GET /readyz from the server's thread: it must be thread-safe and
 * must not block. Return true when ready; when not, write a short reason (NUL-terminated,
 * at most cap bytes, e.g. "postgres unreachable") into reason. */
typedef bool (*imp_metrics_ready_fn)(void *ctx, char *reason, size_t cap);

/* Listen on host:port (host a name or literal such as "127.0.0.1", "::" or "0.0.0.0"; NULL
 * is the wildcard; port 0 picks a free port, see imp_metrics_server_port) and serve,
 * from a thread of its own running an h2o event loop:
 *   GET /livez   200 "ok"
 *   GET /readyz  200 "ready", or 503 "not ready: <reason>" (ready == NULL: always ready)
 *   GET /metrics 200, imp_metrics_render(imp_metrics_default()), IMP_METRICS_CONTENT_TYPE
 *   anything else 404 (other methods on those paths: 405).
 * Sets SIGPIPE to SIG_IGN when it is at its default. Returns NULL and *err (class fatal,
 * code "metrics_listen") when the address cannot be bound. */
imp_metrics_server_t *imp_metrics_server_start(const char *host, int port,
                                               imp_metrics_ready_fn ready, void *ctx,
                                               imp_error_t **err);

/* The port actually bound. */
int imp_metrics_server_port(const imp_metrics_server_t *s);

/* Wake the loop, close the listener and every open connection, join the thread and free
 * everything. NULL is a no-op. Call from any thread but the server's own. */
void imp_metrics_server_stop(imp_metrics_server_t *s);

#endif
