/* The worker runtime's loop: intake from Kafka, batches, infra backoff, retry waits,
 * rebalances, offsets, metrics and shutdown. */
#include "worker_internal.h"

#include "imp/log.h"
#include "imp/mem.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static imp_worker_t *signal_worker;

/* ---- the queue ----------------------------------------------------------------------------- */

static size_t queue_len(const imp_worker_t *w)
{
    return w->qtail - w->qhead;
}

static worker_item_t *queue_push(imp_worker_t *w)
{
    if (w->qtail == w->qcap) {
        if (w->qhead > 0) {
            memmove(w->q, w->q + w->qhead, queue_len(w) * sizeof(*w->q));
            w->qtail -= w->qhead;
            w->qhead = 0;
        }
        if (w->qtail == w->qcap) {
            w->qcap = w->qcap ? w->qcap * 2 : 1024;
            w->q = imp_realloc(w->q, w->qcap * sizeof(*w->q));
        }
    }
    worker_item_t *it = &w->q[w->qtail++];
    memset(it, 0, sizeof(*it));
    return it;
}

static void queue_pop(imp_worker_t *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        worker_item_dispose(&w->q[w->qhead + i]);
    w->qhead += n;
    if (w->qhead == w->qtail)
        w->qhead = w->qtail = 0;
}

/* Drop queued messages of one partition from offset `from` on (revoked: all of them; a retry
 * partition parked at an event: that event and what follows it, which Kafka delivers again
 * after the wait; the earlier ones stay queued and are processed). */
static void queue_drop_partition(imp_worker_t *w, const char *topic, int32_t partition,
                                 int64_t from)
{
    size_t out = w->qhead;
    for (size_t i = w->qhead; i < w->qtail; i++) {
        worker_item_t *it = &w->q[i];
        if (it->msg->partition == partition && it->msg->offset >= from &&
            strcmp(it->msg->topic, topic) == 0) {
            worker_item_dispose(it);
            continue;
        }
        if (out != i)
            w->q[out] = *it;
        out++;
    }
    w->qtail = out;
}

/* ---- retry waits --------------------------------------------------------------------------- */

static worker_wait_t *find_wait(imp_worker_t *w, int32_t partition)
{
    for (size_t i = 0; i < w->nwaits; i++)
        if (w->waits[i].partition == partition)
            return &w->waits[i];
    return NULL;
}

static void log_kafka_err(const char *what, imp_error_t *err)
{
    if (err == NULL)
        return;
    IMP_LOG_WARN(what, IMP_LE(err));
    imp_error_free(err);
}

/* Park a retry partition at offset until at_ms: pause it and rewind to the event. */
static void wait_partition(imp_worker_t *w, int32_t partition, int64_t offset, int64_t at_ms)
{
    worker_wait_t *wt = find_wait(w, partition);
    if (wt == NULL) {
        if (w->nwaits == w->capwaits) {
            w->capwaits = w->capwaits ? w->capwaits * 2 : 8;
            w->waits = imp_realloc(w->waits, w->capwaits * sizeof(*w->waits));
        }
        wt = &w->waits[w->nwaits++];
    }
    wt->partition = partition;
    wt->offset = offset;
    wt->resume_at_ms = at_ms;
    log_kafka_err("could not pause a retry partition",
                  imp_kafka_consumer_pause(w->consumer, w->retry_topic, partition));
    log_kafka_err("could not rewind a retry partition",
                  imp_kafka_consumer_seek(w->consumer, w->retry_topic, partition, offset, 1000));
    queue_drop_partition(w, w->retry_topic, partition, offset);
}

static void remove_wait(imp_worker_t *w, size_t i)
{
    w->waits[i] = w->waits[--w->nwaits];
}

static void resume_due_waits(imp_worker_t *w, int64_t now)
{
    for (size_t i = 0; i < w->nwaits;) {
        if (w->waits[i].resume_at_ms > now) {
            i++;
            continue;
        }
        log_kafka_err(
            "could not resume a retry partition",
            imp_kafka_consumer_resume(w->consumer, w->retry_topic, w->waits[i].partition));
        remove_wait(w, i);
    }
}

