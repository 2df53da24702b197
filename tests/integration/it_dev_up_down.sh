#!/usr/bin/env bash
# deploy/dev.sh as its README describes it, in a .dev of its own (DEV_DIR, free ports) and
# with none of the harness's IMP_* settings: `up` starts Postgres, Redis, the dev broker and
# every binary built in build/dev, seeds the demo tenant and prints a signed curl, whose
# message gets the FAQ's answer, as do a ChatFlow, a WhatsApp and a Telegram customer's (the
# replies go to the sink); each pid that `up` records is the process it names; `down`
# leaves none of them running and nothing listening on the fleet's ports; a second `up` on
# the same .dev (the dev broker starts empty, the tenants are published again) answers again.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/ingress_lib.sh" # post_standard, post_meta, …

DEV=$IMP_TEST_TMP/dev
BIN_DIR=$IMP_SOURCE_DIR/build/dev/bin
FLEET=(imperium-control imperium-indexer imperium-dialog imperium-rag imperium-qc
    imperium-send imperium-metering imperium-sentinel imperium-api imperium-ingress)
PG_PORT=$(free_port)
REDIS_PORT=$(free_port)
BROKER_PORT=$(free_port)
INGRESS_PORT=$(free_port)
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; } # something accepts on PORT
# Ten ports above the base, one a binary (DEV_METRICS_BASE_PORT + 1 … + 10).
for _ in $(seq 1 50); do
    METRICS_BASE=$(free_port)
    busy=0
    for i in $(seq 1 10); do listening $((METRICS_BASE + i)) && busy=1; done
    [ $busy = 0 ] && break
done
PORTS=("$PG_PORT" "$REDIS_PORT" "$BROKER_PORT" "$INGRESS_PORT")
for i in $(seq 1 10); do PORTS+=($((METRICS_BASE + i))); done

