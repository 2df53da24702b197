/* imperium-devbroker internals: the mock cluster, the control commands and channel. */
#ifndef DEVBROKER_H
#define DEVBROKER_H

#include <signal.h>
#include <stddef.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "imp/error.h"
#include "imp/topics.h"

/* ---- cluster.c: the mock cluster and the rd_kafka_t that owns it ---------------------- */

typedef struct devbroker_cluster devbroker_cluster_t;

/* Start nbrokers mock brokers on 127.0.0.1 (random ports). */
devbroker_cluster_t *devbroker_cluster_start(int nbrokers, imp_error_t **err);
void devbroker_cluster_stop(devbroker_cluster_t *c);

/* Create one topic; replication factor min(3, brokers). */
imp_error_t *devbroker_cluster_create_topic(devbroker_cluster_t *c, const char *name,
                                            int partitions);
/* Create every topic of the manifest. */
imp_error_t *devbroker_cluster_create_topics(devbroker_cluster_t *c, const imp_topics_t *t);

/* Ask the cluster for metadata as a client would, and check every manifest topic is there
 * with its partition count: "ready" means reachable, not just started. */
imp_error_t *devbroker_cluster_verify(devbroker_cluster_t *c, const imp_topics_t *t,
                                      int timeout_ms);

const char *devbroker_cluster_bootstraps(const devbroker_cluster_t *c);
int devbroker_cluster_nbrokers(const devbroker_cluster_t *c);
rd_kafka_mock_cluster_t *devbroker_cluster_mock(devbroker_cluster_t *c);

/* ---- commands.c: the control protocol ---------------------------------------------------- */

/* Run one command line; the reply ("ok", "ok <data>" or "error: <reason>", no newline) is
 * written to reply. Returns 0 for ok, -1 for an error. */
int devbroker_command_run(devbroker_cluster_t *c, const char *line, char *reply, size_t size);

/* ---- control.c: the TCP listener on 127.0.0.1 -------------------------------------------- */

typedef struct devbroker_control devbroker_control_t;

/* Listen on 127.0.0.1:port; port 0 gives a control channel that only waits for signals. */
devbroker_control_t *devbroker_control_new(int port, imp_error_t **err);
void devbroker_control_free(devbroker_control_t *ctl);

/* Serve clients until *stop becomes non-zero (set by a signal handler; SIGTERM and SIGINT
 * must be blocked by the caller, they are only let through while waiting). */
void devbroker_control_run(devbroker_control_t *ctl, devbroker_cluster_t *c,
                           volatile sig_atomic_t *stop);

/* ---- ctl.c: the client mode -------------------------------------------------------------- */

/* imperium-devbroker ctl <host:port> <words...>: 0 ok, 1 error reply, 2 no connection. */
int devbroker_ctl_main(int argc, char **argv);

#endif
