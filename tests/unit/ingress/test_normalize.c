/* Unit tests for the ingress normalizers, on real-shaped payloads in payloads/. */
#include "../../../ingress/webhooks/json_read.c"
#include "../../../ingress/webhooks/normalize_chatflow.c"
#include "../../../ingress/webhooks/normalize_common.c"
#include "../../../ingress/webhooks/normalize_generic.c"
#include "../../../ingress/webhooks/normalize_telegram.c"
#include "../../../ingress/webhooks/normalize_whatsapp.c"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- fixtures ---- */

static char *payload_path(const char *name)
{
    const char *slash = strrchr(__FILE__, '/');
    int dirlen = slash ? (int)(slash - __FILE__) : 1;
    return imp_asprintf("%.*s/payloads/%s", dirlen, slash ? __FILE__ : ".", name);
}

static char *load(const char *name, size_t *len)
{
    char *path = payload_path(name);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    free(path);
    char *buf = imp_malloc(1 << 20);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

typedef struct {
    ing_event_t *ev;
    size_t n;
    char *body;
    size_t len;
} result_t;

static result_t run_body(ing_channel_t ch, const char *body, size_t len, const char *wh)
{
    result_t r = {.body = imp_strndup(body, len), .len = len};
    imp_error_t *err = ing_normalize(ch, r.body, len, wh, &r.ev, &r.n);
    ck_assert_msg(err == NULL, "normalize failed: %s", err ? imp_error_message(err) : "");
    ck_assert_uint_ge(r.n, 1);
    return r;
}

static result_t run(ing_channel_t ch, const char *file, const char *wh)
{
    size_t len;
    char *body = load(file, &len);
    result_t r = run_body(ch, body, len, wh);
    free(body);
    return r;
}

static void done(result_t *r)
{
    ing_events_free(r->ev, r->n);
    free(r->body);
}

/* The value at a dotted path ("message.media.id"; "contacts.1" indexes arrays), or NULL. */
static json_t *at(json_t *v, const char *path)
{
    char *copy = imp_strdup(path), *save = NULL;
    for (char *p = strtok_r(copy, ".", &save); p && v; p = strtok_r(NULL, ".", &save)) {
        if (json_is_array(v))
            v = json_array_get(v, (size_t)strtoul(p, NULL, 10));
        else
            v = json_object_get(v, p);
    }
    free(copy);
    return v;
}

static const char *str(ing_event_t *ev, const char *path)
{
    json_t *v = at(ev->data, path);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

#define ck_str(ev, path, want)                                                                     \
    do {                                                                                           \
        const char *got_ = str((ev), (path));                                                      \
        ck_assert_msg(got_ != NULL, "%s is missing", (path));                                      \
        ck_assert_str_eq(got_, (want));                                                            \
    } while (0)
#define ck_absent(ev, path) ck_assert_msg(at((ev)->data, (path)) == NULL, "%s is present", (path))

/* type, provider_event_id and conversation_key at once, and the data's copies of them. */
static void ck_event(ing_event_t *ev, const char *type, const char *id, const char *conv)
{
    ck_assert_str_eq(ev->type, type);
    ck_assert_str_eq(ev->provider_event_id, id);
    ck_assert_str_eq(ev->conversation_key, conv);
    ck_str(ev, "conversation_key", conv);
}

static size_t nkeys(ing_event_t *ev, const char *path)
{
    json_t *v = path ? at(ev->data, path) : ev->data;
    return json_is_object(v) ? json_object_size(v) : (size_t)-1;
}

static double num(ing_event_t *ev, const char *path)
{
    json_t *v = at(ev->data, path);
    ck_assert_msg(json_is_number(v), "%s is not a number", path);
    return json_number_value(v);
}

/* raw holds exactly the JSON of text. */
static void ck_raw(ing_event_t *ev, const char *path, const char *text)
{
    json_t *want = json_loads(text, JSON_DECODE_ANY, NULL);
    ck_assert_ptr_nonnull(want);
    ck_assert_msg(json_equal(at(ev->data, path), want), "%s differs from the payload", path);
    json_decref(want);
}

static void sha_of(const char *body, size_t len, char out[80])
{
    uint8_t d[IMP_SHA256_LEN];
    imp_sha256(body, len, d);
    memcpy(out, "sha256:", 7);
    imp_hex_encode(d, sizeof(d), out + 7);
}

/* ---- channels ---- */

START_TEST(channel_names_parse)
{
    const char *names[] = {"generic", "chatflow", "whatsapp", "telegram"};
    for (int i = 0; i < ING_CH_COUNT; i++) {
        ing_channel_t ch;
        ck_assert_str_eq(ing_channel_name((ing_channel_t)i), names[i]);
        ck_assert_int_eq(ing_channel_parse(names[i], strlen(names[i]), &ch), 0);
        ck_assert_int_eq(ch, i);
    }
    ing_channel_t ch;
    ck_assert_int_eq(ing_channel_parse("Generic", 7, &ch), -1);
    ck_assert_int_eq(ing_channel_parse("generic", 6, &ch), -1);
    ck_assert_int_eq(ing_channel_parse("telegramx", 9, &ch), -1);
    ck_assert_int_eq(ing_channel_parse("test", 4, &ch), -1);
    ck_assert_int_eq(ing_channel_parse("", 0, &ch), -1);
    ck_assert_ptr_null(ing_channel_name((ing_channel_t)ING_CH_COUNT));
}
END_TEST

/* ---- generic ---- */

START_TEST(generic_message)
{
    result_t r = run(ING_CH_GENERIC, "generic-message.json", "msg_wh1");
    ck_assert_uint_eq(r.n, 1);
    ing_event_t *ev = &r.ev[0];
    ck_event(ev, ING_TYPE_MESSAGE, "m-0001", "generic:order-5521");
    ck_str(ev, "channel", "generic");
    ck_str(ev, "sender.id", "cust-42");
    ck_str(ev, "sender.name", "Мария Иванова");
    ck_str(ev, "message.id", "m-0001");
    ck_str(ev, "message.kind", "text");
    ck_str(ev, "message.text", "Здравствуйте! Можно записаться на стрижку в субботу?");
    ck_str(ev, "message.reply_to", "m-0000");
    ck_assert_uint_eq(nkeys(ev, NULL), 4);
    ck_assert_uint_eq(nkeys(ev, "message"), 4);
    done(&r);
}
END_TEST

START_TEST(generic_ids)
{
    /* No message.id: the webhook-id names the event and the message. */
    result_t r = run(ING_CH_GENERIC, "generic-no-id.json", "msg_wh2");
    ck_event(&r.ev[0], ING_TYPE_MESSAGE, "msg_wh2", "generic:c-9");
    ck_str(&r.ev[0], "message.id", "msg_wh2");
    ck_absent(&r.ev[0], "sender");
    done(&r);
    /* Neither: the body's hash. */
    r = run(ING_CH_GENERIC, "generic-no-id.json", NULL);
    char sha[80];
    sha_of(r.body, r.len, sha);
    ck_event(&r.ev[0], ING_TYPE_MESSAGE, sha, "generic:c-9");
    done(&r);
    /* Numeric ids are text. */
    const char *body =
        "{\"conversation\": 42, \"sender\": {\"id\": 7}, \"message\": {\"id\": 9001, "
        "\"text\": \"\"}}";
    r = run_body(ING_CH_GENERIC, body, strlen(body), "w");
    ck_event(&r.ev[0], ING_TYPE_MESSAGE, "9001", "generic:42");
    ck_str(&r.ev[0], "sender.id", "7");
    ck_str(&r.ev[0], "message.text", "");
    done(&r);
}
END_TEST

START_TEST(generic_long_ids_are_hashed)
{
    char id[301], conv[301];
    memset(id, 'i', 300);
    memset(conv, 'c', 300);
    id[300] = conv[300] = '\0';
    char *body = imp_asprintf("{\"conversation\": \"%s\", \"message\": {\"id\": \"%s\", \"text\": "
                              "\"x\"}}",
                              conv, id);
    result_t r = run_body(ING_CH_GENERIC, body, strlen(body), NULL);
    char want_id[80], want_conv[100];
    sha_of(id, 300, want_id);
    sha_of(conv, 300, want_conv + 8);
    memcpy(want_conv, "generic:", 8);
    ck_event(&r.ev[0], ING_TYPE_MESSAGE, want_id, want_conv);
    ck_str(&r.ev[0], "message.id", id); /* the data keeps the full id */
    done(&r);
    free(body);
}
END_TEST

START_TEST(generic_unknown_shape)
{
    result_t r = run(ING_CH_GENERIC, "generic-unknown.json", "msg_wh3");
    ck_assert_uint_eq(r.n, 1);
    ck_event(&r.ev[0], ING_TYPE_OTHER, "msg_wh3", "generic:c-9");
    ck_str(&r.ev[0], "kind", "unrecognised");
    ck_raw(&r.ev[0], "raw", r.body);
    ck_assert_uint_eq(nkeys(&r.ev[0], NULL), 4);
    done(&r);
}
END_TEST

/* ---- chatflow ---- */

START_TEST(chatflow_text)
{
    result_t r = run(ING_CH_CHATFLOW, "chatflow-text.json", "msg_cf1");
    ck_assert_uint_eq(r.n, 1);
    ing_event_t *ev = &r.ev[0];
    ck_event(ev, ING_TYPE_MESSAGE, "cf_01JD3Z8Q4W", "chatflow:79161234567@c.us");
    ck_str(ev, "chat.id", "79161234567@c.us");
    ck_str(ev, "sender.id", "+79161234567");
    ck_str(ev, "sender.phone", "+79161234567");
    ck_str(ev, "sender.name", "Анна");
    ck_str(ev, "message.id", "cf_01JD3Z8Q4W");
    ck_str(ev, "message.kind", "text");
    ck_str(ev, "message.text", "Сколько стоит маникюр?");
    ck_str(ev, "message.reply_to", "cf_01JD3Z7AAA");
    ck_str(ev, "provider_time", "2024-11-21T00:46:40.000Z");
    done(&r);
}
END_TEST

START_TEST(chatflow_media_location_contact)
{
    result_t r = run(ING_CH_CHATFLOW, "chatflow-image.json", "w");
    ing_event_t *ev = &r.ev[0];
    ck_event(ev, ING_TYPE_MESSAGE, "cf_01JD3Z9B2X", "chatflow:79161234567@c.us");
    ck_str(ev, "message.kind", "image");
    ck_str(ev, "message.media.url", "https://media.chatflow.example/f/abc.jpg");
    ck_str(ev, "message.media.mime_type", "image/jpeg");
    ck_str(ev, "message.media.caption", "вот так");
    ck_str(ev, "message.media.file_name", "abc.jpg");
    ck_absent(ev, "message.text");
    ck_absent(ev, "sender.name");
    done(&r);

    r = run(ING_CH_CHATFLOW, "chatflow-location.json", "w");
    ev = &r.ev[0];
    ck_str(ev, "message.kind", "location");
    ck_assert_double_eq(num(ev, "message.location.latitude"), 55.7558);
    ck_assert_double_eq(num(ev, "message.location.longitude"), 37.6173);
    ck_str(ev, "message.location.name", "Красная площадь");
    ck_str(ev, "message.location.address", "Москва");
    done(&r);

    r = run(ING_CH_CHATFLOW, "chatflow-contact.json", "w");
    ev = &r.ev[0];
    ck_str(ev, "message.kind", "contact");
    ck_str(ev, "message.contacts.0.name", "Ольга");
    ck_str(ev, "message.contacts.0.phone", "+79035550000");
    ck_assert_uint_eq(json_array_size(at(ev->data, "message.contacts")), 1);
    done(&r);
}
END_TEST

START_TEST(chatflow_status)
{
    result_t r = run(ING_CH_CHATFLOW, "chatflow-status.json", "msg_cf9");
    ing_event_t *ev = &r.ev[0];
    ck_event(ev, ING_TYPE_STATUS, "cf_out_77:failed", "chatflow:79161234567@c.us");
    ck_str(ev, "message_id", "cf_out_77");
    ck_str(ev, "status", "failed");
    ck_str(ev, "recipient_id", "79161234567@c.us");
    ck_str(ev, "error.code", "not_on_whatsapp");
    ck_str(ev, "error.message", "the number is not on WhatsApp");
    ck_str(ev, "provider_time", "2024-11-21T00:53:20.000Z");
    done(&r);
}
END_TEST

START_TEST(chatflow_unknown)
{
    result_t r = run(ING_CH_CHATFLOW, "chatflow-unknown.json", "msg_cf10");
    ck_event(&r.ev[0], ING_TYPE_OTHER, "msg_cf10", "chatflow:-");
    ck_str(&r.ev[0], "kind", "chat.archived");
    ck_raw(&r.ev[0], "raw", r.body);
    done(&r);
    /* A received message without chat_id, a status that is not one: other, kept whole. */
    const char *bodies[] = {
        "{\"event\":\"message.received\",\"message\":{\"id\":\"x\",\"type\":\"text\"}}",
        "{\"event\":\"message.status\",\"status\":{\"message_id\":\"x\",\"status\":\"seen\"}}",
        "{\"event\":\"message.received\",\"message\":\"x\"}",
    };
    for (size_t i = 0; i < IMP_ARRAY_LEN(bodies); i++) {
        r = run_body(ING_CH_CHATFLOW, bodies[i], strlen(bodies[i]), "w");
        ck_assert_uint_eq(r.n, 1);
        ck_assert_str_eq(r.ev[0].type, ING_TYPE_OTHER);
        ck_raw(&r.ev[0], "raw", bodies[i]);
        done(&r);
    }
    /* An unknown message type is still a message, kind other, with the message kept. */
    const char *poll =
        "{\"event\":\"message.received\",\"message\":{\"id\":\"p1\",\"chat_id\":\"c\","
        "\"type\":\"poll\",\"poll\":{\"q\":\"?\"}}}";
    r = run_body(ING_CH_CHATFLOW, poll, strlen(poll), "w");
    ck_event(&r.ev[0], ING_TYPE_MESSAGE, "p1", "chatflow:c");
    ck_str(&r.ev[0], "message.kind", "other");
    ck_str(&r.ev[0], "message.raw.poll.q", "?");
    done(&r);
}
END_TEST

/* ---- whatsapp ---- */

#define WAMID_TEXT "wamid.HBgLNzkxNjEyMzQ1NjcVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="

START_TEST(whatsapp_text)
{
    result_t r = run(ING_CH_WHATSAPP, "whatsapp-text.json", NULL);
    ck_assert_uint_eq(r.n, 1);
    ing_event_t *ev = &r.ev[0];
    ck_event(ev, ING_TYPE_MESSAGE, WAMID_TEXT, "whatsapp:79161234567");
    ck_str(ev, "channel", "whatsapp");
    ck_str(ev, "account.id", "106540352242922");
    ck_str(ev, "account.phone", "15550783881");
    ck_str(ev, "sender.id", "79161234567");
    ck_str(ev, "sender.phone", "79161234567");
    ck_str(ev, "sender.name", "Сергей");
    ck_str(ev, "message.id", WAMID_TEXT);
    ck_str(ev, "message.kind", "text");
    ck_str(ev, "message.text", "Добрый день, вы работаете в воскресенье?");
    ck_str(ev, "provider_time", "2025-06-08T20:59:43.000Z");
    ck_absent(ev, "message.reply_to");
    ck_assert_uint_eq(nkeys(ev, NULL), 6);
    ck_assert_uint_eq(nkeys(ev, "message"), 3);
    done(&r);
}
END_TEST

START_TEST(whatsapp_batch)
{
    result_t r = run(ING_CH_WHATSAPP, "whatsapp-batch.json", NULL);
    ck_assert_uint_eq(r.n, 5);
    ck_event(&r.ev[0], ING_TYPE_MESSAGE, "wamid.AAA1", "whatsapp:16505551234");
    ck_str(&r.ev[0], "sender.name", "Sheena Nelson");
    ck_str(&r.ev[0], "message.text", "first");
    ck_event(&r.ev[1], ING_TYPE_MESSAGE, "wamid.AAA2", "whatsapp:16505559999");
    ck_str(&r.ev[1], "sender.name", "Kim");
    ck_str(&r.ev[1], "message.kind", "image");
    ck_str(&r.ev[1], "message.media.id", "1003383421387256");
    ck_str(&r.ev[1], "message.media.mime_type", "image/jpeg");
    ck_str(&r.ev[1], "message.media.sha256", "kq5ZiGqB2l8=");
    ck_str(&r.ev[1], "message.media.caption", "look");
    ck_event(&r.ev[2], ING_TYPE_MESSAGE, "wamid.AAA3", "whatsapp:16505551234");
    ck_str(&r.ev[2], "message.kind", "voice");
    ck_str(&r.ev[2], "message.media.mime_type", "audio/ogg; codecs=opus");
    ck_str(&r.ev[2], "message.reply_to", "wamid.OUT1");
    ck_event(&r.ev[3], ING_TYPE_STATUS, "wamid.OUT1:delivered", "whatsapp:16505551234");
    ck_str(&r.ev[3], "message_id", "wamid.OUT1");
    ck_str(&r.ev[3], "status", "delivered");
    ck_str(&r.ev[3], "recipient_id", "16505551234");
    ck_str(&r.ev[3], "account.id", "106540352242922");
    ck_str(&r.ev[3], "provider_time", "2025-06-18T16:22:53.000Z");
    ck_absent(&r.ev[3], "error");
    ck_event(&r.ev[4], ING_TYPE_STATUS, "wamid.OUT1:read", "whatsapp:16505551234");
    ck_str(&r.ev[4], "status", "read");
    done(&r);
}
END_TEST

START_TEST(whatsapp_kinds)
{
    result_t r = run(ING_CH_WHATSAPP, "whatsapp-kinds.json", NULL);
    ck_assert_uint_eq(r.n, 12);
    static const char *const kinds[] = {"document", "video",       "sticker",     "location",
                                        "contact",  "reaction",    "interactive", "interactive",
                                        "button",   "unsupported", "other",       "text"};
    for (size_t i = 0; i < 12; i++) {
        char id[16];
        snprintf(id, sizeof(id), "wamid.K%02zu", i + 1);
        ck_event(&r.ev[i], ING_TYPE_MESSAGE, id, "whatsapp:16505551234");
        ck_str(&r.ev[i], "message.kind", kinds[i]);
    }
    ing_event_t *ev = r.ev;
    ck_str(&ev[0], "message.media.file_name", "invoice.pdf");
    ck_str(&ev[0], "message.media.caption", "invoice");
    ck_str(&ev[0], "message.media.mime_type", "application/pdf");
    ck_str(&ev[1], "message.media.id", "2002");
    ck_str(&ev[2], "message.media.mime_type", "image/webp");
    ck_assert_double_eq(num(&ev[3], "message.location.latitude"), 37.4847483695049);
    ck_assert_double_eq(num(&ev[3], "message.location.longitude"), -122.1473373086664);
    ck_str(&ev[3], "message.location.name", "Philz Coffee");
    ck_str(&ev[3], "message.location.address", "101 Forest Ave, Palo Alto, CA 94301");
    ck_str(&ev[3], "message.location.url", "https://philzcoffee.com");
    ck_assert_uint_eq(json_array_size(at(ev[4].data, "message.contacts")), 2);
    ck_str(&ev[4], "message.contacts.0.name", "Barbara Johnson");
    ck_str(&ev[4], "message.contacts.0.phone", "+1 (940) 555-1234");
    ck_str(&ev[4], "message.contacts.0.user_id", "19405551234");
    ck_str(&ev[4], "message.contacts.1.name", "Иван");
    ck_absent(&ev[4], "message.contacts.1.user_id");
    ck_str(&ev[5], "message.reaction.message_id", "wamid.OUT2");
    ck_str(&ev[5], "message.reaction.emoji", "\xf0\x9f\x91\x8d");
    ck_str(&ev[6], "message.interactive.type", "button_reply");
    ck_str(&ev[6], "message.interactive.id", "book_yes");
    ck_str(&ev[6], "message.interactive.title", "Да, записать");
    ck_str(&ev[6], "message.text", "Да, записать");
    ck_str(&ev[6], "message.reply_to", "wamid.OUT3");
    ck_str(&ev[7], "message.interactive.type", "list_reply");
    ck_str(&ev[7], "message.interactive.id", "slot_10");
    ck_str(&ev[7], "message.interactive.description", "Saturday morning");
    ck_str(&ev[8], "message.interactive.type", "button");
    ck_str(&ev[8], "message.interactive.id", "STOP_PROMO");
    ck_str(&ev[8], "message.text", "Stop promotions");
    ck_absent(&ev[9], "message.raw");
    ck_str(&ev[10], "message.raw.type", "order");
    ck_str(&ev[10], "message.raw.order.catalog_id", "c1");
    ck_assert(json_is_true(at(ev[11].data, "message.forwarded")));
    ck_absent(&ev[0], "message.forwarded");
    done(&r);
}
END_TEST

START_TEST(whatsapp_status_failed_and_unknown)
{
    result_t r = run(ING_CH_WHATSAPP, "whatsapp-status-failed.json", NULL);
    ck_assert_uint_eq(r.n, 2);
    ck_event(&r.ev[0], ING_TYPE_STATUS, "wamid.OUT9:failed", "whatsapp:16505551234");
    ck_str(&r.ev[0], "status", "failed");
    ck_str(&r.ev[0], "error.code", "131047");
    ck_str(&r.ev[0], "error.title", "Re-engagement message");
    ck_str(&r.ev[0], "error.message", "Re-engagement message");
    ck_str(&r.ev[0], "error.details",
           "Message failed to send because more than 24 hours have passed since the customer "
           "last replied to this number.");
    /* A status Meta may add later: other, the status object kept, the account with it. */
    ck_event(&r.ev[1], ING_TYPE_OTHER, "wamid.OUT9:warning_new", "whatsapp:16505551234");
    ck_str(&r.ev[1], "kind", "status");
    ck_str(&r.ev[1], "raw.status", "warning_new");
    ck_str(&r.ev[1], "account.id", "106540352242922");
    done(&r);
}
END_TEST

START_TEST(whatsapp_other_changes)
{
    result_t r = run(ING_CH_WHATSAPP, "whatsapp-template-update.json", NULL);
    ck_assert_uint_eq(r.n, 1);
    char sha[80];
    sha_of(r.body, r.len, sha);
    ck_event(&r.ev[0], ING_TYPE_OTHER, sha, "whatsapp:-");
    ck_str(&r.ev[0], "kind", "message_template_status_update");
    /* The body had one entry with one change: raw is that entry, whole. */
    json_t *root = json_loads(r.body, 0, NULL);
    ck_assert(
        json_equal(at(r.ev[0].data, "raw"), json_array_get(json_object_get(root, "entry"), 0)));
    json_decref(root);
    done(&r);
    /* Two unreadable entries: two events, distinct deterministic ids. */
    const char *body =
        "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\"},{\"id\":"
        "\"2\",\"changes\":[]}]}";
    r = run_body(ING_CH_WHATSAPP, body, strlen(body), NULL);
    ck_assert_uint_eq(r.n, 2);
    sha_of(body, strlen(body), sha);
    ck_assert_str_eq(r.ev[0].provider_event_id, sha);
    strcat(sha, "#1");
    ck_assert_str_eq(r.ev[1].provider_event_id, sha);
    ck_str(&r.ev[0], "kind", "entry");
    ck_str(&r.ev[1], "raw.id", "2");
    done(&r);
    /* A message without from: other with the message kept, in a batch with a good one. */
    body = "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"changes\":[{\"field\":"
           "\"messages\",\"value\":{\"messages\":[{\"id\":\"wamid.X\",\"type\":\"text\"},{\"id\":"
           "\"wamid.Y\",\"from\":\"1\",\"type\":\"text\",\"text\":{\"body\":\"y\"}}]}}]}]}";
    r = run_body(ING_CH_WHATSAPP, body, strlen(body), NULL);
    ck_assert_uint_eq(r.n, 2);
    ck_event(&r.ev[0], ING_TYPE_OTHER, "wamid.X", "whatsapp:-");
    ck_str(&r.ev[0], "kind", "message");
    ck_event(&r.ev[1], ING_TYPE_MESSAGE, "wamid.Y", "whatsapp:1");
    ck_absent(&r.ev[1], "sender.name");
    ck_absent(&r.ev[1], "account");
    done(&r);
}
END_TEST

/* ---- telegram ---- */

START_TEST(telegram_text)
{
    result_t r = run(ING_CH_TELEGRAM, "telegram-text.json", NULL);
    ck_assert_uint_eq(r.n, 1);
    ing_event_t *ev = &r.ev[0];
    ck_event(ev, ING_TYPE_MESSAGE, "912345678", "telegram:123456789");
    ck_str(ev, "chat.id", "123456789");
    ck_str(ev, "chat.type", "private");
    ck_str(ev, "sender.id", "123456789");
    ck_str(ev, "sender.name", "Дмитрий Петров");
    ck_str(ev, "sender.username", "dpetrov");
    ck_assert(json_is_false(at(ev->data, "sender.is_bot")));
    ck_str(ev, "message.id", "1201");
    ck_str(ev, "message.kind", "text");
    ck_str(ev, "message.text", "Привет! Есть свободное окно завтра?");
    ck_str(ev, "message.reply_to", "1199");
    ck_str(ev, "provider_time", "2024-11-21T00:46:40.000Z");
    ck_assert_uint_eq(nkeys(ev, NULL), 6);
    done(&r);
}
END_TEST

START_TEST(telegram_media)
{
    result_t r = run(ING_CH_TELEGRAM, "telegram-photo.json", NULL);
    ing_event_t *ev = &r.ev[0];
    ck_event(ev, ING_TYPE_MESSAGE, "912345679", "telegram:123456789");
    ck_str(ev, "message.kind", "image");
    ck_str(ev, "message.media.id", "AgACAgIAAxkBAAIBbig"); /* the largest size */
    ck_str(ev, "message.media.unique_id", "AQADbig");
    ck_assert_double_eq(num(ev, "message.media.size"), 81234);
    ck_str(ev, "message.media.caption", "как на фото");
    ck_absent(ev, "message.text");
    done(&r);

    r = run(ING_CH_TELEGRAM, "telegram-voice.json", NULL);
    ck_str(&r.ev[0], "message.kind", "voice");
    ck_str(&r.ev[0], "message.media.id", "AwACAgIAAxkBAAIBvoice");
    ck_str(&r.ev[0], "message.media.mime_type", "audio/ogg");
    done(&r);

    r = run(ING_CH_TELEGRAM, "telegram-animation.json", NULL);
    ck_str(&r.ev[0], "message.kind", "animation"); /* not the document it also carries */
    ck_str(&r.ev[0], "message.media.file_name", "fun.mp4");
    done(&r);

    r = run(ING_CH_TELEGRAM, "telegram-document.json", NULL);
    ck_str(&r.ev[0], "message.kind", "document");
    ck_str(&r.ev[0], "message.media.file_name", "прайс.pdf");
    ck_str(&r.ev[0], "message.media.mime_type", "application/pdf");
    ck_str(&r.ev[0], "message.media.caption", "вот прайс");
    done(&r);
}
END_TEST

START_TEST(telegram_places_and_contacts)
{
    result_t r = run(ING_CH_TELEGRAM, "telegram-venue.json", NULL);
    ing_event_t *ev = &r.ev[0];
    ck_str(ev, "message.kind", "location");
    ck_assert_double_eq(num(ev, "message.location.latitude"), 55.751244);
    ck_assert_double_eq(num(ev, "message.location.longitude"), 37.618423);
    ck_str(ev, "message.location.name", "Салон «Лотос»");
    ck_str(ev, "message.location.address", "ул. Тверская, 1");
    done(&r);

    r = run(ING_CH_TELEGRAM, "telegram-location.json", NULL);
    ck_str(&r.ev[0], "message.kind", "location");
    ck_assert_double_eq(num(&r.ev[0], "message.location.latitude"), 59.9386);
    ck_absent(&r.ev[0], "message.location.name");
    done(&r);

    r = run(ING_CH_TELEGRAM, "telegram-contact.json", NULL);
    ck_str(&r.ev[0], "message.kind", "contact");
    ck_str(&r.ev[0], "message.contacts.0.name", "Дмитрий Петров");
    ck_str(&r.ev[0], "message.contacts.0.phone", "+79161234567");
    ck_str(&r.ev[0], "message.contacts.0.user_id", "123456789");
    done(&r);
}
END_TEST

START_TEST(telegram_edit_and_callback)
{
    result_t r = run(ING_CH_TELEGRAM, "telegram-edited.json", NULL);
    ing_event_t *ev = &r.ev[0];
    ck_event(ev, ING_TYPE_EDIT, "912345686", "telegram:123456789");
    ck_str(ev, "message.id", "1201"); /* the edited message */
    ck_str(ev, "message.text", "Привет! Есть свободное окно послезавтра?");
    ck_str(ev, "provider_time", "2024-11-21T00:48:10.000Z"); /* edit_date */
    done(&r);

    r = run(ING_CH_TELEGRAM, "telegram-callback.json", NULL);
    ev = &r.ev[0];
    ck_event(ev, ING_TYPE_CALLBACK, "912345687", "telegram:123456789");
    ck_str(ev, "callback.id", "4382bfdwdsb323b2d9");
    ck_str(ev, "callback.data", "slot:2024-11-23T10:00");
    ck_str(ev, "callback.message_id", "1210");
    ck_str(ev, "callback.chat_instance", "-8327651234567890");
    ck_str(ev, "sender.id", "123456789");
    ck_str(ev, "sender.username", "dpetrov");
    ck_str(ev, "chat.id", "123456789");
    ck_absent(ev, "message");
    done(&r);

    /* An inline-mode callback has no message: the user's private chat. */
    const char *body = "{\"update_id\":5,\"callback_query\":{\"id\":\"q\",\"from\":{\"id\":77,"
                       "\"is_bot\":false,\"first_name\":\"A\"},\"inline_message_id\":\"im\","
                       "\"chat_instance\":\"1\",\"data\":\"d\"}}";
    r = run_body(ING_CH_TELEGRAM, body, strlen(body), NULL);
    ck_event(&r.ev[0], ING_TYPE_CALLBACK, "5", "telegram:77");
    ck_str(&r.ev[0], "callback.inline_message_id", "im");
    ck_absent(&r.ev[0], "chat");
    done(&r);
}
END_TEST

START_TEST(telegram_groups_and_channels)
{
    /* A manager's group: still a message; the chat says where it came from. */
    result_t r = run(ING_CH_TELEGRAM, "telegram-manager.json", NULL);
    ing_event_t *ev = &r.ev[0];
    ck_event(ev, ING_TYPE_MESSAGE, "912345688", "telegram:-1001987654321");
    ck_str(ev, "chat.id", "-1001987654321");
    ck_str(ev, "chat.type", "supergroup");
    ck_str(ev, "chat.title", "Салон — менеджеры");
    ck_str(ev, "sender.id", "555000111");
    ck_str(ev, "message.text", "/release 79161234567");
    done(&r);

    r = run(ING_CH_TELEGRAM, "telegram-channel-post.json", NULL);
    ev = &r.ev[0];
    ck_event(ev, ING_TYPE_MESSAGE, "912345689", "telegram:-1001122334455");
    ck_str(ev, "sender.id", "-1001122334455");
    ck_str(ev, "sender.name", "Новости салона");
    ck_str(ev, "chat.type", "channel");
    done(&r);
}
END_TEST

START_TEST(telegram_other)
{
    result_t r = run(ING_CH_TELEGRAM, "telegram-my-chat-member.json", NULL);
    ck_event(&r.ev[0], ING_TYPE_OTHER, "912345690", "telegram:123456789");
    ck_str(&r.ev[0], "kind", "my_chat_member");
    ck_raw(&r.ev[0], "raw", r.body);
    done(&r);

    r = run(ING_CH_TELEGRAM, "telegram-poll.json", NULL);
    ck_event(&r.ev[0], ING_TYPE_MESSAGE, "912345691", "telegram:123456789");
    ck_str(&r.ev[0], "message.kind", "other");
    json_t *root = json_loads(r.body, 0, NULL);
    ck_assert(json_equal(at(r.ev[0].data, "message.raw"), json_object_get(root, "message")));
    json_decref(root);
    done(&r);

    /* A message without a chat, an update without update_id: other, whole. */
    const char *bodies[] = {
        "{\"update_id\":6,\"message\":{\"message_id\":1,\"text\":\"x\"}}",
        "{\"message\":{\"message_id\":1,\"chat\":{\"id\":1},\"text\":\"x\"}}",
        "{\"update_id\":\"7\",\"message\":{}}",
        "{\"update_id\":8}",
    };
    const char *kinds[] = {"message", "unrecognised", "unrecognised", "unrecognised"};
    for (size_t i = 0; i < IMP_ARRAY_LEN(bodies); i++) {
        r = run_body(ING_CH_TELEGRAM, bodies[i], strlen(bodies[i]), NULL);
        ck_assert_uint_eq(r.n, 1);
        ck_assert_str_eq(r.ev[0].type, ING_TYPE_OTHER);
        ck_str(&r.ev[0], "kind", kinds[i]);
        ck_raw(&r.ev[0], "raw", bodies[i]);
        done(&r);
    }
}
END_TEST

/* ---- every channel ---- */

START_TEST(bad_json)
{
    static const char *const bodies[] = {
        "",
        "{",
        "{\"a\":1}x",
        "{\"a\":1,\"a\":2}",
        "{\"a\":\"\xff\"}",
        "{\"a\":\"\\u0000\"}",
        "{\"a\":123456789012345678901234567890}",
        "{\"a\":NaN}",
        "\xef\xbb\xbf{}",
        "{\"update_id\": 1, \"message\": {\"text\": \"\\ud800\"}}",
    };
    for (int ch = 0; ch < ING_CH_COUNT; ch++) {
        for (size_t i = 0; i < IMP_ARRAY_LEN(bodies); i++) {
            ing_event_t *ev = (ing_event_t *)1;
            size_t n = 99;
            imp_error_t *err =
                ing_normalize((ing_channel_t)ch, bodies[i], strlen(bodies[i]), "w", &ev, &n);
            ck_assert_msg(err != NULL, "body %zu accepted", i);
            ck_assert_str_eq(imp_error_code(err), "bad_json");
            ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
            ck_assert_ptr_null(ev);
            ck_assert_uint_eq(n, 0);
            imp_error_free(err);
        }
    }
    ing_event_t *ev;
    size_t n;
    imp_error_t *err = ing_normalize(ING_CH_GENERIC, NULL, 3, NULL, &ev, &n);
    ck_assert_str_eq(imp_error_code(err), "bad_json");
    imp_error_free(err);
    err = ing_normalize((ing_channel_t)ING_CH_COUNT, "{}", 2, NULL, &ev, &n);
    ck_assert_str_eq(imp_error_code(err), "bad_channel");
    ck_assert_ptr_null(ev);
    imp_error_free(err);
}
END_TEST

START_TEST(unknown_shapes_are_kept)
{
    static const char *const bodies[] = {
        "[1,2,3]",
        "\"just a string\"",
        "42",
        "null",
        "{}",
        "{\"object\":\"page\",\"entry\":[]}",
        "{\"nested\":{\"deep\":[{\"x\":1.25e3},true,false,null,\"\\u00e9\"]}}",
    };
    for (int ch = 0; ch < ING_CH_COUNT; ch++) {
        for (size_t i = 0; i < IMP_ARRAY_LEN(bodies); i++) {
            result_t r = run_body((ing_channel_t)ch, bodies[i], strlen(bodies[i]), NULL);
            ck_assert_uint_eq(r.n, 1);
            ing_event_t *ev = &r.ev[0];
            ck_assert_str_eq(ev->type, ING_TYPE_OTHER);
            ck_str(ev, "channel", ing_channel_name((ing_channel_t)ch));
            ck_raw(ev, "raw", bodies[i]);
            char sha[80];
            sha_of(bodies[i], strlen(bodies[i]), sha);
            ck_assert_str_eq(ev->provider_event_id, sha);
            done(&r);
        }
    }
}
END_TEST

/* Every payload, twice: the same events, ids and data; every event well formed. */
START_TEST(deterministic_and_well_formed)
{
    char *dir = payload_path("");
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    int files = 0;
    while ((de = readdir(d)) != NULL) {
        if (strstr(de->d_name, ".json") == NULL)
            continue;
        ing_channel_t ch;
        const char *dash = strchr(de->d_name, '-');
        ck_assert_int_eq(ing_channel_parse(de->d_name, (size_t)(dash - de->d_name), &ch), 0);
        result_t a = run(ch, de->d_name, "msg_same"), b = run(ch, de->d_name, "msg_same");
        ck_assert_uint_eq(a.n, b.n);
        for (size_t i = 0; i < a.n; i++) {
            ck_assert_str_eq(a.ev[i].type, b.ev[i].type);
            ck_assert_str_eq(a.ev[i].provider_event_id, b.ev[i].provider_event_id);
            ck_assert_str_eq(a.ev[i].conversation_key, b.ev[i].conversation_key);
            char *da = json_dumps(a.ev[i].data, JSON_COMPACT);
            char *db = json_dumps(b.ev[i].data, JSON_COMPACT);
            ck_assert_str_eq(da, db);
            free(da);
            free(db);
            ck_assert(strncmp(a.ev[i].type, "imp.inbound.", 12) == 0);
            ck_assert(a.ev[i].provider_event_id[0] != '\0');
            ck_str(&a.ev[i], "channel", ing_channel_name(ch));
            ck_str(&a.ev[i], "conversation_key", a.ev[i].conversation_key);
            ck_assert(strncmp(a.ev[i].conversation_key, ing_channel_name(ch),
                              strlen(ing_channel_name(ch))) == 0);
            /* Distinct events of one webhook have distinct ids. */
            for (size_t j = 0; j < i; j++)
                ck_assert_str_ne(a.ev[i].provider_event_id, a.ev[j].provider_event_id);
        }
        done(&a);
        done(&b);
        files++;
    }
    closedir(d);
    free(dir);
    ck_assert_int_eq(files, 28);
}
END_TEST

/* ---- the body reader agrees with json_loadb ---- */

/* ing_json_load and json_loadb(JSON_REJECT_DUPLICATES | JSON_DECODE_ANY) on text[0..len):
 * both refuse it, or both read values that are equal and written in the same order. Returns
 * whether it was accepted. */
static bool reader_agrees(const char *text, size_t len)
{
    ing_json_error_t err = {NULL, 0};
    json_t *mine = ing_json_load(text, len, &err);
    json_t *ref = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
    ck_assert_msg((mine == NULL) == (ref == NULL), "\"%.*s\": jansson %s, ing_json_load %s (%s)",
                  (int)(len < 200 ? len : 200), text, ref ? "accepts" : "refuses",
                  mine ? "accepts" : "refuses", mine ? "" : err.text);
    if (mine == NULL) {
        ck_assert_ptr_nonnull(err.text);
        ck_assert_uint_le(err.position, len);
        return false;
    }
    char *a = json_dumps(mine, JSON_COMPACT | JSON_ENCODE_ANY);
    char *b = json_dumps(ref, JSON_COMPACT | JSON_ENCODE_ANY);
    ck_assert_str_eq(a, b);
    ck_assert(json_equal(mine, ref));
    free(a);
    free(b);
    json_decref(mine);
    json_decref(ref);
    return true;
}

START_TEST(reader_edge_cases)
{
    static const char *const texts[] = {
        "0",
        "-0",
        "1",
        "-1",
        "01",
        "-01",
        "-",
        "--1",
        "+1",
        ".5",
        "1.",
        "1.5",
        "-0.0",
        "1e5",
        "1E+5",
        "1e-5",
        "1e",
        "1e+",
        "1.5e",
        "0e0",
        "00",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        "999999999999999999",
        "1000000000000000000",
        "123456789012345678901234567890",
        "1e400",
        "-1e400",
        "1e-400",
        "3.14159265358979323846264338327950288",
        "true",
        "false",
        "null",
        "tru",
        "nul",
        "truex",
        "True",
        "NaN",
        "Infinity",
        "-Infinity",
        "[1,]",
        "[,1]",
        "{,}",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{\"a\":}",
        "{1:2}",
        "{\"a\":1 \"b\":2}",
        "[1 2]",
        "\"\"",
        "\"a\"",
        "\"\\u0000\"",
        "{\"\\u0000\":1}",
        "\"\\ud83d\\ude00\"",
        "\"\\ud83d\"",
        "\"\\ude00\"",
        "\"\\uD83D\\uDE00\"",
        "\"\\ud83d\\u0041\"",
        "\"\\ud83d\\ud83d\"",
        "\"\\u00e9\\u00E9\"",
        "\"\\uZZZZ\"",
        "\"\\u12\"",
        "\"\\x\"",
        "\"\\/\"",
        "\"\\b\\f\\n\\r\\t\\\"\\\\\"",
        "\"\xc3\xa9\"",
        "\"\xe2\x82\xac\"",
        "\"\xf0\x9f\x98\x80\"",
        "\"\xc0\x80\"",
        "\"\xc1\xbf\"",
        "\"\xe0\x80\x80\"",
        "\"\xed\xa0\x80\"",
        "\"\xf0\x80\x80\x80\"",
        "\"\xf4\x90\x80\x80\"",
        "\"\xf5\x80\x80\x80\"",
        "\"\xff\"",
        "\"\x80\"",
        "\"\xe2\x82\"",
        "\"\x7f\"",
        "\"\x01\"",
        "\"\t\"",
        "\"\n\"",
        "\"abc",
        "\"abc\\",
        "[\"a\\\"b\"]",
        "{\"a\":1,\"a\":2}",
        "{\"a\":1,\"\\u0061\":2}",
        "{\"a\":{\"a\":1},\"b\":{\"a\":2}}",
        "{\"k\\n\":\"v\\t\",\"k\\u00e9\":[\"x\\\"\"]}",
        " \t\r\n{ \"a\" : [ 1 , 2 ] } \n",
        "\xef\xbb\xbf{}",
        "{} x",
        "{}{}",
        "[]]",
        "",
        " ",
        "{\"a\":\"lorem ipsum dolor sit amet, consectetur\\u0021 adipiscing\"}",
        "[1.0,2.50,-0e-0,1E400]",
        "[\"\xe2\x80\xa8\xe2\x80\xa9\"]",
    };
    for (size_t i = 0; i < IMP_ARRAY_LEN(texts); i++)
        reader_agrees(texts[i], strlen(texts[i]));
    /* jansson loses a NUL byte read just past a number or a literal: "1\0" is 1. */
    static const struct {
        const char *text;
        size_t len;
    } nul[] = {
        {"1\0", 2},          {"1\0\0", 3}, {"[1\0]", 4},   {"[true\0,null\0]", 14},
        {"1.5\0 ", 5},       {"[\0]", 3},  {"\"a\0\"", 4}, {"{\"a\0\":1}", 8},
        {"{\"a\":-0\0}", 9}, {"\0", 1},    {"{}\0", 3},    {"1e5\0", 4},
    };
    for (size_t i = 0; i < IMP_ARRAY_LEN(nul); i++)
        reader_agrees(nul[i].text, nul[i].len);
    ck_assert_ptr_null(ing_json_load(NULL, 0, NULL));
}
END_TEST

/* Strings with a byte that needs a look at every offset of the 8-byte words scanned. */
START_TEST(reader_word_boundaries)
{
    static const char *const specials[] = {
        "\\n",  "\\\"", "\\u00e9", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
        "\x01", "\xff", "\"",      "\\"};
    char text[128];
    for (size_t s = 0; s < IMP_ARRAY_LEN(specials); s++) {
        for (size_t before = 0; before < 20; before++) {
            for (size_t after = 0; after < 12; after++) {
                int n = snprintf(text, sizeof(text), "{\"%.*s%s%.*s\":\"%.*s%s%.*s\"}", (int)before,
                                 "abcdefghijklmnopqrstuvwxyz", specials[s], (int)after,
                                 "0123456789abcdef", (int)after, "ABCDEFGHIJKLMNOP", specials[s],
                                 (int)before, "zyxwvutsrqponmlkjihgfedcba");
                reader_agrees(text, (size_t)n);
            }
        }
    }
}
END_TEST

/* Nesting: jansson's limit counts every value, scalars too. */
START_TEST(reader_depth)
{
    size_t cap = 3 * 2100 * 5 + 8;
    char *text = imp_malloc(cap);
    for (int depth = 2045; depth <= 2050; depth++) {
        size_t n = 0;
        for (int i = 0; i < depth; i++)
            text[n++] = '[';
        for (int i = 0; i < depth; i++)
            text[n++] = ']';
        reader_agrees(text, n);
        n = 0;
        for (int i = 0; i < depth; i++) {
            memcpy(text + n, "{\"a\":", 5);
            n += 5;
        }
        text[n++] = '1';
        for (int i = 0; i < depth; i++)
            text[n++] = '}';
        reader_agrees(text, n);
    }
    free(text);
}
END_TEST

/* Random documents from a small grammar, some of them damaged: accepted or refused alike. */
static uint64_t rng_state = UINT64_C(0x2545f4914f6cdd1d);

static unsigned rng(unsigned n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned)(rng_state % n);
}

static void put(char *buf, size_t *n, const char *s)
{
    size_t len = strlen(s);
    memcpy(buf + *n, s, len);
    *n += len;
}

static void random_doc(char *buf, size_t *n, int depth)
{
    static const char *const atoms[] = {"0",
                                        "-12",
                                        "1.5e3",
                                        "1e400",
                                        "12345678901234567890",
                                        "true",
                                        "null",
                                        "\"\"",
                                        "\"plain text of some length\"",
                                        "\"\\u00e9\\n\"",
                                        "\"\xc3\xa9\xe2\x82\xac\"",
                                        "\"\\ud83d\\ude00\"",
                                        "\"\\ud83d\"",
                                        "\"\\u0000\"",
                                        "-0.0",
                                        "\"\xed\xa0\x80\"",
                                        "\"a\\\"b\\\\\""};
    static const char *const keys[] = {"\"a\"",        "\"b\"",    "\"\\u0061\"",
                                       "\"\xc3\xa9\"", "\"k\\n\"", "\"\""};
    unsigned kind = depth > 5 ? 2 : rng(4);
    if (kind == 0) {
        put(buf, n, "{");
        for (unsigned i = 0, m = rng(4); i < m; i++) {
            put(buf, n, i ? "," : "");
            put(buf, n, keys[rng(IMP_ARRAY_LEN(keys))]);
            put(buf, n, rng(4) ? ":" : " : ");
            random_doc(buf, n, depth + 1);
        }
        put(buf, n, "}");
    } else if (kind == 1) {
        put(buf, n, "[");
        for (unsigned i = 0, m = rng(4); i < m; i++) {
            put(buf, n, i ? (rng(4) ? "," : " ,\n") : "");
            random_doc(buf, n, depth + 1);
        }
        put(buf, n, "]");
    } else {
        put(buf, n, atoms[rng(IMP_ARRAY_LEN(atoms))]);
    }
}

START_TEST(reader_random_documents)
{
    static const char damage[] = " \t{}[],:\"\\-0e.a\x80\xc3";
    char *buf = imp_malloc(1 << 16);
    int accepted = 0;
    for (int i = 0; i < 20000; i++) {
        size_t n = 0;
        random_doc(buf, &n, 0);
        for (unsigned k = rng(4) == 0 ? 1 + rng(2) : 0; k > 0 && n > 0; k--) {
            size_t at = rng((unsigned)n);
            if (rng(2))
                buf[at] = damage[rng(sizeof(damage))]; /* the NUL included */
            else
                memmove(buf + at, buf + at + 1, --n - at);
        }
        accepted += reader_agrees(buf, n);
    }
    ck_assert_int_gt(accepted, 5000);
    free(buf);
}
END_TEST

/* Every payload of the unit tests reads the same. */
START_TEST(reader_payloads)
{
    char *dir = payload_path("");
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *ent;
    int files = 0;
    while ((ent = readdir(d)) != NULL) {
        if (strstr(ent->d_name, ".json") == NULL)
            continue;
        size_t len;
        char *body = load(ent->d_name, &len);
        ck_assert_msg(reader_agrees(body, len), "%s", ent->d_name);
        free(body);
        files++;
    }
    closedir(d);
    free(dir);
    ck_assert_int_gt(files, 20);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("ingress_normalize");
    TCase *tc = tcase_create("channels");
    tcase_add_test(tc, channel_names_parse);
    suite_add_tcase(s, tc);
    tc = tcase_create("generic");
    tcase_add_test(tc, generic_message);
    tcase_add_test(tc, generic_ids);
    tcase_add_test(tc, generic_long_ids_are_hashed);
    tcase_add_test(tc, generic_unknown_shape);
    suite_add_tcase(s, tc);
    tc = tcase_create("chatflow");
    tcase_add_test(tc, chatflow_text);
    tcase_add_test(tc, chatflow_media_location_contact);
    tcase_add_test(tc, chatflow_status);
    tcase_add_test(tc, chatflow_unknown);
    suite_add_tcase(s, tc);
    tc = tcase_create("whatsapp");
    tcase_add_test(tc, whatsapp_text);
    tcase_add_test(tc, whatsapp_batch);
    tcase_add_test(tc, whatsapp_kinds);
    tcase_add_test(tc, whatsapp_status_failed_and_unknown);
    tcase_add_test(tc, whatsapp_other_changes);
    suite_add_tcase(s, tc);
    tc = tcase_create("telegram");
    tcase_add_test(tc, telegram_text);
    tcase_add_test(tc, telegram_media);
    tcase_add_test(tc, telegram_places_and_contacts);
    tcase_add_test(tc, telegram_edit_and_callback);
    tcase_add_test(tc, telegram_groups_and_channels);
    tcase_add_test(tc, telegram_other);
    suite_add_tcase(s, tc);
    tc = tcase_create("all");
    tcase_add_test(tc, bad_json);
    tcase_add_test(tc, unknown_shapes_are_kept);
    tcase_add_test(tc, deterministic_and_well_formed);
    suite_add_tcase(s, tc);
    tc = tcase_create("reader");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, reader_edge_cases);
    tcase_add_test(tc, reader_word_boundaries);
    tcase_add_test(tc, reader_depth);
    tcase_add_test(tc, reader_random_documents);
    tcase_add_test(tc, reader_payloads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
