-- The knowledge base (ARCHITECTURE.md §6, docs/knowledge-base.md): a tenant's sources, the
-- versions built from them, their chunks with full-text vectors and embeddings, the test
-- questions a version is evaluated with, and the log of what retrieval returned per turn.
-- Tenant-owned: row-level security enabled and forced, policy tenant_isolation; children
-- reference (tenant_id, id) so no row can point into another tenant.
--
-- A version, once built, never changes: kb_chunks has no UPDATE grant, chunks can only be
-- added to a draft, and the only columns of kb_versions the application may update are the
-- lifecycle ones (state, promoted_at, archived_at, eval).

-- Case folding for full-text search that does not depend on the database's locale: in a
-- cluster initialised with the C locale the text-search parser lowercases ASCII only, so
-- Cyrillic (Russian and Kazakh) is folded here. Ё/ё fold to е, as people type it.
-- imp_kb_fold must match the folding of the built-in embedder (common/src/embed_hash.c).
CREATE FUNCTION imp_kb_fold(t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
    SELECT translate(t,
        'АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯЀЂЃЄЅІЇЈЉЊЋЌЍЎЏӘҒҚҢӨҰҮҺӀё',
        'абвгдеежзийклмнопрстуфхцчшщъыьэюяѐђѓєѕіїјљњћќѝўџәғқңөұүһӏе')
$$;

-- SHA-256 (hex) of the UTF-8 bytes of t. convert_to is only STABLE in general (conversions
-- are looked up at run time); converting to UTF8 in a UTF8 database (initdb -E UTF8, which
-- Imperium requires) is the identity, so this wrapper is immutable in fact.
CREATE FUNCTION imp_kb_sha256(t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
    SELECT encode(sha256(convert_to(t, 'UTF8')), 'hex')
$$;

-- The lexemes of a query under the three configurations, as the chunks' full-text columns
-- have them: a JSON array of three arrays (simple, russian, english). Retrieval looks them
-- up in its in-memory index of a version's full-text columns (common/src/retrieval.c); the
-- caller has already dropped its own stop words (imp_kb_query_terms), the Russian and
-- English configurations drop theirs.
CREATE FUNCTION imp_kb_query_lexemes(q text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
    SELECT json_build_array(tsvector_to_array(to_tsvector('simple'::regconfig, f)),
                            tsvector_to_array(to_tsvector('russian'::regconfig, f)),
                            tsvector_to_array(to_tsvector('english'::regconfig, f)))::text
    FROM imp_kb_fold(q) AS f
$$;

-- An OR query of the lexemes of q under one configuration (NULL when q has none), for
-- ranking with ts_rank_cd in SQL. A chat message is a question, not a search expression: the
-- AND of websearch_to_tsquery would demand every word of "how much is a haircut" in one
-- chunk, so each lexeme counts on its own and the rank says how many are covered and how
-- densely.
CREATE FUNCTION imp_kb_tsquery(cfg regconfig, q text) RETURNS tsquery
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
    SELECT string_agg('''' || replace(replace(l, '\', '\\'), '''', '''''') || '''', ' | ')::tsquery
    FROM unnest(tsvector_to_array(to_tsvector(cfg, imp_kb_fold(q)))) AS l
$$;

CREATE TABLE kb_sources (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name       text NOT NULL CHECK (name ~ '^[^[:cntrl:]/]{1,200}$' AND name = btrim(name)),
    format     text NOT NULL CHECK (format IN ('markdown', 'text', 'qa_csv', 'qa_json')),
    content    text NOT NULL CHECK (octet_length(content) <= 524288),
    -- SHA-256 (hex) of the content's UTF-8 bytes, computed by the server so it cannot drift.
    sha256     text GENERATED ALWAYS AS (imp_kb_sha256(content)) STORED,
    deleted    boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name),
    UNIQUE (tenant_id, id)
);

CREATE TABLE kb_versions (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    number         integer NOT NULL CHECK (number > 0),
    state          text NOT NULL DEFAULT 'draft' CHECK (state IN ('draft', 'stable', 'archived')),
    -- [{"source_id", "name", "format", "sha256"}] of the sources the build read.
    built_from     jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(built_from) = 'array'),
    embedder_name  text NOT NULL,
    embedder_model text NOT NULL DEFAULT '',
    embedder_dim   integer NOT NULL CHECK (embedder_dim BETWEEN 1 AND 16384),
    -- {"target_chars", "max_chars", "overlap_chars"} (imp_kb_chunk_settings_t).
    chunk_settings jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(chunk_settings) = 'object'),
    chunk_count    integer NOT NULL DEFAULT 0 CHECK (chunk_count >= 0),
    -- The command that built it: a redelivered build command finds its version.
    operation_id   uuid UNIQUE,
    -- The last evaluation: {"hit_at_1", "hit_at_k", "k", "questions", "missed": [...]}.
    eval           jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    promoted_at    timestamptz,
    archived_at    timestamptz,
    UNIQUE (tenant_id, number),
    UNIQUE (tenant_id, id)
);
-- At most one stable version per tenant.
CREATE UNIQUE INDEX kb_versions_one_stable ON kb_versions (tenant_id) WHERE state = 'stable';

CREATE TABLE kb_chunks (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    uuid NOT NULL,
    version_id   uuid NOT NULL,
    ordinal      integer NOT NULL CHECK (ordinal >= 0),
    source_id    uuid NOT NULL,
    -- "Prices > Haircuts" for prose; the question for a Q&A pair ('' when none).
    heading      text NOT NULL DEFAULT '',
    text         text NOT NULL,
    -- Byte range of the source the chunk was cut from (imp_kb_chunk_t).
    start_offset integer NOT NULL CHECK (start_offset >= 0),
    end_offset   integer NOT NULL CHECK (end_offset >= start_offset),
    char_count   integer NOT NULL CHECK (char_count >= 0),
    token_count  integer NOT NULL CHECK (token_count >= 0),
    -- float32 little-endian, kb_versions.embedder_dim values.
    embedding    bytea NOT NULL,
    -- The heading weighs more than the text (weight A against D).
    tsv_simple   tsvector GENERATED ALWAYS AS (
                     setweight(to_tsvector('simple'::regconfig, imp_kb_fold(heading)), 'A')
                     || to_tsvector('simple'::regconfig, imp_kb_fold(text))) STORED,
    tsv_ru       tsvector GENERATED ALWAYS AS (
                     setweight(to_tsvector('russian'::regconfig, imp_kb_fold(heading)), 'A')
                     || to_tsvector('russian'::regconfig, imp_kb_fold(text))) STORED,
    tsv_en       tsvector GENERATED ALWAYS AS (
                     setweight(to_tsvector('english'::regconfig, imp_kb_fold(heading)), 'A')
                     || to_tsvector('english'::regconfig, imp_kb_fold(text))) STORED,
    UNIQUE (tenant_id, version_id, ordinal),
    FOREIGN KEY (tenant_id, version_id) REFERENCES kb_versions (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, source_id) REFERENCES kb_sources (tenant_id, id)
);
-- Full-text candidates come from a bitmap AND of these with the (tenant, version) B-tree
-- above: the GIN index finds the lexemes, the B-tree keeps the version's rows.
CREATE INDEX kb_chunks_tsv_simple ON kb_chunks USING gin (tsv_simple);
CREATE INDEX kb_chunks_tsv_ru ON kb_chunks USING gin (tsv_ru);
CREATE INDEX kb_chunks_tsv_en ON kb_chunks USING gin (tsv_en);
CREATE INDEX kb_chunks_source ON kb_chunks (tenant_id, source_id);

-- Chunks go only into a draft, with an embedding of the version's dimension.
CREATE FUNCTION imp_kb_chunk_check() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    v_state text;
    v_dim   integer;
BEGIN
    SELECT state, embedder_dim INTO v_state, v_dim
    FROM kb_versions WHERE tenant_id = NEW.tenant_id AND id = NEW.version_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'kb version % not found', NEW.version_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF v_state <> 'draft' THEN
        RAISE EXCEPTION 'kb version % is %: chunks are added to drafts only', NEW.version_id,
            v_state USING ERRCODE = 'check_violation';
    END IF;
    IF octet_length(NEW.embedding) <> 4 * v_dim THEN
        RAISE EXCEPTION 'embedding has % bytes, the version''s dimension % needs %',
            octet_length(NEW.embedding), v_dim, 4 * v_dim USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER kb_chunks_check BEFORE INSERT ON kb_chunks
    FOR EACH ROW EXECUTE FUNCTION imp_kb_chunk_check();

-- A tenant's test questions (kb eval): each names the source or a fragment of the chunk
-- text (heading included) that retrieval should find.
CREATE TABLE kb_eval_questions (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    question          text NOT NULL CHECK (char_length(question) BETWEEN 1 AND 2000),
    expected_source   text,
    expected_fragment text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (expected_source IS NOT NULL OR expected_fragment IS NOT NULL),
    UNIQUE (tenant_id, question),
    UNIQUE (tenant_id, id)
);

-- What retrieval returned for one turn, in order. Append-only for the application.
-- chunks: [{"chunk_id", "ordinal", "score", "fts_rank", "fts_score", "dense_rank",
-- "dense_score"}], best first; ranks are 1-based, 0 when that signal did not find it.
CREATE TABLE retrieval_log (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     uuid NOT NULL,
    operation_id  uuid NOT NULL UNIQUE,
    kb_version_id uuid NOT NULL,
    query         text NOT NULL,
    chunks        jsonb NOT NULL CHECK (jsonb_typeof(chunks) = 'array'),
    confidence    real CHECK (confidence BETWEEN 0 AND 1),
    created_at    timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, kb_version_id) REFERENCES kb_versions (tenant_id, id)
);
CREATE INDEX retrieval_log_tenant_time ON retrieval_log (tenant_id, created_at);
CREATE INDEX retrieval_log_version ON retrieval_log (tenant_id, kb_version_id);

