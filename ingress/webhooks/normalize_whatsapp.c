/* WhatsApp Cloud API (Meta) webhooks: every message and status of every change of every
 * entry becomes one event; whatever else Meta sends becomes an other event. */
#include "core_internal.h"

#include "imp/mem.h"

#include <stdlib.h>
#include <string.h>

static const char *const wa_media_types[] = {"image", "audio", "video", "document", "sticker"};

static bool wa_is_media(const char *type)
{
    for (size_t i = 0; i < IMP_ARRAY_LEN(wa_media_types); i++)
        if (strcmp(type, wa_media_types[i]) == 0)
            return true;
    return false;
}

/* The profile name Meta gives for wa_id in value.contacts. */
static const char *wa_contact_name(const json_t *value, const char *wa_id)
{
    const json_t *contacts = json_object_get(value, "contacts");
    size_t i;
    const json_t *c;
    json_array_foreach(contacts, i, c)
    {
        const char *id = ing_json_str(c, "wa_id");
        if ((id != NULL && strcmp(id, wa_id) == 0) ||
            (id == NULL && json_array_size(contacts) == 1))
            return ing_json_str(json_object_get(c, "profile"), "name");
    }
    return NULL;
}

static void wa_add_account(json_t *data, const json_t *value)
{
    const json_t *meta = json_object_get(value, "metadata");
    json_t *a = json_object();
    ing_copy_id(a, "id", meta, "phone_number_id");
    ing_copy_str(a, "phone", meta, "display_phone_number");
    if (json_object_size(a) > 0)
        json_object_set_new(data, "account", a);
    else
        json_decref(a);
}

static void wa_add_media(json_t *m, const json_t *src)
{
    json_t *o = json_object();
    ing_copy_id(o, "id", src, "id");
    ing_copy_str(o, "url", src, "url");
    ing_copy_str(o, "mime_type", src, "mime_type");
    ing_copy_str(o, "sha256", src, "sha256");
    ing_copy_str(o, "caption", src, "caption");
    ing_copy_str(o, "file_name", src, "filename");
    json_object_set_new(m, "media", o);
}

static void wa_add_contacts(json_t *m, const json_t *contacts)
{
    json_t *list = json_array();
    size_t i;
    const json_t *c;
    json_array_foreach(contacts, i, c)
    {
        json_t *o = json_object();
        ing_copy_str(o, "name", json_object_get(c, "name"), "formatted_name");
        const json_t *phone = json_array_get(json_object_get(c, "phones"), 0);
        ing_copy_str(o, "phone", phone, "phone");
        ing_copy_str(o, "user_id", phone, "wa_id");
        json_array_append_new(list, o);
    }
    json_object_set_new(m, "contacts", list);
}

/* Quick-reply buttons (type "button") and interactive replies (button_reply, list_reply)
 * both become {"type", "id", "title", "description"}; the title is also the text. */
static void wa_add_interactive(json_t *m, const char *type, const json_t *src)
{
    json_t *o = json_object();
    if (strcmp(type, "button") == 0) {
        json_object_set_new(o, "type", json_string("button"));
        ing_copy_str(o, "id", src, "payload");
        ing_copy_str(o, "title", src, "text");
    } else {
        const char *itype = ing_json_str(src, "type");
        const json_t *reply = itype ? json_object_get(src, itype) : NULL;
        if (itype != NULL)
            json_object_set_new(o, "type", json_string(itype));
        ing_copy_id(o, "id", reply, "id");
        ing_copy_str(o, "title", reply, "title");
        ing_copy_str(o, "description", reply, "description");
    }
    json_t *title = json_object_get(o, "title");
    if (title != NULL)
        json_object_set_new(m, "text", json_incref(title));
    json_object_set_new(m, "interactive", o);
}

/* message.kind and the members that go with it. */
static void wa_add_content(json_t *m, const char *type, const json_t *msg)
{
    const json_t *body = json_object_get(msg, type);
    const char *kind = type;
    if (strcmp(type, "text") == 0) {
        ing_copy_str(m, "text", body, "body");
    } else if (wa_is_media(type)) {
        if (strcmp(type, "audio") == 0 && json_is_true(json_object_get(body, "voice")))
            kind = "voice";
        wa_add_media(m, body);
    } else if (strcmp(type, "location") == 0) {
        json_t *loc = ing_location(body, "latitude", "longitude");
        if (loc != NULL)
            json_object_set_new(m, "location", loc);
    } else if (strcmp(type, "contacts") == 0) {
        kind = "contact";
        wa_add_contacts(m, body);
    } else if (strcmp(type, "reaction") == 0) {
        json_t *r = ing_obj(m, "reaction");
        ing_copy_id(r, "message_id", body, "message_id");
        ing_copy_str(r, "emoji", body, "emoji"); /* absent: the reaction was removed */
    } else if (strcmp(type, "interactive") == 0 || strcmp(type, "button") == 0) {
        wa_add_interactive(m, type, body);
    } else if (strcmp(type, "unsupported") == 0 || strcmp(type, "unknown") == 0) {
        kind = "unsupported";
    } else {
        kind = "other";
        json_object_set_new(m, "raw", json_incref((json_t *)msg));
    }
    json_object_set_new(m, "kind", json_string(kind));
}

