/* Kafka wrappers against an in-process librdkafka mock cluster. */
#include "imp/kafka.h"
#include "imp/log.h"
#include "imp/mem.h"

#include <check.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- an in-process mock cluster, one per test (Check forks each test) ----------------- */

static rd_kafka_t *mock_owner;
static rd_kafka_mock_cluster_t *mock;
static const char *brokers;

static void quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk, (void)level, (void)fac, (void)buf;
}

static void mock_start(void)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    mock_owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    ck_assert_ptr_nonnull(mock_owner);
    mock = rd_kafka_mock_cluster_new(mock_owner, 3);
    ck_assert_ptr_nonnull(mock);
    brokers = rd_kafka_mock_cluster_bootstraps(mock);
}

static void mock_stop(void)
{
    rd_kafka_mock_cluster_destroy(mock);
    rd_kafka_destroy(mock_owner);
    mock = NULL;
    mock_owner = NULL;
}

static void topic_create(const char *name, int partitions)
{
    ck_assert_int_eq(rd_kafka_mock_topic_create(mock, name, partitions, 3), 0);
}

/* Silent unless IMP_LOG_LEVEL asks for logs (debugging a failure). */
static void quiet(void)
{
    imp_log_level_t level = IMP_LOG_LEVEL_ERROR + 1;
    const char *env = getenv("IMP_LOG_LEVEL");
    if (env != NULL && imp_log_level_parse(env, &level) != 0)
        level = IMP_LOG_LEVEL_ERROR + 1;
    imp_log_init("test_kafka", level);
}

/* Consumer settings that keep group joins and leaves short. */
static const imp_kafka_prop_t fast_group[] = {
    {"session.timeout.ms", "2500"},
    {"heartbeat.interval.ms", "300"},
    {"fetch.wait.max.ms", "20"},
};
static const imp_kafka_props_t fast = {fast_group, IMP_ARRAY_LEN(fast_group)};

static imp_kafka_producer_t *producer(const imp_kafka_props_t *extra)
{
    imp_error_t *err = NULL;
    imp_kafka_producer_t *p = imp_kafka_producer_new(brokers, extra, &err);
    ck_assert_ptr_null(err);
    ck_assert_ptr_nonnull(p);
    return p;
}

