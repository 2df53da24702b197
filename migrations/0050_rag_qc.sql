-- The answer path's own records (ARCHITECTURE.md §7 steps 2-3, docs/answers.md): the LLM
-- completion of each turn (so a retried turn never calls the LLM twice) and the trace of
-- each turn's QC decision with its timings. Tenant-owned: row-level security enabled and
-- forced, policy tenant_isolation, as in 0001.

-- One completion per turn. imperium-rag writes it on its own connection, committed before
-- the turn's transaction, so a turn whose transaction is rolled back (a crash, a later
-- failure of its batch) finds the completion on its next attempt.
CREATE TABLE llm_turns (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    operation_id      uuid NOT NULL UNIQUE, -- the turn id (imp.turn.requested.v1 id)
    completion        text NOT NULL CHECK (completion <> ''),
    model             text NOT NULL,
    prompt_tokens     integer CHECK (prompt_tokens >= 0),
    completion_tokens integer CHECK (completion_tokens >= 0),
    llm_ms            integer NOT NULL DEFAULT 0 CHECK (llm_ms >= 0),
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX llm_turns_tenant_time ON llm_turns (tenant_id, created_at);

-- One row per turn: what QC decided and how long each stage took. send_ms is filled by
-- imperium-send when the reply is delivered.
CREATE TABLE message_traces (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    operation_id      uuid NOT NULL UNIQUE, -- the turn id
    draft_id          uuid NOT NULL,
    conversation_id   uuid,
    mode              text NOT NULL CHECK (mode IN ('llm', 'extractive', 'none')),
    ingress_ms        integer CHECK (ingress_ms >= 0),
    rag_ms            integer CHECK (rag_ms >= 0),
    llm_ms            integer CHECK (llm_ms >= 0),
    qc_ms             integer CHECK (qc_ms >= 0),
    send_ms           integer CHECK (send_ms >= 0),
    confidence        real CHECK (confidence BETWEEN 0 AND 1),
    decision          text NOT NULL CHECK (decision IN ('pass', 'fail')),
    reason            text NOT NULL DEFAULT '',
    escalated         boolean NOT NULL DEFAULT false,
    trace_id          text,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_traces_tenant_time ON message_traces (tenant_id, created_at);
CREATE INDEX message_traces_conversation ON message_traces (tenant_id, conversation_id);

ALTER TABLE llm_turns ENABLE ROW LEVEL SECURITY;
ALTER TABLE llm_turns FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON llm_turns
    USING (tenant_id = imp_current_tenant()) WITH CHECK (tenant_id = imp_current_tenant());
ALTER TABLE message_traces ENABLE ROW LEVEL SECURITY;
ALTER TABLE message_traces FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON message_traces
    USING (tenant_id = imp_current_tenant()) WITH CHECK (tenant_id = imp_current_tenant());

GRANT SELECT, INSERT ON llm_turns TO imperium_app;
GRANT SELECT, INSERT ON message_traces TO imperium_app;
GRANT UPDATE (send_ms) ON message_traces TO imperium_app;
GRANT SELECT ON llm_turns, message_traces TO imperium_api;
