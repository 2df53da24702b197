#!/usr/bin/env bash
# imperium-migrate: a fresh database migrated twice (the second run a no-op), concurrent
# runs, a failing file (stops, names the file and line, leaves the last good version), a
# changed checksum, an out-of-order file, transaction control in a file, bad invocations.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/lib/common.sh"

MIGRATE="$IMP_BUILD_DIR/bin/imperium-migrate"
PG_URL="postgresql://postgres@127.0.0.1:$IMP_PG_PORT"
NFILES=$(find "$IMP_SOURCE_DIR/migrations" -maxdepth 1 -name '[0-9]*_*.sql' | wc -l)

new_db() { psql_owner -c "CREATE DATABASE $1"; }
migrate_db() { # migrate_db DB DIR [ARGS…]
    local db=$1 dir=$2
    shift 2
    IMP_PG_DSN="$PG_URL/$db" IMP_MIGRATIONS_DIR="$dir" IMP_LOG_LEVEL=warn "$MIGRATE" "$@"
}
q() { psql_as "$PG_URL/$1" -c "$2"; } # q DB SQL

# ---- a fresh database, migrated twice ---------------------------------------------------
new_db fresh
t0=$(now_ms)
assert_ok "first run applies everything" migrate_db fresh "$IMP_SOURCE_DIR/migrations"
say "fresh database migrated in $(($(now_ms) - t0)) ms"
assert_eq "schema_migrations rows after the first run" "$NFILES" \
    "$(q fresh 'SELECT count(*) FROM schema_migrations')"
before=$(q fresh "SELECT string_agg(version || ':' || checksum || ':' || applied_at, ',' ORDER BY version) FROM schema_migrations")
tables_before=$(q fresh "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")

IMP_PG_DSN="$PG_URL/fresh" IMP_MIGRATIONS_DIR="$IMP_SOURCE_DIR/migrations" \
    "$MIGRATE" >"$IMP_TEST_TMP/second.log" 2>&1 || fail "second run failed: $(cat "$IMP_TEST_TMP/second.log")"
assert_contains "second run applies nothing" "$(cat "$IMP_TEST_TMP/second.log")" '"applied":0'
assert_eq "schema_migrations unchanged by the second run" "$before" \
    "$(q fresh "SELECT string_agg(version || ':' || checksum || ':' || applied_at, ',' ORDER BY version) FROM schema_migrations")"
assert_eq "tables unchanged by the second run" "$tables_before" \
    "$(q fresh "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")"
status=$(migrate_db fresh "$IMP_SOURCE_DIR/migrations" status)
assert_eq "status lists every file as applied" "$NFILES" "$(grep -c ' applied ' <<<"$status")"
assert_eq "tables belong to imperium_owner" "0" \
    "$(q fresh "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations' AND tableowner <> 'imperium_owner'")"

# ---- concurrent runs on one database: the advisory lock serialises them ----------------
new_db race
migrate_db race "$IMP_SOURCE_DIR/migrations" >"$IMP_TEST_TMP/race1.log" 2>&1 &
r1=$!
migrate_db race "$IMP_SOURCE_DIR/migrations" >"$IMP_TEST_TMP/race2.log" 2>&1 &
r2=$!
wait "$r1" || fail "concurrent run 1 failed: $(cat "$IMP_TEST_TMP/race1.log")"
wait "$r2" || fail "concurrent run 2 failed: $(cat "$IMP_TEST_TMP/race2.log")"
pass "two concurrent runs both succeed"
assert_eq "concurrent runs applied each file once" "$NFILES" \
    "$(q race 'SELECT count(*) FROM schema_migrations')"

