/* Channel names, the normalize entry point and the helpers every channel's normalizer uses. */
#include "core_internal.h"

#include "imp/envelope.h"
#include "imp/mem.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const channel_names[ING_CH_COUNT] = {
    [ING_CH_GENERIC] = "generic",
    [ING_CH_CHATFLOW] = "chatflow",
    [ING_CH_WHATSAPP] = "whatsapp",
    [ING_CH_TELEGRAM] = "telegram",
};

const char *ing_channel_name(ing_channel_t ch)
{
    return (unsigned)ch < ING_CH_COUNT ? channel_names[ch] : NULL;
}

int ing_channel_parse(const char *s, size_t len, ing_channel_t *out)
{
    if (s == NULL || out == NULL)
        return -1;
    for (unsigned i = 0; i < ING_CH_COUNT; i++) {
        if (strlen(channel_names[i]) == len && memcmp(channel_names[i], s, len) == 0) {
            *out = (ing_channel_t)i;
            return 0;
        }
    }
    return -1;
}

/* ---- ids ---- */

static void sha256_text(const void *data, size_t len, char out[7 + 2 * IMP_SHA256_LEN + 1])
{
    uint8_t d[IMP_SHA256_LEN];
    imp_sha256(data, len, d);
    memcpy(out, "sha256:", 7);
    imp_hex_encode(d, sizeof(d), out + 7);
}

/* dst = text, or its sha256 form when it does not fit. */
static void set_id_text(char dst[ING_ID_SIZE], const char *text)
{
    size_t len = strlen(text);
    if (len < ING_ID_SIZE)
        memcpy(dst, text, len + 1);
    else
        sha256_text(text, len, dst);
}

void ing_batch_fallback_id(ing_batch_t *b, ing_event_t *ev)
{
    char base[ING_ID_SIZE];
    if (b->webhook_id != NULL && b->webhook_id[0] != '\0')
        set_id_text(base, b->webhook_id);
    else
        sha256_text(b->len ? b->body : "", b->len, base);
    size_t index = (size_t)(ev - b->ev);
    if (index == 0) {
        memcpy(ev->provider_event_id, base, strlen(base) + 1);
        return;
    }
    char *text = imp_asprintf("%s#%zu", base, index);
    set_id_text(ev->provider_event_id, text);
    free(text);
}

void ing_event_set_id(ing_batch_t *b, ing_event_t *ev, const char *id)
{
    if (id == NULL || id[0] == '\0')
        ing_batch_fallback_id(b, ev);
    else
        set_id_text(ev->provider_event_id, id);
}

/* ---- building events ---- */

ing_event_t *ing_batch_add(ing_batch_t *b, const char *type, const char *conv)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 4;
        b->ev = imp_realloc(b->ev, b->cap * sizeof(*b->ev));
    }
    ing_event_t *ev = &b->ev[b->n++];
    memset(ev, 0, sizeof(*ev));
    size_t tlen = strlen(type);
    assert(tlen < sizeof(ev->type));
    memcpy(ev->type, type, tlen + 1);
    /* A conversation id too long for the key is hashed behind the channel prefix, so the key
     * still says which channel it belongs to. */
    const char *name = ing_channel_name(b->ch);
    conv = conv && *conv ? conv : "-";
    char hashed[ING_ID_SIZE];
    if (strlen(name) + 1 + strlen(conv) >= ING_ID_SIZE) {
        sha256_text(conv, strlen(conv), hashed);
        conv = hashed;
    }
    size_t nlen = strlen(name), clen = strlen(conv);
    memcpy(ev->conversation_key, name, nlen);
    ev->conversation_key[nlen] = ':';
    memcpy(ev->conversation_key + nlen + 1, conv, clen + 1);
    ev->data = json_object();
    json_object_set_new(ev->data, "channel", json_string(ing_channel_name(b->ch)));
    json_object_set_new(ev->data, "conversation_key", json_string(ev->conversation_key));
    return ev;
}

