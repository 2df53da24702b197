/* The tenant directory: imp.tenants.v1 read from the beginning by a consumer on a thread of
 * its own (every partition assigned, no group membership, nothing committed), the newest
 * snapshot per slug kept in a hash table that the loop threads read under a read lock. */
#include "ingress.h"

#include "imp/log.h"
#include "imp/mem.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POLL_MS 200
#define META_TIMEOUT_MS 5000
#define RETRY_MS 1000
#define ERROR_LOG_EVERY_MS 10000
#define INITIAL_HEADS 256

typedef struct entry {
    struct entry *next;
    ing_tenant_t *tenant; /* the table's reference; its slug is the key */
} entry_t;

struct ing_directory {
    uint8_t key[IMP_CRYPTO_KEY_LEN];
    int nthreads;
    rd_kafka_t *rk;
    pthread_t thread;
    atomic_bool stopping;

    pthread_rwlock_t lock; /* guards heads, nheads, count */
    entry_t **heads;
    size_t nheads;
    atomic_size_t count;

    /* Catch-up, written by the directory thread only (the flags are read by any thread). */
    int32_t npart;
    bool *caught;
    atomic_int ncaught;
    atomic_bool assigned;
    atomic_bool ready;
    int64_t last_error_ms;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned hash(const char *s, size_t len)
{
    unsigned h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* ---- the table ---------------------------------------------------------------------------- */

static entry_t **slot_of(ing_directory_t *d, const char *slug, size_t len)
{
    entry_t **pp = &d->heads[hash(slug, len) & (d->nheads - 1)];
    for (; *pp != NULL; pp = &(*pp)->next) {
        const char *s = ing_tenant_slug((*pp)->tenant);
        if (strlen(s) == len && memcmp(s, slug, len) == 0)
            break;
    }
    return pp;
}

ing_tenant_t *ing_directory_get(ing_directory_t *d, const char *slug, size_t len)
{
    ing_tenant_t *t = NULL;
    pthread_rwlock_rdlock(&d->lock);
    entry_t *e = *slot_of(d, slug, len);
    if (e != NULL)
        t = ing_tenant_ref(e->tenant);
    pthread_rwlock_unlock(&d->lock);
    return t;
}

size_t ing_directory_count(ing_directory_t *d)
{
    return atomic_load(&d->count);
}

/* Double the heads; called with the write lock. */
static void grow(ing_directory_t *d)
{
    size_t n = d->nheads * 2;
    entry_t **heads = imp_calloc(n, sizeof(*heads));
    for (size_t i = 0; i < d->nheads; i++) {
        while (d->heads[i] != NULL) {
            entry_t *e = d->heads[i];
            d->heads[i] = e->next;
            const char *s = ing_tenant_slug(e->tenant);
            entry_t **head = &heads[hash(s, strlen(s)) & (n - 1)];
            e->next = *head;
            *head = e;
        }
    }
    free(d->heads);
    d->heads = heads;
    d->nheads = n;
}

/* Put t (takes the reference) unless a newer version is held; the replaced tenant is
 * released after the lock, so a reader still holding it finishes with it first. */
static void put(ing_directory_t *d, ing_tenant_t *t)
{
    const char *slug = ing_tenant_slug(t);
    ing_tenant_t *old = NULL;
    bool kept = false;
    pthread_rwlock_wrlock(&d->lock);
    entry_t **pp = slot_of(d, slug, strlen(slug));
    if (*pp == NULL) {
        entry_t *e = imp_calloc(1, sizeof(*e));
        e->tenant = t;
        *pp = e;
        if (atomic_fetch_add(&d->count, 1) + 1 > d->nheads)
            grow(d);
    } else if (ing_tenant_version((*pp)->tenant) > ing_tenant_version(t)) {
        old = t;
        kept = true;
    } else {
        old = (*pp)->tenant;
        (*pp)->tenant = t;
    }
    pthread_rwlock_unlock(&d->lock);
    if (kept)
        IMP_LOG_INFO("older tenant snapshot ignored", IMP_LS("slug", slug),
                     IMP_LI("version", ing_tenant_version(t)));
    else
        IMP_LOG_INFO(
            "tenant snapshot applied", IMP_LS("slug", slug), IMP_LS("tenant_id", ing_tenant_id(t)),
            IMP_LI("version", ing_tenant_version(t)), IMP_LB("disabled", ing_tenant_disabled(t)));
    ing_tenant_release(old);
}

/* A tombstone: the slug is gone. */
static void del(ing_directory_t *d, const char *slug, size_t len)
{
    entry_t *e = NULL;
    pthread_rwlock_wrlock(&d->lock);
    entry_t **pp = slot_of(d, slug, len);
    if (*pp != NULL) {
        e = *pp;
        *pp = e->next;
        atomic_fetch_sub(&d->count, 1);
    }
    pthread_rwlock_unlock(&d->lock);
    if (e == NULL)
        return;
    IMP_LOG_INFO("tenant removed from the directory", IMP_LS("slug", ing_tenant_slug(e->tenant)));
    ing_tenant_release(e->tenant);
    free(e);
}

/* ---- readiness ---------------------------------------------------------------------------- */

bool ing_directory_ready(ing_directory_t *d, char *reason, size_t cap)
{
    if (atomic_load(&d->ready))
        return true;
    if (!atomic_load(&d->assigned))
        snprintf(reason, cap, "tenant directory: waiting for %s metadata", ING_TOPIC_TENANTS);
    else
        snprintf(reason, cap, "tenant directory: loading (%d of %d partitions caught up)",
                 atomic_load(&d->ncaught), (int)d->npart);
    return false;
}

static void mark_caught(ing_directory_t *d, int32_t p)
{
    if (p < 0 || p >= d->npart || d->caught[p])
        return;
    d->caught[p] = true;
    if (atomic_fetch_add(&d->ncaught, 1) + 1 == d->npart) {
        atomic_store(&d->ready, true);
        IMP_LOG_INFO("tenant directory loaded", IMP_LI("tenants", ing_directory_count(d)),
                     IMP_LI("partitions", d->npart));
    }
}

/* ---- the consumer ------------------------------------------------------------------------- */

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (strcmp(fac, "FAIL") == 0) /* also reported through consumer errors */
        return;
    imp_log_level_t lvl = level <= 3   ? IMP_LOG_LEVEL_ERROR
                          : level == 4 ? IMP_LOG_LEVEL_WARN
                          : level <= 6 ? IMP_LOG_LEVEL_INFO
                                       : IMP_LOG_LEVEL_DEBUG;
    IMP_LOG_AT(lvl, "librdkafka", IMP_LS("client", "tenant directory"), IMP_LS("facility", fac),
               IMP_LS("detail", buf));
}

/* Logged at most every ERROR_LOG_EVERY_MS while Kafka stays unreachable. */
static void log_kafka_error(ing_directory_t *d, const char *what, rd_kafka_resp_err_t code)
{
    int64_t now = mono_ms();
    if (d->last_error_ms != 0 && now - d->last_error_ms < ERROR_LOG_EVERY_MS)
        return;
    d->last_error_ms = now;
    IMP_LOG_WARN(what, IMP_LS("topic", ING_TOPIC_TENANTS),
                 IMP_LS("kafka_error", rd_kafka_err2name(code)),
                 IMP_LS("reason", rd_kafka_err2str(code)));
}

/* Client-level errors (connection refused, all brokers down), served by the consumer poll on
 * the directory thread; librdkafka keeps retrying by itself. */
static void on_error(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
    (void)rk, (void)reason;
    log_kafka_error(opaque, "tenant directory: kafka unreachable; retrying", code);
}

static imp_error_t *conf_set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char errstr[256];
    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) == RD_KAFKA_CONF_OK)
        return NULL;
    return imp_error_new(IMP_ERR_FATAL, "kafka_config", "IMP_KAFKA_CONSUMER_PROPS: %s", errstr);
}

