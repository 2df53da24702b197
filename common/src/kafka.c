/* Kafka producer and consumer wrappers over librdkafka: defaults, error classes, delivery. */
#include "imp/kafka.h"

#include "imp/log.h"
#include "imp/mem.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- errors ---------------------------------------------------------------------------- */

imp_err_class_t imp_kafka_err_class(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:
    case RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR__BAD_MSG:
    case RD_KAFKA_RESP_ERR__INVALID_TYPE:
        return IMP_ERR_POISON;
    case RD_KAFKA_RESP_ERR__FATAL:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR__SSL:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_PRODUCER_FENCED:
    case RD_KAFKA_RESP_ERR__FENCED:
    case RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER:
    case RD_KAFKA_RESP_ERR__NOT_IMPLEMENTED:
        return IMP_ERR_FATAL;
    default:
        /* Transport, brokers down, timeouts, queue full, leadership and coordinator moves,
         * NOT_ENOUGH_REPLICAS, unknown topics: the cluster may heal, so retry in place. */
        return IMP_ERR_INFRA;
    }
}

imp_error_t *imp_kafka_error_new(rd_kafka_resp_err_t err, const char *code, const char *what)
{
    imp_error_t *e =
        imp_error_new(imp_kafka_err_class(err), code, "%s: %s", what, rd_kafka_err2str(err));
    imp_error_set_detail(e, rd_kafka_err2name(err));
    return e;
}

/* ---- properties ------------------------------------------------------------------------ */

static char *trimmed(const char *s, size_t len)
{
    while (len > 0 && isspace((unsigned char)*s)) {
        s++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        len--;
    return imp_strndup(s, len);
}

/* A segment without '=' continues the previous value, so list-valued properties survive:
 * "partition.assignment.strategy=range,roundrobin,linger.ms=2". */
static int add_segment(imp_kafka_prop_t *items, size_t *count, const char *seg, size_t len)
{
    const char *eq = memchr(seg, '=', len);
    if (eq == NULL) {
        if (*count == 0)
            return -1;
        char *tail = trimmed(seg, len);
        char *joined = imp_asprintf("%s,%s", items[*count - 1].value, tail);
        free(tail);
        free((char *)items[*count - 1].value);
        items[*count - 1].value = joined;
        return 0;
    }
    char *name = trimmed(seg, (size_t)(eq - seg));
    if (*name == '\0') {
        free(name);
        return -1;
    }
    items[*count].name = name;
    items[*count].value = trimmed(eq + 1, len - (size_t)(eq - seg) - 1);
    (*count)++;
    return 0;
}

imp_error_t *imp_kafka_props_parse(const char *text, imp_kafka_props_t *out)
{
    out->items = NULL;
    out->count = 0;
    if (text == NULL)
        return NULL;
    size_t cap = 1;
    for (const char *s = text; *s; s++)
        cap += *s == ',';
    imp_kafka_prop_t *items = imp_calloc(cap, sizeof(*items));
    size_t count = 0;
    const char *seg = text;
    for (;;) {
        const char *end = strchr(seg, ',');
        size_t len = end ? (size_t)(end - seg) : strlen(seg);
        char *blank = trimmed(seg, len);
        int empty = *blank == '\0';
        free(blank);
        if (!empty && add_segment(items, &count, seg, len) != 0) {
            out->items = items;
            out->count = count;
            imp_kafka_props_dispose(out);
            return imp_error_new(IMP_ERR_FATAL, "kafka_config",
                                 "malformed kafka properties: expected name=value");
        }
        if (end == NULL)
            break;
        seg = end + 1;
    }
    out->items = items;
    out->count = count;
    return NULL;
}

void imp_kafka_props_dispose(imp_kafka_props_t *props)
{
    for (size_t i = 0; i < props->count; i++) {
        free((char *)props->items[i].name);
        free((char *)props->items[i].value);
    }
    free((imp_kafka_prop_t *)props->items);
    props->items = NULL;
    props->count = 0;
}

static imp_error_t *conf_set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char errstr[512];
    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
        return imp_error_new(IMP_ERR_FATAL, "kafka_config", "kafka property %s: %s", name, errstr);
    return NULL;
}

static imp_error_t *conf_apply(rd_kafka_conf_t *conf, const imp_kafka_prop_t *items, size_t n)
{
    imp_error_t *err = NULL;
    for (size_t i = 0; i < n && err == NULL; i++)
        err = conf_set(conf, items[i].name, items[i].value);
    return err;
}

