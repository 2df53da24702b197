# The outbox purge and relay: published rows older than IMP_WORKER_OUTBOX_RETENTION are
# deleted, younger ones and unpublished ones are kept; an old unpublished row is published by
# the relay first and purged after. The inbox purge: rows older than
# IMP_WORKER_INBOX_RETENTION (14 days by default) go, whichever worker wrote them; younger
# ones stay. All three queries go through indexes, not the whole table.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/worker_lib.sh"

example_setup
# row AGE PUBLISHED_AT KEY: one outbox row created AGE ago (an interval), published at
# PUBLISHED_AT (an SQL expression; NULL: not published).
row() {
    q "INSERT INTO outbox (topic, key, payload, headers, created_at, published_at)
       VALUES ('imp.test.out.v1', '$3', '{\"row\": \"$3\"}', '{}', now() - interval '$1', $2)" >/dev/null
}
# Rows of earlier days, published, in bulk: the purge takes them 10,000 at a time.
q "INSERT INTO outbox (topic, key, payload, headers, created_at, published_at)
   SELECT 'imp.test.out.v1', 'bulk-' || g, '{}', '{}', now() - interval '5 hours',
          now() - interval '5 hours' FROM generate_series(1, 25000) g" >/dev/null
for i in 1 2 3; do row '3 hours' "now() - interval '3 hours'" "old-published-$i"; done
row '2 hours' NULL old-unpublished
for i in 1 2; do row '1 minute' "now() - interval '1 minute'" "young-published-$i"; done
row '1 second' NULL young-unpublished

# inbox ROWS WORKER AGE: ROWS handled events of WORKER, AGE ago.
inbox() {
    q "INSERT INTO inbox (worker, operation_id, state, attempt, processed_at)
       SELECT '$2', gen_random_uuid(), 'done', 0, now() - interval '$3'
       FROM generate_series(1, $1)" >/dev/null
}
inbox 12000 retired-worker '15 days'
inbox 3 example '14 days 1 hour'
inbox 2 example '13 days 23 hours'
inbox 2 retired-worker '1 day'

start_example purge IMP_WORKER_OUTBOX_RETENTION=1h IMP_WORKER_RELAY_INTERVAL=200ms \
    IMP_WORKER_RELAY_GRACE=30s
wait_for 60 "the old published rows purged" at_most 0 \
    "SELECT count(*) FROM outbox WHERE key LIKE 'old-%' OR key LIKE 'bulk-%'" ||
    fail "left: $(q "SELECT string_agg(key || ':' || coalesce(published_at::text, 'unpublished'), ' ')
        FROM outbox WHERE key LIKE 'old-%'") and $(q "SELECT count(*) FROM outbox WHERE key LIKE 'bulk-%'") bulk rows"
wait_for 60 "the inbox rows older than 14 days purged" at_most 0 \
    "SELECT count(*) FROM inbox WHERE processed_at < now() - interval '14 days'" ||
    fail "$(q "SELECT count(*) FROM inbox WHERE processed_at < now() - interval '14 days'") old inbox rows left"
assert_eq "younger inbox rows kept" 4 \
    "$(q "SELECT count(*) FROM inbox WHERE processed_at BETWEEN now() - interval '14 days' AND now() - interval '1 hour'")"
assert_eq "young published rows kept" 2 "$(q "SELECT count(*) FROM outbox WHERE key LIKE 'young-published-%'")"
# The start-up drain publishes every unpublished row, whatever its age; young, it stays.
assert_eq "the young unpublished row published at start-up and kept" 1 \
    "$(q "SELECT count(*) FROM outbox WHERE key = 'young-unpublished' AND published_at IS NOT NULL")"
assert_eq "the old unpublished row reached Kafka before it was purged" 1 \
    "$(kcat -C -b "$IMP_KAFKA_BROKERS" -t imp.test.out.v1 -o beginning -e -q -f '%k\n' |
        grep -cx old-unpublished)"

# The plans, with the settings both run under: the primary key for the purge, the partial
# index for the relay; neither reads the table from end to end.
plan() {
    q "BEGIN; SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true);
       EXPLAIN $1; COMMIT" | tr '\n' ' '
}
PURGE_PLAN=$(plan "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE id < coalesce(
    (SELECT id FROM outbox WHERE created_at >= now() - 3600000 * interval '1 millisecond'
    ORDER BY id LIMIT 1), 9223372036854775807) AND published_at IS NOT NULL ORDER BY id LIMIT 10000)")
assert_contains "purge plan: the primary key" "$PURGE_PLAN" "Index Scan using outbox_pkey"
RELAY_PLAN=$(plan "SELECT id FROM outbox WHERE published_at IS NULL
    AND created_at <= now() - 10000 * interval '1 millisecond' ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED")
assert_contains "relay plan: the partial index" "$RELAY_PLAN" "Index Scan using outbox_unpublished"
INBOX_PLAN=$(plan "DELETE FROM inbox i USING (SELECT worker, operation_id FROM inbox
    WHERE processed_at < now() - 1209600000 * interval '1 millisecond' ORDER BY processed_at LIMIT 10000) old
    WHERE i.worker = old.worker AND i.operation_id = old.operation_id")
assert_contains "inbox purge plan: the processed_at index" "$INBOX_PLAN" "Index Scan using inbox_processed_at"
for p in "$PURGE_PLAN" "$RELAY_PLAN" "$INBOX_PLAN"; do
    case "$p" in *"Seq Scan"* | *"Bitmap"*) fail "a plan reads more than its index: $p" ;; esac
done
pass "outbox purge: 25,003 old published rows deleted, the old unpublished row relayed then purged, young rows kept; inbox purge: 12,003 rows older than 14 days deleted, 4 younger kept"
