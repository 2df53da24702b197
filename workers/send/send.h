/* imperium-send: the outbound state machine and the provider adapters (docs/send.md). */
#ifndef SEND_H
#define SEND_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "imp/crypto.h"
#include "imp/envelope.h"
#include "imp/error.h"
#include "imp/http.h"
#include "imp/pg.h"
#include "imp/redis.h"
#include "imp/worker.h"

#define SEND_WORKER "send"
#define SEND_SOURCE "imperium/send"
#define SEND_TOPIC_IN "imp.outbound.v1"
#define SEND_TOPIC_DELIVERY "imp.delivery.v1"
#define SEND_TOPIC_USAGE "imp.usage.v1"
#define SEND_TYPE_DELIVERY "imp.delivery.status.v1"
#define SEND_TYPE_USAGE "imp.usage.v1"
#define SEND_ANSWER_MAX 500 /* bytes of a provider's answer kept in errors and rows */

typedef struct {
    imp_worker_settings_t rt;
    char *secret_key;
    char *chatflow_url;
    char *whatsapp_url;
    char *telegram_url;
    char *allow_cidrs;
    long long timeout_ms;
    long long connect_timeout_ms;
    char *redis_url;
    long long rate_limit; /* sends per tenant per rate window; 0: off */
    long long rate_window_ms;
    long long breaker_failures; /* retriable failures in a breaker window that open it; 0: off */
    long long breaker_window_ms;
    long long breaker_open_ms;
    long long concurrency; /* provider calls at once, to different conversations of a batch */
} send_settings_t;

typedef struct send_call send_call_t;

/* A breaker's state as last read from Redis (guard.c). */
#define SEND_BREAKERS 64
#define SEND_BREAKER_CACHE_MS 1000
typedef struct {
    char key[96]; /* "<tenant>:<provider>"; "" unused */
    long long read_ms;
    bool open;
} send_breaker_t;

/* runners.c: threads for a batch's concurrent calls, started once. */
typedef struct send_runners send_runners_t;
/* n threads besides the caller's (slots 1..n). */
imp_error_t *send_runners_new(size_t n, send_runners_t **out);
/* fn(slot, arg) for every slot in [0, nslots) at once (capped at the threads there are), slot
 * 0 on the calling thread; returns when all have returned. r may be NULL (slot 0 only). */
void send_runners_run(send_runners_t *r, size_t nslots, void (*fn)(size_t slot, void *arg),
                      void *arg);
void send_runners_free(send_runners_t *r);

/* The worker's state, shared by every handler call (one thread). */
typedef struct {
    const send_settings_t *s;
    uint8_t key[IMP_CRYPTO_KEY_LEN];
    imp_pg_t *claim_pg; /* second connection: claims and failures commit on their own */
    imp_http_client_t *http;
    imp_http_client_t **pool; /* npool clients for a batch's concurrent calls (pool[0] is http) */
    size_t npool;
    send_runners_t *runners; /* npool - 1 threads for pool[1..] */
    imp_redis_t *redis;      /* NULL: no rate limit, no breaker */
    send_call_t *calls;      /* the latest provider calls, a ring (handler.c) */
    size_t ncalls, capcalls, nextcall;
    send_breaker_t breakers[SEND_BREAKERS]; /* a ring */
    size_t nextbreaker;
} send_t;

/* imp.outbound.message.v1 data; strings borrowed from the event. */
typedef struct {
    const char *conversation_id; /* NULL when none */
    const char *channel;
    const char *recipient;
    const char *text;
    const char *purpose;
    const char *reply_to; /* NULL when none */
} send_msg_t;

/* The tenant's channel: settings and decrypted secrets (new references). */
typedef struct {
    json_t *settings;
    json_t *secrets;
} send_channel_t;

/* One HTTP request for a provider; every member is owned. */
#define SEND_MAX_HEADERS 8
typedef struct {
    char *url;
    char *body;
    char *headers[SEND_MAX_HEADERS + 1]; /* NULL-terminated */
    size_t nheaders;
} send_req_t;

typedef struct {
    const char *name;
    /* Sending the same operation again cannot deliver it twice (the provider or receiver
     * dedupes on a key we send): an interrupted or ambiguous send may be retried. */
    bool idempotent;
    /* Build the request (base: the API base URL, "" for generic). Poison errors only. */
    imp_error_t *(*build)(const send_msg_t *m, const send_channel_t *ch, const char *base,
                          const char *opid, send_req_t *req);
    /* The provider's message id from a 2xx body: new string, or NULL. */
    char *(*message_id)(const char *body, size_t len);
} send_provider_t;

