-- The history of a tenant's stable knowledge-base version (docs/knowledge-base-operations.md):
-- one row each time imperium-indexer moves the stable pointer. `kb rollback` goes back to
-- the version that was stable before the current one was promoted (the previous_version_id
-- of the current version's latest promote row), so rolling back twice walks the history
-- backwards instead of toggling between two versions.
--
-- Tenant-owned: row-level security enabled and forced, policy tenant_isolation; the versions
-- are referenced by (tenant_id, id), so a row can never point into another tenant.
-- Append-only for the application.
CREATE TABLE kb_releases (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    action              text NOT NULL CHECK (action IN ('promote', 'rollback')),
    -- The version that became stable, and the one that was stable until then (NULL: none).
    version_id          uuid NOT NULL,
    previous_version_id uuid,
    -- The command (imp.command.kb.promote.v1 / .rollback.v1) that did it.
    operation_id        uuid NOT NULL UNIQUE,
    actor               text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (previous_version_id IS DISTINCT FROM version_id),
    FOREIGN KEY (tenant_id, version_id) REFERENCES kb_versions (tenant_id, id),
    FOREIGN KEY (tenant_id, previous_version_id) REFERENCES kb_versions (tenant_id, id)
);
CREATE INDEX kb_releases_version ON kb_releases (tenant_id, version_id, id);

ALTER TABLE kb_releases ENABLE ROW LEVEL SECURITY;
ALTER TABLE kb_releases FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kb_releases
    USING (tenant_id = imp_current_tenant()) WITH CHECK (tenant_id = imp_current_tenant());

GRANT SELECT, INSERT ON kb_releases TO imperium_app;
GRANT SELECT ON kb_releases TO imperium_api;
