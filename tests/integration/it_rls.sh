#!/usr/bin/env bash
# Row-level security: the application role sees and writes only the tenant of its
# transaction, sees nothing without one, and the API role cannot write at all. Also checks
# the catalog invariants that keep isolation airtight as tables are added.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/lib/common.sh"

A=aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa
B=bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb

# as_tenant ROLE TENANT SQL: run SQL as ROLE (app|api) in a transaction with app.tenant_id.
as_tenant() {
    "psql_$1" <<SQL
BEGIN;
SELECT set_config('app.tenant_id', '$2', true) \g /dev/null
$3;
COMMIT;
SQL
}

# Two tenants with the same shape of data; A has 2 conversations, B has 3.
psql_owner <<SQL
INSERT INTO tenants (id, slug, name) VALUES ('$A', 'tenant-a', 'A'), ('$B', 'tenant-b', 'B');
INSERT INTO channels (tenant_id, kind, secrets_enc) VALUES ('$A', 'generic', 'sealed-a'),
    ('$B', 'generic', 'sealed-b'), ('$B', 'telegram', 'sealed-b2');
INSERT INTO conversations (tenant_id, channel_kind, conversation_key)
    SELECT '$A', 'generic', 'a-' || i FROM generate_series(1, 2) i;
INSERT INTO conversations (tenant_id, channel_kind, conversation_key)
    SELECT '$B', 'generic', 'b-' || i FROM generate_series(1, 3) i;
INSERT INTO messages (tenant_id, conversation_id, direction, operation_id, body)
    SELECT tenant_id, id, 'in', gen_random_uuid(), 'hello' FROM conversations;
INSERT INTO audit_log (tenant_id, actor, action) VALUES ('$A', 'test', 'a'), ('$B', 'test', 'b');
INSERT INTO dead_letters (worker, class, reason, topic, kafka_partition, kafka_offset,
                          tenant_id, envelope)
    VALUES ('w', 'poison', 'bad', 'imp.inbound.v1', 0, 1, '$A', '\x7b7d'),
           ('w', 'poison', 'bad', 'imp.inbound.v1', 0, 2, '$B', '\x7b7d');
SQL

# ---- reads ------------------------------------------------------------------------------
for role in app api; do
    assert_eq "$role as A: tenants" "tenant-a" "$(as_tenant "$role" "$A" "SELECT string_agg(slug, ',') FROM tenants")"
    assert_eq "$role as A: channels" 1 "$(as_tenant "$role" "$A" "SELECT count(*) FROM channels")"
    assert_eq "$role as A: conversations" 2 "$(as_tenant "$role" "$A" "SELECT count(*) FROM conversations")"
    assert_eq "$role as A: messages" 2 "$(as_tenant "$role" "$A" "SELECT count(*) FROM messages")"
    assert_eq "$role as A: audit_log" 1 "$(as_tenant "$role" "$A" "SELECT count(*) FROM audit_log")"
    assert_eq "$role as B: conversations" 3 "$(as_tenant "$role" "$B" "SELECT count(*) FROM conversations")"
    assert_eq "$role as A: B's conversation by key" 0 \
        "$(as_tenant "$role" "$A" "SELECT count(*) FROM conversations WHERE conversation_key = 'b-1'")"
    # No tenant, an empty one (what a session shows after a transaction-local setting), or
    # garbage: no rows and no error.
    assert_eq "$role without app.tenant_id: no rows" 0 \
        "$("psql_$role" -c "SELECT count(*) FROM conversations")"
    assert_eq "$role with an empty app.tenant_id: no rows" 0 \
        "$(as_tenant "$role" "" "SELECT count(*) FROM conversations")"
    assert_eq "$role with a malformed app.tenant_id: no rows" 0 \
        "$(as_tenant "$role" "not-a-uuid" "SELECT count(*) FROM messages")"
    assert_eq "$role: the setting ends with the transaction" "0" \
        "$("psql_$role" <<SQL
BEGIN;
SELECT set_config('app.tenant_id', '$A', true) \g /dev/null
COMMIT;
SELECT count(*) FROM tenants;
SQL
)"
done

# ---- app writes -------------------------------------------------------------------------
assert_eq "app as A: insert for A" "" \
    "$(as_tenant app "$A" "INSERT INTO conversations (tenant_id, channel_kind, conversation_key) VALUES ('$A', 'generic', 'a-3')")"
assert_fails "app as A: insert for B is refused" as_tenant app "$A" \
    "INSERT INTO conversations (tenant_id, channel_kind, conversation_key) VALUES ('$B', 'generic', 'b-x')"
assert_contains "  by the policy" "$ASSERT_OUTPUT" "violates row-level security policy"
assert_fails "app as A: moving a row to B is refused" as_tenant app "$A" \
    "UPDATE conversations SET tenant_id = '$B' WHERE conversation_key = 'a-1'"
assert_contains "  by the policy" "$ASSERT_OUTPUT" "violates row-level security policy"
assert_fails "app without a tenant: insert is refused" psql_app -c \
    "INSERT INTO conversations (tenant_id, channel_kind, conversation_key) VALUES ('$A', 'generic', 'a-x')"
assert_eq "app as A: update of B's rows touches nothing" "UPDATE 0" \
    "$(psql_app <<SQL
