/* The body of every normalizer fuzz target: normalize the input as one channel's verified
 * body and check the promises ingress_core.h makes, aborting when one is broken. */
#ifndef IMP_FUZZ_NORMALIZE_H
#define IMP_FUZZ_NORMALIZE_H

#include "core_internal.h"

#include "imp/envelope.h"
#include "imp/opid.h"

#include <stdlib.h>
#include <string.h>

static void fuzz_check(int ok)
{
    if (!ok)
        abort();
}

/* An event as the server will use it: its operation id and its data as JSON. */
static void fuzz_check_event(ing_channel_t ch, const ing_event_t *ev)
{
    const char *name = ing_channel_name(ch);
    size_t nlen = strlen(name);
    fuzz_check(strncmp(ev->type, "imp.inbound.", 12) == 0);
    fuzz_check(ev->provider_event_id[0] != '\0');
    fuzz_check(strncmp(ev->conversation_key, name, nlen) == 0 &&
               ev->conversation_key[nlen] == ':' && ev->conversation_key[nlen + 1] != '\0');
    fuzz_check(json_is_object(ev->data));
    fuzz_check(strcmp(json_string_value(json_object_get(ev->data, "channel")), name) == 0);
    fuzz_check(strcmp(json_string_value(json_object_get(ev->data, "conversation_key")),
                      ev->conversation_key) == 0);
    char opid[IMP_UUID_STR_SIZE];
    imp_error_t *err = imp_opid_inbound("tenant", name, ev->provider_event_id, opid);
    fuzz_check(err == NULL);
    char *text = json_dumps(ev->data, JSON_COMPACT);
    fuzz_check(text != NULL);
    free(text);
    /* Its envelope: the trusted writer writes what the validating one does. */
    imp_envelope_t e;
    fuzz_check(imp_envelope_new_event(&e, opid, "imperium/ingress", ev->type, "tenant",
                                      json_incref(ev->data)) == NULL);
    e.subject = strdup(ev->conversation_key);
    char *slow = NULL, *fast = NULL;
    size_t len = 0;
    imp_error_t *es = imp_envelope_serialize(&e, &slow);
    imp_error_t *ef = imp_envelope_serialize_trusted(&e, &fast, &len);
    fuzz_check(es == NULL && ef == NULL && strcmp(slow, fast) == 0 && len == strlen(slow));
    free(slow);
    free(fast);
    imp_envelope_dispose(&e);
}

/* The body reader accepts exactly what json_loadb accepts, into the same values in the same
 * order. */
static void fuzz_check_reader(const uint8_t *data, size_t size)
{
    json_t *mine = ing_json_load((const char *)data, size, NULL);
    json_t *ref = json_loadb(size > 0 ? (const char *)data : "", size,
                             JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
    fuzz_check((mine == NULL) == (ref == NULL));
    if (mine != NULL) {
        char *a = json_dumps(mine, JSON_COMPACT | JSON_ENCODE_ANY);
        char *b = json_dumps(ref, JSON_COMPACT | JSON_ENCODE_ANY);
        fuzz_check(a != NULL && b != NULL && strcmp(a, b) == 0 && json_equal(mine, ref));
        free(a);
        free(b);
    }
    json_decref(mine);
    json_decref(ref);
}

static int fuzz_normalize(ing_channel_t ch, const uint8_t *data, size_t size)
{
    /* The first byte says whether a webhook-id comes with the body. */
    const char *wh = size > 0 && (data[0] & 1) ? "msg_fuzz" : NULL;
    fuzz_check_reader(data, size);
    ing_event_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    imp_error_t *ea = ing_normalize(ch, (const char *)data, size, wh, &a, &na);
    imp_error_t *eb = ing_normalize(ch, (const char *)data, size, wh, &b, &nb);
    fuzz_check((ea == NULL) == (eb == NULL));
    if (ea != NULL) {
        fuzz_check(strcmp(imp_error_code(ea), "bad_json") == 0 && a == NULL && na == 0);
        imp_error_free(ea);
        imp_error_free(eb);
        return 0;
    }
    fuzz_check(na >= 1 && na == nb);
    for (size_t i = 0; i < na; i++) {
        fuzz_check_event(ch, &a[i]);
        /* Deterministic: the same body gives the same events. */
        fuzz_check(strcmp(a[i].type, b[i].type) == 0);
        fuzz_check(strcmp(a[i].provider_event_id, b[i].provider_event_id) == 0);
        fuzz_check(strcmp(a[i].conversation_key, b[i].conversation_key) == 0);
        fuzz_check(json_equal(a[i].data, b[i].data));
    }
    ing_events_free(a, na);
    ing_events_free(b, nb);
    return 0;
}

#endif
