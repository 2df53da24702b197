-- The worker runtime's tables (ARCHITECTURE.md §5): inbox (dedupe), outbox (events written
-- in the handler's transaction, published after commit), dead_letters.
--
-- Platform tables: read and written across tenants by the runtime, the outbox relay and
-- imperium-dlq, so no row-level security; granted to imperium_app only. The API role sees
-- its tenant's dead letters through the tenant_dead_letters view and nothing else here.

-- One row per (worker, event) whose effects are committed.
CREATE TABLE inbox (
    worker       text NOT NULL,
    operation_id uuid NOT NULL,
    tenant_id    uuid,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (worker, operation_id)
);
-- For retention (delete rows older than the longest redelivery horizon); BRIN costs next
-- to nothing on the insert path.
CREATE INDEX inbox_processed_at ON inbox USING brin (processed_at);

-- Events to publish. payload is the envelope exactly as it will be produced; headers is a
-- JSON object of Kafka header name -> value; published_at stays NULL until the broker has
-- acknowledged it.
CREATE TABLE outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic        text NOT NULL,
    key          text,
    payload      text NOT NULL,
    headers      jsonb,
    tenant_id    uuid,
    operation_id uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- Events a worker gave up on. envelope and kafka_key are the bytes as consumed (a poison
-- event need not be valid JSON or even UTF-8). One row per consumed message and worker:
-- dead-lettering the same message again is a conflict (use ON CONFLICT DO NOTHING).
CREATE TABLE dead_letters (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    worker          text NOT NULL,
    class           text NOT NULL CHECK (class IN ('infra', 'retriable', 'poison', 'fatal')),
    reason          text NOT NULL,
    topic           text NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset    bigint NOT NULL,
    kafka_key       bytea,
    operation_id    uuid,
    tenant_id       uuid,
    attempt         integer NOT NULL DEFAULT 0,
    envelope        bytea NOT NULL,
    headers         jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    replayed_at     timestamptz,
    replayed_by     text,
    replay_count    integer NOT NULL DEFAULT 0,
    UNIQUE (worker, topic, kafka_partition, kafka_offset)
);
CREATE INDEX dead_letters_worker_time ON dead_letters (worker, created_at);
CREATE INDEX dead_letters_tenant_time ON dead_letters (tenant_id, created_at);
CREATE INDEX dead_letters_operation ON dead_letters (operation_id);

-- The API's window on dead letters: its own tenant's only. The view runs with its owner's
-- rights on dead_letters; security_barrier keeps caller-supplied functions from seeing rows
-- the tenant filter removes.
CREATE VIEW tenant_dead_letters WITH (security_barrier) AS
    SELECT id, worker, class, reason, topic, kafka_partition, kafka_offset, operation_id,
           tenant_id, attempt, envelope, created_at, replayed_at, replayed_by, replay_count
    FROM dead_letters
    WHERE tenant_id = imp_current_tenant();

GRANT SELECT, INSERT, UPDATE, DELETE ON inbox, outbox, dead_letters TO imperium_app;
GRANT SELECT ON tenant_dead_letters TO imperium_api;
