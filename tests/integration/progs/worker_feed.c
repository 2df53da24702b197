/* Feeds imp.test.v1 events for the runtime tests: every event `copies` times, shuffled, plus
 * malformed messages, all acknowledged by the brokers before it exits.
 *
 *   worker_feed --count N [--copies K] [--poison P] [--run NAME] [--start S] [--seed X]
 *               [--tenant UUID] [--topic T] [--fail-every M [--fail-kind K]]
 *
 * Event i (S <= i < S+N) has operation id uuidv5(ns, "feed|NAME|i"), data {"seq": i} and key
 * "conv-<i mod 97>". --fail-every M marks every M-th event data.fail = K ("retriable"). Prints
 * "produced X messages" and exits 0 only when every message was persisted. */
#include "imp/envelope.h"
#include "imp/kafka.h"
#include "imp/mem.h"
#include "imp/opid.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    long seq; /* -1 - k for the k-th malformed message */
} entry_t;

static const char *const malformed[] = {
    "not json {",
    "{\"specversion\":\"1.0\",\"source\":\"imperium/feed\",\"type\":\"imp.test.v1\","
    "\"time\":\"2026-01-01T00:00:00.000Z\",\"data\":{}}",
    "{\"specversion\":\"0.3\",\"id\":\"00000000-0000-4000-8000-000000000000\"}",
    "[]",
};

static int failures;
static const char *fail_kind = "retriable";

static void on_delivery(void *opaque, const imp_error_t *err, int32_t p, int64_t o, void *ctx)
{
    (void)opaque;
    (void)p;
    (void)o;
    (void)ctx;
    if (err != NULL) {
        failures++;
        fprintf(stderr, "worker_feed: not delivered: %s\n", imp_error_message(err));
    }
}

static char *event_json(const char *run, long seq, const char *tenant, long fail_every)
{
    char name[128], id[IMP_UUID_STR_SIZE], subject[32];
    snprintf(name, sizeof(name), "feed|%s|%ld", run, seq);
    uint8_t u[IMP_UUID_LEN];
    imp_uuid_v5(IMP_OPID_NAMESPACE, name, strlen(name), u);
    imp_uuid_format(u, id);
    json_t *data = json_pack("{s:I, s:s}", "seq", (json_int_t)seq, "payload", "x");
    if (fail_every > 0 && seq % fail_every == 0)
        json_object_set_new(data, "fail", json_string(fail_kind));
    imp_envelope_t ev;
    imp_error_t *err =
        imp_envelope_new_event(&ev, id, "imperium/feed", "imp.test.v1", tenant ? tenant : "", data);
    if (err != NULL) {
        fprintf(stderr, "worker_feed: %s\n", imp_error_message(err));
        exit(2);
    }
    snprintf(subject, sizeof(subject), "conv-%ld", seq % 97);
    ev.subject = imp_strdup(subject);
    char *out = NULL;
    err = imp_envelope_serialize(&ev, &out);
    imp_envelope_dispose(&ev);
    if (err != NULL) {
        fprintf(stderr, "worker_feed: %s\n", imp_error_message(err));
        exit(2);
    }
    return out;
}

int main(int argc, char **argv)
{
    long count = 0, copies = 1, poison = 0, start = 0, fail_every = 0;
    unsigned seed = 1;
    const char *run = "run", *topic = "imp.test.v1";
    const char *tenant = "11111111-1111-4111-8111-111111111111";
    static const struct option opts[] = {{"count", required_argument, 0, 'n'},
                                         {"copies", required_argument, 0, 'k'},
                                         {"poison", required_argument, 0, 'p'},
                                         {"run", required_argument, 0, 'r'},
                                         {"start", required_argument, 0, 's'},
                                         {"seed", required_argument, 0, 'x'},
                                         {"tenant", required_argument, 0, 't'},
                                         {"topic", required_argument, 0, 'T'},
                                         {"fail-every", required_argument, 0, 'f'},
                                         {"fail-kind", required_argument, 0, 'F'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            count = atol(optarg);
            break;
        case 'k':
            copies = atol(optarg);
            break;
        case 'p':
            poison = atol(optarg);
            break;
        case 'r':
            run = optarg;
            break;
        case 's':
            start = atol(optarg);
            break;
        case 'x':
            seed = (unsigned)atol(optarg);
            break;
        case 't':
            tenant = optarg;
            break;
        case 'T':
            topic = optarg;
            break;
        case 'f':
            fail_every = atol(optarg);
            break;
        case 'F':
            fail_kind = optarg;
            break;
        default:
            fprintf(stderr, "worker_feed: bad arguments\n");
            return 2;
        }
    }
    const char *brokers = getenv("IMP_KAFKA_BROKERS");
    if (brokers == NULL || count < 0 || copies < 1) {
        fprintf(stderr, "worker_feed: IMP_KAFKA_BROKERS, --count and --copies are required\n");
        return 2;
    }
    size_t total = (size_t)(count * copies + poison);
    entry_t *e = imp_malloc((total ? total : 1) * sizeof(*e));
    size_t k = 0;
    for (long i = 0; i < count; i++)
        for (long j = 0; j < copies; j++)
            e[k++].seq = start + i;
    for (long i = 0; i < poison; i++)
        e[k++].seq = -1 - i;
    srandom(seed);
    for (size_t i = total; i > 1; i--) {
        size_t j = (size_t)random() % i;
        entry_t t = e[i - 1];
        e[i - 1] = e[j];
        e[j] = t;
    }

    imp_error_t *err = NULL;
    imp_kafka_producer_t *p = imp_kafka_producer_new(brokers, NULL, &err);
    if (err != NULL) {
        fprintf(stderr, "worker_feed: %s\n", imp_error_message(err));
        return 1;
    }
    imp_kafka_producer_set_on_delivery(p, on_delivery, NULL);
    for (size_t i = 0; i < total; i++) {
        char key[32];
        char *value;
        if (e[i].seq >= 0) {
            value = event_json(run, e[i].seq, tenant, fail_every);
            snprintf(key, sizeof(key), "conv-%ld", e[i].seq % 97);
        } else {
            value = imp_strdup(malformed[(-1 - e[i].seq) % IMP_ARRAY_LEN(malformed)]);
            snprintf(key, sizeof(key), "poison-%ld", -e[i].seq);
        }
        imp_kafka_out_t m = {.topic = topic,
                             .partition = IMP_KAFKA_PARTITION_ANY,
                             .key = key,
                             .key_len = strlen(key),
                             .value = value,
                             .value_len = strlen(value)};
        while ((err = imp_kafka_produce(p, &m)) != NULL && imp_error_class(err) == IMP_ERR_INFRA) {
            imp_error_free(err);
            imp_kafka_producer_poll(p, 10);
        }
        free(value);
        if (err != NULL) {
            fprintf(stderr, "worker_feed: %s\n", imp_error_message(err));
            return 1;
        }
        imp_kafka_producer_poll(p, 0);
    }
    err = imp_kafka_producer_flush(p, 60000);
    if (err != NULL) {
        fprintf(stderr, "worker_feed: %s\n", imp_error_message(err));
        return 1;
    }
    imp_kafka_producer_free(p);
    free(e);
    printf("produced %zu messages\n", total);
    return failures == 0 ? 0 : 1;
}