static int64_t next_wait_ms(const imp_worker_t *w, int64_t now)
{
    int64_t best = -1;
    for (size_t i = 0; i < w->nwaits; i++) {
        int64_t d = w->waits[i].resume_at_ms - now;
        if (best < 0 || d < best)
            best = d < 0 ? 0 : d;
    }
    return best;
}

/* ---- rebalance ----------------------------------------------------------------------------- */

static void on_revoke(imp_kafka_consumer_t *c, const imp_kafka_tp_t *parts, size_t n, void *ctx)
{
    (void)c;
    imp_worker_t *w = ctx;
    /* Nothing is mid-transaction here (the loop polls only between batches): messages of the
     * revoked partitions are dropped unprocessed and their offsets never stored. */
    for (size_t i = 0; i < n; i++) {
        queue_drop_partition(w, parts[i].topic, parts[i].partition, INT64_MIN);
        if (strcmp(parts[i].topic, w->retry_topic) == 0) {
            for (size_t k = 0; k < w->nwaits; k++) {
                if (w->waits[k].partition == parts[i].partition) {
                    remove_wait(w, k);
                    break;
                }
            }
        }
    }
    IMP_LOG_INFO("partitions revoked", IMP_LI("count", n));
}

static void on_assign(imp_kafka_consumer_t *c, const imp_kafka_tp_t *parts, size_t n, void *ctx)
{
    imp_worker_t *w = ctx;
    /* librdkafka keeps a partition's pause flag across a lost assignment (a session timeout
     * while paused), so set every assigned partition's state explicitly: paused while
     * backing off from an infra error, consuming otherwise. */
    bool degraded = atomic_load(&w->degraded);
    for (size_t i = 0; i < n; i++) {
        imp_error_t *err = degraded
                               ? imp_kafka_consumer_pause(c, parts[i].topic, parts[i].partition)
                               : imp_kafka_consumer_resume(c, parts[i].topic, parts[i].partition);
        log_kafka_err("could not set the pause state of an assigned partition", err);
    }
    IMP_LOG_INFO("partitions assigned", IMP_LI("count", n), IMP_LB("paused", degraded));
}

/* ---- intake -------------------------------------------------------------------------------- */

/* The characters Kafka allows in a topic name. */
#define TOPIC_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"

static void read_origin(worker_item_t *it)
{
    const imp_kafka_msg_t *m = it->msg;
    const void *v;
    size_t len;
    snprintf(it->origin_topic, sizeof(it->origin_topic), "%s", m->topic);
    it->origin_partition = m->partition;
    it->origin_offset = m->offset;
    if (imp_kafka_msg_header(m, WORKER_HDR_ORIGIN_TOPIC, &v, &len) == 0 && len > 0 &&
        len < sizeof(it->origin_topic) && strspn(v, TOPIC_CHARS) >= len) {
        memcpy(it->origin_topic, v, len);
        it->origin_topic[len] = '\0';
        char num[32];
        if (imp_kafka_msg_header(m, WORKER_HDR_ORIGIN_PARTITION, &v, &len) == 0 &&
            len < sizeof(num)) {
            memcpy(num, v, len);
            num[len] = '\0';
            it->origin_partition = (int32_t)atoi(num);
        }
        if (imp_kafka_msg_header(m, WORKER_HDR_ORIGIN_OFFSET, &v, &len) == 0 && len < sizeof(num)) {
            memcpy(num, v, len);
            num[len] = '\0';
            it->origin_offset = atoll(num);
        }
    }
}

