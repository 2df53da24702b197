/* What happened to what we sent: imp.delivery.status.v1 from imperium-send, and the
 * providers' own status events (imp.inbound.status.v1). The provider message id learnt here
 * is how a manager's reply finds the conversation of the forward or escalation it answers. */
#include "dialog.h"

#include "imp/opid.h"

#include <stdlib.h>
#include <string.h>

/* Reports can arrive out of order (a replayed send's `sent` before the relay publishes the
 * first attempt's `failed`): a report never takes a message back from a later state
 * (failed/unknown < sent < delivered < read). */
#define SQL_RANK(x)                                                                                \
    "(CASE " x " WHEN 'read' THEN 3 WHEN 'delivered' THEN 2 WHEN 'sent' THEN 1 ELSE 0 END)"
#define SQL_DELIVERY_UPDATE                                                                        \
    "UPDATE messages SET delivery_status = $2, delivery_updated_at = now(), "                      \
    "provider_message_id = coalesce($3, provider_message_id) WHERE operation_id = $1::uuid "       \
    "AND (delivery_status IS NULL OR " SQL_RANK("delivery_status") " <= " SQL_RANK("$2::text") ")"

/* The update, or for an outbound dialog did not emit (an answer, a safe reply, an
 * escalation from qc) the row, created here without text so that its provider id can be
 * found ($5, the conversation, is NULL when the report names none). Nothing when the row is
 * there already and the report was stale. One statement nobody reads the result of: it is
 * deferred to the transaction's COMMIT. */
#define SQL_DELIVERY                                                                               \
    "WITH u AS (" SQL_DELIVERY_UPDATE " RETURNING 1) "                                             \
    "INSERT INTO messages (tenant_id, conversation_id, direction, operation_id, kind, payload, "   \
    "provider_message_id, delivery_status, delivery_updated_at) "                                  \
    "SELECT c.tenant_id, c.id, 'out', $1::uuid, 'text', $4::jsonb, $3, $2, now() "                 \
    "FROM conversations c WHERE c.id = $5::uuid AND NOT EXISTS (SELECT FROM u) "                   \
    "ON CONFLICT (operation_id) DO NOTHING"

#define SQL_STATUS_UPDATE                                                                          \
    "UPDATE messages SET delivery_status = $3, delivery_updated_at = now() "                       \
    "WHERE tenant_id = $1::uuid AND provider_message_id = $2 AND direction = 'out'"

static bool is_uuid(const char *s)
{
    uint8_t u[IMP_UUID_LEN];
    return imp_uuid_parse(s, strlen(s), u) == 0;
}

imp_error_t *dialog_on_delivery(imp_worker_ctx_t *ctx, const imp_envelope_t *ev)
{
    const char *outbound = dialog_str(ev->data, "outbound_id");
    const char *status = dialog_str(ev->data, "status");
    const char *pmid = dialog_str(ev->data, "provider_message_id");
    const char *conv = dialog_str(ev->data, "conversation_id");
    if (!is_uuid(ev->tenantid) || !is_uuid(outbound) || status[0] == '\0')
        return dialog_bad("delivery: tenantid, data.outbound_id or data.status is missing");
    json_t *payload = json_pack("{s:s, s:s}", "purpose", dialog_str(ev->data, "purpose"), "channel",
                                dialog_str(ev->data, "channel"));
    char *ptext = json_dumps(payload, JSON_COMPACT);
    json_decref(payload);
    const char *params[] = {outbound, status, pmid[0] ? pmid : NULL, ptext,
                            is_uuid(conv) ? conv : NULL};
    imp_error_t *err = imp_pg_exec_deferred(imp_worker_ctx_pg(ctx), SQL_DELIVERY, 5, params);
    free(ptext);
    return err;
}

imp_error_t *dialog_on_inbound_status(imp_worker_ctx_t *ctx, const imp_envelope_t *ev)
{
    const char *mid = dialog_str(ev->data, "message_id");
    const char *status = dialog_str(ev->data, "status");
    if (!is_uuid(ev->tenantid) || mid[0] == '\0' || status[0] == '\0')
        return dialog_bad("status: tenantid, data.message_id or data.status is missing");
    const char *params[] = {ev->tenantid, mid, status};
    return imp_pg_exec_deferred(imp_worker_ctx_pg(ctx), SQL_STATUS_UPDATE, 3, params);
}
