/* Redis client with reconnection and helpers that fall back instead of failing. */
#include "imp/redis.h"

#include "imp/log.h"
#include "imp/mem.h"
#include "imp/metrics.h"

#include <ctype.h>
#include <errno.h>
#include <curl/curl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_PORT 6379
#define DEFAULT_CONNECT_TIMEOUT_MS 500
#define DEFAULT_COMMAND_TIMEOUT_MS 500
#define DEFAULT_RETRY_INTERVAL_MS 1000
#define LOG_EVERY_MS 10000

/* INCRBY with an expiry set when the key has none; KEYS[1], ARGV = by, ttl_ms. */
static const char incr_script[] =
    "local n = redis.call('INCRBY', KEYS[1], ARGV[1]) "
    "if tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) < 0 then "
    "redis.call('PEXPIRE', KEYS[1], ARGV[2]) end "
    "return n";

struct imp_redis {
    pthread_mutex_t lock;
    imp_redis_url_t url;
    char addr[300]; /* host:port/db, for logs (never the password) */
    struct timeval connect_tv, command_tv;
    long retry_interval_ms;
    redisContext *ctx;
    int64_t next_connect_ms; /* monotonic; before it, calls fail fast */
    _Atomic uint64_t failures;
    /* rate-limited logging */
    bool down;
    int64_t down_since_ms;
    uint64_t down_failures; /* failures during this outage */
    int64_t last_log_ms;
    uint64_t unlogged;
    int64_t last_reply_log_ms;
};

static pthread_once_t metric_once = PTHREAD_ONCE_INIT;
static imp_metrics_counter_t *failures_metric;