static void intake(imp_worker_t *w, imp_kafka_msg_t *msg)
{
    bool from_retry = strcmp(msg->topic, w->retry_topic) == 0;
    if (from_retry && find_wait(w, msg->partition) != NULL) {
        /* Fetched before the pause took effect: it comes again after the wait. */
        worker_wait_t *wt = find_wait(w, msg->partition);
        int64_t offset = wt->offset < msg->offset ? wt->offset : msg->offset;
        imp_kafka_msg_free(msg);
        wait_partition(w, wt->partition, offset, wt->resume_at_ms);
        return;
    }
    imp_metrics_inc(w->m_consumed);
    worker_item_t *it = queue_push(w);
    it->msg = msg;
    read_origin(it);
    if (msg->value == NULL || msg->value_len == 0) {
        it->bad = imp_error_new(IMP_ERR_POISON, "envelope_empty", "empty message");
        return;
    }
    imp_error_t *err = imp_envelope_parse(msg->value, msg->value_len, &it->ev);
    if (err != NULL) {
        it->bad = err;
        return;
    }
    it->parsed = true;
    int64_t now = worker_now_ms();
    if (from_retry && it->ev.notbefore_ms > now) {
        int32_t partition = msg->partition;
        int64_t offset = msg->offset;
        int64_t at = it->ev.notbefore_ms;
        w->qtail--; /* it is the last item pushed */
        worker_item_dispose(it);
        wait_partition(w, partition, offset, at);
    }
}

/* Poll until the queue holds a batch, the batch wait passed, or nothing came. */
static void fill_queue(imp_worker_t *w, int first_timeout_ms)
{
    int64_t deadline = -1;
    int timeout = queue_len(w) > 0 ? 0 : first_timeout_ms;
    while (queue_len(w) < (size_t)w->s.batch_max && !w->stopping) {
        imp_kafka_msg_t *msg = NULL;
        imp_error_t *err = imp_kafka_consumer_poll(w->consumer, timeout, &msg);
        if (err != NULL) {
            bool fatal = imp_error_class(err) == IMP_ERR_FATAL;
            imp_error_free(err);
            if (fatal) {
                w->stopping = 1;
                return;
            }
        }
        if (msg == NULL) {
            if (queue_len(w) == 0 || deadline < 0 || worker_now_ms() >= deadline)
                return;
            timeout = 1;
            continue;
        }
        intake(w, msg);
        if (deadline < 0)
            deadline = worker_now_ms() + w->s.batch_wait_ms;
        timeout = worker_now_ms() < deadline ? 1 : 0;
        if (timeout == 0 && deadline >= 0 && worker_now_ms() >= deadline)
            timeout = 0;
    }
}

/* ---- batches ------------------------------------------------------------------------------- */

/* How many queued items form the next batch. The same operation id twice in one batch: a
 * copy with the same attempt is a duplicate at once; another attempt of it ends the batch
 * (the inbox decides between them, one transaction after the other). */
static size_t form_batch(imp_worker_t *w)
{
    size_t avail = queue_len(w);
    size_t n = avail < (size_t)w->s.batch_max ? avail : (size_t)w->s.batch_max;
    worker_item_t *items = &w->q[w->qhead];
    size_t cap = 16;
    while (cap < n * 2)
        cap *= 2;
    size_t *slots = imp_malloc(cap * sizeof(*slots));
    for (size_t i = 0; i < cap; i++)
        slots[i] = SIZE_MAX;
    size_t i;
    for (i = 0; i < n; i++) {
        worker_item_t *it = &items[i];
        if (!it->parsed || it->state == ITEM_DUP)
            continue;
        uint32_t h = 2166136261u;
        for (const char *c = it->ev.id; *c; c++)
            h = (h ^ (uint32_t)(*c | 0x20)) * 16777619u;
        size_t s = h & (cap - 1);
        bool stop = false;
        while (slots[s] != SIZE_MAX) {
            worker_item_t *other = &items[slots[s]];
            if (strcasecmp(other->ev.id, it->ev.id) == 0) {
                if (other->ev.attempt == it->ev.attempt)
                    it->state = ITEM_DUP;
                else
                    stop = true;
                break;
            }
            s = (s + 1) & (cap - 1);
        }
        if (stop)
            break;
        if (slots[s] == SIZE_MAX)
            slots[s] = i;
    }
    free(slots);
    return i;
}

static void count_outcomes(imp_worker_t *w, worker_item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        worker_item_t *it = &items[i];
        if (it->state == ITEM_DONE)
            imp_metrics_inc(w->m_processed);
        else if (it->state == ITEM_DUP)
            imp_metrics_inc(w->m_duplicates);
        else if (it->state == ITEM_FAILED && it->outs.n > 0 &&
                 strcmp(it->outs.v[0].topic, w->retry_topic) == 0)
            imp_metrics_inc(w->m_retried);
        else if (it->state == ITEM_FAILED)
            imp_metrics_inc(w->m_dead);
    }
}

