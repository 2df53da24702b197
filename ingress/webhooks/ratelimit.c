/* Per-tenant token buckets, shared by the loop threads (one process: the limit is per
 * ingress instance). Buckets are keyed by tenant id and live as long as the process; there
 * is one per tenant that ever sent a verified webhook, so their number is bounded by the
 * directory. */
#include "ingress.h"

#include "imp/mem.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_HEADS 1024
#define N_LOCKS 32 /* head i is guarded by lock i % N_LOCKS */

typedef struct bucket {
    struct bucket *next;
    char tenant_id[IMP_UUID_STR_SIZE];
    double tokens;
    uint64_t last_ns;
} bucket_t;

struct ing_ratelimit {
    double rate;  /* tokens per second; <= 0: unlimited */
    double burst; /* bucket capacity */
    pthread_mutex_t locks[N_LOCKS];
    bucket_t *heads[N_HEADS];
};

ing_ratelimit_t *ing_ratelimit_new(double rate, double burst)
{
    ing_ratelimit_t *rl = imp_calloc(1, sizeof(*rl));
    rl->rate = rate;
    rl->burst = burst < 1 ? 1 : burst;
    for (int i = 0; i < N_LOCKS; i++)
        pthread_mutex_init(&rl->locks[i], NULL);
    return rl;
}

void ing_ratelimit_free(ing_ratelimit_t *rl)
{
    if (rl == NULL)
        return;
    for (int i = 0; i < N_HEADS; i++) {
        while (rl->heads[i] != NULL) {
            bucket_t *b = rl->heads[i];
            rl->heads[i] = b->next;
            free(b);
        }
    }
    for (int i = 0; i < N_LOCKS; i++)
        pthread_mutex_destroy(&rl->locks[i]);
    free(rl);
}

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u; /* FNV-1a */
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* The bucket of tenant_id in head list *head (created full); called with the head's lock. */
static bucket_t *find_or_add(ing_ratelimit_t *rl, bucket_t **head, const char *tenant_id,
                             uint64_t now_ns)
{
    for (bucket_t *b = *head; b != NULL; b = b->next) {
        if (strcmp(b->tenant_id, tenant_id) == 0)
            return b;
    }
    bucket_t *b = imp_calloc(1, sizeof(*b));
    snprintf(b->tenant_id, sizeof(b->tenant_id), "%s", tenant_id);
    b->tokens = rl->burst;
    b->last_ns = now_ns;
    b->next = *head;
    *head = b;
    return b;
}

bool ing_ratelimit_take(ing_ratelimit_t *rl, const char *tenant_id, uint64_t now_ns,
                        int *retry_after_s)
{
    if (rl->rate <= 0)
        return true;
    unsigned h = hash(tenant_id) % N_HEADS;
    pthread_mutex_t *lock = &rl->locks[h % N_LOCKS];
    pthread_mutex_lock(lock);
    bucket_t *b = find_or_add(rl, &rl->heads[h], tenant_id, now_ns);
    if (now_ns > b->last_ns) {
        b->tokens += (double)(now_ns - b->last_ns) / 1e9 * rl->rate;
        if (b->tokens > rl->burst)
            b->tokens = rl->burst;
        b->last_ns = now_ns;
    }
    bool ok = b->tokens >= 1;
    if (ok)
        b->tokens -= 1;
    double missing = 1 - b->tokens;
    pthread_mutex_unlock(lock);
    if (!ok) {
        double wait = ceil(missing / rl->rate);
        *retry_after_s = wait < 1 ? 1 : wait > 3600 ? 3600 : (int)wait;
    }
    return ok;
}
