# The runtime under duplicates and poison: 10,000 events each published 3 times, shuffled,
# then 10,000 more with 100 malformed messages among them.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/worker_lib.sh"

example_setup
start_example worker

feed --count 10000 --copies 3 --run dup --seed 7
wait_distinct 10000 180
wait_quiet 3
check_effects 0 10000
assert_eq "inbox rows" 10000 "$(q "SELECT count(*) FROM inbox WHERE worker = 'example'")"
assert_eq "dead letters after duplicates" 0 "$(q "SELECT count(*) FROM dead_letters")"

feed --count 10000 --start 10000 --poison 100 --run dup --seed 8
wait_distinct 20000 180
wait_for 60 "100 dead letters" at_least 100 "SELECT count(*) FROM dead_letters"
wait_quiet 3
check_effects 0 20000
assert_eq "dead letters" 100 "$(q "SELECT count(*) FROM dead_letters")"
assert_eq "dead letters are poison" 100 \
    "$(q "SELECT count(*) FROM dead_letters WHERE class = 'poison' AND worker = 'example'")"
assert_eq "dead letters name the input topic" 100 \
    "$(q "SELECT count(*) FROM dead_letters WHERE topic = 'imp.test.v1'")"
# Bytes that are not text (invalid UTF-8, a NUL) are dead letters too, and the worker goes on.
printf '\xff\xfe not utf-8' | kcat -P -b "$IMP_KAFKA_BROKERS" -t imp.test.v1 -k 'bin-1'
printf 'nul\x00inside' | kcat -P -b "$IMP_KAFKA_BROKERS" -t imp.test.v1 -k 'bin-2'
feed --count 100 --start 20000 --run dup --seed 9
wait_distinct 20100 120
wait_for 60 "102 dead letters" at_least 102 "SELECT count(*) FROM dead_letters"
wait_quiet 3
check_effects 0 20100
assert_eq "dead letters with binary envelopes" 2 "$(q "SELECT count(*) FROM dead_letters
    WHERE envelope IN ('\\xfffe206e6f74207574662d38'::bytea, 'nul'::bytea || '\\x00'::bytea || 'inside'::bytea)")"
wait_for 30 "outbox published" at_most 0 "SELECT count(*) FROM outbox WHERE published_at IS NULL"
dlq_on_topic=$(kcat -C -b "$IMP_KAFKA_BROKERS" -t imp.dlq.example.v1 -o beginning -e -q -f '%o\n' | wc -l)
assert_eq "messages on imp.dlq.example.v1" 102 "$dlq_on_topic"
pass "10,000 x 3 shuffled: exactly once; 100 poison and 2 binary messages: exactly those dead-lettered"
