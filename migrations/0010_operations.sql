-- The outcome of each command (ARCHITECTURE.md §6, §8): written by the worker that applies
-- it, in the transaction of its effects, so a client (imperium-control's CLI, the API's
-- GET /v1/operations/{id}) can wait for it. Tenant-owned: row-level security.
--
-- status: pending (accepted, still running: for long commands), succeeded, failed (the
-- command was well formed but could not be applied: the error says why). A command that is
-- not well formed has no row here: it is a dead letter (dead_letters.operation_id).
-- secrets_enc: secrets the command generated (AES-256-GCM token, IMP_SECRET_KEY, associated
-- data "imp.operation|<tenant_id>|<operation_id>"), so the operator who sent it can be shown
-- them; the API role cannot read the column.
CREATE TABLE operations (
    operation_id uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL,
    kind         text NOT NULL,
    status       text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    actor        text,
    result       jsonb,
    error        text,
    secrets_enc  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX operations_tenant_time ON operations (tenant_id, created_at);
ALTER TABLE operations ENABLE ROW LEVEL SECURITY;
ALTER TABLE operations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON operations
    USING (tenant_id = imp_current_tenant()) WITH CHECK (tenant_id = imp_current_tenant());

GRANT SELECT, INSERT, UPDATE ON operations TO imperium_app;
GRANT SELECT (operation_id, tenant_id, kind, status, actor, result, error, created_at, updated_at)
    ON operations TO imperium_api;
