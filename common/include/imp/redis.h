/* Redis (hiredis): a connection from a redis:// URL with connect and command timeouts and
 * reconnection, raw commands, and helpers that DEGRADE when Redis is down.
 *
 * Redis holds limits and breakers, never truth: when it is unreachable the fleet carries
 * on. The helpers below therefore never fail their caller. They return true when Redis
 * answered and false when it did not, in which case they fill the documented fallback,
 * count the failure (imp_redis_failures, and imperium_redis_failures_total in the default
 * metrics registry) and log, rate-limited: one warning when Redis goes away, at most one
 * reminder per 10 s while it stays away (with the number of failures in between), and one
 * info line when it is back.
 *
 * Reconnection: a command that fails on the connection (I/O error, timeout, protocol error)
 * drops it. The next call reconnects at once; if that fails, calls fail fast (no network
 * round trip, no timeout paid) until retry_interval_ms has passed, then one call tries
 * again. After a Redis restart the first call on the old connection fails (and falls back);
 * commands are never retried, since INCR-like commands are not idempotent.
 *
 * Thread-safety: a client serializes its commands with a mutex, so it may be shared by the
 * threads of a process; for heavy parallel use give each thread its own.
 * Creating a client sets SIGPIPE to SIG_IGN when it is at its default (hiredis writes with
 * write(2); a peer that has gone away would otherwise kill the process). */
#ifndef IMP_REDIS_H
#define IMP_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "imp/error.h"

typedef struct imp_redis imp_redis_t;

typedef struct {
    /* redis://[[user]:password@]host[:port][/db]; host may be [IPv6]; port 6379 and db 0
     * by default; user and password percent-decoded. */
    const char *url;
    long connect_timeout_ms; /* 0: 500 */
    long command_timeout_ms; /* 0: 500 */
    long retry_interval_ms;  /* fail fast this long after a failed connect; 0: 1000 */
} imp_redis_options_t;

/* Parse the URL and connect. A malformed URL is an error (class fatal, code "redis_url",
 * the message never shows the password). An unreachable Redis is NOT an error: the client
 * starts degraded and connects when Redis comes up. *out is a new client. */
imp_error_t *imp_redis_new(const imp_redis_options_t *opts, imp_redis_t **out);
/* NULL is a no-op. */
void imp_redis_free(imp_redis_t *r);

/* True when the client holds a live connection (as far as it knows). */
bool imp_redis_connected(imp_redis_t *r);

/* Calls that fell back (or commands that failed on the connection) since creation. */
uint64_t imp_redis_failures(const imp_redis_t *r);

/* ---- raw commands (no fallback: the caller decides) ---- */

/* A hiredis printf-like command ("SET %s %b", key, value, len). On success *reply is a new
 * reply (free it with freeReplyObject). Errors: class infra, code "redis_unavailable" when
 * there is no connection or it failed (the failure is counted and logged as above); class
 * poison, code "redis_reply" when Redis answered with an error (WRONGTYPE, syntax), or
 * class infra for the transient ones (LOADING, BUSY, MASTERDOWN, READONLY, OOM, TRYAGAIN). */
imp_error_t *imp_redis_command(imp_redis_t *r, redisReply **reply, const char *fmt, ...);

/* The same with an argument vector (binary-safe; argvlen may be NULL for C strings). */
imp_error_t *imp_redis_command_argv(imp_redis_t *r, redisReply **reply, int argc, const char **argv,
                                    const size_t *argvlen);

/* ---- degrading helpers: true when Redis answered, false when the fallback was used ----
 * Keys and values are C strings and must not be NULL. A reply of an unexpected kind (the
 * key holds another type) also falls back; it is counted, and logged at most every 10 s. */

/* Fixed-window rate limit: at most `limit` calls per window for `key`. The window starts
 * with the first call and lasts window_ms (the key expires with it). *allowed tells whether
 * this call fits. Fallback: *allowed = true (a Redis outage never stops traffic). */
bool imp_redis_rate_allow(imp_redis_t *r, const char *key, long limit, long window_ms,
                          bool *allowed);

/* INCRBY key by; when the key has no expiry (new, or set without one) it gets ttl_ms.
 * *value is the new value. Fallback: *value = 0. */
bool imp_redis_incr(imp_redis_t *r, const char *key, long long by, long ttl_ms, long long *value);

/* GET key into *value (a new heap string, NUL-terminated; caller frees), NULL when the key
 * does not exist. Fallback: *value = NULL (as if absent). */
bool imp_redis_get(imp_redis_t *r, const char *key, char **value);

/* SET key value, with PX ttl_ms when ttl_ms > 0. Fallback: nothing stored. */
bool imp_redis_set(imp_redis_t *r, const char *key, const char *value, long ttl_ms);

/* SET key value NX PX ttl_ms: *acquired when this call created the key (a claim: one
 * half-open probe among many senders, say). Fallback: *acquired = fallback, the caller's
 * choice. */
bool imp_redis_set_nx(imp_redis_t *r, const char *key, const char *value, long ttl_ms,
                      bool fallback, bool *acquired);

/* DEL key. Fallback: nothing deleted. */
bool imp_redis_del(imp_redis_t *r, const char *key);

/* ---- circuit breaker state, shared by every process through one key ---- */

typedef enum {
    IMP_BREAKER_CLOSED = 0, /* traffic flows */
    IMP_BREAKER_OPEN,       /* traffic stops */
    IMP_BREAKER_HALF_OPEN,  /* a probe may go */
} imp_breaker_state_t;

/* The state stored under key; a missing or expired key, or a value this module did not
 * write, reads as CLOSED. Fallback: CLOSED (Redis down never stops sends; the provider's
 * own answers will). */
bool imp_redis_breaker_get(imp_redis_t *r, const char *key, imp_breaker_state_t *state);

/* Store state under key for ttl_ms (0: no expiry). The usual use: OPEN for the cool-down,
 * so the breaker closes by itself when the key expires; a sender that wants a single probe
 * first takes a claim with imp_redis_set_nx. CLOSED deletes the key. Fallback: nothing
 * stored. */
bool imp_redis_breaker_set(imp_redis_t *r, const char *key, imp_breaker_state_t state, long ttl_ms);

/* "closed", "open", "half_open". */
const char *imp_breaker_state_name(imp_breaker_state_t state);

/* ---- exposed for tests ---- */

typedef struct {
    char *host; /* without brackets */
    int port;
    int db;
    char *user;     /* NULL when absent */
    char *password; /* NULL when absent */
} imp_redis_url_t;

/* Parse a redis:// URL into out (strings are new; free with imp_redis_url_dispose).
 * Error: class fatal, code "redis_url". */
imp_error_t *imp_redis_url_parse(const char *url, imp_redis_url_t *out);
void imp_redis_url_dispose(imp_redis_url_t *u);

#endif