/* librdkafka's own log lines, as JSON lines (called from librdkafka's threads). */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    /* Connection failures also arrive through the error callback, which logs them once. */
    if (strcmp(fac, "FAIL") == 0)
        return;
    imp_log_level_t lvl = level <= 3   ? IMP_LOG_LEVEL_ERROR
                          : level == 4 ? IMP_LOG_LEVEL_WARN
                          : level <= 6 ? IMP_LOG_LEVEL_INFO
                                       : IMP_LOG_LEVEL_DEBUG;
    IMP_LOG_AT(lvl, "librdkafka", IMP_LS("client", rd_kafka_name(rk)), IMP_LS("facility", fac),
               IMP_LS("detail", buf));
}

/* A configuration with the defaults, the overrides, logging and the opaque set. */
static rd_kafka_conf_t *conf_build(const char *brokers, const imp_kafka_prop_t *defaults,
                                   size_t ndefaults, const imp_kafka_props_t *extra, void *opaque,
                                   imp_error_t **err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (brokers == NULL || *brokers == '\0') {
        *err = imp_error_new(IMP_ERR_FATAL, "kafka_config", "no kafka bootstrap servers given");
        goto fail;
    }
    if ((*err = conf_set(conf, "bootstrap.servers", brokers)) != NULL)
        goto fail;
    if ((*err = conf_apply(conf, defaults, ndefaults)) != NULL)
        goto fail;
    if (extra != NULL && (*err = conf_apply(conf, extra->items, extra->count)) != NULL)
        goto fail;
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_opaque(conf, opaque);
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static rd_kafka_t *client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, imp_error_t **err)
{
    char errstr[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        *err = imp_error_new(IMP_ERR_FATAL, "kafka_config", "could not create kafka client: %s",
                             errstr);
    }
    return rk;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- producer -------------------------------------------------------------------------- */

/* One imp_kafka_produce_sync in flight; its address is the message's opaque. */
typedef struct sync_wait {
    struct sync_wait *next;
    bool done;
    bool abandoned;
    imp_error_t *err;
    int32_t partition;
    int64_t offset;
} sync_wait_t;

struct imp_kafka_producer {
    rd_kafka_t *rk;
    imp_kafka_on_delivery_t on_delivery;
    void *ctx;
    pthread_mutex_t lock;
    sync_wait_t *waits;
};

static const imp_kafka_prop_t producer_defaults[] = {
    {"acks", "all"},
    {"enable.idempotence", "true"},
    {"linger.ms", "1"},
    {"delivery.timeout.ms", "30000"},
    {"socket.nagle.disable", "true"},
};

static const char *status_name(rd_kafka_msg_status_t st)
{
    switch (st) {
    case RD_KAFKA_MSG_STATUS_PERSISTED:
        return "PERSISTED";
    case RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED:
        return "POSSIBLY_PERSISTED";
    default:
        return "NOT_PERSISTED";
    }
}

/* NULL when the report says PERSISTED, else the error to hand to the caller. */
static imp_error_t *delivery_error(rd_kafka_t *rk, const rd_kafka_message_t *m)
{
    rd_kafka_msg_status_t st = rd_kafka_message_status(m);
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && st == RD_KAFKA_MSG_STATUS_PERSISTED)
        return NULL;
    rd_kafka_resp_err_t code = m->err ? m->err : RD_KAFKA_RESP_ERR__FAIL;
    char reason[512] = "";
    if (code == RD_KAFKA_RESP_ERR__FATAL)
        code = rd_kafka_fatal_error(rk, reason, sizeof(reason));
    imp_error_t *err = imp_error_new(m->err == RD_KAFKA_RESP_ERR__FATAL ? IMP_ERR_FATAL
                                                                        : imp_kafka_err_class(code),
                                     "kafka_delivery", "message not delivered: %s%s%s",
                                     rd_kafka_err2str(code), *reason ? ": " : "", reason);
    char detail[128];
    snprintf(detail, sizeof(detail), "%s %s", rd_kafka_err2name(code), status_name(st));
    imp_error_set_detail(err, detail);
    return err;
}

/* If m belongs to a produce_sync, complete (or free an abandoned) wait; true when it did. */
static bool complete_sync(imp_kafka_producer_t *p, const rd_kafka_message_t *m)
{
    bool found = false;
    pthread_mutex_lock(&p->lock);
    for (sync_wait_t **pp = &p->waits; *pp != NULL; pp = &(*pp)->next) {
        sync_wait_t *w = *pp;
        if ((void *)w != m->_private)
            continue;
        found = true;
        if (w->abandoned) {
            *pp = w->next;
            free(w);
        } else {
            w->err = delivery_error(p->rk, m);
            w->partition = m->partition;
            w->offset = m->offset;
            w->done = true;
        }
        break;
    }
    pthread_mutex_unlock(&p->lock);
    return found;
}

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    imp_kafka_producer_t *p = opaque;
    (void)rk;
    if (complete_sync(p, m) || p->on_delivery == NULL)
        return;
    imp_error_t *err = delivery_error(p->rk, m);
    p->on_delivery(m->_private, err, m->partition, err ? -1 : m->offset, p->ctx);
    imp_error_free(err);
}