static imp_kafka_consumer_t *consumer(const char *group, const char *topic)
{
    imp_error_t *err = NULL;
    const char *topics[] = {topic};
    imp_kafka_consumer_t *c = imp_kafka_consumer_new(brokers, group, topics, 1, &fast, &err);
    ck_assert_ptr_null(err);
    ck_assert_ptr_nonnull(c);
    return c;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Poll until a message arrives or timeout_ms passes; errors are tolerated (logged). */
static imp_kafka_msg_t *next_msg(imp_kafka_consumer_t *c, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (now_ms() < deadline) {
        imp_kafka_msg_t *m = NULL;
        imp_error_free(imp_kafka_consumer_poll(c, 100, &m));
        if (m != NULL)
            return m;
    }
    return NULL;
}

/* ---- produce N keyed messages, consume them: exact count, order per key ---------------- */

#define N_MSGS 1000
#define N_KEYS 37

typedef struct {
    int persisted;
    int failed;
    int64_t offsets[N_MSGS];
    int32_t partitions[N_MSGS];
} reports_t;

static void on_delivery(void *opaque, const imp_error_t *err, int32_t partition, int64_t offset,
                        void *ctx)
{
    reports_t *r = ctx;
    int i = (int)(intptr_t)opaque;
    if (err != NULL) {
        r->failed++;
        return;
    }
    r->persisted++;
    r->offsets[i] = offset;
    r->partitions[i] = partition;
}

static void produce_keyed(imp_kafka_producer_t *p, const char *topic, reports_t *r)
{
    imp_kafka_producer_set_on_delivery(p, on_delivery, r);
    for (int i = 0; i < N_MSGS; i++) {
        char key[16], value[32];
        snprintf(key, sizeof(key), "k%d", i % N_KEYS);
        snprintf(value, sizeof(value), "%d:%d", i % N_KEYS, i / N_KEYS);
        imp_kafka_header_t hdr = {"seq", value, strlen(value)};
        imp_kafka_out_t m = {.topic = topic,
                             .partition = IMP_KAFKA_PARTITION_ANY,
                             .key = key,
                             .key_len = strlen(key),
                             .value = value,
                             .value_len = strlen(value),
                             .headers = &hdr,
                             .nheaders = 1,
                             .opaque = (void *)(intptr_t)i};
        imp_error_t *err = imp_kafka_produce(p, &m);
        ck_assert_msg(err == NULL, "produce %d: %s", i, err ? imp_error_message(err) : "");
        imp_kafka_producer_poll(p, 0);
    }
    imp_error_t *err = imp_kafka_producer_flush(p, 10000);
    ck_assert_ptr_null(err);
    ck_assert_int_eq(r->persisted, N_MSGS);
    ck_assert_int_eq(r->failed, 0);
}

/* Offsets within a partition are distinct, and a key always lands on one partition. */
static void check_reports(const reports_t *r)
{
    for (int i = 0; i < N_MSGS; i++) {
        ck_assert_int_ge(r->offsets[i], 0);
        ck_assert_int_eq(r->partitions[i], r->partitions[i % N_KEYS]);
        if (i >= N_KEYS)
            ck_assert_int_gt(r->offsets[i], r->offsets[i - N_KEYS]);
    }
}

/* One consumed message: the key's next sequence number, and the header matches the value.
 * Returns the index it was produced with. */
static int check_msg(const imp_kafka_msg_t *m, int *next_seq)
{
    char buf[32] = {0};
    ck_assert_uint_lt(m->value_len, sizeof(buf));
    memcpy(buf, m->value, m->value_len);
    int key = -1, seq = -1;
    ck_assert_int_eq(sscanf(buf, "%d:%d", &key, &seq), 2);
    ck_assert_int_lt(key, N_KEYS);
    ck_assert_msg(seq == next_seq[key], "key %d: got seq %d, expected %d", key, seq, next_seq[key]);
    next_seq[key]++;
    char kbuf[16];
    snprintf(kbuf, sizeof(kbuf), "k%d", key);
    ck_assert_uint_eq(m->key_len, strlen(kbuf));
    ck_assert(memcmp(m->key, kbuf, m->key_len) == 0);
    const void *hv = NULL;
    size_t hl = 0;
    ck_assert_int_eq(imp_kafka_msg_header(m, "seq", &hv, &hl), 0);
    ck_assert_uint_eq(hl, m->value_len);
    ck_assert(memcmp(hv, m->value, hl) == 0);
    ck_assert_int_gt(m->timestamp_ms, 0);
    return key + N_KEYS * seq;
}

START_TEST(produce_consume_in_order)
{
    quiet();
    mock_start();
    topic_create("t.order", 6);
    static reports_t r;
    imp_kafka_producer_t *p = producer(NULL);
    produce_keyed(p, "t.order", &r);
    check_reports(&r);

    imp_kafka_consumer_t *c = consumer("g.order", "t.order");
    int next_seq[N_KEYS] = {0}, got = 0;
    imp_kafka_msg_t *m;
    while (got < N_MSGS && (m = next_msg(c, 15000)) != NULL) {
        int i = check_msg(m, next_seq);
        ck_assert_int_eq(m->offset, r.offsets[i]);
        ck_assert_int_eq(m->partition, r.partitions[i]);
        got++;
        imp_kafka_msg_free(m);
    }
    ck_assert_int_eq(got, N_MSGS);
    ck_assert_ptr_null(next_msg(c, 300)); /* nothing more */
    imp_kafka_consumer_free(c);
    imp_kafka_producer_free(p);
    mock_stop();
}
END_TEST

/* ---- produce_sync: PERSISTED with an offset; brokers down → infra ---------------------- */

static imp_kafka_out_t text_msg(const char *topic, const char *value)
{
    return (imp_kafka_out_t){
        .topic = topic, .partition = 0, .value = value, .value_len = strlen(value)};
}

START_TEST(produce_sync_persisted_then_brokers_down)
{
    quiet();
    mock_start();
    topic_create("t.sync", 1);
    static const imp_kafka_prop_t props[] = {{"delivery.timeout.ms", "1500"},
                                             {"reconnect.backoff.max.ms", "200"}};
    imp_kafka_props_t extra = {props, 2};
    imp_kafka_producer_t *p = producer(&extra);
    imp_kafka_out_t m = text_msg("t.sync", "one");
    int32_t part = -1;
    int64_t off = -1;
    for (int i = 0; i < 3; i++) {
        imp_error_t *err = imp_kafka_produce_sync(p, &m, 5000, &part, &off);
        ck_assert_msg(err == NULL, "%s", err ? imp_error_message(err) : "");
        ck_assert_int_eq(part, 0);
        ck_assert_int_eq(off, i);
    }
    ck_assert_ptr_null(imp_kafka_producer_ping(p, 2000));
    for (int b = 1; b <= 3; b++)
        rd_kafka_mock_broker_set_down(mock, b);

    /* The wait ends first: kafka_timeout. */
    int64_t t0 = now_ms();
    imp_error_t *err = imp_kafka_produce_sync(p, &m, 300, &part, &off);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_INFRA);
    ck_assert_str_eq(imp_error_code(err), "kafka_timeout");
    ck_assert_int_lt(now_ms() - t0, 1000);
    imp_error_free(err);

    /* delivery.timeout.ms ends first: the report says not delivered. */
    err = imp_kafka_produce_sync(p, &m, 5000, &part, &off);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_INFRA);
    ck_assert_str_eq(imp_error_code(err), "kafka_delivery");
    ck_assert_ptr_nonnull(strstr(imp_error_detail(err), "_MSG_TIMED_OUT"));
    imp_error_free(err);
    err = imp_kafka_producer_ping(p, 300);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_INFRA);
    imp_error_free(err);

    /* Brokers back: delivered again, after the ones before. */
    for (int b = 1; b <= 3; b++)
        rd_kafka_mock_broker_set_up(mock, b);
    /* Reconnecting may outlast one delivery.timeout.ms: the caller's retry in place. */
    for (int i = 0; i < 10; i++) {
        err = imp_kafka_produce_sync(p, &m, 5000, &part, &off);
        if (err == NULL || imp_error_class(err) != IMP_ERR_INFRA)
            break;
        imp_error_free(err);
    }
    ck_assert_msg(err == NULL, "%s", err ? imp_error_message(err) : "");
    ck_assert_int_ge(off, 3);
    ck_assert_ptr_null(imp_kafka_producer_fatal(p));
    imp_kafka_producer_free(p);
    mock_stop();
}
END_TEST

