/* imperium-send: delivers imp.outbound.v1 to the providers and reports on imp.delivery.v1
 * (docs/send.md). */
#include "send.h"

#include "imp/config.h"
#include "imp/log.h"
#include "imp/mem.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BINARY "imperium-send"
#define MAX_BATCH_MS 240000

static const imp_config_entry_t table[] = {
    IMP_WORKER_CONFIG(send_settings_t, rt),
    {"IMP_SECRET_KEY", IMP_CFG_STRING, NULL, 0, 0, IMP_CFG_SECRET,
     "key of the secrets at rest (AES-256-GCM): 64 hex digits or the base64 of 32 bytes",
     offsetof(send_settings_t, secret_key)},
    {"IMP_CHATFLOW_API_URL", IMP_CFG_STRING, "https://api.chatflow.app", 0, 0, 0,
     "ChatFlow API base URL when the channel sets no api_url (empty: sink)",
     offsetof(send_settings_t, chatflow_url)},
    {"IMP_WHATSAPP_API_URL", IMP_CFG_STRING, "https://graph.facebook.com/v21.0", 0, 0, 0,
     "WhatsApp Cloud API base URL when the channel sets no api_url (empty: sink)",
     offsetof(send_settings_t, whatsapp_url)},
    {"IMP_TELEGRAM_API_URL", IMP_CFG_STRING, "https://api.telegram.org", 0, 0, 0,
     "Telegram Bot API base URL when the channel sets no api_url (empty: sink)",
     offsetof(send_settings_t, telegram_url)},
    {"IMP_SEND_ALLOW_CIDRS", IMP_CFG_STRING, "", 0, 0, 0,
     "private/loopback CIDRs the SSRF guard lets through (comma separated; empty: none)",
     offsetof(send_settings_t, allow_cidrs)},
    {"IMP_SEND_TIMEOUT", IMP_CFG_DURATION, "10s", 100, 300000, 0,
     "whole provider request; past it a sent request is ambiguous",
     offsetof(send_settings_t, timeout_ms)},
    {"IMP_SEND_CONNECT_TIMEOUT", IMP_CFG_DURATION, "3s", 100, 60000, 0, "connecting to a provider",
     offsetof(send_settings_t, connect_timeout_ms)},
    {"IMP_REDIS_URL", IMP_CFG_STRING, "", 0, 0, IMP_CFG_SECRET,
     "Redis for rate limits and breakers (empty: neither)", offsetof(send_settings_t, redis_url)},
    {"IMP_SEND_RATE_LIMIT", IMP_CFG_INT, "0", 0, 1000000, 0,
     "sends per tenant per IMP_SEND_RATE_WINDOW (0: no limit)",
     offsetof(send_settings_t, rate_limit)},
    {"IMP_SEND_RATE_WINDOW", IMP_CFG_DURATION, "1s", 10, 3600000, 0, "rate limit window",
     offsetof(send_settings_t, rate_window_ms)},
    {"IMP_SEND_BREAKER_FAILURES", IMP_CFG_INT, "20", 0, 100000, 0,
     "retriable failures of a (tenant, provider) within the window that open its breaker (0: "
     "off)",
     offsetof(send_settings_t, breaker_failures)},
    {"IMP_SEND_BREAKER_WINDOW", IMP_CFG_DURATION, "30s", 100, 3600000, 0,
     "window of the breaker's failure count", offsetof(send_settings_t, breaker_window_ms)},
    {"IMP_SEND_BREAKER_OPEN", IMP_CFG_DURATION, "30s", 100, 3600000, 0,
     "how long an open breaker stops sends", offsetof(send_settings_t, breaker_open_ms)},
    {"IMP_SEND_CONCURRENCY", IMP_CFG_INT, "8", 1, 64, 0,
     "provider calls at once, each to a different conversation of a batch (1: one at a time)",
     offsetof(send_settings_t, concurrency)},
};

static const char summary[] =
    "Delivers imp.outbound.v1 to ChatFlow, the WhatsApp Cloud API, Telegram, generic signed\n"
    "webhooks or the sink, once per operation id, and reports on imp.delivery.v1\n"
    "(docs/send.md). IMP_WORKER_BATCH is 16 by default here: a batch's provider calls are made\n"
    "one after the other, and IMP_WORKER_BATCH x IMP_SEND_TIMEOUT may not exceed 240s.";