static void on_producer_error(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
    (void)opaque;
    if (code == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_resp_err_t fe = rd_kafka_fatal_error(rk, why, sizeof(why));
        IMP_LOG_ERROR("kafka producer fatal error", IMP_LS("kafka_error", rd_kafka_err2name(fe)),
                      IMP_LS("reason", why));
        return;
    }
    IMP_LOG_WARN("kafka producer error", IMP_LS("kafka_error", rd_kafka_err2name(code)),
                 IMP_LS("reason", reason));
}

imp_kafka_producer_t *imp_kafka_producer_new(const char *brokers, const imp_kafka_props_t *extra,
                                             imp_error_t **err)
{
    *err = NULL;
    imp_kafka_producer_t *p = imp_calloc(1, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    rd_kafka_conf_t *conf =
        conf_build(brokers, producer_defaults, IMP_ARRAY_LEN(producer_defaults), extra, p, err);
    if (conf == NULL)
        goto fail;
    rd_kafka_conf_set_dr_msg_cb(conf, on_dr);
    rd_kafka_conf_set_error_cb(conf, on_producer_error);
    if ((p->rk = client_new(RD_KAFKA_PRODUCER, conf, err)) == NULL)
        goto fail;
    return p;
fail:
    pthread_mutex_destroy(&p->lock);
    free(p);
    return NULL;
}

void imp_kafka_producer_free(imp_kafka_producer_t *p)
{
    if (p == NULL)
        return;
    /* Without RD_KAFKA_DESTROY_F_IMMEDIATE destroy would wait for queued messages. */
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    p->on_delivery = NULL;
    rd_kafka_poll(p->rk, 0);
    rd_kafka_destroy(p->rk);
    while (p->waits != NULL) {
        sync_wait_t *w = p->waits;
        p->waits = w->next;
        imp_error_free(w->err);
        free(w);
    }
    pthread_mutex_destroy(&p->lock);
    free(p);
}

void imp_kafka_producer_set_on_delivery(imp_kafka_producer_t *p, imp_kafka_on_delivery_t cb,
                                        void *ctx)
{
    p->on_delivery = cb;
    p->ctx = ctx;
}

/* The produceva arguments for m (vu has room for 7 + m->nheaders); returns the count. */
static size_t fill_vu(rd_kafka_vu_t *vu, const imp_kafka_out_t *m)
{
    size_t n = 0;
    vu[n].vtype = RD_KAFKA_VTYPE_TOPIC;
    vu[n++].u.cstr = m->topic;
    vu[n].vtype = RD_KAFKA_VTYPE_PARTITION;
    vu[n++].u.i32 = m->partition;
    vu[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vu[n++].u.i = RD_KAFKA_MSG_F_COPY;
    vu[n].vtype = RD_KAFKA_VTYPE_KEY;
    vu[n].u.mem.ptr = (void *)m->key;
    vu[n++].u.mem.size = m->key ? m->key_len : 0;
    vu[n].vtype = RD_KAFKA_VTYPE_VALUE;
    vu[n].u.mem.ptr = (void *)m->value;
    vu[n++].u.mem.size = m->value ? m->value_len : 0;
    vu[n].vtype = RD_KAFKA_VTYPE_OPAQUE;
    vu[n++].u.ptr = m->opaque;
    if (m->timestamp_ms != 0) {
        vu[n].vtype = RD_KAFKA_VTYPE_TIMESTAMP;
        vu[n++].u.i64 = m->timestamp_ms;
    }
    for (size_t i = 0; i < m->nheaders; i++) {
        vu[n].vtype = RD_KAFKA_VTYPE_HEADER;
        vu[n].u.header.name = m->headers[i].name;
        vu[n].u.header.val = m->headers[i].value;
        vu[n++].u.header.size = m->headers[i].value ? (ssize_t)m->headers[i].value_len : 0;
    }
    return n;
}

imp_error_t *imp_kafka_produce(imp_kafka_producer_t *p, const imp_kafka_out_t *m)
{
    if (m == NULL || m->topic == NULL)
        return imp_error_new(IMP_ERR_POISON, "kafka_produce", "no topic given");
    rd_kafka_vu_t stack[16]; /* the hot path: no allocation for up to 9 headers */
    rd_kafka_vu_t *vu =
        7 + m->nheaders <= IMP_ARRAY_LEN(stack) ? stack : imp_calloc(7 + m->nheaders, sizeof(*vu));
    size_t n = fill_vu(vu, m);
    rd_kafka_error_t *rerr = rd_kafka_produceva(p->rk, vu, n);
    if (vu != stack)
        free(vu);
    if (rerr == NULL)
        return NULL;
    rd_kafka_resp_err_t code = rd_kafka_error_code(rerr);
    rd_kafka_error_destroy(rerr);
    return imp_kafka_error_new(code,
                               code == RD_KAFKA_RESP_ERR__QUEUE_FULL ? "kafka_queue_full"
                               : code == RD_KAFKA_RESP_ERR__FATAL    ? "kafka_fatal"
                                                                     : "kafka_produce",
                               "could not queue kafka message");
}

static void unlink_wait(imp_kafka_producer_t *p, sync_wait_t *w)
{
    for (sync_wait_t **pp = &p->waits; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            return;
        }
    }
}

/* Serve reports until w is done or the deadline passes; called and returns with p->lock. */
static void wait_sync(imp_kafka_producer_t *p, sync_wait_t *w, int64_t deadline)
{
    while (!w->done) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            break;
        pthread_mutex_unlock(&p->lock);
        /* Another thread may serve our report: wake up now and then to look. */
        rd_kafka_poll(p->rk, left < 100 ? (int)left : 100);
        pthread_mutex_lock(&p->lock);
    }
}