BEGIN;
SELECT set_config('app.tenant_id', '$A', true) \g /dev/null
\set QUIET off
UPDATE conversations SET state = 'handover' WHERE tenant_id = '$B';
\set QUIET on
COMMIT;
SQL
)"
assert_eq "app as A: delete of B's rows touches nothing" "DELETE 0" \
    "$(psql_app <<SQL
BEGIN;
SELECT set_config('app.tenant_id', '$A', true) \g /dev/null
\set QUIET off
DELETE FROM messages WHERE tenant_id = '$B';
\set QUIET on
COMMIT;
SQL
)"
assert_eq "B's data is intact" "3|3|bot" \
    "$(psql_owner -c "SELECT count(*), (SELECT count(*) FROM messages WHERE tenant_id = '$B'), min(state) FROM conversations WHERE tenant_id = '$B'")"
b_conv=$(psql_owner -c "SELECT id FROM conversations WHERE conversation_key = 'b-1'")
assert_fails "app as A: a message of A pointing into B's conversation is refused" as_tenant app "$A" \
    "INSERT INTO messages (tenant_id, conversation_id, direction, operation_id) VALUES ('$A', '$b_conv', 'in', gen_random_uuid())"
assert_contains "  by the (tenant_id, id) foreign key" "$ASSERT_OUTPUT" "violates foreign key constraint"
assert_fails "app: audit_log is append-only" as_tenant app "$A" "DELETE FROM audit_log"
assert_eq "app: platform audit entries can be written" "" \
    "$(psql_app -c "INSERT INTO audit_log (actor, action) VALUES ('dlq', 'purge')")"
assert_eq "app: but not read back" 0 "$(psql_app -c "SELECT count(*) FROM audit_log")"

# ---- the API role -----------------------------------------------------------------------
for stmt in \
    "INSERT INTO tenants (id, slug, name) VALUES ('$A', 'x', 'x')" \
    "UPDATE conversations SET state = 'handover'" \
    "DELETE FROM messages" \
    "INSERT INTO audit_log (tenant_id, actor, action) VALUES ('$A', 'api', 'x')" \
    "INSERT INTO outbox (topic, payload) VALUES ('t', '{}')"; do
    assert_fails "api as A cannot write: ${stmt%% (*}" as_tenant api "$A" "$stmt"
    assert_contains "  permission denied" "$ASSERT_OUTPUT" "permission denied"
done
assert_fails "api cannot read channel secrets" as_tenant api "$A" "SELECT secrets_enc FROM channels"
assert_eq "api reads the other channel columns" "generic" \
    "$(as_tenant api "$A" "SELECT kind FROM channels")"
for table in inbox outbox dead_letters schema_migrations; do
    assert_fails "api cannot read $table" psql_api -c "SELECT count(*) FROM $table"
done
assert_eq "api as A: its own dead letters through the view" 1 \
    "$(as_tenant api "$A" "SELECT count(*) FROM tenant_dead_letters")"
assert_eq "api without a tenant: no dead letters" 0 \
    "$(psql_api -c "SELECT count(*) FROM tenant_dead_letters")"
assert_fails "api cannot resolve slugs" psql_api -c "SELECT imp_tenant_id_by_slug('tenant-b')"
assert_eq "app resolves slugs" "$B" "$(psql_app -c "SELECT imp_tenant_id_by_slug('tenant-b')")"

# ---- platform tables: the app role works across tenants -------------------------------
assert_eq "app reads dead letters of every tenant" 2 "$(psql_app -c "SELECT count(*) FROM dead_letters")"

# ---- catalog invariants -----------------------------------------------------------------
assert_eq "no application role is superuser, bypasses RLS or owns a table" 0 \
    "$(psql_owner -c "SELECT count(*) FROM pg_roles r WHERE r.rolname IN ('imperium_app', 'imperium_api') AND (r.rolsuper OR r.rolbypassrls OR EXISTS (SELECT 1 FROM pg_class c WHERE c.relowner = r.oid))")"
assert_eq "every table the API role can read has RLS enabled and forced" "" \
    "$(psql_owner -c "SELECT string_agg(c.relname, ',') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND (has_table_privilege('imperium_api', c.oid, 'SELECT') OR has_any_column_privilege('imperium_api', c.oid, 'SELECT')) AND NOT (c.relrowsecurity AND c.relforcerowsecurity)")"
assert_eq "every tenant table without RLS is a platform table" "dead_letters,inbox,outbox" \
    "$(psql_owner -c "SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relrowsecurity")"
assert_eq "the app role deletes no record of what answered or what happened" "" \
    "$(psql_owner -c "SELECT string_agg(t, ',') FROM unnest(ARRAY['kb_versions', 'kb_chunks', 'kb_releases', 'bot_versions', 'bot_releases', 'llm_turns', 'message_traces', 'audit_log', 'outbound']) t WHERE has_table_privilege('imperium_app', t, 'DELETE')")"
assert_eq "the API role writes nowhere" "" \
    "$(psql_owner -c "SELECT string_agg(c.relname, ',') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v') AND (has_table_privilege('imperium_api', c.oid, 'INSERT,UPDATE,DELETE,TRUNCATE') OR has_any_column_privilege('imperium_api', c.oid, 'INSERT,UPDATE'))")"
