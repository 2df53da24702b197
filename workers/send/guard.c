/* Per-tenant rate limit and per-(tenant, provider) circuit breaker, shared through Redis.
 * Redis down: every helper falls back to "allowed" / "closed" (imp/redis.h): never stop. */
#include "send.h"

#include "imp/log.h"

#include <stdio.h>

imp_error_t *send_guard_check(send_t *st, const char *tenant, const char *provider)
{
    if (st->redis == NULL)
        return NULL;
    char key[160];
    if (st->s->breaker_failures > 0) {
        imp_breaker_state_t state = IMP_BREAKER_CLOSED;
        snprintf(key, sizeof(key), "imp:send:breaker:%s:%s", tenant, provider);
        imp_redis_breaker_get(st->redis, key, &state);
        if (state == IMP_BREAKER_OPEN)
            return imp_error_new(IMP_ERR_RETRIABLE, "circuit_open", "circuit breaker of %s is open",
                                 provider);
    }
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
    if (st->redis == NULL || st->s->breaker_failures <= 0)
        return;
    char key[160];
    snprintf(key, sizeof(key), "imp:send:failures:%s:%s", tenant, provider);
    if (!failed) {
        imp_redis_del(st->redis, key);
        return;
    }
    long long n = 0;
    if (!imp_redis_incr(st->redis, key, 1, (long)st->s->breaker_window_ms, &n))
        return;
    if (n >= st->s->breaker_failures) {
        char bkey[160];
        snprintf(bkey, sizeof(bkey), "imp:send:breaker:%s:%s", tenant, provider);
        imp_redis_breaker_set(st->redis, bkey, IMP_BREAKER_OPEN, (long)st->s->breaker_open_ms);
        imp_redis_del(st->redis, key);
        IMP_LOG_WARN("circuit breaker opened", IMP_LS("provider", provider), IMP_LI("failures", n),
                     IMP_LI("open_ms", st->s->breaker_open_ms));
    }
}