static void register_metric(void)
{
    failures_metric = imp_metrics_counter(
        imp_metrics_default(), "imperium_redis_failures_total",
        "Redis calls that failed or fell back because Redis was unavailable or answered an "
        "error.",
        IMP_NO_LABELS);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval tv_ms(long ms)
{
    return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

/* ---- URL ---- */

static imp_error_t *url_error(const char *why)
{
    return imp_error_new(IMP_ERR_FATAL, "redis_url", "malformed redis URL: %s", why);
}

/* A URL part, percent-decoded when asked; NULL when absent or empty. */
static char *url_part(CURLU *u, CURLUPart part, unsigned flags)
{
    char *v = NULL, *out = NULL;
    if (curl_url_get(u, part, &v, flags) == CURLUE_OK && v != NULL && *v != '\0')
        out = imp_strdup(v);
    curl_free(v);
    return out;
}

static int parse_uint(const char *s, long max, long *out)
{
    if (s == NULL || *s == '\0' || strlen(s) > 10)
        return -1;
    long v = 0;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s))
            return -1;
        v = v * 10 + (*s - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

static imp_error_t *url_fill(CURLU *u, imp_redis_url_t *out)
{
    char *scheme = url_part(u, CURLUPART_SCHEME, 0);
    bool redis = scheme != NULL && strcmp(scheme, "redis") == 0;
    free(scheme);
    if (!redis)
        return url_error("scheme must be redis://");
    char *host = url_part(u, CURLUPART_HOST, 0), *port = url_part(u, CURLUPART_PORT, 0);
    char *path = url_part(u, CURLUPART_PATH, 0), *query = url_part(u, CURLUPART_QUERY, 0);
    char *frag = url_part(u, CURLUPART_FRAGMENT, 0);
    imp_error_t *err = NULL;
    long n = DEFAULT_PORT, db = 0;
    if (host == NULL)
        err = url_error("no host");
    else if (port != NULL && (parse_uint(port, 65535, &n) != 0 || n == 0))
        err = url_error("bad port");
    else if (path != NULL && strcmp(path, "/") != 0 && parse_uint(path + 1, INT_MAX, &db) != 0)
        err = url_error("the path must be /<db number>");
    else if (query != NULL || frag != NULL)
        err = url_error("query and fragment are not supported");
    if (err == NULL) {
        size_t hl = strlen(host);
        out->host = host[0] == '[' ? imp_strndup(host + 1, hl - 2) : imp_strdup(host);
        out->port = (int)n;
        out->db = (int)db;
        out->user = url_part(u, CURLUPART_USER, CURLU_URLDECODE);
        out->password = url_part(u, CURLUPART_PASSWORD, CURLU_URLDECODE);
    }
    free(host);
    free(port);
    free(path);
    free(query);
    free(frag);
    return err;
}

imp_error_t *imp_redis_url_parse(const char *url, imp_redis_url_t *out)
{
    memset(out, 0, sizeof(*out));
    if (url == NULL || *url == '\0')
        return url_error("empty");
    CURLU *u = curl_url();
    imp_error_t *err;
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
        err = url_error("cannot parse");
    else
        err = url_fill(u, out);
    curl_url_cleanup(u);
    return err;
}

void imp_redis_url_dispose(imp_redis_url_t *u)
{
    free(u->host);
    free(u->user);
    free(u->password);
    memset(u, 0, sizeof(*u));
}

/* ---- failure accounting and rate-limited logs (lock held) ---- */

static bool is_outage(const imp_error_t *err)
{
    return strcmp(imp_error_code(err), "redis_unavailable") == 0;
}

static void note_outage(imp_redis_t *r, const imp_error_t *err)
{
    int64_t now = now_ms();
    if (!r->down) {
        r->down = true;
        r->down_since_ms = r->last_log_ms = now;
        r->unlogged = r->down_failures = 0;
        IMP_LOG_WARN("redis unavailable, degrading", IMP_LS("redis", r->addr), IMP_LE(err));
        return;
    }
    r->unlogged++;
    r->down_failures++;
    if (now - r->last_log_ms >= LOG_EVERY_MS) {
        IMP_LOG_WARN("redis still unavailable", IMP_LS("redis", r->addr),
                     IMP_LI("failures", r->unlogged), IMP_LI("down_ms", now - r->down_since_ms),
                     IMP_LE(err));
        r->last_log_ms = now;
        r->unlogged = 0;
    }
}

static void note_reply_error(imp_redis_t *r, const imp_error_t *err)
{
    int64_t now = now_ms();
    if (r->last_reply_log_ms != 0 && now - r->last_reply_log_ms < LOG_EVERY_MS)
        return;
    r->last_reply_log_ms = now;
    IMP_LOG_WARN("redis answered an error", IMP_LS("redis", r->addr), IMP_LE(err));
}

/* A call failed (and, for a helper, fell back): count it and log, rate-limited. */
static void note_failure(imp_redis_t *r, const imp_error_t *err)
{
    atomic_fetch_add(&r->failures, 1);
    imp_metrics_inc(failures_metric);
    if (is_outage(err))
        note_outage(r, err);
    else
        note_reply_error(r, err);
}

static void note_success(imp_redis_t *r)
{
    if (!r->down)
        return;
    r->down = false;
    IMP_LOG_INFO("redis available again", IMP_LS("redis", r->addr),
                 IMP_LI("down_ms", now_ms() - r->down_since_ms),
                 IMP_LI("failures", r->down_failures));
}

/* ---- connection (lock held) ---- */

static imp_error_t *unavailable(const char *what, const char *detail)
{
    return imp_error_new(IMP_ERR_INFRA, "redis_unavailable", "%s: %s", what,
                         detail ? detail : "unknown");
}

static void drop(imp_redis_t *r)
{
    redisFree(r->ctx);
    r->ctx = NULL;
    r->next_connect_ms = 0; /* the next call may reconnect at once */
}

/* AUTH and SELECT on a fresh connection. */
static imp_error_t *handshake(imp_redis_t *r)
{
    redisReply *rep = NULL;
    if (r->url.password != NULL) {
        if (r->url.user != NULL)
            rep = redisCommand(r->ctx, "AUTH %s %s", r->url.user, r->url.password);
        else
            rep = redisCommand(r->ctx, "AUTH %s", r->url.password);
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR)
            goto fail;
        freeReplyObject(rep);
    }
    if (r->url.db != 0) {
        rep = redisCommand(r->ctx, "SELECT %d", r->url.db);
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR)
            goto fail;
        freeReplyObject(rep);
    }
    return NULL;
fail:;
    imp_error_t *err = unavailable("redis handshake failed", rep ? rep->str : r->ctx->errstr);
    freeReplyObject(rep);
    return err;
}