static void store_offsets(imp_worker_t *w, worker_item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        imp_error_t *err = imp_kafka_consumer_store_msg(w->consumer, items[i].msg);
        /* Not assigned any more: the new owner reads it again and the inbox dedupes. */
        imp_error_free(err);
    }
}

/* ---- infra backoff ------------------------------------------------------------------------- */

static void pause_all(imp_worker_t *w)
{
    if (atomic_exchange(&w->degraded, true))
        return;
    imp_metrics_inc(w->m_infra);
    log_kafka_err("could not pause", imp_kafka_consumer_pause_all(w->consumer));
}

static void resume_all(imp_worker_t *w)
{
    if (!atomic_exchange(&w->degraded, false))
        return;
    log_kafka_err("could not resume", imp_kafka_consumer_resume_all(w->consumer));
    /* Retry partitions that are waiting for a notbefore stay paused. */
    for (size_t i = 0; i < w->nwaits; i++)
        log_kafka_err("could not pause a retry partition",
                      imp_kafka_consumer_pause(w->consumer, w->retry_topic, w->waits[i].partition));
    IMP_LOG_INFO("dependencies back; consuming again");
}

/* Sleep for the backoff while keeping the group membership alive (poll with every partition
 * paused; anything still arriving from before the pause joins the queue, in order). */
static void backoff(imp_worker_t *w, long long *delay_ms)
{
    int64_t until = worker_now_ms() + *delay_ms;
    while (!w->stopping && worker_now_ms() < until) {
        imp_kafka_msg_t *msg = NULL;
        imp_error_t *err = imp_kafka_consumer_poll(w->consumer, 50, &msg);
        imp_error_free(err);
        if (msg != NULL)
            intake(w, msg);
    }
    *delay_ms = *delay_ms * 2 > w->s.infra_max_ms ? w->s.infra_max_ms : *delay_ms * 2;
}

/* ---- lag ------------------------------------------------------------------------------------ */

typedef struct {
    char *topic;
    int32_t partition;
    imp_metrics_gauge_t *g;
} lag_gauge_t;

static lag_gauge_t *lag_gauges;
static size_t nlag_gauges;

static imp_metrics_gauge_t *lag_gauge(imp_worker_t *w, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < nlag_gauges; i++)
        if (lag_gauges[i].partition == partition && strcmp(lag_gauges[i].topic, topic) == 0)
            return lag_gauges[i].g;
    char part[16];
    snprintf(part, sizeof(part), "%d", partition);
    lag_gauges = imp_realloc(lag_gauges, (nlag_gauges + 1) * sizeof(*lag_gauges));
    lag_gauge_t *lg = &lag_gauges[nlag_gauges++];
    lg->topic = imp_strdup(topic);
    lg->partition = partition;
    lg->g =
        imp_metrics_gauge(imp_metrics_default(), "imperium_worker_consumer_lag",
                          "Messages between the group's committed offset and the end of "
                          "the partition.",
                          IMP_LABELS({"worker", w->name}, {"topic", topic}, {"partition", part}));
    return lg->g;
}