dev() { # dev CMD: deploy/dev.sh CMD with only this test's DEV_* settings
    env -i PATH="$PATH" HOME="$HOME" LANG=C.UTF-8 DEV_DIR="$DEV" DEV_PG_PORT="$PG_PORT" \
        DEV_REDIS_PORT="$REDIS_PORT" DEV_BROKER_CONTROL_PORT="$BROKER_PORT" \
        DEV_INGRESS_PORT="$INGRESS_PORT" DEV_METRICS_BASE_PORT="$METRICS_BASE" \
        bash "$IMP_SOURCE_DIR/deploy/dev.sh" "$@"
}
# At the end, whatever happened: the .dev's logs into the harness's, and nothing left running.
keep_logs() {
    local f
    for f in "$DEV"/logs/*.log; do
        [ -f "$f" ] && cp "$f" "$IMP_TEST_TMP/logs/dev-$(basename "$f")"
    done
    return 0
}
trap 'keep_logs; dev down >/dev/null 2>&1 || true' EXIT
dev_sql() {
    runuser -u postgres -- "$IMP_PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres \
        -d imperium -qAt -c "$1"
}

# up: the fleet runs, each recorded pid is its process; PIDS holds them.
check_up() { # check_up OUT
    local name pid exe want n=0
    PIDS=()
    for name in redis devbroker "${FLEET[@]}"; do
        case $name in
        redis) want="redis-server redis-check-rdb" ;;
        devbroker) want=imperium-devbroker ;;
        *)
            [ -x "$BIN_DIR/$name" ] || continue
            want=$name
            ;;
        esac
        pid=$(cat "$DEV/run/$name.pid" 2>/dev/null) || fail "$1: no pid recorded for $name"
        exe=$(basename "$(readlink "/proc/$pid/exe" 2>/dev/null)") ||
            fail "$1: $name (pid $pid) is not running: $(tail -n 5 "$DEV/logs/$name.log" 2>/dev/null)"
        [[ " $want " == *" $exe "* ]] || fail "$1: pid $pid recorded for $name is $exe"
        PIDS+=("$pid")
        n=$((n + 1))
    done
    assert_contains "$1: status" "$(dev status)" "running on 127.0.0.1:$PG_PORT"
    pass "$1: $n processes run, each pid recorded is its own process"
}

check_down() { # check_down WHAT
    local pid p
    dev down >"$IMP_TEST_TMP/down.out" 2>&1 || fail "$1: down failed: $(cat "$IMP_TEST_TMP/down.out")"
    for pid in "${PIDS[@]}"; do
        proc_running "$pid" && fail "$1: pid $pid still runs after down: $(ps -o comm= -p "$pid")"
    done
    for p in "${PORTS[@]}"; do
        listening "$p" && fail "$1: something still listens on $p after down"
    done
    assert_contains "$1: status after down" "$(dev status)" "postgres             -        stopped"
    pass "$1: down stopped ${#PIDS[@]} processes and Postgres; none of ${#PORTS[@]} ports listens"
}

# send_demo OUT N: the signed curl that `up` printed into OUT; then the Nth generic answer.
send_demo() {
    local curl
    curl=$(sed -n '/^curl -sS/,/--data-raw/p' "$1" | sed 's/ \\$//' | tr '\n' ' ')
    [ -n "$curl" ] || fail "up printed no curl: $(tail -n 20 "$1")"
    assert_contains "the curl posts to this .dev's ingress" "$curl" "http://127.0.0.1:$INGRESS_PORT/"
    local out
    out=$(eval "$curl") || fail "the curl failed: $out"
    assert_contains "the ingress accepts the signed webhook" "$out" "HTTP/1.1 200"
    answers() {
        [ "$(dev_sql "SELECT count(*) FROM outbound WHERE channel = 'generic' AND state = 'sent'
            AND purpose = 'answer' AND text LIKE '%open every day%'")" -ge "$1" ]
    }
    wait_for 60 "answer $2 of the demo" answers "$2" ||
        fail "no answer $2: $(dev_sql "SELECT state || ' ' || purpose || ' ' || left(text, 60) FROM outbound")"
    assert_eq "generic answers to the demo's question, sent to the sink" "$2" \
        "$(dev_sql "SELECT count(*) FROM outbound WHERE channel = 'generic' AND purpose = 'answer'
            AND state = 'sent' AND text LIKE '%open every day%'")"
}

# The other channels, with the demo's secrets from the .dev's env: one question each, and an
# answer from the FAQ to that customer on that channel.
other_channels() {
    local q="When are you open on Saturday?" cf wa tg
    cf=$(. "$DEV/env" && echo "$IMP_DEMO_SECRET_CHATFLOW")
    wa=$(. "$DEV/env" && echo "$IMP_DEMO_SECRET_WHATSAPP")
    tg=$(. "$DEV/env" && echo "$IMP_DEMO_SECRET_TELEGRAM")
    INGRESS_URL=http://127.0.0.1:$INGRESS_PORT
    post_standard chatflow demo "$cf" cf-dev-1 "{\"event\": \"message.received\", \"message\":
        {\"id\": \"cf-dev-1\", \"chat_id\": \"77001112233\", \"type\": \"text\", \"text\": \"$q\",
        \"from\": {\"id\": \"77001112233\", \"name\": \"Bob\"}}}"
    assert_eq "chatflow webhook accepted" 200 "$STATUS"
    post_meta demo "$wa" "{\"object\": \"whatsapp_business_account\", \"entry\": [{\"id\": \"WABA1\",
        \"changes\": [{\"field\": \"messages\", \"value\": {\"messaging_product\": \"whatsapp\",
        \"metadata\": {\"display_phone_number\": \"15550001111\", \"phone_number_id\": \"100000000000001\"},
        \"contacts\": [{\"profile\": {\"name\": \"Carl\"}, \"wa_id\": \"15550009999\"}],
        \"messages\": [{\"from\": \"15550009999\", \"id\": \"wamid.DEV1\", \"timestamp\": \"1700000000\",
        \"type\": \"text\", \"text\": {\"body\": \"$q\"}}]}}]}]}"
    assert_eq "whatsapp webhook accepted" 200 "$STATUS"
    post_telegram demo "$tg" "{\"update_id\": 70001, \"message\": {\"message_id\": 5, \"date\": 1700000000,
        \"chat\": {\"id\": 4242, \"type\": \"private\"}, \"from\": {\"id\": 4242, \"first_name\": \"Dan\"},
        \"text\": \"$q\"}}"
    assert_eq "telegram webhook accepted" 200 "$STATUS"
    answered() {
        [ "$(dev_sql "SELECT count(DISTINCT channel) FROM outbound WHERE state = 'sent'
            AND purpose = 'answer' AND text LIKE '%open every day%'
            AND (channel, recipient) IN (('chatflow', '77001112233'), ('whatsapp', '15550009999'),
                                         ('telegram', '4242'))")" = 3 ]
    }
    wait_for 60 "answers on chatflow, whatsapp and telegram" answered ||
        fail "answers: $(dev_sql "SELECT string_agg(channel || ' ' || recipient || ' ' || state || ' ' ||
            left(text, 30), '; ') FROM outbound")"
    assert_eq "the sink recorded each, one answer per channel" "chatflow|1 generic|1 telegram|1 whatsapp|1" \
        "$(dev_sql "SELECT string_agg(channel || '|' || n, ' ' ORDER BY channel) FROM (SELECT channel,
            count(*) n FROM outbound WHERE purpose = 'answer' AND provider_message_id LIKE 'sink:%'
            GROUP BY channel) c")"
}

say "deploy/dev.sh up (DEV_DIR=$DEV)"
dev up >"$IMP_TEST_TMP/up1.out" 2>&1 || fail "up failed: $(tail -n 30 "$IMP_TEST_TMP/up1.out")"
cat "$IMP_TEST_TMP/up1.out" >>"$IMP_TEST_TMP/logs/dev-up.log"
check_up "first up"
send_demo "$IMP_TEST_TMP/up1.out" 1
pass "the demo answers the curl that up printed"
other_channels
pass "the demo answers on chatflow, whatsapp and telegram too"
check_down "first down"

dev up >"$IMP_TEST_TMP/up2.out" 2>&1 || fail "second up failed: $(tail -n 30 "$IMP_TEST_TMP/up2.out")"
cat "$IMP_TEST_TMP/up2.out" >>"$IMP_TEST_TMP/logs/dev-up.log"
check_up "second up"
send_demo "$IMP_TEST_TMP/up2.out" 2
pass "after a restart the demo answers again"
check_down "second down"