START_TEST(produce_errors_classified)
{
    quiet();
    mock_start();
    topic_create("t.err", 2);
    static const imp_kafka_prop_t props[] = {{"message.max.bytes", "2000"}};
    imp_kafka_props_t extra = {props, 1};
    imp_kafka_producer_t *p = producer(&extra);
    ck_assert_ptr_null(imp_kafka_producer_ping(p, 5000));

    char big[4000];
    memset(big, 'x', sizeof(big));
    imp_kafka_out_t m = {.topic = "t.err", .partition = 0, .value = big, .value_len = sizeof(big)};
    imp_error_t *err = imp_kafka_produce(p, &m);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
    imp_error_free(err);

    m.value_len = 10;
    m.partition = 7; /* the topic has 2 */
    err = imp_kafka_produce(p, &m);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
    imp_error_free(err);

    /* A broker error the idempotent producer retries by itself: still delivered once. */
    rd_kafka_mock_push_request_errors(mock, 0 /* Produce */, 2,
                                      RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                      RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
    m.partition = 1;
    int64_t off = -1;
    err = imp_kafka_produce_sync(p, &m, 10000, NULL, &off);
    ck_assert_msg(err == NULL, "%s", err ? imp_error_message(err) : "");
    ck_assert_int_eq(off, 0);

    /* Many headers (past the wrapper's on-stack argument array), one null-valued. */
    imp_kafka_header_t hdrs[12];
    for (int i = 0; i < 12; i++)
        hdrs[i] = (imp_kafka_header_t){"h", i ? "v" : NULL, i ? 1 : 0};
    m.headers = hdrs;
    m.nheaders = 12;
    err = imp_kafka_produce_sync(p, &m, 10000, NULL, &off);
    ck_assert_msg(err == NULL, "%s", err ? imp_error_message(err) : "");
    ck_assert_int_eq(off, 1);
    imp_kafka_producer_free(p);
    mock_stop();
}
END_TEST

/* ---- stored + committed offsets survive the consumer; a second one resumes exactly ----- */

typedef struct {
    int assigned;
    int revoked;
} rebalances_t;

static void on_assign(imp_kafka_consumer_t *c, const imp_kafka_tp_t *parts, size_t n, void *ctx)
{
    (void)c, (void)parts;
    ((rebalances_t *)ctx)->assigned += (int)n;
}

static void on_revoke(imp_kafka_consumer_t *c, const imp_kafka_tp_t *parts, size_t n, void *ctx)
{
    (void)c, (void)parts;
    ((rebalances_t *)ctx)->revoked += (int)n;
}

static void produce_values(imp_kafka_producer_t *p, const char *topic, int n)
{
    for (int i = 0; i < n; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", i);
        imp_kafka_out_t m = text_msg(topic, v);
        ck_assert_ptr_null(imp_kafka_produce(p, &m));
    }
    ck_assert_ptr_null(imp_kafka_producer_flush(p, 10000));
}

/* Consume up to and including offset `last`, storing every offset; then commit. */
static void consume_and_commit(imp_kafka_consumer_t *c, int64_t last)
{
    for (int64_t want = 0; want <= last; want++) {
        imp_kafka_msg_t *m = next_msg(c, 15000);
        ck_assert_ptr_nonnull(m);
        ck_assert_int_eq(m->offset, want);
        ck_assert_ptr_null(imp_kafka_consumer_store_msg(c, m));
        imp_kafka_msg_free(m);
    }
    ck_assert_ptr_null(imp_kafka_consumer_commit_sync(c));
}

static void check_lag(imp_kafka_consumer_t *c, const char *topic, int64_t committed, int64_t high)
{
    imp_kafka_lag_t *lag = NULL;
    size_t n = 0;
    ck_assert_ptr_null(imp_kafka_consumer_lag(c, 5000, &lag, &n));
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(lag[0].topic, topic);
    ck_assert_int_eq(lag[0].committed, committed);
    ck_assert_int_eq(lag[0].high, high);
    ck_assert_int_eq(lag[0].lag, high - committed);
    imp_kafka_lag_free(lag, n);
}

/* Retry in place as the worker runtime does it: read ahead, pause, seek back to the failed
 * message, store the offset of the work done before it (after the seek), resume → the
 * failed message comes again, then the rest in order. */
static void check_pause_seek(imp_kafka_consumer_t *c)
{
    for (int64_t want = 121; want <= 130; want++) {
        imp_kafka_msg_t *m = next_msg(c, 5000);
        ck_assert_ptr_nonnull(m);
        ck_assert_int_eq(m->offset, want);
        imp_kafka_msg_free(m);
    }
    ck_assert_ptr_null(imp_kafka_consumer_pause_all(c));
    ck_assert_ptr_null(imp_kafka_consumer_seek(c, "t.resume", 0, 125, 5000));
    ck_assert_ptr_null(imp_kafka_consumer_store_offset(c, "t.resume", 0, 125));
    ck_assert_ptr_null(next_msg(c, 500)); /* paused: nothing, not even prefetched data */
    ck_assert_ptr_null(imp_kafka_consumer_resume(c, "t.resume", 0));
    for (int64_t want = 125; want < 200; want++) {
        imp_kafka_msg_t *m = next_msg(c, 10000);
        ck_assert_ptr_nonnull(m);
        ck_assert_int_eq(m->offset, want);
        imp_kafka_msg_free(m);
    }
    ck_assert_ptr_null(imp_kafka_consumer_commit_sync(c));
    check_lag(c, "t.resume", 125, 200);
}

START_TEST(commit_and_resume)
{
    quiet();
    mock_start();
    topic_create("t.resume", 1);
    imp_kafka_producer_t *p = producer(NULL);
    produce_values(p, "t.resume", 200);

    rebalances_t rb = {0};
    imp_kafka_consumer_t *c = consumer("g.resume", "t.resume");
    imp_kafka_consumer_set_rebalance(c, on_assign, on_revoke, &rb);
    consume_and_commit(c, 119);
    /* Read further without storing: must be re-read by the next member. */
    for (int i = 0; i < 30; i++)
        imp_kafka_msg_free(next_msg(c, 5000));
    check_lag(c, "t.resume", 120, 200);
    ck_assert_ptr_null(imp_kafka_consumer_close(c));
    ck_assert_int_eq(rb.assigned, 1);
    ck_assert_int_eq(rb.revoked, 1);
    imp_error_t *err = imp_kafka_consumer_store_offset(c, "t.resume", 0, 150);
    ck_assert_ptr_nonnull(err); /* not assigned any more */
    imp_error_free(err);
    imp_kafka_consumer_free(c);

    c = consumer("g.resume", "t.resume");
    imp_kafka_msg_t *m = next_msg(c, 15000);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(m->offset, 120);
    ck_assert_str_eq(m->topic, "t.resume");
    ck_assert_int_eq(m->partition, 0);
    imp_kafka_msg_free(m);
    imp_kafka_tp_t *tp = NULL;
    size_t n = 0;
    ck_assert_ptr_null(imp_kafka_consumer_assignment(c, &tp, &n));
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(tp[0].topic, "t.resume");
    imp_kafka_tp_list_free(tp, n);
    check_pause_seek(c);
    imp_kafka_consumer_free(c);
    imp_kafka_producer_free(p);
    mock_stop();
}
END_TEST

/* The lag of a partition whose leader is down comes at once, from the consumer's last fetch:
 * librdkafka 2.0.2's watermark query waits for the leader whatever its timeout, and held a
 * stopping worker until the broker came back. */
START_TEST(lag_while_the_leader_is_down)
{
    quiet();
    mock_start();
    topic_create("t.lag", 1);
    ck_assert_int_eq(rd_kafka_mock_partition_set_leader(mock, "t.lag", 0, 2), 0);
    ck_assert_int_eq(rd_kafka_mock_coordinator_set(mock, "group", "g.lag", 1), 0);
    imp_kafka_producer_t *p = producer(NULL);
    produce_values(p, "t.lag", 50);
    imp_kafka_consumer_t *c = consumer("g.lag", "t.lag");
    consume_and_commit(c, 29);
    check_lag(c, "t.lag", 30, 50);
    rd_kafka_mock_broker_set_down(mock, 2);
    int64_t t0 = now_ms();
    check_lag(c, "t.lag", 30, 50);
    ck_assert_int_lt(now_ms() - t0, 2000);
    rd_kafka_mock_broker_set_up(mock, 2);
    imp_kafka_consumer_free(c);
    imp_kafka_producer_free(p);
    mock_stop();
}
END_TEST

/* ---- consumer errors are surfaced, not fatal ------------------------------------------- */

START_TEST(consumer_error_surfaced)
{
    quiet();
    imp_error_t *err = NULL;
    const char *topics[] = {"t.none"};
    imp_kafka_consumer_t *c =
        imp_kafka_consumer_new("127.0.0.1:1", "g.none", topics, 1, &fast, &err);
    ck_assert_ptr_null(err);
    int64_t deadline = now_ms() + 10000;
    imp_kafka_msg_t *m = NULL;
    while (err == NULL && now_ms() < deadline)
        err = imp_kafka_consumer_poll(c, 200, &m);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_INFRA);
    imp_error_free(err);
    imp_kafka_consumer_free(c);
}
END_TEST

