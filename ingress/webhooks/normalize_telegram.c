/* Telegram Bot API Update objects: messages and posts, their edits, callback queries; every
 * other kind of update becomes an other event. */
#include "core_internal.h"

#include "imp/mem.h"

#include <stdlib.h>
#include <string.h>

typedef enum { UPD_MESSAGE, UPD_EDIT, UPD_CALLBACK } upd_kind_t;

static const struct {
    const char *field;
    upd_kind_t kind;
} fields[] = {
    {"message", UPD_MESSAGE},          {"channel_post", UPD_MESSAGE},
    {"business_message", UPD_MESSAGE}, {"edited_message", UPD_EDIT},
    {"edited_channel_post", UPD_EDIT}, {"edited_business_message", UPD_EDIT},
    {"callback_query", UPD_CALLBACK},
};

/* "first last" of a User or Contact (new reference), NULL when neither is there. */
static json_t *tg_full_name(const json_t *o, const char *first_key)
{
    const char *first = ing_json_str(o, first_key), *last = ing_json_str(o, "last_name");
    if (first == NULL && last == NULL)
        return NULL;
    if (first == NULL || last == NULL)
        return json_string(first ? first : last);
    char *s = imp_asprintf("%s %s", first, last);
    json_t *v = json_string(s);
    free(s);
    return v;
}

static void tg_add_user(json_t *data, const json_t *user)
{
    json_t *s = ing_obj(data, "sender");
    ing_copy_id(s, "id", user, "id");
    json_t *name = tg_full_name(user, "first_name");
    if (name != NULL)
        json_object_set_new(s, "name", name);
    ing_copy_str(s, "username", user, "username");
    if (json_is_boolean(json_object_get(user, "is_bot")))
        json_object_set_new(s, "is_bot", json_incref(json_object_get(user, "is_bot")));
}

static void tg_add_chat(json_t *data, const json_t *chat)
{
    json_t *c = ing_obj(data, "chat");
    ing_copy_id(c, "id", chat, "id");
    ing_copy_str(c, "type", chat, "type");
    ing_copy_str(c, "title", chat, "title");
}

/* The author: the user, else the chat posting on its behalf (anonymous admins, channels). */
static void tg_add_sender(json_t *data, const json_t *msg)
{
    const json_t *from = json_object_get(msg, "from");
    if (json_is_object(from)) {
        tg_add_user(data, from);
        return;
    }
    const json_t *chat = json_object_get(msg, "sender_chat");
    if (!json_is_object(chat))
        chat = json_object_get(msg, "chat");
    json_t *s = ing_obj(data, "sender");
    ing_copy_id(s, "id", chat, "id");
    ing_copy_str(s, "name", chat, "title");
    ing_copy_str(s, "username", chat, "username");
}

static json_t *tg_media(const json_t *file, const json_t *msg)
{
    json_t *o = json_object();
    ing_copy_str(o, "id", file, "file_id");
    ing_copy_str(o, "unique_id", file, "file_unique_id");
    ing_copy_str(o, "mime_type", file, "mime_type");
    ing_copy_str(o, "file_name", file, "file_name");
    const json_t *size = json_object_get(file, "file_size");
    if (json_is_integer(size) && json_integer_value(size) >= 0)
        json_object_set_new(o, "size", json_incref((json_t *)size));
    ing_copy_str(o, "caption", msg, "caption");
    return o;
}

/* Media kinds in the order they are looked for: an animation also carries a document. */
static const char *const tg_media_kinds[][2] = {
    {"animation", "animation"}, {"photo", "image"},           {"voice", "voice"},
    {"audio", "audio"},         {"video_note", "video_note"}, {"video", "video"},
    {"document", "document"},   {"sticker", "sticker"},
};

static bool tg_add_media(json_t *m, const json_t *msg)
{
    for (size_t i = 0; i < IMP_ARRAY_LEN(tg_media_kinds); i++) {
        const json_t *file = json_object_get(msg, tg_media_kinds[i][0]);
        if (json_is_array(file)) /* photo: sizes, smallest first */
            file = json_array_get(file, json_array_size(file) - 1);
        if (!json_is_object(file))
            continue;
        json_object_set_new(m, "kind", json_string(tg_media_kinds[i][1]));
        json_object_set_new(m, "media", tg_media(file, msg));
        return true;
    }
    return false;
}

static bool tg_add_place(json_t *m, const json_t *msg)
{
    const json_t *venue = json_object_get(msg, "venue");
    json_t *loc = ing_location(json_object_get(venue, "location"), "latitude", "longitude");
    if (loc != NULL) {
        ing_copy_str(loc, "name", venue, "title");
        ing_copy_str(loc, "address", venue, "address");
    } else {
        loc = ing_location(json_object_get(msg, "location"), "latitude", "longitude");
    }
    if (loc == NULL)
        return false;
    json_object_set_new(m, "kind", json_string("location"));
    json_object_set_new(m, "location", loc);
    return true;
}

static bool tg_add_contact(json_t *m, const json_t *msg)
{
    const json_t *c = json_object_get(msg, "contact");
    if (!json_is_object(c))
        return false;
    json_t *o = json_object();
    json_t *name = tg_full_name(c, "first_name");
    if (name != NULL)
        json_object_set_new(o, "name", name);
    ing_copy_str(o, "phone", c, "phone_number");
    ing_copy_id(o, "user_id", c, "user_id");
    json_t *list = json_array();
    json_array_append_new(list, o);
    json_object_set_new(m, "kind", json_string("contact"));
    json_object_set_new(m, "contacts", list);
    return true;
}

