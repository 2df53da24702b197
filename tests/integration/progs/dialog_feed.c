/* Produces the dialog tests' events: one JSON object per line on stdin,
 *
 *   {"tenant": UUID, "type": "imp.inbound.message.v1", "event_id": "tg-1" | "id": UUID,
 *    "topic": "imp.inbound.v1", "subject": KEY, "data": {...}}
 *
 * id: the given one, else imp_opid_inbound(tenant, data.channel, event_id); subject: the
 * given one, else data.conversation_key; Kafka key "<tenant>:<subject>"; topic default
 * imp.inbound.v1. Lines are produced in order (one idempotent producer) and acknowledged
 * before it exits; prints "produced N messages". */
#include "imp/envelope.h"
#include "imp/kafka.h"
#include "imp/mem.h"
#include "imp/opid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void on_delivery(void *opaque, const imp_error_t *err, int32_t p, int64_t o, void *ctx)
{
    (void)opaque;
    (void)p;
    (void)o;
    (void)ctx;
    if (err != NULL) {
        failures++;
        fprintf(stderr, "dialog_feed: not delivered: %s\n", imp_error_message(err));
    }
}

static void die(const char *what, imp_error_t *err)
{
    fprintf(stderr, "dialog_feed: %s%s%s\n", what, err ? ": " : "",
            err ? imp_error_message(err) : "");
    exit(2);
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* The envelope text of one input line; *topic and *key are new heap strings. */
static char *envelope_of(json_t *in, char **topic, char **key)
{
    json_t *data = json_object_get(in, "data");
    const char *tenant = str(in, "tenant");
    char id[IMP_UUID_STR_SIZE];
    imp_error_t *err = NULL;
    if (str(in, "id")[0])
        snprintf(id, sizeof(id), "%s", str(in, "id"));
    else if ((err = imp_opid_inbound(tenant, str(data, "channel"), str(in, "event_id"), id)))
        die("bad id", err);
    const char *subject =
        str(in, "subject")[0] ? str(in, "subject") : str(data, "conversation_key");
    imp_envelope_t ev;
    err = imp_envelope_new_event(&ev, id, "imperium/ingress", str(in, "type"), tenant,
                                 json_incref(data));
    if (err != NULL)
        die("bad event", err);
    ev.subject = imp_strdup(subject);
    char *out = NULL;
    if ((err = imp_envelope_serialize(&ev, &out)))
        die("bad envelope", err);
    imp_envelope_dispose(&ev);
    *topic = imp_strdup(str(in, "topic")[0] ? str(in, "topic") : "imp.inbound.v1");
    *key = imp_asprintf("%s:%s", tenant, subject);
    return out;
}

int main(void)
{
    const char *brokers = getenv("IMP_KAFKA_BROKERS");
    if (brokers == NULL)
        die("IMP_KAFKA_BROKERS is required", NULL);
    imp_error_t *err = NULL;
    imp_kafka_producer_t *p = imp_kafka_producer_new(brokers, NULL, &err);
    if (err != NULL)
        die("producer", err);
    imp_kafka_producer_set_on_delivery(p, on_delivery, NULL);
    char *line = NULL;
    size_t cap = 0, count = 0;
    while (getline(&line, &cap, stdin) > 0) {
        if (line[0] == '\n')
            continue;
        json_error_t jerr;
        json_t *in = json_loads(line, 0, &jerr);
        if (!json_is_object(in))
            die(jerr.text, NULL);
        char *topic = NULL, *key = NULL;
        char *value = envelope_of(in, &topic, &key);
        imp_kafka_out_t m = {.topic = topic,
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
            die("produce", err);
        imp_kafka_producer_poll(p, 0);
        free(value);
        free(topic);
        free(key);
        json_decref(in);
        count++;
    }
    free(line);
    if ((err = imp_kafka_producer_flush(p, 60000)) != NULL)
        die("flush", err);
    imp_kafka_producer_free(p);
    printf("produced %zu messages\n", count);
    return failures == 0 ? 0 : 1;
}
