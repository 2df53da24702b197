/* Building and emitting the events imperium-dialog produces. */
#include "dialog.h"

#include "imp/mem.h"
#include "imp/trace.h"

#include <stdlib.h>
#include <string.h>

dialog_config_t dialog_config = {.tick_batch = 200};

const char *dialog_str(json_t *obj, const char *path)
{
    /* path: "a" or "a.b" */
    const char *dot = strchr(path, '.');
    if (dot != NULL) {
        char head[64];
        size_t n =
            (size_t)(dot - path) < sizeof(head) - 1 ? (size_t)(dot - path) : sizeof(head) - 1;
        memcpy(head, path, n);
        head[n] = '\0';
        return dialog_str(json_object_get(obj, head), dot + 1);
    }
    const char *s = json_string_value(json_object_get(obj, path));
    return s ? s : "";
}

imp_error_t *dialog_bad(const char *what)
{
    return imp_error_new(IMP_ERR_POISON, "dialog_bad_event", "%s", what);
}

json_t *dialog_outbound_data(const char *conversation_id, const char *channel,
                             const char *recipient, const char *text, const char *purpose,
                             const char *reply_to)
{
    json_t *d = json_object();
    json_object_set_new(d, "conversation_id",
                        conversation_id ? json_string(conversation_id) : json_null());
    json_object_set_new(d, "channel", json_string(channel));
    json_object_set_new(d, "recipient", json_string(recipient));
    json_object_set_new(d, "text", json_string(text));
    json_object_set_new(d, "purpose", json_string(purpose));
    json_object_set_new(d, "reply_to",
                        reply_to && reply_to[0] ? json_string(reply_to) : json_null());
    json_object_set_new(d, "received_at_ms", json_null());
    return d;
}

imp_error_t *dialog_emit(imp_worker_ctx_t *ctx, const char *topic, const dialog_event_t *e,
                         json_t *data)
{
    imp_envelope_t ev;
    imp_error_t *err =
        imp_envelope_new_event(&ev, e->id, DIALOG_SOURCE, e->type, e->tenant_id, data);
    if (err != NULL)
        return err;
    ev.subject = imp_strdup(e->subject);
    if (e->causationid != NULL)
        snprintf(ev.causationid, sizeof(ev.causationid), "%s", e->causationid);
    if (e->traceparent != NULL && strlen(e->traceparent) == IMP_TRACEPARENT_LEN)
        memcpy(ev.traceparent, e->traceparent, IMP_TRACEPARENT_LEN + 1);
    char *key = imp_asprintf("%s:%s", e->tenant_id, e->subject);
    err = imp_worker_emit(ctx, topic, key, &ev);
    free(key);
    return err;
}