static rd_kafka_t *consumer_new(ing_directory_t *d, const char *brokers,
                                const imp_kafka_props_t *props, imp_error_t **err)
{
    /* A group id is required by the consumer API, yet never used: partitions are assigned,
     * not subscribed, and nothing is committed. */
    static const imp_kafka_prop_t defaults[] = {
        {"group.id", "imperium-ingress-directory"},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "true"},
        {"auto.offset.reset", "earliest"},
        {"socket.nagle.disable", "true"},
        {"fetch.wait.max.ms", "100"},
    };
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    *err = conf_set(conf, "bootstrap.servers", brokers);
    for (size_t i = 0; *err == NULL && i < IMP_ARRAY_LEN(defaults); i++)
        *err = conf_set(conf, defaults[i].name, defaults[i].value);
    for (size_t i = 0; *err == NULL && props != NULL && i < props->count; i++)
        *err = conf_set(conf, props->items[i].name, props->items[i].value);
    if (*err != NULL) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_opaque(conf, d);
    char errstr[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        *err =
            imp_error_new(IMP_ERR_FATAL, "kafka_config", "tenant directory consumer: %s", errstr);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

static int32_t partition_count(ing_directory_t *d)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(d->rk, ING_TOPIC_TENANTS, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t rc = rd_kafka_metadata(d->rk, 0, rkt, &md, META_TIMEOUT_MS);
    int32_t n = -1;
    if (rc == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 && md->topics[0].err == 0)
        n = md->topics[0].partition_cnt;
    else
        log_kafka_error(d, "cannot read the tenant topic's metadata; retrying",
                        rc                   ? rc
                        : md->topic_cnt == 1 ? md->topics[0].err
                                             : RD_KAFKA_RESP_ERR__FAIL);
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return n > 0 ? n : -1;
}

/* Assign every partition from the beginning. A partition is caught up at its first
 * end-of-partition event: the consumer has read everything it held when that fetch was
 * answered. No watermark query: librdkafka 2.0.2's waits for a partition's leader, however
 * short its timeout, and an ingress started while a broker was down could not stop. */
static bool assign_all(ing_directory_t *d)
{
    int32_t n = partition_count(d);
    if (n < 0)
        return false;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(n);
    for (int32_t p = 0; p < n; p++)
        rd_kafka_topic_partition_list_add(list, ING_TOPIC_TENANTS, p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t rc = rd_kafka_assign(d->rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (rc != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_kafka_error(d, "cannot assign the tenant topic's partitions; retrying", rc);
        return false;
    }
    d->npart = n;
    d->caught = imp_calloc((size_t)n, sizeof(bool));
    atomic_store(&d->assigned, true);
    IMP_LOG_INFO("reading the tenant directory", IMP_LS("topic", ING_TOPIC_TENANTS),
                 IMP_LI("partitions", n));
    return true;
}

static void apply(ing_directory_t *d, const rd_kafka_message_t *m)
{
    if (m->payload == NULL) {
        if (m->key != NULL)
            del(d, m->key, m->key_len);
        return;
    }
    ing_tenant_t *t = NULL;
    imp_error_t *err = ing_snapshot_parse(m->payload, m->len, d->key, d->nthreads, &t);
    if (err != NULL) {
        IMP_LOG_ERROR("tenant snapshot ignored", IMP_LI("partition", m->partition),
                      IMP_LI("offset", m->offset), IMP_LE(err));
        imp_error_free(err);
        return;
    }
    put(d, t);
}

static void handle(ing_directory_t *d, const rd_kafka_message_t *m)
{
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        mark_caught(d, m->partition);
        return;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_kafka_error(d, "tenant directory consumer error", m->err);
        return;
    }
    d->last_error_ms = 0;
    apply(d, m);
}

static void nap(ing_directory_t *d, int ms)
{
    for (int i = 0; i < ms / 100 && !atomic_load(&d->stopping); i++)
        nanosleep(&(struct timespec){0, 100 * 1000000L}, NULL);
}

static void *run(void *arg)
{
    ing_directory_t *d = arg;
    while (!atomic_load(&d->stopping)) {
        if (!atomic_load(&d->assigned)) {
            if (!assign_all(d))
                nap(d, RETRY_MS);
            continue;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(d->rk, POLL_MS);
        if (m == NULL)
            continue;
        handle(d, m);
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

ing_directory_t *ing_directory_start(const char *brokers, const imp_kafka_props_t *props,
                                     const uint8_t key[IMP_CRYPTO_KEY_LEN], int nthreads,
                                     imp_error_t **err)
{
    ing_directory_t *d = imp_calloc(1, sizeof(*d));
    memcpy(d->key, key, IMP_CRYPTO_KEY_LEN);
    d->nthreads = nthreads;
    d->nheads = INITIAL_HEADS;
    d->heads = imp_calloc(d->nheads, sizeof(*d->heads));
    pthread_rwlock_init(&d->lock, NULL);
    if ((d->rk = consumer_new(d, brokers, props, err)) == NULL)
        goto fail;
    int rc = pthread_create(&d->thread, NULL, run, d);
    if (rc != 0) {
        *err = imp_error_new(IMP_ERR_FATAL, "thread", "tenant directory thread: %s", strerror(rc));
        goto fail;
    }
    return d;
fail:
    if (d->rk != NULL)
        rd_kafka_destroy(d->rk);
    pthread_rwlock_destroy(&d->lock);
    free(d->heads);
    imp_crypto_wipe(d->key, sizeof(d->key));
    free(d);
    return NULL;
}

void ing_directory_stop(ing_directory_t *d)
{
    if (d == NULL)
        return;
    atomic_store(&d->stopping, true);
    pthread_join(d->thread, NULL);
    rd_kafka_consumer_close(d->rk);
    rd_kafka_destroy(d->rk);
    for (size_t i = 0; i < d->nheads; i++) {
        while (d->heads[i] != NULL) {
            entry_t *e = d->heads[i];
            d->heads[i] = e->next;
            ing_tenant_release(e->tenant);
            free(e);
        }
    }
    free(d->heads);
    free(d->caught);
    pthread_rwlock_destroy(&d->lock);
    imp_crypto_wipe(d->key, sizeof(d->key));
    free(d);
}