static imp_error_t *connect_now(imp_redis_t *r)
{
    r->ctx = redisConnectWithTimeout(r->url.host, r->url.port, r->connect_tv);
    imp_error_t *err = NULL;
    if (r->ctx == NULL || r->ctx->err)
        err = unavailable("cannot connect to redis", r->ctx ? r->ctx->errstr : "out of memory");
    else if (redisSetTimeout(r->ctx, r->command_tv) != REDIS_OK)
        err = unavailable("cannot set redis timeout", r->ctx->errstr);
    else
        err = handshake(r);
    if (err != NULL) {
        redisFree(r->ctx);
        r->ctx = NULL;
        return err;
    }
    redisEnableKeepAlive(r->ctx);
    return NULL;
}

static imp_error_t *ensure_connected(imp_redis_t *r)
{
    if (r->ctx != NULL)
        return NULL;
    int64_t now = now_ms();
    if (now < r->next_connect_ms)
        return unavailable("redis unavailable", "waiting to reconnect");
    imp_error_t *err = connect_now(r);
    if (err != NULL)
        r->next_connect_ms = now + r->retry_interval_ms;
    return err;
}

/* ---- commands (lock held) ---- */

static imp_error_t *reply_error(const redisReply *rep)
{
    static const char *const transient[] = {"LOADING", "BUSY",     "MASTERDOWN", "READONLY",
                                            "OOM",     "TRYAGAIN", "CLUSTERDOWN"};
    for (size_t i = 0; i < IMP_ARRAY_LEN(transient); i++) {
        size_t n = strlen(transient[i]);
        if (strncmp(rep->str, transient[i], n) == 0 && (rep->str[n] == ' ' || !rep->str[n]))
            return imp_error_new(IMP_ERR_INFRA, "redis_reply", "redis: %s", rep->str);
    }
    return imp_error_new(IMP_ERR_POISON, "redis_reply", "redis: %s", rep->str);
}

/* Send one formatted command and read its reply. */
static imp_error_t *exec_formatted(imp_redis_t *r, const char *cmd, size_t len, redisReply **out)
{
    *out = NULL;
    imp_error_t *err = ensure_connected(r);
    if (err != NULL)
        return err;
    void *rep = NULL;
    if (redisAppendFormattedCommand(r->ctx, cmd, len) != REDIS_OK ||
        redisGetReply(r->ctx, &rep) != REDIS_OK || rep == NULL) {
        bool timeout = r->ctx->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
        err = timeout ? unavailable("redis command timed out", "no reply within the timeout")
                      : unavailable("redis command failed", r->ctx->errstr);
        freeReplyObject(rep);
        drop(r);
        return err;
    }
    note_success(r);
    redisReply *reply = rep;
    if (reply->type == REDIS_REPLY_ERROR) {
        err = reply_error(reply);
        freeReplyObject(reply);
        return err;
    }
    *out = reply;
    return NULL;
}

static imp_error_t *exec_argv(imp_redis_t *r, redisReply **out, int argc, const char **argv,
                              const size_t *argvlen)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0)
        return imp_error_new(IMP_ERR_POISON, "redis_format", "cannot format redis command");
    imp_error_t *err = exec_formatted(r, cmd, (size_t)len, out);
    redisFreeCommand(cmd);
    return err;
}

/* ---- client ---- */

static void ignore_sigpipe(void)
{
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
}

