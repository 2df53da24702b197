-- imperium-send's outbound messages (docs/send.md): one row per outbound operation id, the
-- state machine pending → sending → sent | failed | unknown. Tenant-owned: row-level security.
-- conversation_id has no foreign key: notices and manager messages may have no conversation.

CREATE TABLE outbound (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    operation_id        uuid NOT NULL UNIQUE,
    conversation_id     uuid,
    channel             text NOT NULL
                        CHECK (channel IN ('chatflow', 'whatsapp', 'telegram', 'generic', 'test')),
    recipient           text NOT NULL,
    purpose             text NOT NULL,
    text                text NOT NULL,
    state               text NOT NULL DEFAULT 'pending'
                        CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'unknown')),
    attempts            int NOT NULL DEFAULT 0,
    provider_message_id text,
    last_error          text,
    next_attempt_at     timestamptz, -- a provider's Retry-After: not sent again before
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
-- The sentinel looks for unknown and failed sends.
CREATE INDEX outbound_unsettled ON outbound (tenant_id, updated_at)
    WHERE state IN ('unknown', 'failed', 'sending');
ALTER TABLE outbound ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbound FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON outbound
    USING (tenant_id = imp_current_tenant()) WITH CHECK (tenant_id = imp_current_tenant());

GRANT SELECT, INSERT, UPDATE ON outbound TO imperium_app;
GRANT SELECT ON outbound TO imperium_api;
