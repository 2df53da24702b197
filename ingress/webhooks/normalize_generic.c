/* The generic channel: {"conversation", "sender": {"id", "name"}, "message": {"id", "text"}}. */
#include "core_internal.h"

/* The documented shape: a conversation id and a message with text; the rest is optional. */
static bool recognised(const json_t *root, const char *conv)
{
    const json_t *msg = json_object_get(root, "message");
    const json_t *sender = json_object_get(root, "sender");
    return conv != NULL && json_is_object(msg) && json_is_string(json_object_get(msg, "text")) &&
           (sender == NULL || json_is_object(sender));
}

void ing_normalize_generic(ing_batch_t *b, json_t *root)
{
    char conv_num[ING_NUM_SIZE], id_num[ING_NUM_SIZE];
    const json_t *msg = json_object_get(root, "message");
    const char *conv = ing_json_id(json_object_get(root, "conversation"), conv_num);
    const char *id = ing_json_id(json_object_get(msg, "id"), id_num);
    if (!recognised(root, conv)) {
        ing_batch_other(b, "unrecognised", conv, id, root);
        return;
    }
    ing_event_t *ev = ing_batch_add(b, ING_TYPE_MESSAGE, conv);
    ing_event_set_id(b, ev, id);
    const json_t *sender = json_object_get(root, "sender");
    if (json_is_object(sender)) {
        json_t *s = ing_obj(ev->data, "sender");
        ing_copy_id(s, "id", sender, "id");
        ing_copy_str(s, "name", sender, "name");
        if (json_object_size(s) == 0)
            json_object_del(ev->data, "sender");
    }
    json_t *m = ing_obj(ev->data, "message");
    /* Without an id of its own the message is named like the event (the webhook-id). */
    json_object_set_new(m, "id", json_string(id ? id : ev->provider_event_id));
    json_object_set_new(m, "kind", json_string("text"));
    json_object_set_new(m, "text", json_incref(json_object_get(msg, "text")));
    ing_copy_id(m, "reply_to", msg, "reply_to");
}
