/* Integration helper: produce COUNT keyed messages "<prefix>-<i>" to TOPIC and wait until
 * every one is PERSISTED.
 *
 *   kafka_produce TOPIC COUNT PREFIX
 *
 * Environment: IMP_KAFKA_BROKERS, IMP_KAFKA_PROPS (optional "name=value,..." overrides).
 * Prints "produced <n>" and exits 0 when all COUNT were persisted; 1 otherwise. */
#include "imp/kafka.h"
#include "imp/log.h"
#include "imp/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_KEYS 50
#define FLUSH_TIMEOUT_MS 120000

typedef struct {
    long persisted;
    long failed;
} counts_t;

static void on_delivery(void *opaque, const imp_error_t *err, int32_t partition, int64_t offset,
                        void *ctx)
{
    counts_t *c = ctx;
    (void)opaque, (void)partition, (void)offset;
    if (err == NULL) {
        c->persisted++;
        return;
    }
    c->failed++;
    IMP_LOG_ERROR("delivery failed", IMP_LE(err));
}

/* Queue one message, serving reports while the local queue is full. */
static imp_error_t *produce_one(imp_kafka_producer_t *p, const char *topic, const char *prefix,
                                long i)
{
    char key[32], value[96];
    snprintf(key, sizeof(key), "k%ld", i % N_KEYS);
    snprintf(value, sizeof(value), "%s-%ld", prefix, i);
    imp_kafka_out_t m = {.topic = topic,
                         .partition = IMP_KAFKA_PARTITION_ANY,
                         .key = key,
                         .key_len = strlen(key),
                         .value = value,
                         .value_len = strlen(value)};
    for (;;) {
        imp_error_t *err = imp_kafka_produce(p, &m);
        if (err == NULL || strcmp(imp_error_code(err), "kafka_queue_full") != 0)
            return err;
        imp_error_free(err);
        imp_kafka_producer_poll(p, 100);
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: kafka_produce TOPIC COUNT PREFIX\n");
        return 2;
    }
    imp_log_init("kafka_produce", IMP_LOG_LEVEL_INFO);
    const char *topic = argv[1], *prefix = argv[3];
    long count = atol(argv[2]);
    counts_t counts = {0};
    imp_kafka_props_t props = {0};
    imp_kafka_producer_t *p = NULL;
    imp_error_t *err = imp_kafka_props_parse(getenv("IMP_KAFKA_PROPS"), &props);
    if (err == NULL)
        p = imp_kafka_producer_new(getenv("IMP_KAFKA_BROKERS"), &props, &err);
    if (p == NULL)
        goto out;
    imp_kafka_producer_set_on_delivery(p, on_delivery, &counts);
    for (long i = 0; i < count && err == NULL; i++) {
        err = produce_one(p, topic, prefix, i);
        imp_kafka_producer_poll(p, 0);
    }
    if (err == NULL)
        err = imp_kafka_producer_flush(p, FLUSH_TIMEOUT_MS);
out:
    if (err != NULL)
        IMP_LOG_ERROR("produce failed", IMP_LE(err));
    printf("produced %ld\n", counts.persisted);
    int rc = err == NULL && counts.persisted == count && counts.failed == 0 ? 0 : 1;
    imp_error_free(err);
    imp_kafka_producer_free(p);
    imp_kafka_props_dispose(&props);
    return rc;
}