static void tg_add_content(json_t *m, const json_t *msg)
{
    const json_t *text = json_object_get(msg, "text");
    if (json_is_string(text)) {
        json_object_set_new(m, "kind", json_string("text"));
        json_object_set_new(m, "text", json_incref((json_t *)text));
    } else if (!tg_add_media(m, msg) && !tg_add_place(m, msg) && !tg_add_contact(m, msg)) {
        /* Polls, dice, service messages (members joining, pins …): kept whole. */
        json_object_set_new(m, "kind", json_string("other"));
        json_object_set_new(m, "raw", json_incref((json_t *)msg));
    }
}

static void tg_on_message(ing_batch_t *b, const char *uid, const char *field, upd_kind_t kind,
                          json_t *update, const json_t *msg)
{
    char mid_num[ING_NUM_SIZE], chat_num[ING_NUM_SIZE];
    const json_t *chat_obj = json_object_get(msg, "chat");
    const char *mid = ing_json_id(json_object_get(msg, "message_id"), mid_num);
    const char *chat = ing_json_id(json_object_get(chat_obj, "id"), chat_num);
    if (mid == NULL || chat == NULL) {
        ing_batch_other(b, field, NULL, uid, update);
        return;
    }
    ing_event_t *ev = ing_batch_add(b, kind == UPD_EDIT ? ING_TYPE_EDIT : ING_TYPE_MESSAGE, chat);
    ing_event_set_id(b, ev, uid);
    tg_add_chat(ev->data, chat_obj);
    tg_add_sender(ev->data, msg);
    json_t *m = ing_obj(ev->data, "message");
    json_object_set_new(m, "id", json_string(mid));
    tg_add_content(m, msg);
    ing_copy_id(m, "reply_to", json_object_get(msg, "reply_to_message"), "message_id");
    if (json_object_get(msg, "forward_origin") || json_object_get(msg, "forward_date"))
        json_object_set_new(m, "forwarded", json_true());
    const json_t *edit_date = json_object_get(msg, "edit_date");
    ing_set_time(ev->data, "provider_time",
                 kind == UPD_EDIT && edit_date ? edit_date : json_object_get(msg, "date"));
}

static void tg_on_callback(ing_batch_t *b, const char *uid, json_t *update, const json_t *cq)
{
    char cid_num[ING_NUM_SIZE], conv_num[ING_NUM_SIZE];
    const json_t *from = json_object_get(cq, "from");
    const json_t *msg = json_object_get(cq, "message");
    const json_t *chat = json_object_get(msg, "chat");
    /* Without a message (inline mode) the conversation is the user's private chat, whose id
     * is the user's id. */
    const char *cid = ing_json_id(json_object_get(cq, "id"), cid_num);
    const char *conv = ing_json_id(json_object_get(chat, "id"), conv_num);
    if (conv == NULL)
        conv = ing_json_id(json_object_get(from, "id"), conv_num);
    if (cid == NULL || !json_is_object(from) || conv == NULL) {
        ing_batch_other(b, "callback_query", NULL, uid, update);
        return;
    }
    ing_event_t *ev = ing_batch_add(b, ING_TYPE_CALLBACK, conv);
    ing_event_set_id(b, ev, uid);
    if (json_is_object(chat))
        tg_add_chat(ev->data, chat);
    tg_add_user(ev->data, from);
    json_t *c = ing_obj(ev->data, "callback");
    json_object_set_new(c, "id", json_string(cid));
    if (json_is_string(json_object_get(cq, "data")))
        json_object_set_new(c, "data", json_incref(json_object_get(cq, "data")));
    ing_copy_id(c, "message_id", msg, "message_id");
    ing_copy_str(c, "inline_message_id", cq, "inline_message_id");
    ing_copy_str(c, "chat_instance", cq, "chat_instance");
    ing_copy_str(c, "game_short_name", cq, "game_short_name");
}

/* The first member besides update_id: what an update Telegram added later is about. */
static const char *tg_payload_field(json_t *update)
{
    const char *key;
    json_t *v;
    json_object_foreach(update, key, v)
    {
        if (strcmp(key, "update_id") != 0)
            return key;
    }
    return NULL;
}

/* An update kept as other still lands in its chat's conversation when it names one
 * (my_chat_member, message_reaction, chat_join_request …). */
static void tg_on_other(ing_batch_t *b, const char *uid, json_t *update)
{
    const char *field = tg_payload_field(update);
    const json_t *payload = field ? json_object_get(update, field) : NULL;
    char conv_num[ING_NUM_SIZE];
    const char *conv =
        ing_json_id(json_object_get(json_object_get(payload, "chat"), "id"), conv_num);
    ing_batch_other(b, field, conv, uid, update);
}

void ing_normalize_telegram(ing_batch_t *b, json_t *root)
{
    char uid[ING_NUM_SIZE];
    if (!json_is_integer(json_object_get(root, "update_id")) ||
        ing_json_id(json_object_get(root, "update_id"), uid) == NULL) {
        ing_batch_other(b, "unrecognised", NULL, NULL, root);
        return;
    }
    for (size_t i = 0; i < IMP_ARRAY_LEN(fields); i++) {
        const json_t *payload = json_object_get(root, fields[i].field);
        if (!json_is_object(payload))
            continue;
        if (fields[i].kind == UPD_CALLBACK)
            tg_on_callback(b, uid, root, payload);
        else
            tg_on_message(b, uid, fields[i].field, fields[i].kind, root, payload);
        return;
    }
    tg_on_other(b, uid, root);
}
