/* The ingress core: webhook verification and normalization, free of any server or Kafka code.
 *
 * imperium-ingress (the h2o server) calls, per request:
 *   1. ing_channel_parse on the route's channel segment;
 *   2. the channel's verifier (ing_verify_standard / _meta / _telegram) with the tenant's
 *      current and, during a rotation, previous secrets;
 *   3. ing_normalize on the verified body, then wraps each event in an envelope
 *      (id = imp_opid_inbound(tenant_id, ing_channel_name(ch), ev.provider_event_id),
 *      type = ev.type, subject = ev.conversation_key, Kafka key
 *      "<tenant_id>:<conversation_key>", data = ev.data).
 *
 * Every function here is pure (no I/O, no clock, no globals) and thread-safe (given
 * per-thread ing_key_t.hmac contexts); the caller passes the time. Every error is class poison; its
 * code tells the server the answer:
 *
 *   code            from                                   HTTP
 *   sig_missing     a header / query parameter is absent    401 (handshake: 403)
 *                   or malformed
 *   sig_timestamp   webhook-timestamp outside ±tolerance     401
 *   sig_mismatch    no signature / token matched any key     401 (handshake: 403)
 *   bad_json        the verified body is not valid JSON      400
 *
 * Verification messages never contain secrets or signature bytes. */
#ifndef IMP_INGRESS_CORE_H
#define IMP_INGRESS_CORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "imp/crypto.h"
#include "imp/error.h"

/* ---- Channels ---- */

typedef enum {
    ING_CH_GENERIC,
    ING_CH_CHATFLOW,
    ING_CH_WHATSAPP,
    ING_CH_TELEGRAM,
} ing_channel_t;

#define ING_CH_COUNT 4

/* "generic", "chatflow", "whatsapp", "telegram" (static strings; NULL for a value outside
 * the enum). These are the route segments and the channel part of operation ids. */
const char *ing_channel_name(ing_channel_t ch);

/* s[0..len) exactly one of the names above (case-sensitive) → 0 and *out; otherwise -1. */
int ing_channel_parse(const char *s, size_t len, ing_channel_t *out);

/* ---- Verification ---- */

/* The value of request header `name` (given in lower case; look it up case-insensitively),
 * with its length in *len, or NULL when the request has no such header. The pointer is
 * borrowed and need not be NUL-terminated. */
typedef const char *(*ing_header_fn)(void *ctx, const char *name, size_t *len);

/* One acceptable secret: key bytes (borrowed). A tenant passes its current secret and,
 * during a rotation's grace period, the previous one as a second key.
 *
 * hmac (optional, may be NULL): a context made by imp_hmac_new(key, len) over exactly these
 * bytes; the HMAC verifiers use it instead of keying a fresh context per call, which saves an
 * EVP_MAC_fetch per request. imp_hmac_t is not synchronised: hand each thread its own. */
typedef struct {
    const uint8_t *key;
    size_t len;
    imp_hmac_t *hmac;
} ing_key_t;

/* Standard Webhooks tolerance (seconds either side of now). */
#define ING_STANDARD_TOLERANCE_S 300
/* Longest webhook-id accepted (the spec's ids are short; this bounds what goes into ids). */
#define ING_WEBHOOK_ID_MAX 255
/* Most signatures looked at in one webhook-signature header (the rest are ignored). */
#define ING_STANDARD_MAX_SIGS 8

/* Decode a Standard Webhooks secret "whsec_<base64>" (the prefix is optional) into out
 * (cap bytes): 0 and *outlen, or -1 when malformed, empty or larger than cap. */
int ing_whsec_decode(const char *text, size_t len, uint8_t *out, size_t cap, size_t *outlen);

/* Standard Webhooks (generic, chatflow). Headers webhook-id (1..ING_WEBHOOK_ID_MAX bytes,
 * printable ASCII without spaces), webhook-timestamp (decimal Unix seconds, at most 12
 * digits, within ±tolerance_s of now_s; the bound itself is accepted), webhook-signature:
 * space-separated "v1,<base64 of 32 bytes>" entries. Entries of another version ("v1a,…")
 * or malformed ones are skipped, as the reference libraries do; the first
 * ING_STANDARD_MAX_SIGS well-formed ones count. HMAC-SHA256(key, id "." timestamp "." body)
 * is compared in constant time against every counted signature for every key. The checks run
 * in that order: headers, timestamp, signature.
 *
 * keys: the secrets (raw bytes, whsec-decoded with ing_whsec_decode); empty keys are skipped,
 * so no keys at all means sig_mismatch. body may be NULL when len is 0. On success returns
 * NULL and copies the webhook-id, NUL-terminated, into id_out (cap >= ING_WEBHOOK_ID_MAX + 1
 * always suffices); on failure id_out is "". Errors: sig_missing (a header absent, empty or
 * malformed, no well-formed v1 entry, an id longer than cap - 1), sig_timestamp,
 * sig_mismatch. */
