-- Roles, schema privileges, the tenant setting read by row-level security, and the first
-- tenant-owned tables: tenants, channels, audit_log.
--
-- Runs as a superuser, or as a role with CREATEROLE that owns the database. Objects are
-- owned by imperium_owner (NOLOGIN); imperium-migrate switches to it for every later file.
-- No passwords here: imperium-migrate sets them from IMP_PG_APP_PASSWORD and
-- IMP_PG_API_PASSWORD when given (docs/database.md).

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'imperium_owner') THEN
        CREATE ROLE imperium_owner NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'imperium_app') THEN
        CREATE ROLE imperium_app LOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'imperium_api') THEN
        CREATE ROLE imperium_api LOGIN NOINHERIT;
    END IF;
    -- Roles are cluster-wide and may predate this database: refuse ones that would defeat
    -- row-level security.
    IF EXISTS (SELECT 1 FROM pg_roles
               WHERE rolname IN ('imperium_app', 'imperium_api')
                 AND (rolsuper OR rolbypassrls)) THEN
        RAISE EXCEPTION 'imperium_app and imperium_api must not be superuser or bypass RLS';
    END IF;
    -- A non-superuser migrator needs membership to act as the owner.
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND current_user <> 'imperium_owner' THEN
        EXECUTE format('GRANT imperium_owner TO %I', current_user);
    END IF;
END
$$;

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO imperium_owner;
GRANT USAGE ON SCHEMA public TO imperium_app, imperium_api;

SET LOCAL ROLE imperium_owner;

-- The tenant of the current transaction, from app.tenant_id (imp_pg_set_tenant). Missing,
-- empty (what a session shows after a transaction-local setting ended) or not a UUID: NULL,
-- so policies match no row instead of raising an error.
CREATE FUNCTION imp_current_tenant() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN current_setting('app.tenant_id', true)
             ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
        THEN current_setting('app.tenant_id', true)::uuid
    END
$$;

CREATE TABLE tenants (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug            text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name            text NOT NULL,
    plan            text NOT NULL DEFAULT 'free',
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    release_channel text NOT NULL DEFAULT 'stable' CHECK (release_channel IN ('stable', 'canary')),
    settings        jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
    USING (id = imp_current_tenant()) WITH CHECK (id = imp_current_tenant());
-- Lets imp_tenant_id_by_slug (SECURITY DEFINER, runs as the owner) see every row.
CREATE POLICY owner_lookup ON tenants FOR SELECT TO imperium_owner USING (true);

-- Slug -> id for the platform workers (control resolves the tenant a command names). Only
-- the id leaves; the API role cannot call it.
CREATE FUNCTION imp_tenant_id_by_slug(p_slug text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
    SELECT id FROM public.tenants WHERE slug = p_slug
$$;
REVOKE EXECUTE ON FUNCTION imp_tenant_id_by_slug(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION imp_tenant_id_by_slug(text) TO imperium_app;

-- A tenant's connection to one provider. settings holds what is not secret (API URL, phone
-- number id, manager chat id, callback URL); secrets_enc is an AES-256-GCM token (key from
-- IMP_SECRET_KEY) of a JSON object of the secrets; previous_secrets_enc keeps the secrets
-- replaced by the last rotation, still accepted until previous_secrets_until.
CREATE TABLE channels (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id              uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind                   text NOT NULL
                           CHECK (kind IN ('chatflow', 'whatsapp', 'telegram', 'generic', 'test')),
    name                   text NOT NULL DEFAULT 'default',
    enabled                boolean NOT NULL DEFAULT true,
    settings               jsonb NOT NULL DEFAULT '{}',
    secrets_enc            text,
    previous_secrets_enc   text,
    previous_secrets_until timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, kind, name),
    UNIQUE (tenant_id, id)
);
ALTER TABLE channels ENABLE ROW LEVEL SECURITY;
ALTER TABLE channels FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON channels
    USING (tenant_id = imp_current_tenant()) WITH CHECK (tenant_id = imp_current_tenant());

-- Every configuration change and operator action. Append-only for the application.
-- tenant_id NULL: a platform action (DLQ purge, ops command without a tenant).
CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    uuid,
    actor        text NOT NULL,
    action       text NOT NULL,
    target       text,
    operation_id uuid,
    before       jsonb,
    after        jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_tenant_time ON audit_log (tenant_id, created_at);
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_log
    USING (tenant_id = imp_current_tenant()) WITH CHECK (tenant_id = imp_current_tenant());
-- Platform entries can be written by the workers but read by no application role.
CREATE POLICY platform_insert ON audit_log FOR INSERT TO imperium_app
    WITH CHECK (tenant_id IS NULL);

GRANT SELECT, INSERT, UPDATE, DELETE ON tenants, channels TO imperium_app;
GRANT SELECT, INSERT ON audit_log TO imperium_app;
GRANT SELECT ON tenants, audit_log TO imperium_api;
GRANT SELECT (id, tenant_id, kind, name, enabled, settings, created_at, updated_at)
    ON channels TO imperium_api;