static void lag_refresh(imp_worker_t *w)
{
    imp_kafka_lag_t *lags = NULL;
    size_t n = 0;
    imp_error_t *err = imp_kafka_consumer_lag(w->consumer, 500, &lags, &n);
    if (err != NULL) {
        imp_error_free(err);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (lags[i].lag >= 0)
            imp_metrics_set(lag_gauge(w, lags[i].topic, lags[i].partition), (double)lags[i].lag);
    imp_kafka_lag_free(lags, n);
}

/* Every 10 s until lag_stop. Reading the committed offsets takes a round trip to the group
 * coordinator (up to 500 ms when it does not answer): on the loop's thread it held up every
 * event behind it. */
static void *lag_main(void *arg)
{
    imp_worker_t *w = arg;
    pthread_mutex_lock(&w->lag_mu);
    while (!w->lag_stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10;
        while (!w->lag_stop && pthread_cond_timedwait(&w->lag_cv, &w->lag_mu, &until) == 0)
            ;
        if (w->lag_stop)
            break;
        pthread_mutex_unlock(&w->lag_mu);
        lag_refresh(w);
        pthread_mutex_lock(&w->lag_mu);
    }
    pthread_mutex_unlock(&w->lag_mu);
    return NULL;
}

static void lag_start(imp_worker_t *w)
{
    if (w->s.metrics_port == 0)
        return;
    pthread_mutex_init(&w->lag_mu, NULL);
    pthread_cond_init(&w->lag_cv, NULL);
    w->lag_stop = false;
    w->lag_running = pthread_create(&w->lag_thread, NULL, lag_main, w) == 0;
    if (!w->lag_running) {
        IMP_LOG_WARN("consumer-lag thread not started; the lag gauges stay empty");
        pthread_cond_destroy(&w->lag_cv);
        pthread_mutex_destroy(&w->lag_mu);
    }
}

static void lag_join(imp_worker_t *w)
{
    if (!w->lag_running)
        return;
    pthread_mutex_lock(&w->lag_mu);
    w->lag_stop = true;
    pthread_cond_signal(&w->lag_cv);
    pthread_mutex_unlock(&w->lag_mu);
    pthread_join(w->lag_thread, NULL);
    pthread_cond_destroy(&w->lag_cv);
    pthread_mutex_destroy(&w->lag_mu);
    w->lag_running = false;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static bool ready(void *ctx, char *reason, size_t cap)
{
    imp_worker_t *w = ctx;
    if (!atomic_load(&w->started)) {
        snprintf(reason, cap, "starting");
        return false;
    }
    if (atomic_load(&w->degraded)) {
        snprintf(reason, cap, "waiting for postgres or kafka");
        return false;
    }
    if (w->def.ready != NULL)
        return w->def.ready(w->def.user, reason, cap);
    return true;
}

static void register_metrics(imp_worker_t *w)
{
    imp_metrics_t *m = imp_metrics_default();
#define COUNTER(field, metric, help)                                                               \
    w->field = imp_metrics_counter(m, metric, help, IMP_LABELS({"worker", w->name}))
    COUNTER(m_consumed, "imperium_worker_consumed_total", "Messages consumed from Kafka.");
    COUNTER(m_processed, "imperium_worker_processed_total", "Events handled and committed.");
    COUNTER(m_duplicates, "imperium_worker_duplicates_total",
            "Events skipped because the inbox had them.");
    COUNTER(m_retried, "imperium_worker_retried_total", "Events sent to the retry topic.");
    COUNTER(m_dead, "imperium_worker_dead_lettered_total", "Events dead-lettered.");
    COUNTER(m_infra, "imperium_worker_infra_pauses_total",
            "Times consumption paused for an unreachable dependency.");
    COUNTER(m_published, "imperium_worker_outbox_published_total", "Outbox events published.");
    COUNTER(m_publish_failed, "imperium_worker_outbox_publish_failures_total",
            "Outbox events Kafka did not acknowledge in time (left for the relay).");
    COUNTER(m_batches, "imperium_worker_batches_total", "Transactions committed.");
#undef COUNTER
    w->m_latency =
        imp_metrics_histogram(m, "imperium_worker_handler_seconds", "Handler latency per event.",
                              (const double[]){IMP_METRICS_LATENCY_BOUNDS},
                              IMP_ARRAY_LEN(((const double[]){IMP_METRICS_LATENCY_BOUNDS})),
                              IMP_LABELS({"worker", w->name}));
}

imp_error_t *imp_worker_new(const imp_worker_def_t *def, const imp_worker_settings_t *settings,
                            imp_worker_t **out)
{
    *out = NULL;
    imp_worker_t *w = imp_calloc(1, sizeof(*w));
    imp_error_t *err = NULL;
    w->def = *def;
    w->s = *settings;
    w->name = imp_strdup(def->name);
    w->source = imp_asprintf("imperium/%s", def->name);
    w->retry_topic = imp_asprintf("imp.retry.%s.v1", def->name);
    w->dlq_topic = imp_asprintf("imp.dlq.%s.v1", def->name);
    register_metrics(w);

    imp_pg_options_t po = {.dsn = settings->pg_dsn, .application_name = w->source};
    w->pg = imp_pg_new(&po);
    imp_kafka_props_t pprops = {0}, cprops = {0};
    err = imp_kafka_props_parse(settings->producer_props, &pprops);
    if (err != NULL)
        goto out;
    err = imp_kafka_props_parse(settings->consumer_props, &cprops);
    if (err != NULL)
        goto out;
    w->producer = imp_kafka_producer_new(settings->kafka_brokers, &pprops, &err);
    if (err != NULL)
        goto out;
    worker_outbox_attach(w);

    const char **topics = imp_calloc(def->ntopics + 1, sizeof(*topics));
    for (size_t i = 0; i < def->ntopics; i++)
        topics[i] = def->topics[i];
    topics[def->ntopics] = w->retry_topic;
    char *group = settings->group_id && settings->group_id[0]
                      ? imp_strdup(settings->group_id)
                      : imp_asprintf("imperium-%s", def->name);
    w->consumer = imp_kafka_consumer_new(settings->kafka_brokers, group, topics, def->ntopics + 1,
                                         &cprops, &err);
    free(group);
    free(topics);
    if (err != NULL)
        goto out;
    imp_kafka_consumer_set_rebalance(w->consumer, on_assign, on_revoke, w);

    if (settings->metrics_port > 0) {
        w->metrics_server = imp_metrics_server_start(settings->metrics_host,
                                                     (int)settings->metrics_port, ready, w, &err);
        if (err != NULL)
            goto out;
    }
out:
    imp_kafka_props_dispose(&pprops);
    imp_kafka_props_dispose(&cprops);
    if (err != NULL) {
        imp_worker_free(w);
        return err;
    }
    *out = w;
    return NULL;
}

void imp_worker_free(imp_worker_t *w)
{
    if (w == NULL)
        return;
    imp_metrics_server_stop(w->metrics_server);
    queue_pop(w, queue_len(w));
    free(w->q);
    free(w->waits);
    free(w->acked);
    imp_kafka_consumer_free(w->consumer);
    if (w->producer != NULL)
        imp_error_free(imp_kafka_producer_flush(w->producer, 5000));
    imp_kafka_producer_free(w->producer);
    imp_pg_free(w->pg);
    free(w->name);
    free(w->source);
    free(w->retry_topic);
    free(w->dlq_topic);
    if (signal_worker == w)
        signal_worker = NULL;
    free(w);
}

/* Publish what an earlier run left in the outbox before consuming anything new. */
static imp_error_t *startup_drain(imp_worker_t *w)
{
    long long delay = 100;
    while (!w->stopping) {
        imp_error_t *err = worker_outbox_drain(w);
        if (err == NULL || imp_error_class(err) == IMP_ERR_FATAL)
            return err;
        IMP_LOG_WARN("outbox drain at start-up failed; retrying", IMP_LE(err));
        imp_error_free(err);
        usleep((useconds_t)delay * 1000);
        delay = delay * 2 > w->s.infra_max_ms ? w->s.infra_max_ms : delay * 2;
    }
    return NULL;
}

/* One turn of the loop. Returns a fatal error, or NULL. */
static imp_error_t *step(imp_worker_t *w, long long *infra_delay)
{
    int64_t now = worker_now_ms();
    if (!atomic_load(&w->degraded))
        resume_due_waits(w, now);
    if (w->backlog) {
        imp_error_t *err = worker_outbox_drain(w);
        if (err != NULL) {
            if (imp_error_class(err) == IMP_ERR_FATAL)
                return err;
            IMP_LOG_WARN("outbox backlog not drained; pausing", IMP_LE(err));
            imp_error_free(err);
            pause_all(w);
            backoff(w, infra_delay);
            return NULL;
        }
        w->backlog = false;
        resume_all(w); /* the drain was what we were waiting for */
    }
    bool committed = false;
    int64_t wait = next_wait_ms(w, now);
    fill_queue(w, wait >= 0 && wait < 100 ? (int)wait : 100);
    if (queue_len(w) > 0 && !w->stopping) {
        size_t n = form_batch(w);
        worker_item_t *items = &w->q[w->qhead];
        imp_error_t *err = worker_process_batch(w, items, n);
        if (err != NULL) {
            if (imp_error_class(err) == IMP_ERR_FATAL)
                return err;
            IMP_LOG_WARN("batch not committed; retrying in place", IMP_LE(err),
                         IMP_LI("retry_in_ms", *infra_delay));
            imp_error_free(err);
            pause_all(w);
            backoff(w, infra_delay);
            return NULL;
        }
        *infra_delay = 100;
        resume_all(w);
        imp_metrics_inc(w->m_batches);
        committed = true;
        worker_outbox_publish(w, items, n);
        store_offsets(w, items, n);
        count_outcomes(w, items, n);
        queue_pop(w, n);
    }
    now = worker_now_ms();
    if (w->def.on_tick != NULL && !w->stopping && !w->backlog && now >= w->next_tick_ms) {
        w->next_tick_ms = now + (w->def.tick_ms > 0 ? w->def.tick_ms : 100);
        imp_error_t *err = worker_run_tick(w);
        if (err != NULL) {
            if (imp_error_class(err) == IMP_ERR_FATAL)
                return err;
            IMP_LOG_WARN("tick not committed; next in 1 s", IMP_LE(err));
            imp_error_free(err);
            w->next_tick_ms = now + 1000;
        } else {
            committed = true;
        }
    }
    /* After a commit, the marks of its events ride with the next one (under load the next
     * step's); a step without one marks what Kafka acknowledged on its own. */
    worker_outbox_settle(w, 0, !committed);
    worker_outbox_tick(w, worker_now_ms());
    return NULL;
}

imp_error_t *imp_worker_run(imp_worker_t *w)
{
    IMP_LOG_INFO("worker starting", IMP_LS("retry_topic", w->retry_topic));
    imp_error_t *err = startup_drain(w);
    atomic_store(&w->started, true);
    long long infra_delay = 100;
    w->next_relay_ms = worker_now_ms() + w->s.relay_interval_ms;
    lag_start(w);
    while (err == NULL && !w->stopping)
        err = step(w, &infra_delay);
    lag_join(w);
    worker_outbox_settle(w, (int)w->s.publish_timeout_ms, true);
    if (err != NULL)
        IMP_LOG_ERROR("worker stopping on a fatal error", IMP_LE(err));
    log_kafka_err("final offset commit failed", imp_kafka_consumer_commit_sync(w->consumer));
    IMP_LOG_INFO("worker stopped");
    return err;
}

void imp_worker_stop(imp_worker_t *w)
{
    w->stopping = 1;
}

static void on_signal(int sig)
{
    (void)sig;
    if (signal_worker != NULL)
        imp_worker_stop(signal_worker);
}

void imp_worker_handle_signals(imp_worker_t *w)
{
    signal_worker = w;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int imp_worker_main(int argc, char **argv, const char *binary, const char *summary,
                    const imp_config_entry_t *table, size_t n, void *settings, size_t rt_offset,
                    imp_worker_def_t *def)
{
    imp_config_init_or_exit(argc, argv, binary, summary, table, n, settings);
    imp_worker_settings_t *rt = (imp_worker_settings_t *)((char *)settings + rt_offset);
    imp_log_level_t level;
    if (imp_log_level_parse(rt->log_level, &level) != 0) {
        fprintf(stderr, "%s: IMP_LOG_LEVEL must be debug, info, warn or error\n", binary);
        imp_config_dispose(table, n, settings);
        return 2;
    }
    imp_log_init(binary, level);
    imp_worker_t *w = NULL;
    imp_error_t *err = imp_worker_new(def, rt, &w);
    if (err == NULL) {
        imp_worker_handle_signals(w);
        err = imp_worker_run(w);
    } else {
        IMP_LOG_ERROR("could not start", IMP_LE(err));
    }
    int status = err == NULL ? 0 : 1;
    imp_error_free(err);
    imp_worker_free(w);
    imp_config_dispose(table, n, settings);
    return status;
}