imp_error_t *ing_verify_standard(const ing_key_t *keys, size_t nkeys, ing_header_fn h, void *ctx,
                                 const char *body, size_t len, int64_t now_s, int tolerance_s,
                                 char *id_out, size_t cap);

/* Meta (whatsapp): x-hub-signature-256 "sha256=<64 hex digits, either case>", the
 * HMAC-SHA256 of the raw body keyed by the app secret, compared in constant time for every
 * key (empty keys are skipped). Errors: sig_missing (absent, no "sha256=" prefix, not 64 hex
 * digits), sig_mismatch. */
imp_error_t *ing_verify_meta(const ing_key_t *keys, size_t nkeys, ing_header_fn h, void *ctx,
                             const char *body, size_t len);

/* Telegram: x-telegram-bot-api-secret-token equals one of the tokens (imp_crypto_equal_str,
 * every token compared, so the time does not tell which one or whether any matched; an empty
 * token never matches). Errors: sig_missing (absent or empty), sig_mismatch. */
imp_error_t *ing_verify_telegram(const ing_key_t *tokens, size_t ntokens, ing_header_fn h,
                                 void *ctx);

/* Meta's GET subscription handshake. query[0..qlen) is the raw query string without '?'
 * ("hub.mode=subscribe&hub.verify_token=…&hub.challenge=…", values percent-encoded). When
 * hub.mode is "subscribe" and the decoded hub.verify_token equals one of the tokens (constant
 * time; empty tokens never match), *challenge / *clen receive hub.challenge as it appears in
 * the query (borrowed pointer into query, not decoded: Meta's challenges are digits; the
 * server echoes it as text/plain). Errors: sig_missing (a parameter absent or empty, mode not
 * "subscribe", a challenge that is not 1..128 characters of [A-Za-z0-9_-]), sig_mismatch
 * (the token matches none). */
imp_error_t *ing_verify_meta_handshake(const ing_key_t *tokens, size_t n, const char *query,
                                       size_t qlen, const char **challenge, size_t *clen);

/* ---- Normalization ---- */

/* Event types on imp.inbound.v1 (schemas/events/<type>.json; docs/channels.md). */
#define ING_TYPE_MESSAGE "imp.inbound.message.v1"
#define ING_TYPE_EDIT "imp.inbound.edit.v1"
#define ING_TYPE_STATUS "imp.inbound.status.v1"
#define ING_TYPE_CALLBACK "imp.inbound.callback.v1"
#define ING_TYPE_OTHER "imp.inbound.other.v1"

/* Fixed sizes including the NUL. A provider_event_id that would not fit is replaced by
 * "sha256:<64 hex>" of its full text, a conversation id by "<channel>:sha256:<64 hex>", so
 * both stay deterministic and distinct. */
#define ING_TYPE_SIZE 64
#define ING_ID_SIZE 256

/* One normalized inbound event. conversation_key is never empty: "<channel>:<id…>" (see
 * docs/channels.md), or "<channel>:-" for an event that belongs to no conversation.
 * provider_event_id is never empty, so imp_opid_inbound accepts it. data always holds
 * "channel" and "conversation_key" (the same text as the field here). Values taken from the
 * body are shared between the events of one webhook rather than copied: read data, do not
 * change it. */
typedef struct {
    char type[ING_TYPE_SIZE];            /* ING_TYPE_* */
    char provider_event_id[ING_ID_SIZE]; /* unique per provider event within channel+tenant */
    char conversation_key[ING_ID_SIZE];  /* stable per customer conversation */
    json_t *data;                        /* owned; a JSON object per the type's schema */
} ing_event_t;

/* Normalize a VERIFIED body. A webhook may hold several events (WhatsApp batches several
 * messages and statuses); *n >= 1 on success. webhook_id: the Standard Webhooks id when the
 * channel has one (generic, chatflow), else NULL; it names events that carry no id of their
 * own. The result depends on the bytes alone (no clock), so a redelivery yields the same
 * provider_event_ids and data.
 *
 * Errors: bad_json (poison) when body is not one JSON value jansson accepts, with the
 * envelope reader's strictness (duplicate keys, invalid UTF-8, \u0000, integers beyond 64
 * bits and trailing garbage refused). Any valid JSON that does not match the channel's shape
 * (an array, a string, an unknown update kind) still yields events, imp.inbound.other.v1
 * carrying the payload in "raw": nothing verified is dropped. A ch outside the enum is
 * poison "bad_channel". On success *out is a new array of *n events (free with ing_events_free); on
 * error *out is NULL and *n is 0. */
imp_error_t *ing_normalize(ing_channel_t ch, const char *body, size_t len, const char *webhook_id,
                           ing_event_t **out, size_t *n);

/* Release the data of each event and the array (NULL is a no-op). */
void ing_events_free(ing_event_t *ev, size_t n);

#endif