imp_error_t *imp_kafka_produce_sync(imp_kafka_producer_t *p, const imp_kafka_out_t *m,
                                    int timeout_ms, int32_t *partition_out, int64_t *offset_out)
{
    int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    sync_wait_t *w = imp_calloc(1, sizeof(*w));
    imp_kafka_out_t copy = *m;
    copy.opaque = w;
    pthread_mutex_lock(&p->lock);
    w->next = p->waits;
    p->waits = w;
    pthread_mutex_unlock(&p->lock);

    imp_error_t *err = imp_kafka_produce(p, &copy);
    pthread_mutex_lock(&p->lock);
    if (err != NULL) {
        unlink_wait(p, w);
        pthread_mutex_unlock(&p->lock);
        free(w);
        return err;
    }
    wait_sync(p, w, deadline);
    if (!w->done) {
        w->abandoned = true; /* the report, when it comes, frees it */
        pthread_mutex_unlock(&p->lock);
        return imp_error_new(IMP_ERR_INFRA, "kafka_timeout",
                             "no kafka delivery report within %d ms", timeout_ms);
    }
    unlink_wait(p, w);
    pthread_mutex_unlock(&p->lock);
    err = w->err;
    if (err == NULL && partition_out != NULL)
        *partition_out = w->partition;
    if (err == NULL && offset_out != NULL)
        *offset_out = w->offset;
    free(w);
    return err;
}

int imp_kafka_producer_poll(imp_kafka_producer_t *p, int timeout_ms)
{
    return rd_kafka_poll(p->rk, timeout_ms);
}