# ---- a failing file ---------------------------------------------------------------------
work="$IMP_TEST_TMP/migrations"
cp -r "$IMP_SOURCE_DIR/migrations" "$work"
cat >"$work/9001_good.sql" <<'SQL'
CREATE TABLE it_good (id integer);
SQL
cat >"$work/9002_bad.sql" <<'SQL'
CREATE TABLE it_partial (id integer);
INSERT INTO it_partial VALUES (1);
CREATE TABLE it_broken (id integr);
SQL
cat >"$work/9003_after.sql" <<'SQL'
CREATE TABLE it_after (id integer);
SQL
new_db bad
assert_fails "a failing migration fails the run" migrate_db bad "$work"
assert_contains "the error names the file" "$ASSERT_OUTPUT" "migration 9002_bad.sql failed"
assert_contains "the error names the line" "$ASSERT_OUTPUT" "(line 3)"
assert_eq "the database stays at the last good version" "9001" \
    "$(q bad 'SELECT max(version) FROM schema_migrations')"
assert_eq "the good file before it was applied" "t" \
    "$(q bad "SELECT to_regclass('it_good') IS NOT NULL")"
assert_eq "the failing file left nothing behind" "t" \
    "$(q bad "SELECT to_regclass('it_partial') IS NULL")"
assert_eq "nothing after the failing file ran" "t" \
    "$(q bad "SELECT to_regclass('it_after') IS NULL")"

# Fixed, the run continues from there.
sed -i 's/integr/integer/' "$work/9002_bad.sql"
assert_ok "the fixed file applies" migrate_db bad "$work"
assert_eq "now at the newest version" "9003" "$(q bad 'SELECT max(version) FROM schema_migrations')"

# ---- a changed checksum -----------------------------------------------------------------
echo "-- edited after it was applied" >>"$work/9001_good.sql"
assert_fails "a changed applied file fails the run" migrate_db bad "$work"
assert_contains "the error names the changed file" "$ASSERT_OUTPUT" \
    "migration 9001_good.sql was changed after it was applied"
assert_fails "status reports the change with exit 1" migrate_db bad "$work" status
assert_contains "status marks the file changed" "$(grep 9001_good <<<"$ASSERT_OUTPUT")" " changed "
sed -i '$d' "$work/9001_good.sql" # undo the edit

# ---- an out-of-order file, transaction control ------------------------------------------
cat >"$work/8999_late.sql" <<'SQL'
CREATE TABLE it_late (id integer);
SQL
assert_fails "a pending file older than the newest applied one fails" migrate_db bad "$work"
assert_contains "the error names the late file" "$ASSERT_OUTPUT" "8999_late.sql is pending"
rm "$work/8999_late.sql"

cat >"$work/9004_commits.sql" <<'SQL'
CREATE TABLE it_commits (id integer);
COMMIT;
SQL
assert_fails "a file with its own COMMIT fails" migrate_db bad "$work"
assert_contains "the error names it" "$ASSERT_OUTPUT" \
    "migration 9004_commits.sql failed: must not contain transaction control"
assert_eq "it is not recorded" "9003" "$(q bad 'SELECT max(version) FROM schema_migrations')"
rm "$work/9004_commits.sql"

# ---- bad invocations --------------------------------------------------------------------
cat >"$work/9005-dash.sql" <<'SQL'
SELECT 1;
SQL
assert_fails "a badly named file fails" migrate_db bad "$work"
assert_contains "the error names it" "$ASSERT_OUTPUT" "9005-dash.sql is not named NNNN_name.sql"
rm "$work/9005-dash.sql"

out=$(env -u IMP_PG_DSN "$MIGRATE" 2>&1) && fail "no IMP_PG_DSN: expected failure"
assert_eq "no IMP_PG_DSN: one line naming it" "imperium-migrate: IMP_PG_DSN is required but not set" "$out"
rc=0
"$MIGRATE" sideways >/dev/null 2>&1 || rc=$?
assert_eq "an unknown command exits 2" 2 "$rc"
assert_fails "an unreachable database fails" env IMP_PG_DSN="postgresql://postgres@127.0.0.1:1/x" \
    IMP_MIGRATIONS_DIR="$work" "$MIGRATE"
assert_contains "and says so" "$ASSERT_OUTPUT" "could not connect to postgres"