imp_error_t *imp_redis_new(const imp_redis_options_t *opts, imp_redis_t **out)
{
    *out = NULL;
    imp_redis_url_t url;
    imp_error_t *err = imp_redis_url_parse(opts ? opts->url : NULL, &url);
    if (err != NULL)
        return err;
    ignore_sigpipe();
    pthread_once(&metric_once, register_metric);
    imp_redis_t *r = imp_calloc(1, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    r->url = url;
    snprintf(r->addr, sizeof(r->addr), "%s:%d/%d", url.host, url.port, url.db);
    r->connect_tv =
        tv_ms(opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS);
    r->command_tv =
        tv_ms(opts->command_timeout_ms > 0 ? opts->command_timeout_ms : DEFAULT_COMMAND_TIMEOUT_MS);
    r->retry_interval_ms =
        opts->retry_interval_ms > 0 ? opts->retry_interval_ms : DEFAULT_RETRY_INTERVAL_MS;
    pthread_mutex_lock(&r->lock);
    err = ensure_connected(r);
    if (err != NULL)
        note_outage(r, err); /* logged, not counted: no caller fell back */
    pthread_mutex_unlock(&r->lock);
    imp_error_free(err);
    *out = r;
    return NULL;
}

void imp_redis_free(imp_redis_t *r)
{
    if (r == NULL)
        return;
    if (r->ctx != NULL)
        redisFree(r->ctx);
    imp_redis_url_dispose(&r->url);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

bool imp_redis_connected(imp_redis_t *r)
{
    pthread_mutex_lock(&r->lock);
    bool up = r->ctx != NULL;
    pthread_mutex_unlock(&r->lock);
    return up;
}

uint64_t imp_redis_failures(const imp_redis_t *r)
{
    return atomic_load(&((imp_redis_t *)r)->failures);
}

/* Run a command for a public entry point: lock, execute, count a connection failure. */
static imp_error_t *run(imp_redis_t *r, redisReply **reply, int argc, const char **argv,
                        const size_t *argvlen, bool count_all)
{
    pthread_mutex_lock(&r->lock);
    imp_error_t *err = exec_argv(r, reply, argc, argv, argvlen);
    if (err != NULL && (count_all || imp_error_class(err) == IMP_ERR_INFRA))
        note_failure(r, err);
    pthread_mutex_unlock(&r->lock);
    return err;
}

imp_error_t *imp_redis_command(imp_redis_t *r, redisReply **reply, const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    *reply = NULL;
    if (len < 0)
        return imp_error_new(IMP_ERR_POISON, "redis_format", "bad redis command format");
    pthread_mutex_lock(&r->lock);
    imp_error_t *err = exec_formatted(r, cmd, (size_t)len, reply);
    if (err != NULL && imp_error_class(err) == IMP_ERR_INFRA)
        note_failure(r, err);
    pthread_mutex_unlock(&r->lock);
    redisFreeCommand(cmd);
    return err;
}

imp_error_t *imp_redis_command_argv(imp_redis_t *r, redisReply **reply, int argc, const char **argv,
                                    const size_t *argvlen)
{
    *reply = NULL;
    return run(r, reply, argc, argv, argvlen, false);
}

/* ---- degrading helpers ---- */

/* Run a helper's command; NULL reply means "fell back" (already counted and logged). */
static redisReply *helper(imp_redis_t *r, int argc, const char **argv)
{
    redisReply *reply = NULL;
    imp_error_t *err = run(r, &reply, argc, argv, NULL, true);
    imp_error_free(err);
    return reply;
}

/* A helper got a reply of a shape it did not expect: count it as a failure. */
static void unexpected(imp_redis_t *r, redisReply *reply)
{
    imp_error_t *err = imp_error_new(IMP_ERR_POISON, "redis_reply", "unexpected reply type %d",
                                     reply ? reply->type : -1);
    pthread_mutex_lock(&r->lock);
    note_failure(r, err);
    pthread_mutex_unlock(&r->lock);
    imp_error_free(err);
    freeReplyObject(reply);
}

static bool eval_incr(imp_redis_t *r, const char *key, long long by, long ttl_ms, long long *value)
{
    char sby[24], sttl[24];
    snprintf(sby, sizeof(sby), "%lld", by);
    snprintf(sttl, sizeof(sttl), "%ld", ttl_ms > 0 ? ttl_ms : 0L);
    const char *argv[] = {"EVAL", incr_script, "1", key, sby, sttl};
    redisReply *reply = helper(r, 6, argv);
    if (reply == NULL)
        return false;
    if (reply->type != REDIS_REPLY_INTEGER) {
        unexpected(r, reply);
        return false;
    }
    *value = reply->integer;
    freeReplyObject(reply);
    return true;
}

bool imp_redis_incr(imp_redis_t *r, const char *key, long long by, long ttl_ms, long long *value)
{
    *value = 0;
    if (eval_incr(r, key, by, ttl_ms, value))
        return true;
    *value = 0;
    return false;
}

bool imp_redis_rate_allow(imp_redis_t *r, const char *key, long limit, long window_ms,
                          bool *allowed)
{
    long long n = 0;
    *allowed = true;
    if (window_ms <= 0 || !eval_incr(r, key, 1, window_ms, &n))
        return false;
    *allowed = n <= limit;
    return true;
}

bool imp_redis_get(imp_redis_t *r, const char *key, char **value)
{
    const char *argv[] = {"GET", key};
    *value = NULL;
    redisReply *reply = helper(r, 2, argv);
    if (reply == NULL)
        return false;
    if (reply->type == REDIS_REPLY_STRING) {
        *value = imp_strndup(reply->str, reply->len);
    } else if (reply->type != REDIS_REPLY_NIL) {
        unexpected(r, reply);
        return false;
    }
    freeReplyObject(reply);
    return true;
}

/* SET with optional NX and PX; *created tells whether the value was stored. */
static bool set_cmd(imp_redis_t *r, const char *key, const char *value, long ttl_ms, bool nx,
                    bool *created)
{
    char sttl[24];
    snprintf(sttl, sizeof(sttl), "%ld", ttl_ms);
    const char *argv[6] = {"SET", key, value};
    int argc = 3;
    if (nx)
        argv[argc++] = "NX";
    if (ttl_ms > 0) {
        argv[argc++] = "PX";
        argv[argc++] = sttl;
    }
    redisReply *reply = helper(r, argc, argv);
    if (reply == NULL)
        return false;
    if (reply->type != REDIS_REPLY_STATUS && reply->type != REDIS_REPLY_NIL) {
        unexpected(r, reply);
        return false;
    }
    *created = reply->type == REDIS_REPLY_STATUS;
    freeReplyObject(reply);
    return true;
}

bool imp_redis_set(imp_redis_t *r, const char *key, const char *value, long ttl_ms)
{
    bool created;
    return set_cmd(r, key, value, ttl_ms, false, &created);
}

bool imp_redis_set_nx(imp_redis_t *r, const char *key, const char *value, long ttl_ms,
                      bool fallback, bool *acquired)
{
    if (set_cmd(r, key, value, ttl_ms, true, acquired))
        return true;
    *acquired = fallback;
    return false;
}

bool imp_redis_del(imp_redis_t *r, const char *key)
{
    const char *argv[] = {"DEL", key};
    redisReply *reply = helper(r, 2, argv);
    if (reply == NULL)
        return false;
    freeReplyObject(reply);
    return true;
}

/* ---- breaker ---- */

static const char *const breaker_names[] = {"closed", "open", "half_open"};

const char *imp_breaker_state_name(imp_breaker_state_t state)
{
    if ((size_t)state >= IMP_ARRAY_LEN(breaker_names))
        return "unknown";
    return breaker_names[state];
}

bool imp_redis_breaker_get(imp_redis_t *r, const char *key, imp_breaker_state_t *state)
{
    char *value = NULL;
    *state = IMP_BREAKER_CLOSED;
    if (!imp_redis_get(r, key, &value))
        return false;
    for (size_t i = 0; value != NULL && i < IMP_ARRAY_LEN(breaker_names); i++)
        if (strcmp(value, breaker_names[i]) == 0)
            *state = (imp_breaker_state_t)i;
    free(value);
    return true;
}

bool imp_redis_breaker_set(imp_redis_t *r, const char *key, imp_breaker_state_t state, long ttl_ms)
{
    if (state == IMP_BREAKER_CLOSED)
        return imp_redis_del(r, key);
    return imp_redis_set(r, key, imp_breaker_state_name(state), ttl_ms);
}
