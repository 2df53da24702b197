/* imperium-ingress: provider webhooks → verified, normalized events durably in Kafka. */
#include "ingress.h"

#include "imp/config.h"
#include "imp/log.h"
#include "imp/mem.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define PING_EVERY_S 1
#define PING_TIMEOUT_MS 1000

static const imp_config_entry_t config[] = {
    {"IMP_KAFKA_BROKERS", IMP_CFG_STRING, NULL, 0, 0, 0, "Kafka bootstrap servers (host:port,...)",
     offsetof(ing_settings_t, brokers)},
    {"IMP_INGRESS_LISTEN", IMP_CFG_STRING, "127.0.0.1:8080", 0, 0, 0,
     "address of the webhook server, host:port ([v6]:port; port 0 picks one)",
     offsetof(ing_settings_t, listen)},
    {"IMP_INGRESS_THREADS", IMP_CFG_INT, "1", 1, ING_MAX_THREADS, 0,
     "event loops (each with its own listener and Kafka producer)",
     offsetof(ing_settings_t, threads)},
    {"IMP_INGRESS_MAX_BODY", IMP_CFG_SIZE, "1MiB", 1024, 64 * 1024 * 1024, 0,
     "largest request body accepted; larger ones get 413", offsetof(ing_settings_t, max_body)},
    {"IMP_SECRET_KEY", IMP_CFG_STRING, NULL, 0, 0, IMP_CFG_SECRET,
     "AES-256 key of the channel secrets in tenant snapshots (64 hex digits or base64)",
     offsetof(ing_settings_t, secret_key)},
    {"IMP_INGRESS_ACK_TIMEOUT", IMP_CFG_DURATION, "5s", 100, 300000, 0,
     "longest wait for Kafka to persist a webhook's events (delivery.timeout.ms); then 503",
     offsetof(ing_settings_t, ack_timeout_ms)},
    {"IMP_INGRESS_RATE", IMP_CFG_DOUBLE, "200", 0, 1e9, 0,
     "webhooks per second per tenant (token bucket, per ingress process); 0 = no limit",
     offsetof(ing_settings_t, rate)},
    {"IMP_INGRESS_BURST", IMP_CFG_INT, "400", 1, 1000000000, 0,
     "webhooks a tenant may send at once above the rate (bucket size)",
     offsetof(ing_settings_t, burst)},
    {"IMP_OPS_WEBHOOK_SECRET", IMP_CFG_STRING, "", 0, 0, IMP_CFG_SECRET,
     "X-Telegram-Bot-Api-Secret-Token of the operator's bot; empty disables POST "
     "/v1/webhooks/ops (404)",
     offsetof(ing_settings_t, ops_secret)},
    {"IMP_INGRESS_SIG_TOLERANCE", IMP_CFG_DURATION, "300s", 1000, 86400000, 0,
     "Standard Webhooks timestamp tolerance either side of now",
     offsetof(ing_settings_t, sig_tolerance_ms)},
    {"IMP_LOG_LEVEL", IMP_CFG_STRING, "info", 0, 0, 0, "debug, info, warn or error",
     offsetof(ing_settings_t, log_level)},
    {"IMP_KAFKA_PRODUCER_PROPS", IMP_CFG_STRING, "", 0, 0, 0,
     "librdkafka overrides for the producers, name=value,... (e.g. linger.ms=2)",
     offsetof(ing_settings_t, producer_props)},
    {"IMP_KAFKA_CONSUMER_PROPS", IMP_CFG_STRING, "", 0, 0, 0,
     "librdkafka overrides for the tenant directory's consumer, name=value,...",
     offsetof(ing_settings_t, consumer_props)},
};

static const char summary[] =
    "The webhook edge: verifies provider webhooks (Standard Webhooks, Meta, Telegram) against\n"
    "the tenant directory read from imp.tenants.v1, normalizes them into imp.inbound.v1 events\n"
    "and answers 2xx only once Kafka has persisted every one. Serves /livez, /readyz and\n"
    "/metrics on the same port. See docs/ingress.md.";

/* Parse the key and the Kafka overrides into app; false (after logging) when one is bad. */
static bool prepare(const ing_settings_t *s, ing_app_t *app, uint8_t key[IMP_CRYPTO_KEY_LEN])
{
    imp_error_t *err = imp_crypto_key_parse("IMP_SECRET_KEY", s->secret_key, key);
    if (err == NULL)
        err = imp_kafka_props_parse(s->producer_props, &app->producer_props);
    if (err == NULL)
        err = imp_kafka_props_parse(s->consumer_props, &app->consumer_props);
    if (err != NULL) {
        IMP_LOG_ERROR("bad configuration", IMP_LE(err));
        imp_error_free(err);
        return false;
    }
    app->settings = s;
    app->tolerance_s = (int)(s->sig_tolerance_ms / 1000);
    return true;
}

/* SIGTERM and SIGINT are blocked in every thread and taken by the main thread. */
static void block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

/* Ping the producers every second until a signal comes. */
static void supervise(ing_server_t *server, const sigset_t *set)
{
    for (;;) {
        ing_server_ping(server, PING_TIMEOUT_MS);
        int sig = sigtimedwait(set, NULL, &(struct timespec){PING_EVERY_S, 0});
        if (sig == SIGTERM || sig == SIGINT) {
            IMP_LOG_INFO("stopping", IMP_LS("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"));
            return;
        }
    }
}

int main(int argc, char **argv)
{
    ing_settings_t s = {0};
    imp_config_init_or_exit(argc, argv, "imperium-ingress", summary, config, IMP_ARRAY_LEN(config),
                            &s);
    imp_log_level_t level = IMP_LOG_LEVEL_INFO;
    if (imp_log_level_parse(s.log_level, &level) != 0) {
        fprintf(stderr, "imperium-ingress: IMP_LOG_LEVEL is not a valid level: \"%s\"\n",
                s.log_level);
        return 2;
    }
    imp_log_init("imperium-ingress", level);
    sigset_t set;
    block_signals(&set);
    ing_app_t app = {0};
    uint8_t key[IMP_CRYPTO_KEY_LEN];
    int rc = 1;
    ing_server_t *server = NULL;
    imp_error_t *err = NULL;
    if (!prepare(&s, &app, key)) {
        rc = 2;
        goto out;
    }
    app.ratelimit = ing_ratelimit_new(s.rate, (double)s.burst);
    app.directory = ing_directory_start(s.brokers, &app.consumer_props, key, (int)s.threads, &err);
    if (app.directory != NULL) {
        ing_stats_init(app.directory);
        server = ing_server_start(&app, &err);
    }
    if (err != NULL) {
        IMP_LOG_ERROR("ingress failed to start", IMP_LE(err));
        imp_error_free(err);
        goto out;
    }
    supervise(server, &set);
    rc = 0;
out:
    ing_server_stop(server);
    ing_directory_stop(app.directory);
    ing_ratelimit_free(app.ratelimit);
    imp_kafka_props_dispose(&app.producer_props);
    imp_kafka_props_dispose(&app.consumer_props);
    imp_crypto_wipe(key, sizeof(key));
    imp_config_dispose(config, IMP_ARRAY_LEN(config), &s);
    return rc;
}
