/* ChatFlow (a WhatsApp gateway): "message.received" and "message.status" events
 * (docs/channels.md has the format). */
#include "core_internal.h"

#include "imp/mem.h"

#include <stdlib.h>
#include <string.h>

static const char *cf_kind_of(const char *type)
{
    static const char *const kinds[] = {"text",     "image",   "audio",    "voice",  "video",
                                        "document", "sticker", "location", "contact"};
    for (size_t i = 0; type != NULL && i < IMP_ARRAY_LEN(kinds); i++)
        if (strcmp(type, kinds[i]) == 0)
            return kinds[i];
    return "other";
}

static void cf_add_sender(json_t *data, const json_t *from)
{
    if (!json_is_object(from))
        return;
    json_t *s = json_object();
    ing_copy_id(s, "id", from, "id");
    if (json_object_get(s, "id") == NULL)
        ing_copy_str(s, "id", from, "phone");
    ing_copy_str(s, "name", from, "name");
    ing_copy_str(s, "phone", from, "phone");
    if (json_object_size(s) > 0)
        json_object_set_new(data, "sender", s);
    else
        json_decref(s);
}

static void cf_add_media(json_t *m, const json_t *media)
{
    if (!json_is_object(media))
        return;
    json_t *o = json_object();
    ing_copy_id(o, "id", media, "id");
    ing_copy_str(o, "url", media, "url");
    ing_copy_str(o, "mime_type", media, "mime_type");
    ing_copy_str(o, "caption", media, "caption");
    ing_copy_str(o, "file_name", media, "file_name");
    if (json_object_size(o) > 0)
        json_object_set_new(m, "media", o);
    else
        json_decref(o);
}

static void cf_add_contact(json_t *m, const json_t *c)
{
    if (!json_is_object(c))
        return;
    json_t *o = json_object();
    ing_copy_str(o, "name", c, "name");
    ing_copy_str(o, "phone", c, "phone");
    if (json_object_size(o) == 0) {
        json_decref(o);
        return;
    }
    json_t *list = json_array();
    json_array_append_new(list, o);
    json_object_set_new(m, "contacts", list);
}

static void cf_on_received(ing_batch_t *b, json_t *root, json_t *msg)
{
    char id_num[ING_NUM_SIZE], chat_num[ING_NUM_SIZE];
    const char *id = ing_json_id(json_object_get(msg, "id"), id_num);
    const char *chat = ing_json_id(json_object_get(msg, "chat_id"), chat_num);
    if (id == NULL || chat == NULL || ing_json_str(msg, "type") == NULL) {
        ing_batch_other(b, "unrecognised", NULL, NULL, root);
        return;
    }
    ing_event_t *ev = ing_batch_add(b, ING_TYPE_MESSAGE, chat);
    ing_event_set_id(b, ev, id);
    json_object_set_new(ing_obj(ev->data, "chat"), "id", json_string(chat));
    cf_add_sender(ev->data, json_object_get(msg, "from"));
    json_t *m = ing_obj(ev->data, "message");
    const char *kind = cf_kind_of(ing_json_str(msg, "type"));
    json_object_set_new(m, "id", json_string(id));
    json_object_set_new(m, "kind", json_string(kind));
    if (json_is_string(json_object_get(msg, "text")))
        json_object_set_new(m, "text", json_incref(json_object_get(msg, "text")));
    cf_add_media(m, json_object_get(msg, "media"));
    json_t *loc = ing_location(json_object_get(msg, "location"), "latitude", "longitude");
    if (loc != NULL)
        json_object_set_new(m, "location", loc);
    cf_add_contact(m, json_object_get(msg, "contact"));
    ing_copy_id(m, "reply_to", msg, "reply_to");
    if (strcmp(kind, "other") == 0)
        json_object_set_new(m, "raw", json_incref(msg));
    ing_set_time(ev->data, "provider_time", json_object_get(msg, "timestamp"));
}

static void cf_on_status(ing_batch_t *b, json_t *root, json_t *st)
{
    char mid_num[ING_NUM_SIZE], chat_num[ING_NUM_SIZE];
    const char *status = ing_json_str(st, "status");
    const char *mid = ing_json_id(json_object_get(st, "message_id"), mid_num);
    const char *chat = ing_json_id(json_object_get(st, "chat_id"), chat_num);
    if (mid == NULL || !ing_status_known(status)) {
        ing_batch_other(b, "unrecognised", NULL, NULL, root);
        return;
    }
    ing_event_t *ev = ing_batch_add(b, ING_TYPE_STATUS, chat);
    char *eid = imp_asprintf("%s:%s", mid, status);
    ing_event_set_id(b, ev, eid);
    free(eid);
    json_object_set_new(ev->data, "message_id", json_string(mid));
    json_object_set_new(ev->data, "status", json_string(status));
    if (chat != NULL)
        json_object_set_new(ev->data, "recipient_id", json_string(chat));
    const json_t *err = json_object_get(st, "error");
    if (json_is_object(err)) {
        json_t *e = ing_obj(ev->data, "error");
        ing_copy_id(e, "code", err, "code");
        ing_copy_str(e, "message", err, "message");
    }
    ing_set_time(ev->data, "provider_time", json_object_get(st, "timestamp"));
}

void ing_normalize_chatflow(ing_batch_t *b, json_t *root)
{
    const char *event = ing_json_str(root, "event");
    json_t *msg = json_object_get(root, "message");
    json_t *st = json_object_get(root, "status");
    if (event != NULL && strcmp(event, "message.received") == 0 && json_is_object(msg))
        cf_on_received(b, root, msg);
    else if (event != NULL && strcmp(event, "message.status") == 0 && json_is_object(st))
        cf_on_status(b, root, st);
    else
        ing_batch_other(b, event, NULL, NULL, root);
}