static int setup(int argc, char **argv, send_settings_t *s, send_t *st)
{
    setenv("IMP_WORKER_BATCH", "16", 0); /* a handler makes an HTTP call */
    imp_config_init_or_exit(argc, argv, BINARY, summary, table, IMP_ARRAY_LEN(table), s);
    imp_log_level_t level;
    if (imp_log_level_parse(s->rt.log_level, &level) != 0) {
        fprintf(stderr, "%s: IMP_LOG_LEVEL must be debug, info, warn or error\n", BINARY);
        return 2;
    }
    imp_log_init(BINARY, level);
    /* A batch's calls are made one after the other between two polls of the consumer, whose
     * max.poll.interval.ms (300 s) a batch of timeouts must stay well inside. */
    if (s->rt.batch_max * s->timeout_ms > MAX_BATCH_MS) {
        fprintf(stderr,
                "%s: IMP_WORKER_BATCH (%lld) x IMP_SEND_TIMEOUT (%lld ms) must not exceed %d s: "
                "a batch's calls are made one after the other between two polls of Kafka\n",
                BINARY, s->rt.batch_max, s->timeout_ms, MAX_BATCH_MS / 1000);
        return 2;
    }
    imp_error_t *err = imp_crypto_key_parse("IMP_SECRET_KEY", s->secret_key, st->key);
    imp_crypto_wipe(s->secret_key, strlen(s->secret_key));
    imp_http_options_t ho = {.timeout_ms = s->timeout_ms,
                             .connect_timeout_ms = s->connect_timeout_ms,
                             .user_agent = "imperium-send",
                             .allow_cidrs = s->allow_cidrs};
    if (err == NULL)
        err = imp_http_client_new(&ho, &st->http);
    if (err == NULL) {
        st->pool = imp_calloc((size_t)s->concurrency, sizeof(*st->pool));
        st->pool[0] = st->http;
        st->npool = 1;
        for (; err == NULL && st->npool < (size_t)s->concurrency; st->npool++)
            err = imp_http_client_new(&ho, &st->pool[st->npool]);
    }
    if (err == NULL && st->npool > 1)
        err = send_runners_new(st->npool - 1, &st->runners);
    if (err == NULL && s->redis_url[0] != '\0')
        err = imp_redis_new(&(imp_redis_options_t){.url = s->redis_url}, &st->redis);
    if (err != NULL) {
        fprintf(stderr, "%s: %s\n", BINARY, imp_error_message(err));
        imp_error_free(err);
        return 2;
    }
    st->s = s;
    st->claim_pg = imp_pg_new(
        &(imp_pg_options_t){.dsn = s->rt.pg_dsn, .application_name = "imperium-send-claim"});
    return 0;
}

int main(int argc, char **argv)
{
    static const char *const topics[] = {SEND_TOPIC_IN};
    send_settings_t s = {0};
    send_t st = {0};
    int rc = setup(argc, argv, &s, &st);
    if (rc != 0)
        goto out;
    imp_worker_def_t def = {
        .name = SEND_WORKER,
        .topics = topics,
        .ntopics = IMP_ARRAY_LEN(topics),
        .handler = send_handle,
        .prepare = send_prepare,
        .user = &st,
    };
    imp_worker_t *w = NULL;
    imp_error_t *err = imp_worker_new(&def, &s.rt, &w);
    if (err == NULL) {
        imp_worker_handle_signals(w);
        err = imp_worker_run(w);
    } else {
        IMP_LOG_ERROR("could not start", IMP_LE(err));
    }
    rc = err == NULL ? 0 : 1;
    imp_error_free(err);
    imp_worker_free(w);
out:
    send_runners_free(st.runners);
    send_calls_free(&st);
    imp_pg_free(st.claim_pg);
    for (size_t i = 1; i < st.npool; i++)
        imp_http_client_free(st.pool[i]);
    free(st.pool);
    imp_http_client_free(st.http);
    imp_redis_free(st.redis);
    imp_crypto_wipe(st.key, sizeof(st.key));
    imp_config_dispose(table, IMP_ARRAY_LEN(table), &s);
    return rc;
}