/* A kind is a short name: the provider's own field or event name when it is one. */
static bool kind_ok(const char *kind)
{
    size_t len = kind ? strlen(kind) : 0;
    if (len == 0 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = kind[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

ing_event_t *ing_batch_other(ing_batch_t *b, const char *kind, const char *conv, const char *id,
                             json_t *raw)
{
    ing_event_t *ev = ing_batch_add(b, ING_TYPE_OTHER, conv);
    ing_event_set_id(b, ev, id);
    json_object_set_new(ev->data, "kind", json_string(kind_ok(kind) ? kind : "unrecognised"));
    json_object_set_new(ev->data, "raw", raw ? json_incref(raw) : json_null());
    return ev;
}

/* ---- reading JSON ---- */

const char *ing_json_id(const json_t *v, char num[ING_NUM_SIZE])
{
    if (json_is_string(v) && json_string_length(v) > 0)
        return json_string_value(v);
    if (!json_is_integer(v))
        return NULL;
    snprintf(num, ING_NUM_SIZE, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return num;
}

const char *ing_json_str(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : NULL;
}

void ing_copy_str(json_t *dst, const char *dkey, const json_t *src, const char *skey)
{
    json_t *v = json_object_get(src, skey);
    if (json_is_string(v) && json_string_length(v) > 0)
        json_object_set(dst, dkey, v);
}

void ing_copy_id(json_t *dst, const char *dkey, const json_t *src, const char *skey)
{
    char num[ING_NUM_SIZE];
    const char *id = ing_json_id(json_object_get(src, skey), num);
    if (id != NULL)
        json_object_set_new(dst, dkey, json_string(id));
}

void ing_set_time(json_t *dst, const char *dkey, const json_t *v)
{
    int64_t s = -1;
    if (json_is_integer(v)) {
        s = json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *p = json_string_value(v);
        size_t len = json_string_length(v);
        if (len == 0 || len > 12)
            return;
        s = 0;
        for (size_t i = 0; i < len; i++) {
            if (p[i] < '0' || p[i] > '9')
                return;
            s = s * 10 + (p[i] - '0');
        }
    }
    /* Past year 9999 imp_envelope_time_format refuses; this bound also keeps *1000 finite. */
    char text[IMP_ENVELOPE_TIME_LEN + 1];
    if (s < 0 || s > INT64_C(253402300799) || imp_envelope_time_format(s * 1000, text) != 0)
        return;
    json_object_set_new(dst, dkey, json_string(text));
}

bool ing_status_known(const char *s)
{
    static const char *const known[] = {"sent", "delivered", "read", "played", "failed", "deleted"};
    for (size_t i = 0; s != NULL && i < IMP_ARRAY_LEN(known); i++)
        if (strcmp(s, known[i]) == 0)
            return true;
    return false;
}

json_t *ing_location(const json_t *src, const char *lat, const char *lon)
{
    const json_t *la = json_object_get(src, lat), *lo = json_object_get(src, lon);
    if (!json_is_number(la) || !json_is_number(lo))
        return NULL;
    json_t *loc = json_object();
    json_object_set_new(loc, "latitude", json_real(json_number_value(la)));
    json_object_set_new(loc, "longitude", json_real(json_number_value(lo)));
    ing_copy_str(loc, "name", src, "name");
    ing_copy_str(loc, "address", src, "address");
    ing_copy_str(loc, "url", src, "url");
    return loc;
}

json_t *ing_obj(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_object(v)) {
        v = json_object();
        json_object_set_new(obj, key, v);
    }
    return v;
}

/* ---- entry point ---- */

typedef void (*normalizer_fn)(ing_batch_t *b, json_t *root);

static const normalizer_fn normalizers[ING_CH_COUNT] = {
    [ING_CH_GENERIC] = ing_normalize_generic,
    [ING_CH_CHATFLOW] = ing_normalize_chatflow,
    [ING_CH_WHATSAPP] = ing_normalize_whatsapp,
    [ING_CH_TELEGRAM] = ing_normalize_telegram,
};

imp_error_t *ing_normalize(ing_channel_t ch, const char *body, size_t len, const char *webhook_id,
                           ing_event_t **out, size_t *n)
{
    if (out == NULL || n == NULL)
        return imp_error_new(IMP_ERR_POISON, "bad_json", "normalize called without output");
    *out = NULL;
    *n = 0;
    if ((unsigned)ch >= ING_CH_COUNT)
        return imp_error_new(IMP_ERR_POISON, "bad_channel", "unknown channel %d", (int)ch);
    if (body == NULL && len > 0)
        return imp_error_new(IMP_ERR_POISON, "bad_json", "invalid json: no body");
    ing_json_error_t jerr;
    json_t *root = ing_json_load(body, len, &jerr);
    if (root == NULL)
        return imp_error_new(IMP_ERR_POISON, "bad_json", "invalid json: %s at byte %zu", jerr.text,
                             jerr.position);
    ing_batch_t b = {.ch = ch, .body = body, .len = len, .webhook_id = webhook_id};
    normalizers[ch](&b, root);
    if (b.n == 0) /* a normalizer that found nothing still keeps the payload */
        ing_batch_other(&b, "empty", NULL, NULL, root);
    json_decref(root);
    *out = b.ev;
    *n = b.n;
    return NULL;
}

void ing_events_free(ing_event_t *ev, size_t n)
{
    if (ev == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        json_decref(ev[i].data);
    free(ev);
}
