/* Shared between the ingress core's own files (verify_*.c, normalize_*.c); the server uses
 * ingress_core.h only. */
#ifndef IMP_INGRESS_CORE_INTERNAL_H
#define IMP_INGRESS_CORE_INTERNAL_H

#include "ingress_core.h"

#include <stdbool.h>

/* ---- verify_common.c ---- */

/* out = HMAC-SHA256(k, parts...), through k->hmac when the caller keyed one. */
void ing_key_mac(const ing_key_t *k, const imp_iov_t *parts, size_t n,
                 uint8_t out[IMP_HMAC_SHA256_LEN]);

/* A poison verification error with the given code. */
imp_error_t *ing_sig_error(const char *code, const char *msg);

/* ---- json_read.c ---- */

/* Why a body is not JSON: a static message and the offset of the byte reading stopped at. */
typedef struct {
    const char *text;
    size_t position;
} ing_json_error_t;

/* buf[0..len) as one JSON value (new reference): the documents json_loadb(buf, len,
 * JSON_REJECT_DUPLICATES | JSON_DECODE_ANY) accepts and no others (duplicate keys, invalid
 * UTF-8, \u0000, lone surrogates, integers beyond 64 bits, reals that overflow, more than 2048
 * levels of nesting and trailing bytes refused), read into the same values with object members
 * in the same order. NULL and *err (err may be NULL) when it is not. buf may be NULL when len
 * is 0. */
json_t *ing_json_load(const char *buf, size_t len, ing_json_error_t *err);

/* ---- normalize_common.c ---- */

/* The events of one webhook being built. */
typedef struct {
    ing_channel_t ch;
    const char *body; /* the raw body, for content-derived ids */
    size_t len;
    const char *webhook_id; /* NULL when the channel has none */
    ing_event_t *ev;
    size_t n, cap;
} ing_batch_t;

/* Append an event of type; its data starts as {"channel", "conversation_key"} where the key
 * is "<channel>:<conv>" ("<channel>:-" when conv is NULL or empty). Returns the event (valid
 * until the next append). provider_event_id is left empty: set it with ing_event_set_id. */
ing_event_t *ing_batch_add(ing_batch_t *b, const char *type, const char *conv);

/* provider_event_id = id (its sha256 form when too long); an empty or NULL id falls back to
 * ing_batch_fallback_id. */
void ing_event_set_id(ing_batch_t *b, ing_event_t *ev, const char *id);

/* An event id from the webhook itself, for events with no id of their own: the webhook-id
 * when there is one, else "sha256:<hex of the body>"; "#<index>" is appended for every event
 * but the first of the webhook, so ids stay distinct and deterministic. */
void ing_batch_fallback_id(ing_batch_t *b, ing_event_t *ev);

/* Append an imp.inbound.other.v1 event: data.kind = kind, a short name saying what the
 * payload is (the Telegram update field, the Meta change field, the ChatFlow event; it
 * becomes "unrecognised" unless it is 1..64 of [A-Za-z0-9_.-]), data.raw = raw (a new
 * reference: the body's values are shared, never copied, and nobody changes them), id as
 * above (fallback when id is NULL). */
ing_event_t *ing_batch_other(ing_batch_t *b, const char *kind, const char *conv, const char *id,
                             json_t *raw);

/* Room for any JSON integer as decimal text, with the NUL. */
#define ING_NUM_SIZE 24

/* An id in JSON as text: a non-empty string itself (borrowed from v), or an integer written
 * into num; NULL when v is anything else. */
const char *ing_json_id(const json_t *v, char num[ING_NUM_SIZE]);

/* The non-empty string member key of obj (borrowed), or NULL. */
const char *ing_json_str(const json_t *obj, const char *key);

/* dst[dkey] = the string src[skey] (shared) when it is a non-empty string. */
void ing_copy_str(json_t *dst, const char *dkey, const json_t *src, const char *skey);

/* dst[dkey] = the id src[skey] as text (ing_json_id) when there is one. */
void ing_copy_id(json_t *dst, const char *dkey, const json_t *src, const char *skey);

/* dst[dkey] = RFC 3339 UTC text of the Unix seconds in v (an integer, or a string of digits
 * as Meta sends); nothing when v is absent or out of range. */
void ing_set_time(json_t *dst, const char *dkey, const json_t *v);

/* A delivery status imp.inbound.status.v1 knows: sent, delivered, read, played, failed,
 * deleted. */
bool ing_status_known(const char *s);

/* Copy the number members lat/lon (and the strings name, address, url) of src into a new
 * location object {"latitude", "longitude", "name", "address", "url"}; NULL unless both
 * coordinates are numbers. */
json_t *ing_location(const json_t *src, const char *lat, const char *lon);

/* The member key of obj, set as a new object when absent (borrowed). */
json_t *ing_obj(json_t *obj, const char *key);

/* Per channel: append the events of the parsed body root (borrowed). They never fail: a
 * payload they do not recognise becomes an other event. */
void ing_normalize_generic(ing_batch_t *b, json_t *root);
void ing_normalize_chatflow(ing_batch_t *b, json_t *root);
void ing_normalize_whatsapp(ing_batch_t *b, json_t *root);
void ing_normalize_telegram(ing_batch_t *b, json_t *root);

#endif
