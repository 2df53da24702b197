/* Integration helper: consume TOPIC in GROUP in batches, logging what it reads and commits.
 *
 *   kafka_consume TOPIC GROUP BATCH OUT_FILE [DELAY_MS]
 *
 * Per batch (up to BATCH messages): append "M <partition> <offset> <value>" per message to
 * OUT_FILE and flush, store the offsets, commit synchronously, then append
 * "C <partition> <next offset>" per partition of the batch; sleep DELAY_MS. So whatever is
 * committed has been written to OUT_FILE first, even across kill -9.
 * Runs until SIGTERM/SIGINT, then closes the consumer (leaving the group) and exits 0.
 * Environment: IMP_KAFKA_BROKERS, IMP_KAFKA_PROPS (optional "name=value,..." overrides). */
#include "imp/kafka.h"
#include "imp/log.h"
#include "imp/mem.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_PARTITIONS 64

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

typedef struct {
    imp_kafka_msg_t **msgs;
    size_t n;
    int64_t next[MAX_PARTITIONS]; /* next offset per partition in this batch, -1 none */
} batch_t;

/* Fill the batch: up to max messages, ending early once a poll comes back empty. */
static void fill_batch(imp_kafka_consumer_t *c, batch_t *b, size_t max)
{
    b->n = 0;
    for (int i = 0; i < MAX_PARTITIONS; i++)
        b->next[i] = -1;
    while (b->n < max && !stop) {
        imp_kafka_msg_t *m = NULL;
        imp_error_t *err = imp_kafka_consumer_poll(c, b->n ? 10 : 200, &m);
        imp_error_free(err);
        if (m == NULL) {
            if (b->n > 0)
                return;
            continue;
        }
        b->msgs[b->n++] = m;
        if (m->partition >= 0 && m->partition < MAX_PARTITIONS)
            b->next[m->partition] = m->offset + 1;
    }
}

static void commit_batch(imp_kafka_consumer_t *c, batch_t *b, FILE *out)
{
    for (size_t i = 0; i < b->n; i++) {
        const imp_kafka_msg_t *m = b->msgs[i];
        fprintf(out, "M %d %lld %.*s\n", (int)m->partition, (long long)m->offset, (int)m->value_len,
                (const char *)m->value);
    }
    fflush(out);
    for (size_t i = 0; i < b->n; i++) {
        imp_error_free(imp_kafka_consumer_store_msg(c, b->msgs[i]));
        imp_kafka_msg_free(b->msgs[i]);
    }
    imp_error_t *err = imp_kafka_consumer_commit_sync(c);
    if (err != NULL) {
        IMP_LOG_WARN("commit failed; the next commit carries the offsets", IMP_LE(err));
        imp_error_free(err);
        return;
    }
    for (int p = 0; p < MAX_PARTITIONS; p++) {
        if (b->next[p] >= 0)
            fprintf(out, "C %d %lld\n", p, (long long)b->next[p]);
    }
    fflush(out);
}

int main(int argc, char **argv)
{
    if (argc < 5 || argc > 6) {
        fprintf(stderr, "usage: kafka_consume TOPIC GROUP BATCH OUT_FILE [DELAY_MS]\n");
        return 2;
    }
    imp_log_init("kafka_consume", IMP_LOG_LEVEL_INFO);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    size_t max = (size_t)atol(argv[3]);
    long delay_ms = argc == 6 ? atol(argv[5]) : 0;
    FILE *out = fopen(argv[4], "a");
    if (out == NULL || max == 0) {
        fprintf(stderr, "kafka_consume: cannot open %s or bad batch size\n", argv[4]);
        return 2;
    }
    imp_kafka_props_t props = {0};
    imp_kafka_consumer_t *c = NULL;
    const char *topics[] = {argv[1]};
    imp_error_t *err = imp_kafka_props_parse(getenv("IMP_KAFKA_PROPS"), &props);
    if (err == NULL)
        c = imp_kafka_consumer_new(getenv("IMP_KAFKA_BROKERS"), argv[2], topics, 1, &props, &err);
    batch_t b = {.msgs = imp_calloc(max, sizeof(imp_kafka_msg_t *))};
    while (c != NULL && !stop) {
        fill_batch(c, &b, max);
        commit_batch(c, &b, out);
        if (delay_ms > 0 && !stop)
            nanosleep(&(struct timespec){delay_ms / 1000, (delay_ms % 1000) * 1000000L}, NULL);
    }
    if (c != NULL)
        err = imp_kafka_consumer_close(c);
    if (err != NULL)
        IMP_LOG_ERROR("consumer failed", IMP_LE(err));
    int rc = err == NULL ? 0 : 1;
    imp_error_free(err);
    imp_kafka_consumer_free(c);
    imp_kafka_props_dispose(&props);
    free(b.msgs);
    fclose(out);
    return rc;
}
