/* The per-process cache of loaded retrieval indexes: keyed by tenant and version, bounded
 * in bytes (least recently used out first), invalidated per tenant. */
#include "retrieval_internal.h"

#include "imp/log.h"
#include "imp/mem.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    imp_retrieval_index_t *idx;
    size_t bytes;
    unsigned long long used;
} entry_t;

struct imp_retrieval_cache {
    pthread_mutex_t mu;
    entry_t *e;
    size_t n, cap;
    size_t bytes, max_bytes;
    unsigned long long tick, epoch;
    unsigned long long hits, misses, evictions;
};

imp_retrieval_cache_t *imp_retrieval_cache_new(size_t max_bytes)
{
    imp_retrieval_cache_t *c = imp_calloc(1, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    c->max_bytes = max_bytes;
    return c;
}

static void drop_entry(imp_retrieval_cache_t *c, size_t i)
{
    c->bytes -= c->e[i].bytes;
    imp_retrieval_index_unref(c->e[i].idx);
    c->e[i] = c->e[--c->n];
}

void imp_retrieval_cache_free(imp_retrieval_cache_t *c)
{
    if (c == NULL)
        return;
    while (c->n > 0)
        drop_entry(c, c->n - 1);
    free(c->e);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static entry_t *lookup(imp_retrieval_cache_t *c, const char *tenant_id, const char *version_id)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcasecmp(c->e[i].idx->tenant, tenant_id) == 0 &&
            strcasecmp(c->e[i].idx->version, version_id) == 0)
            return &c->e[i];
    return NULL;
}

/* Least recently used first, never the index just added. */
static void evict(imp_retrieval_cache_t *c, const imp_retrieval_index_t *keep)
{
    while (c->bytes > c->max_bytes && c->n > 1) {
        size_t lru = SIZE_MAX;
        for (size_t i = 0; i < c->n; i++)
            if (c->e[i].idx != keep && (lru == SIZE_MAX || c->e[i].used < c->e[lru].used))
                lru = i;
        drop_entry(c, lru);
        c->evictions++;
    }
}

/* Keep a freshly loaded index (or the copy another thread kept meanwhile). Locked. */
static imp_retrieval_index_t *insert(imp_retrieval_cache_t *c, imp_retrieval_index_t *idx,
                                     unsigned long long epoch)
{
    entry_t *found = lookup(c, idx->tenant, idx->version);
    if (found != NULL) {
        found->used = ++c->tick;
        imp_retrieval_index_unref(idx);
        return imp_retrieval_index_ref(found->idx);
    }
    size_t bytes = imp_retrieval_index_bytes(idx);
    if (epoch != c->epoch || bytes > c->max_bytes) {
        if (bytes > c->max_bytes)
            IMP_LOG_WARN("kb index larger than the retrieval cache, not cached",
                         IMP_LS("version", idx->version), IMP_LI("bytes", bytes),
                         IMP_LI("max_bytes", c->max_bytes));
        return idx;
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 8;
        c->e = imp_realloc(c->e, c->cap * sizeof(*c->e));
    }
    c->e[c->n++] = (entry_t){imp_retrieval_index_ref(idx), bytes, ++c->tick};
    c->bytes += bytes;
    evict(c, idx);
    return idx;
}

imp_error_t *imp_retrieval_cache_get(imp_retrieval_cache_t *c, imp_pg_t *pg, const char *tenant_id,
                                     const char *version_id, imp_retrieval_index_t **out)
{
    *out = NULL;
    pthread_mutex_lock(&c->mu);
    entry_t *found = lookup(c, tenant_id, version_id);
    if (found != NULL) {
        found->used = ++c->tick;
        c->hits++;
        *out = imp_retrieval_index_ref(found->idx);
        pthread_mutex_unlock(&c->mu);
        return NULL;
    }
    c->misses++;
    unsigned long long epoch = c->epoch;
    pthread_mutex_unlock(&c->mu);

    imp_retrieval_index_t *idx = NULL;
    imp_error_t *err = imp_retrieval_index_load(pg, tenant_id, version_id, &idx);
    if (err != NULL)
        return err;
    pthread_mutex_lock(&c->mu);
    *out = insert(c, idx, epoch);
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

void imp_retrieval_cache_invalidate(imp_retrieval_cache_t *c, const char *tenant_id)
{
    pthread_mutex_lock(&c->mu);
    c->epoch++;
    for (size_t i = c->n; i-- > 0;)
        if (tenant_id == NULL || strcasecmp(c->e[i].idx->tenant, tenant_id) == 0)
            drop_entry(c, i);
    pthread_mutex_unlock(&c->mu);
}

void imp_retrieval_cache_stats(imp_retrieval_cache_t *c, imp_retrieval_cache_stats_t *out)
{
    pthread_mutex_lock(&c->mu);
    *out = (imp_retrieval_cache_stats_t){.entries = c->n,
                                         .bytes = c->bytes,
                                         .hits = c->hits,
                                         .misses = c->misses,
                                         .evictions = c->evictions};
    pthread_mutex_unlock(&c->mu);
}
