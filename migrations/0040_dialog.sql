-- imperium-dialog (docs/dialog.md): bursts of customer messages waiting to become one turn,
-- delivery state on messages, and the scheduler's cross-tenant look-up of due bursts.

-- One row per turn: while `pending` it collects the operation ids of a conversation's
-- messages (a burst) until due_at; the scheduler (or the handler, with a window of 0) then
-- emits imp.turn.requested.v1 with operation_id = derive(last message, "turn") and the row
-- becomes `emitted`. `forwarded`: the conversation went to handover before the burst was
-- due, so its messages went to the manager chat instead. At most one pending row per
-- conversation.
CREATE TABLE turns (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         uuid NOT NULL,
    conversation_id   uuid NOT NULL,
    state             text NOT NULL DEFAULT 'pending'
                      CHECK (state IN ('pending', 'emitted', 'forwarded')),
    message_ids       uuid[] NOT NULL,
    last_message_id   uuid NOT NULL,
    first_received_at timestamptz NOT NULL,
    due_at            timestamptz NOT NULL,
    traceparent       text,
    operation_id      uuid UNIQUE,
    created_at        timestamptz NOT NULL DEFAULT now(),
    emitted_at        timestamptz,
    FOREIGN KEY (tenant_id, conversation_id)
        REFERENCES conversations (tenant_id, id) ON DELETE CASCADE,
    CHECK ((state = 'emitted') = (operation_id IS NOT NULL))
);
CREATE UNIQUE INDEX turns_one_pending ON turns (tenant_id, conversation_id)
    WHERE state = 'pending';
CREATE INDEX turns_due ON turns (due_at) WHERE state = 'pending';
CREATE INDEX turns_conversation ON turns (tenant_id, conversation_id, created_at);
ALTER TABLE turns ENABLE ROW LEVEL SECURITY;
ALTER TABLE turns FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON turns
    USING (tenant_id = imp_current_tenant()) WITH CHECK (tenant_id = imp_current_tenant());
-- Lets dialog_due_turns (SECURITY DEFINER, runs as the owner) see and lock every tenant's
-- pending rows.
CREATE POLICY owner_scheduler ON turns FOR ALL TO imperium_owner USING (true) WITH CHECK (true);

-- Due pending bursts of every tenant, oldest first, locked for the calling transaction
-- (SKIP LOCKED: several dialog processes share the work). Only ids leave; the caller reads
-- the rows under the tenant's own RLS.
CREATE FUNCTION dialog_due_turns(p_limit integer) RETURNS TABLE (tenant_id uuid, turn_id uuid)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
    SELECT t.tenant_id, t.id FROM public.turns t
    WHERE t.state = 'pending' AND t.due_at <= now()
    ORDER BY t.due_at
    LIMIT p_limit
    FOR UPDATE SKIP LOCKED
$$;
REVOKE EXECUTE ON FUNCTION dialog_due_turns(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dialog_due_turns(integer) TO imperium_app;

-- What the provider said about an outbound message (imp.delivery.status.v1 and inbound
-- status events): sent | failed | unknown | delivered | read | played | deleted.
ALTER TABLE messages
    ADD COLUMN delivery_status text,
    ADD COLUMN delivery_updated_at timestamptz;
-- A manager's reply names the provider message id of the forward or escalation it answers.
CREATE INDEX messages_provider_id ON messages (tenant_id, provider_message_id)
    WHERE provider_message_id IS NOT NULL;

GRANT SELECT, INSERT, UPDATE, DELETE ON turns TO imperium_app;
GRANT SELECT ON turns TO imperium_api;
