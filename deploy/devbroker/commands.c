/* The control protocol: one command per line, answered "ok[ <data>]" or "error: <reason>". */
#include "devbroker.h"

#include "imp/log.h"
#include "imp/mem.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_WORDS 16
#define MAX_ERRORS 100000

typedef struct {
    devbroker_cluster_t *cluster;
    char **argv; /* the words after the command's own words */
    int argc;
    char *reply;
    size_t size;
} cmd_t;

static int ok(cmd_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(cmd_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int ok(cmd_t *c, const char *fmt, ...)
{
    int n = snprintf(c->reply, c->size, "ok");
    if (fmt != NULL && (size_t)n + 1 < c->size) {
        c->reply[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->reply + n, c->size - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return 0;
}

static int fail(cmd_t *c, const char *fmt, ...)
{
    int n = snprintf(c->reply, c->size, "error: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->reply + n, c->size - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* A decimal integer in [min, max]; 0 on success. */
static int parse_int(const char *s, long min, long max, long *out)
{
    errno = 0;
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int fail_rc(cmd_t *c, rd_kafka_resp_err_t rc)
{
    return fail(c, "%s", rd_kafka_err2str(rc));
}

/* "all" is -1 (every broker) where the mock allows it. */
static int parse_broker(cmd_t *c, const char *s, int allow_all, int32_t *id)
{
    long v = 0;
    if (allow_all && strcmp(s, "all") == 0) {
        *id = -1;
        return 0;
    }
    if (parse_int(s, 1, devbroker_cluster_nbrokers(c->cluster), &v) != 0)
        return fail(c, "no broker \"%s\" (brokers are 1..%d)", s,
                    devbroker_cluster_nbrokers(c->cluster));
    *id = (int32_t)v;
    return 0;
}

static int cmd_ping(cmd_t *c)
{
    return ok(c, NULL);
}

static int cmd_brokers(cmd_t *c)
{
    char list[256] = "";
    size_t len = 0;
    for (int i = 1; i <= devbroker_cluster_nbrokers(c->cluster) && len < sizeof(list); i++)
        len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%d", i > 1 ? " " : "", i);
    return ok(c, "%s", list);
}

static int cmd_bootstrap(cmd_t *c)
{
    return ok(c, "%s", devbroker_cluster_bootstraps(c->cluster));
}

static int cmd_broker_down(cmd_t *c)
{
    int32_t id = 0;
    if (parse_broker(c, c->argv[0], 1, &id) != 0)
        return -1;
    rd_kafka_resp_err_t rc = rd_kafka_mock_broker_set_down(devbroker_cluster_mock(c->cluster), id);
    return rc ? fail_rc(c, rc) : ok(c, NULL);
}

static int cmd_broker_up(cmd_t *c)
{
    int32_t id = 0;
    if (parse_broker(c, c->argv[0], 1, &id) != 0)
        return -1;
    rd_kafka_resp_err_t rc = rd_kafka_mock_broker_set_up(devbroker_cluster_mock(c->cluster), id);
    return rc ? fail_rc(c, rc) : ok(c, NULL);
}

static int cmd_broker_rtt(cmd_t *c)
{
    int32_t id = 0;
    long ms = 0;
    if (parse_broker(c, c->argv[0], 1, &id) != 0)
        return -1;
    if (parse_int(c->argv[1], 0, 60000, &ms) != 0)
        return fail(c, "rtt must be 0..60000 ms, not \"%s\"", c->argv[1]);
    rd_kafka_resp_err_t rc =
        rd_kafka_mock_broker_set_rtt(devbroker_cluster_mock(c->cluster), id, (int)ms);
    return rc ? fail_rc(c, rc) : ok(c, NULL);
}

static int cmd_topic_create(cmd_t *c)
{
    long parts = 0;
    if (parse_int(c->argv[1], 1, 10000, &parts) != 0)
        return fail(c, "partitions must be 1..10000, not \"%s\"", c->argv[1]);
    imp_error_t *err = devbroker_cluster_create_topic(c->cluster, c->argv[0], (int)parts);
    if (err == NULL)
        return ok(c, NULL);
    fail(c, "%s", imp_error_message(err));
    imp_error_free(err);
    return -1;
}

static int cmd_partition_leader(cmd_t *c)
{
    long part = 0;
    int32_t id = 0;
    if (parse_int(c->argv[1], 0, 9999, &part) != 0)
        return fail(c, "bad partition \"%s\"", c->argv[1]);
    if (parse_broker(c, c->argv[2], 0, &id) != 0)
        return -1;
    rd_kafka_resp_err_t rc = rd_kafka_mock_partition_set_leader(devbroker_cluster_mock(c->cluster),
                                                                c->argv[0], (int32_t)part, id);
    return rc ? fail_rc(c, rc) : ok(c, NULL);
}

/* Request types by name (Kafka protocol ApiKeys). */
static const struct {
    const char *name;
    int16_t key;
} api_keys[] = {
    {"produce", 0},         {"fetch", 1},        {"listoffsets", 2}, {"metadata", 3},
    {"commit", 8},          {"offsetcommit", 8}, {"offsetfetch", 9}, {"findcoordinator", 10},
    {"joingroup", 11},      {"heartbeat", 12},   {"leavegroup", 13}, {"syncgroup", 14},
    {"initproducerid", 22},
};

static int parse_api_key(const char *s, int16_t *out)
{
    long v = 0;
    for (size_t i = 0; i < IMP_ARRAY_LEN(api_keys); i++) {
        if (strcasecmp(s, api_keys[i].name) == 0) {
            *out = api_keys[i].key;
            return 0;
        }
    }
    if (parse_int(s, 0, 100, &v) != 0)
        return -1;
    *out = (int16_t)v;
    return 0;
}

/* A broker error by name ("NOT_ENOUGH_REPLICAS", any case, RD_KAFKA_RESP_ERR_ prefix
 * optional) or by number; local (negative) librdkafka errors are not broker answers. */
static int parse_error_code(const char *s, rd_kafka_resp_err_t *out)
{
    const struct rd_kafka_err_desc *descs = NULL;
    size_t n = 0;
    long v = 0;
    if (strncasecmp(s, "RD_KAFKA_RESP_ERR_", 18) == 0)
        s += 18;
    if (parse_int(s, 1, 32767, &v) == 0) {
        *out = (rd_kafka_resp_err_t)v;
        return 0;
    }
    rd_kafka_get_err_descs(&descs, &n);
    for (size_t i = 0; i < n; i++) {
        if (descs[i].name != NULL && descs[i].code > 0 && strcasecmp(descs[i].name, s) == 0) {
            *out = descs[i].code;
            return 0;
        }
    }
    return -1;
}

static int cmd_error_push(cmd_t *c, const char *api)
{
    int16_t key = 0;
    long count = 0;
    rd_kafka_resp_err_t code;
    if (parse_api_key(api, &key) != 0)
        return fail(c, "unknown request type \"%s\"", api);
    if (parse_int(c->argv[0], 1, MAX_ERRORS, &count) != 0)
        return fail(c, "count must be 1..%d, not \"%s\"", MAX_ERRORS, c->argv[0]);
    if (parse_error_code(c->argv[1], &code) != 0)
        return fail(c, "unknown kafka error \"%s\"", c->argv[1]);
    rd_kafka_resp_err_t *errs = imp_malloc((size_t)count * sizeof(*errs));
    for (long i = 0; i < count; i++)
        errs[i] = code;
    rd_kafka_mock_push_request_errors_array(devbroker_cluster_mock(c->cluster), key, (size_t)count,
                                            errs);
    free(errs);
    return ok(c, "%ld x %s on request type %d", count, rd_kafka_err2name(code), key);
}

static int cmd_error_clear(cmd_t *c)
{
    int16_t key = 0;
    if (c->argc == 1) {
        if (parse_api_key(c->argv[0], &key) != 0)
            return fail(c, "unknown request type \"%s\"", c->argv[0]);
        rd_kafka_mock_clear_request_errors(devbroker_cluster_mock(c->cluster), key);
        return ok(c, NULL);
    }
    for (int16_t k = 0; k <= 100; k++)
        rd_kafka_mock_clear_request_errors(devbroker_cluster_mock(c->cluster), k);
    return ok(c, NULL);
}

static int cmd_help(cmd_t *c);

/* The command table: words to match, argument count bounds, handler. */
typedef struct {
    const char *w1, *w2; /* w2 NULL: a one-word command */
    int min_args, max_args;
    int (*run)(cmd_t *c);
    const char *usage;
} command_t;

static const command_t commands[] = {
    {"ping", NULL, 0, 0, cmd_ping, "ping"},
    {"brokers", NULL, 0, 0, cmd_brokers, "brokers"},
    {"bootstrap", NULL, 0, 0, cmd_bootstrap, "bootstrap"},
    {"broker", "down", 1, 1, cmd_broker_down, "broker down <id|all>"},
    {"broker", "up", 1, 1, cmd_broker_up, "broker up <id|all>"},
    {"broker", "rtt", 2, 2, cmd_broker_rtt, "broker rtt <id|all> <ms>"},
    {"topic", "create", 2, 2, cmd_topic_create, "topic create <name> <partitions>"},
    {"partition", "leader", 3, 3, cmd_partition_leader,
     "partition leader <topic> <partition> <broker id>"},
    {"error", "clear", 0, 1, cmd_error_clear, "error clear [<request type>]"},
    {"help", NULL, 0, 0, cmd_help, "help"},
};

static int cmd_help(cmd_t *c)
{
    char text[1024] = "";
    size_t len = 0;
    for (size_t i = 0; i < IMP_ARRAY_LEN(commands) && len < sizeof(text); i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, "%s%s", i ? "; " : "",
                                commands[i].usage);
    if (len < sizeof(text))
        snprintf(text + len, sizeof(text) - len,
                 "; error <produce|fetch|commit|...|apikey> <count> <error name|code>");
    return ok(c, "%s", text);
}

static int dispatch(cmd_t *c, char **words, int n)
{
    for (size_t i = 0; i < IMP_ARRAY_LEN(commands); i++) {
        const command_t *cmd = &commands[i];
        int used = cmd->w2 ? 2 : 1;
        if (strcmp(words[0], cmd->w1) != 0 || (cmd->w2 && (n < 2 || strcmp(words[1], cmd->w2))))
            continue;
        c->argv = words + used;
        c->argc = n - used;
        if (c->argc < cmd->min_args || c->argc > cmd->max_args)
            return fail(c, "usage: %s", cmd->usage);
        return cmd->run(c);
    }
    if (strcmp(words[0], "error") == 0) {
        if (n != 4)
            return fail(c, "usage: error <request type> <count> <error name|code>");
        c->argv = words + 2;
        c->argc = 2;
        return cmd_error_push(c, words[1]);
    }
    if (n >= 2 && (strcmp(words[0], "broker") == 0 || strcmp(words[0], "topic") == 0 ||
                   strcmp(words[0], "partition") == 0))
        return fail(c, "unknown command \"%s %s\"", words[0], words[1]);
    return fail(c, "unknown command \"%s\"", words[0]);
}

int devbroker_command_run(devbroker_cluster_t *cluster, const char *line, char *reply, size_t size)
{
    cmd_t c = {.cluster = cluster, .reply = reply, .size = size};
    char *copy = imp_strdup(line);
    char *words[MAX_WORDS];
    int n = 0;
    char *save = NULL;
    for (char *w = strtok_r(copy, " \t\r", &save); w != NULL; w = strtok_r(NULL, " \t\r", &save)) {
        if (n == MAX_WORDS)
            break;
        words[n++] = w;
    }
    int rc;
    if (n == MAX_WORDS)
        rc = fail(&c, "too many words");
    else if (n == 0)
        rc = fail(&c, "empty command");
    else
        rc = dispatch(&c, words, n);
    IMP_LOG_INFO("control command", IMP_LS("command", line), IMP_LS("reply", reply));
    free(copy);
    return rc;
}
