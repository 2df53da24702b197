/* Publishing replayed events: the outbox relay (imp_worker_relay_once) with a producer whose
 * delivery timeout is bounded, and what to tell the operator when Kafka does not take them. */
#include "dlq.h"

#include "imp/envelope.h"
#include "imp/kafka.h"
#include "imp/mem.h"
#include "imp/worker.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RELAY_BATCH 500

static char *id_array(const long long *ids, size_t n)
{
    size_t cap = n * 21 + 3, len = 0;
    char *s = imp_malloc(cap);
    s[len++] = '{';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s%lld", i ? "," : "", ids[i]);
    snprintf(s + len, cap - len, "}");
    return s;
}

/* Unpublished outbox rows that replays wrote: addressed to a replayed dead letter's origin
 * topic, with its origin headers. */
#define SQL_REPLAYED_LEFT                                                                          \
    "SELECT count(*) FROM outbox o WHERE o.published_at IS NULL AND EXISTS ("                      \
    "SELECT 1 FROM dead_letters d WHERE d.replayed_at IS NOT NULL AND d.topic = o.topic "          \
    "AND o.headers->>'imp-origin-topic' = d.topic "                                                \
    "AND o.headers->>'imp-origin-partition' = d.kafka_partition::text "                            \
    "AND o.headers->>'imp-origin-offset' = d.kafka_offset::text)"

#define SQL_IDS_LEFT                                                                               \
    "SELECT count(*) FROM outbox WHERE id = ANY($1::bigint[]) AND published_at IS NULL"

imp_error_t *dlq_outbox_unpublished(imp_pg_t *pg, const long long *ids, size_t n, long long *left)
{
    char *arr = id_array(ids, n);
    const char *params[] = {arr};
    char *v = NULL;
    imp_error_t *err = n == 0 ? imp_pg_exec_scalar(pg, SQL_REPLAYED_LEFT, 0, NULL, &v)
                              : imp_pg_exec_scalar(pg, SQL_IDS_LEFT, 1, params, &v);
    *left = v ? atoll(v) : 0;
    free(v);
    free(arr);
    return err;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

imp_error_t *dlq_publish(imp_pg_t *pg, const dlq_settings_t *s, const long long *ids, size_t n,
                         long long *left)
{
    char timeout[32];
    snprintf(timeout, sizeof(timeout), "%lld", s->publish_timeout_ms);
    const imp_kafka_prop_t props[] = {{"delivery.timeout.ms", timeout}};
    const imp_kafka_props_t extra = {props, IMP_ARRAY_LEN(props)};
    imp_error_t *err = NULL;
    imp_kafka_producer_t *p = imp_kafka_producer_new(s->kafka_brokers, &extra, &err);
    if (p == NULL)
        return err;
    int wait_ms = (int)s->publish_timeout_ms + 2000;
    err = imp_kafka_producer_ping(p, (int)s->publish_timeout_ms);
    int64_t deadline = imp_envelope_time_now_ms() + 3 * (int64_t)s->publish_timeout_ms;
    while (err == NULL) {
        int published = 0;
        err = imp_worker_relay_once(pg, p, 0, RELAY_BATCH, wait_ms, &published);
        imp_error_t *cerr = dlq_outbox_unpublished(pg, ids, n, left);
        if (err == NULL)
            err = cerr;
        else
            imp_error_free(cerr);
        if (err != NULL || *left == 0 || imp_envelope_time_now_ms() > deadline)
            break;
        /* Rows of ours still there after a full pass were locked by a worker's relay, which
         * is publishing them now. */
        if (published < RELAY_BATCH)
            sleep_ms(200);
    }
    imp_kafka_producer_free(p);
    return err;
}

int dlq_report_publish(imp_error_t *err, long long left, size_t mine)
{
    if (left == 0) {
        if (mine > 0)
            printf("published %zu replayed event%s to Kafka\n", mine, mine == 1 ? "" : "s");
        else
            printf("published the replayed events left in the outbox to Kafka\n");
        /* Ours are out; another event of the outbox was not (the worker relays retry it). */
        if (err != NULL)
            fprintf(stderr, "%s: note: other outbox events were not published: %s\n", DLQ_BINARY,
                    imp_error_message(err));
        imp_error_free(err);
        return DLQ_EXIT_OK;
    }
    fprintf(stderr,
            "%s: kafka: could not publish (%s)\n"
            "%s: %lld %sevent%s wait%s in the outbox: a running worker's outbox relay publishes "
            "%s, or run this command again once Kafka is reachable\n",
            DLQ_BINARY, err ? imp_error_message(err) : "timed out", DLQ_BINARY, left,
            mine > 0 ? "replayed " : "", left == 1 ? "" : "s", left == 1 ? "s" : "",
            left == 1 ? "it" : "them");
    imp_error_free(err);
    return DLQ_EXIT_KAFKA;
}