static void wa_on_message(ing_batch_t *b, const json_t *value, json_t *msg)
{
    char id_num[ING_NUM_SIZE];
    const char *id = ing_json_id(json_object_get(msg, "id"), id_num);
    const char *from = ing_json_str(msg, "from");
    const char *type = ing_json_str(msg, "type");
    if (id == NULL || from == NULL || type == NULL) {
        ing_event_t *ev = ing_batch_other(b, "message", from, id, msg);
        wa_add_account(ev->data, value);
        return;
    }
    ing_event_t *ev = ing_batch_add(b, ING_TYPE_MESSAGE, from);
    ing_event_set_id(b, ev, id);
    wa_add_account(ev->data, value);
    json_t *s = ing_obj(ev->data, "sender");
    json_object_set_new(s, "id", json_string(from));
    const char *name = wa_contact_name(value, from);
    if (name != NULL)
        json_object_set_new(s, "name", json_string(name));
    json_object_set_new(s, "phone", json_string(from));
    json_t *m = ing_obj(ev->data, "message");
    json_object_set_new(m, "id", json_string(id));
    wa_add_content(m, type, msg);
    const json_t *context = json_object_get(msg, "context");
    ing_copy_id(m, "reply_to", context, "id");
    if (json_is_true(json_object_get(context, "forwarded")) ||
        json_is_true(json_object_get(context, "frequently_forwarded")))
        json_object_set_new(m, "forwarded", json_true());
    ing_set_time(ev->data, "provider_time", json_object_get(msg, "timestamp"));
}

static void wa_add_error(json_t *data, const json_t *errors)
{
    const json_t *err = json_array_get(errors, 0);
    if (!json_is_object(err))
        return;
    json_t *e = ing_obj(data, "error");
    ing_copy_id(e, "code", err, "code");
    ing_copy_str(e, "title", err, "title");
    ing_copy_str(e, "message", err, "message");
    ing_copy_str(e, "details", json_object_get(err, "error_data"), "details");
}

static void wa_on_status(ing_batch_t *b, const json_t *value, json_t *st)
{
    char mid_num[ING_NUM_SIZE];
    const char *mid = ing_json_id(json_object_get(st, "id"), mid_num);
    const char *status = ing_json_str(st, "status");
    const char *to = ing_json_str(st, "recipient_id");
    char *eid = mid && status ? imp_asprintf("%s:%s", mid, status) : NULL;
    if (mid == NULL || !ing_status_known(status)) {
        ing_event_t *ev = ing_batch_other(b, "status", to, eid, st);
        wa_add_account(ev->data, value);
        free(eid);
        return;
    }
    ing_event_t *ev = ing_batch_add(b, ING_TYPE_STATUS, to);
    ing_event_set_id(b, ev, eid);
    free(eid);
    wa_add_account(ev->data, value);
    json_object_set_new(ev->data, "message_id", json_string(mid));
    json_object_set_new(ev->data, "status", json_string(status));
    if (to != NULL)
        json_object_set_new(ev->data, "recipient_id", json_string(to));
    wa_add_error(ev->data, json_object_get(st, "errors"));
    ing_set_time(ev->data, "provider_time", json_object_get(st, "timestamp"));
}

/* An entry-shaped copy holding only this change, so the other event keeps the account id
 * and time Meta put on the entry (new reference). */
static json_t *wa_entry_with(const json_t *entry, json_t *change)
{
    json_t *raw = json_object();
    json_t *v = json_object_get(entry, "id");
    if (v != NULL)
        json_object_set_new(raw, "id", json_incref(v));
    if ((v = json_object_get(entry, "time")) != NULL)
        json_object_set_new(raw, "time", json_incref(v));
    json_t *changes = json_array();
    json_array_append_new(changes, json_incref(change));
    json_object_set_new(raw, "changes", changes);
    return raw;
}

static void wa_on_change(ing_batch_t *b, const json_t *entry, json_t *change)
{
    const char *field = ing_json_str(change, "field");
    json_t *value = json_object_get(change, "value");
    json_t *msgs = json_object_get(value, "messages");
    json_t *sts = json_object_get(value, "statuses");
    if (field == NULL || strcmp(field, "messages") != 0 ||
        (!json_is_array(msgs) && !json_is_array(sts)) || json_object_get(value, "errors")) {
        /* Template, quality and account updates, webhook-level errors: kept whole. */
        json_t *raw = wa_entry_with(entry, change);
        ing_event_t *ev = ing_batch_other(b, field, NULL, NULL, raw);
        wa_add_account(ev->data, value);
        json_decref(raw);
        return;
    }
    size_t i;
    json_t *v;
    json_array_foreach(msgs, i, v) wa_on_message(b, value, v);
    json_array_foreach(sts, i, v) wa_on_status(b, value, v);
}

void ing_normalize_whatsapp(ing_batch_t *b, json_t *root)
{
    const char *object = ing_json_str(root, "object");
    json_t *entries = json_object_get(root, "entry");
    if (object == NULL || strcmp(object, "whatsapp_business_account") != 0 ||
        !json_is_array(entries) || json_array_size(entries) == 0) {
        ing_batch_other(b, "unrecognised", NULL, NULL, root);
        return;
    }
    size_t i, j;
    json_t *entry, *change;
    json_array_foreach(entries, i, entry)
    {
        json_t *changes = json_object_get(entry, "changes");
        if (!json_is_array(changes) || json_array_size(changes) == 0) {
            ing_batch_other(b, "entry", NULL, NULL, entry);
            continue;
        }
        json_array_foreach(changes, j, change) wa_on_change(b, entry, change);
    }
}