/* ---- configuration ---------------------------------------------------------------------- */

START_TEST(props_parse)
{
    imp_kafka_props_t props;
    ck_assert_ptr_null(
        imp_kafka_props_parse(" linger.ms = 2 ,partition.assignment.strategy=range,roundrobin,"
                              "compression.type=lz4,",
                              &props));
    ck_assert_uint_eq(props.count, 3);
    ck_assert_str_eq(props.items[0].name, "linger.ms");
    ck_assert_str_eq(props.items[0].value, "2");
    ck_assert_str_eq(props.items[1].value, "range,roundrobin");
    ck_assert_str_eq(props.items[2].name, "compression.type");
    imp_kafka_props_dispose(&props);

    ck_assert_ptr_null(imp_kafka_props_parse("", &props));
    ck_assert_uint_eq(props.count, 0);
    imp_kafka_props_dispose(&props);

    imp_error_t *err = imp_kafka_props_parse("novalue", &props);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_FATAL);
    imp_error_free(err);
    err = imp_kafka_props_parse("=x", &props);
    ck_assert_ptr_nonnull(err);
    imp_error_free(err);
}
END_TEST

START_TEST(bad_config_is_fatal)
{
    quiet();
    imp_error_t *err = NULL;
    static const imp_kafka_prop_t bad[] = {{"no.such.property", "1"}};
    imp_kafka_props_t extra = {bad, 1};
    ck_assert_ptr_null(imp_kafka_producer_new("127.0.0.1:1", &extra, &err));
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_FATAL);
    ck_assert_str_eq(imp_error_code(err), "kafka_config");
    imp_error_free(err);
    const char *topics[] = {"t"};
    ck_assert_ptr_null(imp_kafka_consumer_new("127.0.0.1:1", "g", topics, 1, &extra, &err));
    ck_assert_ptr_nonnull(err);
    imp_error_free(err);
    ck_assert_ptr_null(imp_kafka_producer_new("", NULL, &err));
    ck_assert_ptr_nonnull(err);
    imp_error_free(err);
}
END_TEST