imp_error_t *imp_kafka_producer_flush(imp_kafka_producer_t *p, int timeout_ms)
{
    rd_kafka_resp_err_t rc = rd_kafka_flush(p->rk, timeout_ms);
    if (rc == RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    return imp_error_new(IMP_ERR_INFRA, "kafka_timeout",
                         "%d kafka messages still undelivered after %d ms",
                         rd_kafka_outq_len(p->rk), timeout_ms);
}

int imp_kafka_producer_outq_len(const imp_kafka_producer_t *p)
{
    return rd_kafka_outq_len(p->rk);
}

imp_error_t *imp_kafka_producer_fatal(imp_kafka_producer_t *p)
{
    char why[512];
    rd_kafka_resp_err_t fe = rd_kafka_fatal_error(p->rk, why, sizeof(why));
    if (fe == RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    imp_error_t *err = imp_error_new(IMP_ERR_FATAL, "kafka_fatal", "kafka producer fatal: %s", why);
    imp_error_set_detail(err, rd_kafka_err2name(fe));
    return err;
}

static imp_error_t *ping(rd_kafka_t *rk, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t rc = rd_kafka_metadata(rk, 0, NULL, &md, timeout_ms);
    if (rc != RD_KAFKA_RESP_ERR_NO_ERROR)
        return imp_kafka_error_new(rc, "kafka_unreachable", "kafka metadata request failed");
    rd_kafka_metadata_destroy(md);
    return NULL;
}

imp_error_t *imp_kafka_producer_ping(imp_kafka_producer_t *p, int timeout_ms)
{
    return ping(p->rk, timeout_ms);
}

rd_kafka_t *imp_kafka_producer_handle(imp_kafka_producer_t *p)
{
    return p->rk;
}

/* ---- consumer -------------------------------------------------------------------------- */

struct imp_kafka_consumer {
    rd_kafka_t *rk;
    imp_kafka_on_rebalance_t on_assign;
    imp_kafka_on_rebalance_t on_revoke;
    void *ctx;
    rd_kafka_resp_err_t pending; /* last error event, surfaced by the next poll */
    char pending_reason[256];
    bool closed;
};

static const imp_kafka_prop_t consumer_defaults[] = {
    {"partition.assignment.strategy", "range"},
    {"auto.offset.reset", "earliest"},
    {"enable.auto.commit", "true"},
    {"auto.commit.interval.ms", "1000"},
    {"enable.auto.offset.store", "false"},
    {"session.timeout.ms", "10000"},
    {"heartbeat.interval.ms", "2000"},
    {"enable.partition.eof", "false"},
    {"queued.min.messages", "1000000"},
    {"fetch.wait.max.ms", "100"},
    {"socket.nagle.disable", "true"},
};

/* A borrowed view of a librdkafka list (topics point into it). */
static imp_kafka_tp_t *tp_view(const rd_kafka_topic_partition_list_t *l)
{
    imp_kafka_tp_t *v = imp_calloc((size_t)l->cnt + 1, sizeof(*v));
    for (int i = 0; i < l->cnt; i++) {
        v[i].topic = l->elems[i].topic;
        v[i].partition = l->elems[i].partition;
        v[i].offset = l->elems[i].offset;
    }
    return v;
}

static void call_rebalance(imp_kafka_consumer_t *c, imp_kafka_on_rebalance_t cb,
                           const rd_kafka_topic_partition_list_t *parts)
{
    if (cb == NULL)
        return;
    imp_kafka_tp_t *v = tp_view(parts);
    cb(c, v, (size_t)parts->cnt, c->ctx);
    free(v);
}

static void log_rebalance(const char *what, const rd_kafka_topic_partition_list_t *parts)
{
    IMP_LOG_INFO(what, IMP_LI("partitions", parts->cnt),
                 IMP_LS("topic", parts->cnt > 0 ? parts->elems[0].topic : ""));
}

static void assign(imp_kafka_consumer_t *c, rd_kafka_topic_partition_list_t *parts, bool coop)
{
    rd_kafka_error_t *e = NULL;
    rd_kafka_resp_err_t rc = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (coop)
        e = rd_kafka_incremental_assign(c->rk, parts);
    else
        rc = rd_kafka_assign(c->rk, parts);
    if (e != NULL) {
        rc = rd_kafka_error_code(e);
        rd_kafka_error_destroy(e);
    }
    if (rc != RD_KAFKA_RESP_ERR_NO_ERROR)
        IMP_LOG_ERROR("kafka assign failed", IMP_LS("kafka_error", rd_kafka_err2name(rc)));
}

static void unassign(imp_kafka_consumer_t *c, rd_kafka_topic_partition_list_t *parts, bool coop)
{
    rd_kafka_error_t *e = NULL;
    rd_kafka_resp_err_t rc = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (coop)
        e = rd_kafka_incremental_unassign(c->rk, parts);
    else
        rc = rd_kafka_assign(c->rk, NULL);
    if (e != NULL) {
        rc = rd_kafka_error_code(e);
        rd_kafka_error_destroy(e);
    }
    if (rc != RD_KAFKA_RESP_ERR_NO_ERROR)
        IMP_LOG_ERROR("kafka unassign failed", IMP_LS("kafka_error", rd_kafka_err2name(rc)));
}

/* Commit what on_revoke (and earlier work) stored, unless the partitions are already lost
 * (session timed out: another member may own them and committing would rewind it). */
static void commit_on_revoke(imp_kafka_consumer_t *c)
{
    if (rd_kafka_assignment_lost(c->rk))
        return;
    rd_kafka_resp_err_t rc = rd_kafka_commit(c->rk, NULL, 0);
    if (rc != RD_KAFKA_RESP_ERR_NO_ERROR && rc != RD_KAFKA_RESP_ERR__NO_OFFSET)
        IMP_LOG_WARN("kafka commit on revoke failed", IMP_LS("kafka_error", rd_kafka_err2name(rc)));
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    imp_kafka_consumer_t *c = opaque;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    switch (err) {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
        log_rebalance("kafka partitions assigned", parts);
        assign(c, parts, coop);
        call_rebalance(c, c->on_assign, parts);
        break;
    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
        log_rebalance("kafka partitions revoked", parts);
        call_rebalance(c, c->on_revoke, parts);
        commit_on_revoke(c);
        unassign(c, parts, coop);
        break;
    default:
        IMP_LOG_ERROR("kafka rebalance failed", IMP_LS("kafka_error", rd_kafka_err2name(err)));
        unassign(c, parts, false);
        break;
    }
}

static void on_consumer_error(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
    imp_kafka_consumer_t *c = opaque;
    IMP_LOG_WARN("kafka consumer error", IMP_LS("kafka_error", rd_kafka_err2name(code)),
                 IMP_LS("reason", reason));
    c->pending = code;
    snprintf(c->pending_reason, sizeof(c->pending_reason), "%s", reason);
    rd_kafka_yield(rk); /* surface it from the current poll at once */
}

static imp_error_t *subscribe(rd_kafka_t *rk, const char *const *topics, size_t ntopics)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)ntopics);
    for (size_t i = 0; i < ntopics; i++)
        rd_kafka_topic_partition_list_add(l, topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t rc = rd_kafka_subscribe(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (rc == RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    imp_error_t *err = imp_kafka_error_new(rc, "kafka_subscribe", "could not subscribe");
    return err;
}

imp_kafka_consumer_t *imp_kafka_consumer_new(const char *brokers, const char *group_id,
                                             const char *const *topics, size_t ntopics,
                                             const imp_kafka_props_t *extra, imp_error_t **err)
{
    *err = NULL;
    if (group_id == NULL || *group_id == '\0' || ntopics == 0) {
        *err = imp_error_new(IMP_ERR_FATAL, "kafka_config", "a group id and topics are needed");
        return NULL;
    }
    imp_kafka_consumer_t *c = imp_calloc(1, sizeof(*c));
    rd_kafka_conf_t *conf =
        conf_build(brokers, consumer_defaults, IMP_ARRAY_LEN(consumer_defaults), extra, c, err);
    if (conf == NULL || (*err = conf_set(conf, "group.id", group_id)) != NULL)
        goto fail;
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_error_cb(conf, on_consumer_error);
    c->rk = client_new(RD_KAFKA_CONSUMER, conf, err);
    conf = NULL;
    if (c->rk == NULL)
        goto fail;
    rd_kafka_poll_set_consumer(c->rk);
    if ((*err = subscribe(c->rk, topics, ntopics)) != NULL)
        goto fail;
    return c;
fail:
    if (conf != NULL)
        rd_kafka_conf_destroy(conf);
    if (c->rk != NULL)
        rd_kafka_destroy(c->rk);
    free(c);
    return NULL;
}

void imp_kafka_consumer_set_rebalance(imp_kafka_consumer_t *c, imp_kafka_on_rebalance_t on_assign,
                                      imp_kafka_on_rebalance_t on_revoke, void *ctx)
{
    c->on_assign = on_assign;
    c->on_revoke = on_revoke;
    c->ctx = ctx;
}

static imp_kafka_msg_t *msg_wrap(rd_kafka_message_t *m)
{
    imp_kafka_msg_t *msg = imp_calloc(1, sizeof(*msg));
    msg->priv_ = m;
    msg->topic = rd_kafka_topic_name(m->rkt);
    msg->partition = m->partition;
    msg->offset = m->offset;
    msg->key = m->key;
    msg->key_len = m->key ? m->key_len : 0;
    msg->value = m->payload;
    msg->value_len = m->payload ? m->len : 0;
    msg->timestamp_ms = rd_kafka_message_timestamp(m, NULL);
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return msg;
    size_t n = rd_kafka_header_cnt(hdrs);
    imp_kafka_header_t *h = imp_calloc(n + 1, sizeof(*h));
    for (size_t i = 0; i < n; i++)
        rd_kafka_header_get_all(hdrs, i, &h[i].name, &h[i].value, &h[i].value_len);
    msg->headers = h;
    msg->nheaders = n;
    return msg;
}

void imp_kafka_msg_free(imp_kafka_msg_t *msg)
{
    if (msg == NULL)
        return;
    rd_kafka_message_destroy(msg->priv_);
    free((imp_kafka_header_t *)msg->headers);
    free(msg);
}

int imp_kafka_msg_header(const imp_kafka_msg_t *msg, const char *name, const void **value,
                         size_t *len)
{
    for (size_t i = msg->nheaders; i-- > 0;) {
        if (strcmp(msg->headers[i].name, name) == 0) {
            *value = msg->headers[i].value;
            *len = msg->headers[i].value_len;
            return 0;
        }
    }
    return -1;
}

static imp_error_t *take_pending(imp_kafka_consumer_t *c)
{
    rd_kafka_resp_err_t code = c->pending;
    c->pending = RD_KAFKA_RESP_ERR_NO_ERROR;
    char why[512];
    snprintf(why, sizeof(why), "%s", c->pending_reason);
    bool fatal = code == RD_KAFKA_RESP_ERR__FATAL;
    if (fatal)
        code = rd_kafka_fatal_error(c->rk, why, sizeof(why));
    imp_error_t *err = imp_error_new(fatal ? IMP_ERR_FATAL : imp_kafka_err_class(code),
                                     "kafka_consume", "kafka consumer error: %s", why);
    imp_error_set_detail(err, rd_kafka_err2name(code));
    return err;
}

imp_error_t *imp_kafka_consumer_poll(imp_kafka_consumer_t *c, int timeout_ms, imp_kafka_msg_t **out)
{
    *out = NULL;
    if (c->closed)
        return imp_error_new(IMP_ERR_FATAL, "kafka_closed", "kafka consumer is closed");
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, timeout_ms);
    if (m != NULL && m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        *out = msg_wrap(m);
        return NULL;
    }
    if (m != NULL) {
        imp_error_t *err = imp_kafka_error_new(m->err, "kafka_consume", "kafka consume failed");
        imp_error_prefix(err, "%s [%d]", m->rkt ? rd_kafka_topic_name(m->rkt) : "-",
                         (int)m->partition);
        IMP_LOG_WARN("kafka consume error", IMP_LE(err));
        rd_kafka_message_destroy(m);
        return err;
    }
    if (c->pending != RD_KAFKA_RESP_ERR_NO_ERROR)
        return take_pending(c);
    return NULL;
}

static imp_error_t *one_partition_op(imp_kafka_consumer_t *c, const char *topic, int32_t partition,
                                     int64_t offset, int op)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
    rd_kafka_resp_err_t rc = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (op == 's')
        rc = rd_kafka_offsets_store(c->rk, l);
    else if (op == 'p')
        rc = rd_kafka_pause_partitions(c->rk, l);
    else
        rc = rd_kafka_resume_partitions(c->rk, l);
    if (rc == RD_KAFKA_RESP_ERR_NO_ERROR)
        rc = l->elems[0].err;
    rd_kafka_topic_partition_list_destroy(l);
    if (rc == RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    if (op == 's' && (rc == RD_KAFKA_RESP_ERR__STATE || rc == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION))
        return imp_error_new(IMP_ERR_INFRA, "kafka_not_assigned",
                             "offset not stored: %s [%d] is not assigned", topic, (int)partition);
    return imp_kafka_error_new(rc, op == 's' ? "kafka_store" : "kafka_pause",
                               op == 's'   ? "could not store offset"
                               : op == 'p' ? "could not pause partition"
                                           : "could not resume partition");
}

imp_error_t *imp_kafka_consumer_store_offset(imp_kafka_consumer_t *c, const char *topic,
                                             int32_t partition, int64_t offset_of_next)
{
    return one_partition_op(c, topic, partition, offset_of_next, 's');
}

imp_error_t *imp_kafka_consumer_store_msg(imp_kafka_consumer_t *c, const imp_kafka_msg_t *msg)
{
    return one_partition_op(c, msg->topic, msg->partition, msg->offset + 1, 's');
}

imp_error_t *imp_kafka_consumer_commit_sync(imp_kafka_consumer_t *c)
{
    rd_kafka_resp_err_t rc = rd_kafka_commit(c->rk, NULL, 0);
    if (rc == RD_KAFKA_RESP_ERR_NO_ERROR || rc == RD_KAFKA_RESP_ERR__NO_OFFSET)
        return NULL;
    return imp_kafka_error_new(rc, "kafka_commit", "offset commit failed");
}

imp_error_t *imp_kafka_consumer_pause(imp_kafka_consumer_t *c, const char *topic, int32_t partition)
{
    return one_partition_op(c, topic, partition, RD_KAFKA_OFFSET_INVALID, 'p');
}

imp_error_t *imp_kafka_consumer_resume(imp_kafka_consumer_t *c, const char *topic,
                                       int32_t partition)
{
    return one_partition_op(c, topic, partition, RD_KAFKA_OFFSET_INVALID, 'r');
}

static imp_error_t *all_partitions_op(imp_kafka_consumer_t *c, bool pause)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    rd_kafka_resp_err_t rc = rd_kafka_assignment(c->rk, &l);
    if (rc == RD_KAFKA_RESP_ERR_NO_ERROR)
        rc = pause ? rd_kafka_pause_partitions(c->rk, l) : rd_kafka_resume_partitions(c->rk, l);
    if (l != NULL)
        rd_kafka_topic_partition_list_destroy(l);
    if (rc == RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    return imp_kafka_error_new(
        rc, "kafka_pause", pause ? "could not pause partitions" : "could not resume partitions");
}

imp_error_t *imp_kafka_consumer_pause_all(imp_kafka_consumer_t *c)
{
    return all_partitions_op(c, true);
}

imp_error_t *imp_kafka_consumer_resume_all(imp_kafka_consumer_t *c)
{
    return all_partitions_op(c, false);
}

imp_error_t *imp_kafka_consumer_seek(imp_kafka_consumer_t *c, const char *topic, int32_t partition,
                                     int64_t offset, int timeout_ms)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
    rd_kafka_error_t *e = rd_kafka_seek_partitions(c->rk, l, timeout_ms);
    rd_kafka_resp_err_t rc = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (e != NULL) {
        rc = rd_kafka_error_code(e);
        rd_kafka_error_destroy(e);
    } else {
        rc = l->elems[0].err;
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (rc == RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    return imp_kafka_error_new(rc, "kafka_seek", "could not seek");
}

imp_error_t *imp_kafka_consumer_assignment(imp_kafka_consumer_t *c, imp_kafka_tp_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    rd_kafka_topic_partition_list_t *l = NULL;
    rd_kafka_resp_err_t rc = rd_kafka_assignment(c->rk, &l);
    if (rc != RD_KAFKA_RESP_ERR_NO_ERROR)
        return imp_kafka_error_new(rc, "kafka_assignment", "could not read the assignment");
    rd_kafka_position(c->rk, l);
    imp_kafka_tp_t *v = imp_calloc((size_t)l->cnt + 1, sizeof(*v));
    for (int i = 0; i < l->cnt; i++) {
        v[i].topic = imp_strdup(l->elems[i].topic);
        v[i].partition = l->elems[i].partition;
        v[i].offset = l->elems[i].offset;
    }
    *n = (size_t)l->cnt;
    *out = v;
    rd_kafka_topic_partition_list_destroy(l);
    return NULL;
}

void imp_kafka_tp_list_free(imp_kafka_tp_t *list, size_t n)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free((char *)list[i].topic);
    free(list);
}

/* The watermarks are the ones the consumer's last fetch of each partition brought back, not
 * a query: librdkafka 2.0.2's rd_kafka_query_watermark_offsets ignores its timeout while the
 * partition's leader is down (fixed in 2.3.0) and held a stopping worker until the broker
 * came back. */
static void lag_fill(imp_kafka_consumer_t *c, rd_kafka_topic_partition_list_t *committed,
                     rd_kafka_topic_partition_list_t *pos, imp_kafka_lag_t *lag)
{
    for (int i = 0; i < committed->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &committed->elems[i];
        imp_kafka_lag_t *l = &lag[i];
        l->topic = imp_strdup(tp->topic);
        l->partition = tp->partition;
        l->committed = tp->offset >= 0 ? tp->offset : -1;
        l->position = pos->elems[i].offset >= 0 ? pos->elems[i].offset : -1;
        int64_t low = -1, high = -1;
        if (rd_kafka_get_watermark_offsets(c->rk, tp->topic, tp->partition, &low, &high) !=
            RD_KAFKA_RESP_ERR_NO_ERROR)
            low = high = -1;
        l->low = low >= 0 ? low : -1;
        l->high = high >= 0 ? high : -1;
        int64_t from = l->committed >= 0 ? l->committed : l->low >= 0 ? l->low : l->position;
        l->lag = l->high >= 0 && from >= 0 ? (l->high > from ? l->high - from : 0) : -1;
    }
}

imp_error_t *imp_kafka_consumer_lag(imp_kafka_consumer_t *c, int timeout_ms, imp_kafka_lag_t **out,
                                    size_t *n)
{
    *out = NULL;
    *n = 0;
    imp_error_t *err = NULL;
    imp_kafka_lag_t *lag = NULL;
    rd_kafka_topic_partition_list_t *l = NULL, *pos = NULL;
    rd_kafka_resp_err_t rc = rd_kafka_assignment(c->rk, &l);
    if (rc == RD_KAFKA_RESP_ERR_NO_ERROR) {
        pos = rd_kafka_topic_partition_list_copy(l);
        rd_kafka_position(c->rk, pos);
        rc = rd_kafka_committed(c->rk, l, timeout_ms);
    }
    if (rc != RD_KAFKA_RESP_ERR_NO_ERROR) {
        err = imp_kafka_error_new(rc, "kafka_lag", "could not read committed offsets");
        goto out;
    }
    lag = imp_calloc((size_t)l->cnt + 1, sizeof(*lag));
    lag_fill(c, l, pos, lag);
    *out = lag;
    *n = (size_t)l->cnt;
out:
    if (l != NULL)
        rd_kafka_topic_partition_list_destroy(l);
    if (pos != NULL)
        rd_kafka_topic_partition_list_destroy(pos);
    return err;
}

void imp_kafka_lag_free(imp_kafka_lag_t *lag, size_t n)
{
    if (lag == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(lag[i].topic);
    free(lag);
}

imp_error_t *imp_kafka_consumer_close(imp_kafka_consumer_t *c)
{
    if (c->closed)
        return NULL;
    c->closed = true;
    rd_kafka_resp_err_t rc = rd_kafka_consumer_close(c->rk);
    if (rc == RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    return imp_kafka_error_new(rc, "kafka_close", "kafka consumer close failed");
}

void imp_kafka_consumer_free(imp_kafka_consumer_t *c)
{
    if (c == NULL)
        return;
    imp_error_free(imp_kafka_consumer_close(c));
    rd_kafka_destroy(c->rk);
    free(c);
}

rd_kafka_t *imp_kafka_consumer_handle(imp_kafka_consumer_t *c)
{
    return c->rk;
}