extern const send_provider_t send_provider_chatflow;
extern const send_provider_t send_provider_whatsapp;
extern const send_provider_t send_provider_telegram;
extern const send_provider_t send_provider_generic;
extern const send_provider_t send_provider_sink;

/* provider.c: helpers for adapters. */
void send_req_header(send_req_t *req, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void send_req_dispose(send_req_t *req);
/* base + path with exactly one '/' between them; new string. */
char *send_url_join(const char *base, const char *path);
/* A secret of the channel (borrowed) or a poison error naming it. */
imp_error_t *send_secret(const send_channel_t *ch, const char *name, const char **out);
/* The start of a provider's answer, printable, for errors and rows (new string). */
char *send_answer_excerpt(const char *body, size_t len);
/* Compact JSON of obj (new string); obj is released. */
char *send_json_take(json_t *obj);

/* handler.c */
imp_error_t *send_handle(imp_worker_ctx_t *ctx, const imp_envelope_t *ev, void *user);
imp_error_t *send_parse_msg(const json_t *data, send_msg_t *m);
void send_calls_free(send_t *st);
/* The runtime's prepare: a batch's first message of each conversation claimed and called
 * concurrently (docs/send.md). */
void send_prepare(imp_worker_ctx_t *const *ctx, size_t n, void *user);

/* channel.c: the provider for a channel kind and its base URL ("" for generic). A kind
 * whose base URL is configured empty is sent to the sink. Poison for an unknown kind. */
imp_error_t *send_route(const send_t *st, const char *kind, const send_channel_t *ch,
                        const send_provider_t **provider, const char **base);
/* Load the tenant's enabled channel of this kind and open its secrets. */
imp_error_t *send_channel_load(send_t *st, imp_pg_t *pg, const char *tenant, const char *kind,
                               send_channel_t *ch);
void send_channel_dispose(send_channel_t *ch);

/* outbound.c: the state machine of the outbound table. */
typedef enum {
    CLAIM_SEND,  /* claimed (state sending): call the provider */
    CLAIM_DONE,  /* already settled: state in claim->state, nothing to send */
    CLAIM_DEFER, /* the provider asked us to wait (Retry-After): not due yet */
} send_claim_kind_t;

typedef struct {
    send_claim_kind_t kind;
    char state[16];
    int attempts;
    long long wait_ms;
    char *provider_message_id; /* owned */
    char *last_error;          /* owned */
} send_claim_t;

void send_claim_dispose(send_claim_t *c);
/* On the claim connection, committed before returning. */
imp_error_t *send_claim(send_t *st, const imp_envelope_t *ev, const send_msg_t *m, bool idempotent,
                        send_claim_t *out);
/* The common case of send_claim for n messages at once, in one transaction and one round
 * trip: fresh[i] when message i is new and now claimed (sending, attempt 1). An existing row
 * is left alone (fresh[i] false: send_claim decides it under its lock). On error nothing is
 * claimed. */
imp_error_t *send_claim_new_many(send_t *st, const imp_envelope_t *const *evs,
                                 const send_msg_t *const *ms, size_t n, bool *fresh);
/* Back to pending after a retriable failure (committed); wait_ms > 0: not before then. */
imp_error_t *send_release(send_t *st, const imp_envelope_t *ev, const char *error,
                          long long wait_ms);
/* State failed and the delivery event written to the outbox, committed together on the claim
 * connection (the runtime's transaction is rolled back when the handler fails). */
imp_error_t *send_fail(send_t *st, const imp_envelope_t *ev, const char *error,
                       imp_envelope_t *delivery, const char *key);
/* The settled state in the runtime's transaction. */
imp_error_t *send_record(imp_pg_t *pg, const imp_envelope_t *ev, const char *state,
                         const char *provider_message_id, const char *error);

/* The delivery event for ev (out need not be initialized). */
imp_error_t *send_delivery_event(const imp_envelope_t *ev, const send_msg_t *m, const char *status,
                                 const char *provider_message_id, const char *error, int attempts,
                                 imp_envelope_t *out);
/* The Kafka key "<tenant>:<conversation key>" (new string). */
/* Sets message_traces.send_ms of the turn an answer or safe reply belongs to (none: no-op). */
imp_error_t *send_trace_ms(imp_pg_t *pg, const imp_envelope_t *ev, const send_msg_t *m);
char *send_event_key(const imp_envelope_t *ev, const send_msg_t *m);

/* guard.c: per-tenant rate limit and per-(tenant, provider) breaker; degrade without Redis. */
imp_error_t *send_guard_check(send_t *st, const char *tenant, const char *provider);
void send_guard_result(send_t *st, const char *tenant, const char *provider, bool failed);

#endif
