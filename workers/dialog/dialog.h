/* imperium-dialog: the worker's cross-file names (docs/dialog.md). */
#ifndef IMP_DIALOG_H
#define IMP_DIALOG_H

#include "imp/worker.h"

#include <jansson.h>
#include <stdbool.h>

#define DIALOG_SOURCE "imperium/dialog"
#define DIALOG_TOPIC_TURN "imp.turn.v1"
#define DIALOG_TOPIC_OUTBOUND "imp.outbound.v1"
#define DIALOG_DEFAULT_COALESCE_MS 1500
#define DIALOG_MAX_COALESCE_MS 600000
#define DIALOG_HISTORY 10

typedef struct {
    long long tick_batch; /* due bursts one tick emits at most */
} dialog_config_t;

extern dialog_config_t dialog_config;

/* What the tenant's configuration says, read once per event. */
typedef struct {
    long long coalesce_ms;
    char manager_chat_id[64]; /* "" when the tenant has no manager chat */
} dialog_tenant_t;

/* A customer conversation as stored. */
typedef struct {
    char id[40];
    char state[16];
    char channel[32];
    char key[256];
    char recipient[256];
} dialog_conv_t;

/* inbound.c: imp.inbound.message.v1. */
imp_error_t *dialog_on_message(imp_worker_ctx_t *ctx, const imp_envelope_t *ev);
imp_error_t *dialog_load_tenant(imp_pg_t *pg, const char *tenant_id, dialog_tenant_t *out);
/* The conversation by id or by key (exactly one of them non-NULL); *found false when none. */
imp_error_t *dialog_load_conv(imp_pg_t *pg, const char *id, const char *key, dialog_conv_t *out,
                              bool *found);

/* A customer message just stored (the event's own message). */
typedef struct {
    const char *opid;        /* its operation id */
    const char *row_id;      /* messages.id */
    const char *body;        /* NULL when it has no words (a photo without caption …) */
    const char *kind;        /* text, image, … */
    const char *provider_id; /* the channel's message id; NULL when none */
} dialog_msg_t;

/* The messages a turn's history holds: customer messages and what the customer was answered
 * (forwards and escalations went to the manager). */
#define DIALOG_SQL_HISTORY_FILTER                                                                  \
    "body IS NOT NULL AND (direction = 'in' OR payload->>'purpose' IN "                            \
    "('answer', 'safe_reply', 'manager_reply'))"

/* A message joining its conversation's pending burst (`turns` row): the burst's messages
 * grow, its due time stays. */
#define DIALOG_SQL_BURST_JOIN                                                                      \
    "ON CONFLICT (tenant_id, conversation_id) WHERE state = 'pending' DO UPDATE "                  \
    "SET message_ids = turns.message_ids || EXCLUDED.message_ids, "                                \
    "last_message_id = EXCLUDED.last_message_id, traceparent = EXCLUDED.traceparent"

/* coalesce.c: window 0 with a burst left pending from a larger window: the stored message
 * joins the burst, and the burst is emitted now. */
imp_error_t *dialog_coalesce_flush(imp_worker_ctx_t *ctx, const imp_envelope_t *ev,
                                   const dialog_conv_t *conv, const dialog_msg_t *msg);
/* A window-0 turn of msg alone, its `turns` row already stored as emitted with operation id
 * turn_opid (inbound.c stores it with the message): emit it. hist: the history before the
 * message, direction and body in columns hist_col and hist_col + 1 (rows whose direction is
 * NULL skipped); NULL for none. */
imp_error_t *dialog_emit_stored_turn(imp_worker_ctx_t *ctx, const imp_envelope_t *ev,
                                     const dialog_conv_t *conv, const dialog_msg_t *msg,
                                     const char *turn_opid, const imp_pg_result_t *hist,
                                     int hist_col);
/* The runtime's on_tick: emit every due burst (up to tick_batch). */
imp_error_t *dialog_tick(imp_worker_ctx_t *ctx, void *user);

/* handover.c */
imp_error_t *dialog_forward(imp_worker_ctx_t *ctx, const char *tenant_id, const dialog_conv_t *conv,
                            const char *message_opid, const char *manager_chat_id,
                            const char *traceparent);
imp_error_t *dialog_on_manager(imp_worker_ctx_t *ctx, const imp_envelope_t *ev,
                               const dialog_tenant_t *tenant);

/* delivery.c: imp.delivery.status.v1 and imp.inbound.status.v1. */
imp_error_t *dialog_on_delivery(imp_worker_ctx_t *ctx, const imp_envelope_t *ev);
imp_error_t *dialog_on_inbound_status(imp_worker_ctx_t *ctx, const imp_envelope_t *ev);

/* events.c: new events (not derived from the event being handled: the tick has none). */
typedef struct {
    const char *id;   /* the operation id */
    const char *type; /* imp.turn.requested.v1, imp.outbound.message.v1 */
    const char *tenant_id;
    const char *subject;     /* the conversation key */
    const char *causationid; /* NULL: none */
    const char *traceparent; /* NULL or "": none */
} dialog_event_t;
/* Emit data (takes ownership) to topic with key "<tenant>:<subject>". */
imp_error_t *dialog_emit(imp_worker_ctx_t *ctx, const char *topic, const dialog_event_t *e,
                         json_t *data);
/* data of an imp.outbound.message.v1; conversation_id, reply_to may be NULL. New reference. */
json_t *dialog_outbound_data(const char *conversation_id, const char *channel,
                             const char *recipient, const char *text, const char *purpose,
                             const char *reply_to);
/* A string member, "" when absent or not a string. Borrowed. */
const char *dialog_str(json_t *obj, const char *path);
/* Poison error for bad event data. */
imp_error_t *dialog_bad(const char *what);

#endif