START_TEST(error_classes)
{
    ck_assert_int_eq(imp_kafka_err_class(RD_KAFKA_RESP_ERR__QUEUE_FULL), IMP_ERR_INFRA);
    ck_assert_int_eq(imp_kafka_err_class(RD_KAFKA_RESP_ERR__TRANSPORT), IMP_ERR_INFRA);
    ck_assert_int_eq(imp_kafka_err_class(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN), IMP_ERR_INFRA);
    ck_assert_int_eq(imp_kafka_err_class(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT), IMP_ERR_INFRA);
    ck_assert_int_eq(imp_kafka_err_class(RD_KAFKA_RESP_ERR__TIMED_OUT), IMP_ERR_INFRA);
    ck_assert_int_eq(imp_kafka_err_class(RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS), IMP_ERR_INFRA);
    ck_assert_int_eq(imp_kafka_err_class(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE), IMP_ERR_POISON);
    ck_assert_int_eq(imp_kafka_err_class(RD_KAFKA_RESP_ERR_INVALID_RECORD), IMP_ERR_POISON);
    ck_assert_int_eq(imp_kafka_err_class(RD_KAFKA_RESP_ERR__FATAL), IMP_ERR_FATAL);
    ck_assert_int_eq(imp_kafka_err_class(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED),
                     IMP_ERR_FATAL);
    imp_error_t *err = imp_kafka_error_new(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, "kafka_x", "doing");
    ck_assert_str_eq(imp_error_code(err), "kafka_x");
    ck_assert_str_eq(imp_error_detail(err), "_MSG_TIMED_OUT");
    ck_assert_ptr_nonnull(strstr(imp_error_message(err), "doing: "));
    imp_error_free(err);
}
END_TEST

static Suite *kafka_suite(void)
{
    Suite *s = suite_create("kafka");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, props_parse);
    tcase_add_test(tc, bad_config_is_fatal);
    tcase_add_test(tc, error_classes);
    suite_add_tcase(s, tc);
    tc = tcase_create("producer");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, produce_sync_persisted_then_brokers_down);
    tcase_add_test(tc, produce_errors_classified);
    suite_add_tcase(s, tc);
    tc = tcase_create("consumer");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, produce_consume_in_order);
    tcase_add_test(tc, commit_and_resume);
    tcase_add_test(tc, lag_while_the_leader_is_down);
    tcase_add_test(tc, consumer_error_surfaced);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(kafka_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
