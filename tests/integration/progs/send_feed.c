/* Publishes imp.outbound.message.v1 events for the send tests (it_send_*.sh).
 *
 *   send_feed --tenant UUID --name NAME --channel KIND --recipient R --text T
 *             [--reply-to X] [--copies K] [--count N [--every E --every-text T2]]
 *
 * The event id is uuidv5(ns, "send-test|NAME"), subject "<channel>:<recipient>", key
 * "<tenant>:<subject>"; each copy is a separate Kafka message. Prints the event id.
 * --count N: N events NAME-0 … NAME-(N-1), in that order on one partition, text "T i" (every
 * E-th, i = E-1, 2E-1 …, "T2 i"); prints nothing. */
#include "imp/envelope.h"
#include "imp/kafka.h"
#include "imp/mem.h"
#include "imp/opid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *arg(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i += 2)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return def;
}

static void die(imp_error_t *err)
{
    fprintf(stderr, "send_feed: %s\n", imp_error_message(err));
    exit(1);
}

static void produce(imp_kafka_producer_t *p, const char *tenant, const char *name,
                    const char *channel, const char *recipient, const char *text,
                    const char *reply_to, int copies, char *id);

int main(int argc, char **argv)
{
    const char *tenant = arg(argc, argv, "--tenant", NULL), *name = arg(argc, argv, "--name", NULL);
    const char *channel = arg(argc, argv, "--channel", NULL);
    const char *recipient = arg(argc, argv, "--recipient", "12345");
    const char *text = arg(argc, argv, "--text", "hello");
    const char *reply_to = arg(argc, argv, "--reply-to", NULL);
    int copies = atoi(arg(argc, argv, "--copies", "1"));
    int count = atoi(arg(argc, argv, "--count", "0"));
    int every = atoi(arg(argc, argv, "--every", "0"));
    const char *every_text = arg(argc, argv, "--every-text", "");
    const char *brokers = getenv("IMP_KAFKA_BROKERS");
    if (!tenant || !name || !channel || !brokers || copies < 1 || count < 0 || every < 0) {
        fprintf(stderr, "send_feed: --tenant, --name, --channel and IMP_KAFKA_BROKERS needed\n");
        return 2;
    }
    imp_error_t *err = NULL;
    imp_kafka_producer_t *p = imp_kafka_producer_new(brokers, NULL, &err);
    if (err != NULL)
        die(err);
    char id[IMP_UUID_STR_SIZE];
    if (count == 0) {
        produce(p, tenant, name, channel, recipient, text, reply_to, copies, id);
    } else {
        for (int i = 0; i < count; i++) {
            char *n = imp_asprintf("%s-%d", name, i);
            char *t =
                imp_asprintf("%s %d", every > 0 && (i + 1) % every == 0 ? every_text : text, i);
            produce(p, tenant, n, channel, recipient, t, reply_to, copies, id);
            free(n);
            free(t);
        }
    }
    if ((err = imp_kafka_producer_flush(p, 30000)) != NULL)
        die(err);
    imp_kafka_producer_free(p);
    if (count == 0)
        printf("%s\n", id);
    return 0;
}

/* One event, copies times; its id in id. */
static void produce(imp_kafka_producer_t *p, const char *tenant, const char *name,
                    const char *channel, const char *recipient, const char *text,
                    const char *reply_to, int copies, char *id)
{
    char seed[256];
    snprintf(seed, sizeof(seed), "send-test|%s", name);
    uint8_t u[IMP_UUID_LEN];
    imp_uuid_v5(IMP_OPID_NAMESPACE, seed, strlen(seed), u);
    imp_uuid_format(u, id);
    json_t *data = json_pack("{s:s, s:s, s:s, s:s, s:n}", "channel", channel, "recipient",
                             recipient, "text", text, "purpose", "answer", "conversation_id");
    json_object_set_new(data, "reply_to", reply_to ? json_string(reply_to) : json_null());
    imp_envelope_t ev;
    imp_error_t *err = imp_envelope_new_event(&ev, id, "imperium/send-feed",
                                              "imp.outbound.message.v1", tenant, data);
    if (err != NULL)
        die(err);
    ev.subject = imp_asprintf("%s:%s", channel, recipient);
    char *value = NULL, *key = imp_asprintf("%s:%s", tenant, ev.subject);
    if ((err = imp_envelope_serialize(&ev, &value)) != NULL)
        die(err);
    for (int i = 0; i < copies; i++) {
        imp_kafka_out_t m = {.topic = "imp.outbound.v1",
                             .partition = IMP_KAFKA_PARTITION_ANY,
                             .key = key,
                             .key_len = strlen(key),
                             .value = value,
                             .value_len = strlen(value)};
        while ((err = imp_kafka_produce(p, &m)) != NULL && imp_error_class(err) == IMP_ERR_INFRA) {
            imp_error_free(err);
            imp_kafka_producer_poll(p, 10);
        }
        if (err != NULL)
            die(err);
    }
    imp_envelope_dispose(&ev);
    free(value);
    free(key);
}
