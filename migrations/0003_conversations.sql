-- Conversations and their messages (ARCHITECTURE.md §7). Tenant-owned: row-level security.
-- Children reference (tenant_id, id) so a row can never point into another tenant.

CREATE TABLE conversations (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel_id       uuid,
    channel_kind     text NOT NULL,
    conversation_key text NOT NULL,
    state            text NOT NULL DEFAULT 'bot' CHECK (state IN ('bot', 'handover')),
    assignee         text,
    customer         jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    last_message_at  timestamptz,
    UNIQUE (tenant_id, conversation_key),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, channel_id) REFERENCES channels (tenant_id, id)
);
ALTER TABLE conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON conversations
    USING (tenant_id = imp_current_tenant()) WITH CHECK (tenant_id = imp_current_tenant());

-- operation_id is unique: a redelivered inbound event or a retried send inserts nothing new.
CREATE TABLE messages (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id           uuid NOT NULL,
    conversation_id     uuid NOT NULL,
    direction           text NOT NULL CHECK (direction IN ('in', 'out')),
    operation_id        uuid NOT NULL UNIQUE,
    kind                text NOT NULL DEFAULT 'text',
    body                text,
    payload             jsonb NOT NULL DEFAULT '{}',
    provider_message_id text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, conversation_id)
        REFERENCES conversations (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX messages_conversation ON messages (tenant_id, conversation_id, id);
ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE messages FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON messages
    USING (tenant_id = imp_current_tenant()) WITH CHECK (tenant_id = imp_current_tenant());

GRANT SELECT, INSERT, UPDATE, DELETE ON conversations, messages TO imperium_app;
GRANT SELECT ON conversations, messages TO imperium_api;