ALTER TABLE kb_sources ENABLE ROW LEVEL SECURITY;
ALTER TABLE kb_sources FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kb_sources
    USING (tenant_id = imp_current_tenant()) WITH CHECK (tenant_id = imp_current_tenant());
ALTER TABLE kb_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE kb_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kb_versions
    USING (tenant_id = imp_current_tenant()) WITH CHECK (tenant_id = imp_current_tenant());
ALTER TABLE kb_chunks ENABLE ROW LEVEL SECURITY;
ALTER TABLE kb_chunks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kb_chunks
    USING (tenant_id = imp_current_tenant()) WITH CHECK (tenant_id = imp_current_tenant());
ALTER TABLE kb_eval_questions ENABLE ROW LEVEL SECURITY;
ALTER TABLE kb_eval_questions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kb_eval_questions
    USING (tenant_id = imp_current_tenant()) WITH CHECK (tenant_id = imp_current_tenant());
ALTER TABLE retrieval_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE retrieval_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON retrieval_log
    USING (tenant_id = imp_current_tenant()) WITH CHECK (tenant_id = imp_current_tenant());

GRANT SELECT, INSERT, UPDATE, DELETE ON kb_sources, kb_eval_questions TO imperium_app;
GRANT SELECT, INSERT, DELETE ON kb_versions, kb_chunks TO imperium_app;
GRANT UPDATE (state, promoted_at, archived_at, eval) ON kb_versions TO imperium_app;
GRANT SELECT, INSERT ON retrieval_log TO imperium_app;
GRANT SELECT ON kb_sources, kb_versions, kb_chunks, kb_eval_questions, retrieval_log
    TO imperium_api;
