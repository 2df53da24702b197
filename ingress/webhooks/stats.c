/* The ingress's metrics: requests by route and status, ACK latency, produce errors, requests
 * waiting for delivery reports, tenants in the directory. */
#include "ingress.h"

#include "imp/mem.h"
#include "imp/metrics.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const route_names[ING_ROUTE_COUNT] = {
    [ING_ROUTE_GENERIC] = "generic",
    [ING_ROUTE_CHATFLOW] = "chatflow",
    [ING_ROUTE_WHATSAPP] = "whatsapp",
    [ING_ROUTE_TELEGRAM] = "telegram",
    [ING_ROUTE_HANDSHAKE] = "whatsapp_handshake",
    [ING_ROUTE_OPS] = "ops",
    [ING_ROUTE_LIVEZ] = "livez",
    [ING_ROUTE_READYZ] = "readyz",
    [ING_ROUTE_METRICS] = "metrics",
    [ING_ROUTE_OTHER] = "other",
};

/* The statuses the server answers with; anything else is counted as "other". */
static const int statuses[] = {200, 400, 401, 403, 404, 405, 413, 429, 500, 503};
#define N_STATUS (IMP_ARRAY_LEN(statuses) + 1)

static const char *const produce_reasons[] = {"queue_full", "produce", "delivery", "timeout"};

/* Children are registered on first use (registration returns the same child every time, so
 * a race between two threads registers it once). */
static _Atomic(imp_metrics_counter_t *) requests[ING_ROUTE_COUNT][N_STATUS];
static imp_metrics_counter_t *produce_errors[IMP_ARRAY_LEN(produce_reasons)];
static imp_metrics_histogram_t *ack_ok, *ack_failed;
static imp_metrics_gauge_t *waiting;

static double count_tenants(void *ctx)
{
    return (double)ing_directory_count(ctx);
}

void ing_stats_init(ing_directory_t *dir)
{
    imp_metrics_t *m = imp_metrics_default();
    for (size_t i = 0; i < IMP_ARRAY_LEN(produce_reasons); i++)
        produce_errors[i] = imp_metrics_counter(
            m, "imperium_ingress_produce_errors_total",
            "Messages that were not persisted: not queued (queue_full, produce), failed "
            "delivery reports (delivery) or no report within the ack timeout (timeout).",
            IMP_LABELS({"reason", produce_reasons[i]}));
    ack_ok = imp_metrics_histogram(
        m, "imperium_ingress_ack_seconds",
        "Time from a webhook's arrival to its answer once produced: result=persisted for the "
        "2xx after every delivery report, failed for the 503.",
        IMP_METRICS_LATENCY_BUCKETS, IMP_LABELS({"result", "persisted"}));
    ack_failed = imp_metrics_histogram(
        m, "imperium_ingress_ack_seconds",
        "Time from a webhook's arrival to its answer once produced: result=persisted for the "
        "2xx after every delivery report, failed for the 503.",
        IMP_METRICS_LATENCY_BUCKETS, IMP_LABELS({"result", "failed"}));
    waiting = imp_metrics_gauge(m, "imperium_ingress_waiting_requests",
                                "Requests waiting for their delivery reports.", IMP_NO_LABELS);
    imp_metrics_gauge_fn(m, "imperium_ingress_directory_tenants",
                         "Tenants in the directory (latest snapshot per slug).", IMP_NO_LABELS,
                         count_tenants, dir);
}

static size_t status_index(int status)
{
    for (size_t i = 0; i < IMP_ARRAY_LEN(statuses); i++) {
        if (statuses[i] == status)
            return i;
    }
    return N_STATUS - 1;
}

void ing_stats_request(ing_route_t route, int status)
{
    size_t si = status_index(status);
    imp_metrics_counter_t *c = atomic_load_explicit(&requests[route][si], memory_order_acquire);
    if (c == NULL) {
        char code[8] = "other";
        if (si < N_STATUS - 1)
            snprintf(code, sizeof(code), "%d", status);
        c = imp_metrics_counter(imp_metrics_default(), "imperium_ingress_requests_total",
                                "HTTP requests answered, by route and status.",
                                IMP_LABELS({"route", route_names[route]}, {"status", code}));
        atomic_store_explicit(&requests[route][si], c, memory_order_release);
    }
    imp_metrics_inc(c);
}

void ing_stats_waiting(int delta)
{
    imp_metrics_gauge_add(waiting, delta);
}

void ing_stats_ack(double seconds, bool persisted)
{
    imp_metrics_observe(persisted ? ack_ok : ack_failed, seconds);
}

void ing_stats_produce_error(const char *reason)
{
    for (size_t i = 0; i < IMP_ARRAY_LEN(produce_reasons); i++) {
        if (strcmp(produce_reasons[i], reason) == 0) {
            imp_metrics_inc(produce_errors[i]);
            return;
        }
    }
}

uint64_t ing_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
