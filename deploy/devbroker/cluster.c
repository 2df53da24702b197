/* The mock cluster: start, create the manifest's topics, verify as a client, stop. */
#include "devbroker.h"

#include "imp/log.h"
#include "imp/mem.h"

#include <stdlib.h>
#include <string.h>

struct devbroker_cluster {
    rd_kafka_t *owner; /* the mock's brokers run as threads of this handle */
    rd_kafka_mock_cluster_t *mock;
    int nbrokers;
};

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    /* The owner handle has no bootstrap servers of its own, by design. */
    if (strcmp(fac, "CONFWARN") == 0)
        return;
    imp_log_level_t lvl = level <= 3   ? IMP_LOG_LEVEL_ERROR
                          : level == 4 ? IMP_LOG_LEVEL_WARN
                          : level <= 6 ? IMP_LOG_LEVEL_INFO
                                       : IMP_LOG_LEVEL_DEBUG;
    IMP_LOG_AT(lvl, "librdkafka", IMP_LS("facility", fac), IMP_LS("detail", buf));
}

devbroker_cluster_t *devbroker_cluster_start(int nbrokers, imp_error_t **err)
{
    char errstr[512];
    *err = NULL;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set(conf, "client.id", "imperium-devbroker", errstr, sizeof(errstr));
    rd_kafka_t *owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (owner == NULL) {
        rd_kafka_conf_destroy(conf);
        *err =
            imp_error_new(IMP_ERR_FATAL, "devbroker_start", "could not create handle: %s", errstr);
        return NULL;
    }
    rd_kafka_mock_cluster_t *mock = rd_kafka_mock_cluster_new(owner, nbrokers);
    if (mock == NULL) {
        rd_kafka_destroy(owner);
        *err = imp_error_new(IMP_ERR_FATAL, "devbroker_start", "could not start mock cluster");
        return NULL;
    }
    devbroker_cluster_t *c = imp_calloc(1, sizeof(*c));
    c->owner = owner;
    c->mock = mock;
    c->nbrokers = nbrokers;
    return c;
}

void devbroker_cluster_stop(devbroker_cluster_t *c)
{
    if (c == NULL)
        return;
    rd_kafka_mock_cluster_destroy(c->mock);
    rd_kafka_destroy(c->owner);
    free(c);
}

imp_error_t *devbroker_cluster_create_topic(devbroker_cluster_t *c, const char *name,
                                            int partitions)
{
    int rf = c->nbrokers < 3 ? c->nbrokers : 3;
    rd_kafka_resp_err_t rc = rd_kafka_mock_topic_create(c->mock, name, partitions, rf);
    if (rc != RD_KAFKA_RESP_ERR_NO_ERROR)
        return imp_error_new(IMP_ERR_FATAL, "devbroker_topic", "could not create topic %s: %s",
                             name, rd_kafka_err2str(rc));
    return NULL;
}

imp_error_t *devbroker_cluster_create_topics(devbroker_cluster_t *c, const imp_topics_t *t)
{
    for (size_t i = 0; i < t->count; i++) {
        imp_error_t *err =
            devbroker_cluster_create_topic(c, t->topics[i].name, t->topics[i].partitions);
        if (err != NULL)
            return err;
    }
    return NULL;
}

static imp_error_t *check_topics(const struct rd_kafka_metadata *md, const imp_topics_t *t)
{
    for (size_t i = 0; i < t->count; i++) {
        const struct rd_kafka_metadata_topic *found = NULL;
        for (int j = 0; j < md->topic_cnt && found == NULL; j++) {
            if (strcmp(md->topics[j].topic, t->topics[i].name) == 0)
                found = &md->topics[j];
        }
        if (found == NULL || found->err != RD_KAFKA_RESP_ERR_NO_ERROR ||
            found->partition_cnt != t->topics[i].partitions)
            return imp_error_new(IMP_ERR_FATAL, "devbroker_verify",
                                 "topic %s is not served as declared", t->topics[i].name);
    }
    return NULL;
}

imp_error_t *devbroker_cluster_verify(devbroker_cluster_t *c, const imp_topics_t *t, int timeout_ms)
{
    char errstr[512];
    imp_error_t *err = NULL;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set(conf, "bootstrap.servers", devbroker_cluster_bootstraps(c), errstr,
                      sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return imp_error_new(IMP_ERR_FATAL, "devbroker_verify", "client: %s", errstr);
    }
    rd_kafka_resp_err_t rc = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
    if (rc != RD_KAFKA_RESP_ERR_NO_ERROR)
        err = imp_error_new(IMP_ERR_FATAL, "devbroker_verify", "metadata request failed: %s",
                            rd_kafka_err2str(rc));
    else
        err = check_topics(md, t);
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    return err;
}

const char *devbroker_cluster_bootstraps(const devbroker_cluster_t *c)
{
    return rd_kafka_mock_cluster_bootstraps(c->mock);
}

int devbroker_cluster_nbrokers(const devbroker_cluster_t *c)
{
    return c->nbrokers;
}

rd_kafka_mock_cluster_t *devbroker_cluster_mock(devbroker_cluster_t *c)
{
    return c->mock;
}
