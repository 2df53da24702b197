-- Bots and their versions (ARCHITECTURE.md §6, §7; docs/bot-versions.md): what a tenant's bot
-- says besides its knowledge base — the system instruction given to the LLM, the QC rules and
-- the safe reply — versioned, with one stable and at most one canary version per bot, and the
-- history of releases for rollback. The tenant's release channel (tenants.release_channel,
-- 0001) says whether its traffic is answered by the canary version, when there is one, or by
-- the stable one. A tenant without any version is answered as before from tenants.settings.
--
-- Tenant-owned: row-level security enabled and forced, policy tenant_isolation; children
-- reference (tenant_id, id), so no row can point into another tenant. A version, once drafted,
-- never changes: the application may update only its lifecycle columns (state, published_at,
-- archived_at). No command deletes versions.

-- One bot per tenant for now ('default'); the name leaves room for more.
CREATE TABLE bots (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name       text NOT NULL DEFAULT 'default' CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name),
    UNIQUE (tenant_id, id)
);

CREATE TABLE bot_versions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL,
    bot_id        uuid NOT NULL,
    number        integer NOT NULL CHECK (number > 0),
    state         text NOT NULL DEFAULT 'draft'
                  CHECK (state IN ('draft', 'canary', 'stable', 'archived')),
    -- The LLM's system instruction; NULL: imperium-rag's default instruction.
    instruction   text CHECK (char_length(instruction) BETWEEN 1 AND 16000),
    -- {"qc": {"min_confidence", "max_length", "must_cite", "forbidden_topics"},
    --  "safe_reply"}: checked by imperium-control (workers/control/bot_validate.c).
    settings      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
    -- The knowledge-base version a canary answers from (NULL: the tenant's stable one). Only
    -- a canary uses it; a stable bot version answers from the stable knowledge base.
    kb_version_id uuid,
    -- The command that drafted it.
    operation_id  uuid UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    archived_at   timestamptz,
    UNIQUE (tenant_id, bot_id, number),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, bot_id) REFERENCES bots (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, kb_version_id) REFERENCES kb_versions (tenant_id, id)
);
-- At most one stable and one canary version per bot.
CREATE UNIQUE INDEX bot_versions_one_stable ON bot_versions (tenant_id, bot_id)
    WHERE state = 'stable';
CREATE UNIQUE INDEX bot_versions_one_canary ON bot_versions (tenant_id, bot_id)
    WHERE state = 'canary';

-- One row each time imperium-control moves a bot's stable or canary pointer. `bot rollback`
-- goes back to the version that was stable before the current one was published (the
-- previous_version_id of the current version's latest stable publish row), so rolling back
-- twice walks the history backwards, as kb_releases does. Append-only for the application.
CREATE TABLE bot_releases (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    bot_id              uuid NOT NULL,
    channel             text NOT NULL CHECK (channel IN ('stable', 'canary')),
    action              text NOT NULL CHECK (action IN ('publish', 'rollback')),
    -- The version that took the channel, and the one that held it until then (NULL: none).
    version_id          uuid NOT NULL,
    previous_version_id uuid,
    -- The command (imp.command.bot.publish.v1 / .rollback.v1) that did it.
    operation_id        uuid NOT NULL UNIQUE,
    actor               text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (previous_version_id IS DISTINCT FROM version_id),
    CHECK (action = 'publish' OR channel = 'stable'),
    FOREIGN KEY (tenant_id, bot_id) REFERENCES bots (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, version_id) REFERENCES bot_versions (tenant_id, id),
    FOREIGN KEY (tenant_id, previous_version_id) REFERENCES bot_versions (tenant_id, id)
);
CREATE INDEX bot_releases_version ON bot_releases (tenant_id, version_id, id);

-- The bot version whose rules judged the turn (NULL: tenants.settings).
ALTER TABLE message_traces ADD COLUMN bot_version_id uuid;
ALTER TABLE message_traces ADD FOREIGN KEY (tenant_id, bot_version_id)
    REFERENCES bot_versions (tenant_id, id);

ALTER TABLE bots ENABLE ROW LEVEL SECURITY;
ALTER TABLE bots FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON bots
    USING (tenant_id = imp_current_tenant()) WITH CHECK (tenant_id = imp_current_tenant());
ALTER TABLE bot_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE bot_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON bot_versions
    USING (tenant_id = imp_current_tenant()) WITH CHECK (tenant_id = imp_current_tenant());
ALTER TABLE bot_releases ENABLE ROW LEVEL SECURITY;
ALTER TABLE bot_releases FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON bot_releases
    USING (tenant_id = imp_current_tenant()) WITH CHECK (tenant_id = imp_current_tenant());

GRANT SELECT, INSERT ON bots, bot_versions, bot_releases TO imperium_app;
GRANT UPDATE (state, published_at, archived_at) ON bot_versions TO imperium_app;
GRANT SELECT ON bots, bot_versions, bot_releases TO imperium_api;
