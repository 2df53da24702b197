/* Per-tenant rate limit and per-(tenant, provider) circuit breaker, shared through Redis.
 * Redis down: every helper falls back to "allowed" / "closed" (imp/redis.h): never stop.
 *
 * The breaker counts retriable failures in a window (a success does not reset the count) and
 * its state is read from Redis at most once a second per (tenant, provider) and process: a
 * message costs no Redis round trip on the happy path, and a breaker another process opened
 * is seen here within a second. */
#include "send.h"

#include "imp/log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static send_breaker_t *breaker_slot(send_t *st, const char *tenant, const char *provider)
{
    char key[sizeof(st->breakers[0].key)];
    snprintf(key, sizeof(key), "%s:%s", tenant, provider);
    for (size_t i = 0; i < SEND_BREAKERS; i++)
        if (strcmp(st->breakers[i].key, key) == 0)
            return &st->breakers[i];
    send_breaker_t *b = &st->breakers[st->nextbreaker];
    st->nextbreaker = (st->nextbreaker + 1) % SEND_BREAKERS;
    snprintf(b->key, sizeof(b->key), "%s", key);
    b->read_ms = -SEND_BREAKER_CACHE_MS; /* never read */
    b->open = false;
    return b;
}

static bool breaker_open(send_t *st, const char *tenant, const char *provider)
{
    send_breaker_t *b = breaker_slot(st, tenant, provider);
    long long now = mono_ms();
    if (now - b->read_ms < SEND_BREAKER_CACHE_MS)
        return b->open;
    char key[160];
    imp_breaker_state_t state = IMP_BREAKER_CLOSED;
    snprintf(key, sizeof(key), "imp:send:breaker:%s:%s", tenant, provider);
    imp_redis_breaker_get(st->redis, key, &state);
    b->open = state == IMP_BREAKER_OPEN;
    b->read_ms = now;
    return b->open;
}

imp_error_t *send_guard_check(send_t *st, const char *tenant, const char *provider)
{
    if (st->redis == NULL)
        return NULL;
    char key[160];
    if (st->s->breaker_failures > 0 && breaker_open(st, tenant, provider))
        return imp_error_new(IMP_ERR_RETRIABLE, "circuit_open", "circuit breaker of %s is open",
                             provider);
    if (st->s->rate_limit > 0) {
        bool allowed = true;
        snprintf(key, sizeof(key), "imp:send:rate:%s", tenant);
        imp_redis_rate_allow(st->redis, key, (long)st->s->rate_limit, (long)st->s->rate_window_ms,
                             &allowed);
        if (!allowed)
            return imp_error_new(IMP_ERR_RETRIABLE, "rate_limited",
                                 "tenant over its send rate (%lld per %lld ms)", st->s->rate_limit,
                                 st->s->rate_window_ms);
    }
    return NULL;
}

void send_guard_result(send_t *st, const char *tenant, const char *provider, bool failed)
{
    if (st->redis == NULL || st->s->breaker_failures <= 0 || !failed)
        return;
    char key[160];
    snprintf(key, sizeof(key), "imp:send:failures:%s:%s", tenant, provider);
    long long n = 0;
    if (!imp_redis_incr(st->redis, key, 1, (long)st->s->breaker_window_ms, &n))
        return;
    if (n >= st->s->breaker_failures) {
        char bkey[160];
        snprintf(bkey, sizeof(bkey), "imp:send:breaker:%s:%s", tenant, provider);
        imp_redis_breaker_set(st->redis, bkey, IMP_BREAKER_OPEN, (long)st->s->breaker_open_ms);
        imp_redis_del(st->redis, key);
        /* Known here at once; read again when it closes or the cache would expire anyway. */
        send_breaker_t *b = breaker_slot(st, tenant, provider);
        long long keep = st->s->breaker_open_ms < SEND_BREAKER_CACHE_MS ? st->s->breaker_open_ms
                                                                        : SEND_BREAKER_CACHE_MS;
        b->open = true;
        b->read_ms = mono_ms() - SEND_BREAKER_CACHE_MS + keep;
        IMP_LOG_WARN("circuit breaker opened", IMP_LS("provider", provider), IMP_LI("failures", n),
                     IMP_LI("open_ms", st->s->breaker_open_ms));
    }
}
