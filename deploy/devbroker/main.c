/* imperium-devbroker: librdkafka's mock cluster on loopback as the Kafka of one machine. */
#include "devbroker.h"

#include "imp/config.h"
#include "imp/log.h"
#include "imp/mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    long long brokers;
    char *topics;
    char *bootstrap_file;
    long long control_port;
    char *log_level;
} settings_t;

static const imp_config_entry_t config[] = {
    {"IMP_DEVBROKER_BROKERS", IMP_CFG_INT, "3", 1, 16, 0, "number of mock brokers",
     offsetof(settings_t, brokers)},
    {"IMP_DEVBROKER_TOPICS", IMP_CFG_STRING, "deploy/topics.conf", 0, 0, 0,
     "topics manifest to create (relative to the working directory)", offsetof(settings_t, topics)},
    {"IMP_DEVBROKER_BOOTSTRAP_FILE", IMP_CFG_STRING, "", 0, 0, 0,
     "file to write the bootstrap servers to once ready (atomically); empty = none",
     offsetof(settings_t, bootstrap_file)},
    {"IMP_DEVBROKER_CONTROL_PORT", IMP_CFG_INT, "0", 0, 65535, 0,
     "TCP port of the control channel on 127.0.0.1; 0 = none", offsetof(settings_t, control_port)},
    {"IMP_LOG_LEVEL", IMP_CFG_STRING, "info", 0, 0, 0, "debug, info, warn or error",
     offsetof(settings_t, log_level)},
};

static const char summary[] =
    "Kafka for one machine: librdkafka's mock cluster on loopback (in memory), with every\n"
    "topic of the manifest and a line-based control channel for fault injection.\n"
    "Prints the bootstrap servers on stdout when ready; runs until SIGTERM or SIGINT.\n"
    "Client mode: imperium-devbroker ctl <host:port> <command words...> (see docs/devbroker.md).";

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* Block SIGTERM/SIGINT (the control loop lets them in only while waiting). */
static void setup_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
}

/* Write text to path through a temporary file and rename, so readers never see half. */
static imp_error_t *write_atomically(const char *path, const char *text)
{
    char *tmp = imp_asprintf("%s.tmp.%ld", path, (long)getpid());
    imp_error_t *err = NULL;
    FILE *f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%s\n", text) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0)
        err = imp_error_new(IMP_ERR_FATAL, "devbroker_bootstrap_file", "cannot write %s: %s", tmp,
                            strerror(errno));
    if (f != NULL && fclose(f) != 0 && err == NULL)
        err = imp_error_new(IMP_ERR_FATAL, "devbroker_bootstrap_file", "cannot write %s", tmp);
    if (err == NULL && rename(tmp, path) != 0)
        err = imp_error_new(IMP_ERR_FATAL, "devbroker_bootstrap_file", "cannot rename to %s: %s",
                            path, strerror(errno));
    if (err != NULL)
        unlink(tmp);
    free(tmp);
    return err;
}

/* Start the cluster, create and verify the topics, publish the bootstrap servers. */
static imp_error_t *start(const settings_t *s, devbroker_cluster_t **out)
{
    imp_topics_t *topics = NULL;
    imp_error_t *err = imp_topics_load(s->topics, &topics);
    if (err != NULL)
        return err;
    devbroker_cluster_t *c = devbroker_cluster_start((int)s->brokers, &err);
    if (c == NULL)
        goto out;
    if ((err = devbroker_cluster_create_topics(c, topics)) != NULL ||
        (err = devbroker_cluster_verify(c, topics, 10000)) != NULL)
        goto out;
    const char *bootstraps = devbroker_cluster_bootstraps(c);
    if (*s->bootstrap_file != '\0' && (err = write_atomically(s->bootstrap_file, bootstraps)))
        goto out;
    IMP_LOG_INFO("devbroker ready", IMP_LS("bootstrap_servers", bootstraps),
                 IMP_LI("brokers", s->brokers), IMP_LI("topics", topics->count),
                 IMP_LI("control_port", s->control_port));
    printf("%s\n", bootstraps);
    fflush(stdout);
out:
    imp_topics_free(topics);
    if (err != NULL) {
        devbroker_cluster_stop(c);
        c = NULL;
    }
    *out = c;
    return err;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "ctl") == 0)
        return devbroker_ctl_main(argc, argv);
    settings_t s = {0};
    imp_config_init_or_exit(argc, argv, "imperium-devbroker", summary, config,
                            IMP_ARRAY_LEN(config), &s);
    imp_log_level_t level = IMP_LOG_LEVEL_INFO;
    if (imp_log_level_parse(s.log_level, &level) != 0) {
        fprintf(stderr, "imperium-devbroker: IMP_LOG_LEVEL is not a valid level: \"%s\"\n",
                s.log_level);
        return 2;
    }
    imp_log_init("imperium-devbroker", level);
    setup_signals();

    /* Listen before announcing readiness: whoever sees the bootstrap file can use both. */
    imp_error_t *err = NULL;
    devbroker_cluster_t *cluster = NULL;
    devbroker_control_t *ctl = devbroker_control_new((int)s.control_port, &err);
    if (ctl != NULL)
        err = start(&s, &cluster);
    if (err != NULL) {
        IMP_LOG_ERROR("devbroker failed to start", IMP_LE(err));
        imp_error_free(err);
        devbroker_control_free(ctl);
        imp_config_dispose(config, IMP_ARRAY_LEN(config), &s);
        return 1;
    }
    devbroker_control_run(ctl, cluster, &stop);
    IMP_LOG_INFO("devbroker stopping");
    devbroker_control_free(ctl);
    devbroker_cluster_stop(cluster);
    imp_config_dispose(config, IMP_ARRAY_LEN(config), &s);
    return 0;
}
