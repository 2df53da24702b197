# Shared by the imperium-send tests (it_send_*.sh). Source it after the harness has exported
# the environment.
source "$IMP_SOURCE_DIR/tests/integration/worker_lib.sh"

export IMP_SECRET_KEY=ab0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd
GEN_SECRET="whsec_$(printf 'generic-callback-secret-32-bytes' | base64)"

# mk_tenant UUID SLUG
mk_tenant() {
    q "INSERT INTO tenants (id, slug, name) VALUES ('$1', '$2', '$2')" >/dev/null
}

# set_channel TENANT KIND SETTINGS_JSON SECRETS_JSON
set_channel() {
    local token
    token=$(printf '%s' "$4" | "$BIN/send_seal" "$1") || fail "send_seal failed"
    q "INSERT INTO channels (tenant_id, kind, settings, secrets_enc)
       VALUES ('$1', '$2', '$3'::jsonb, '$token')
       ON CONFLICT (tenant_id, kind, name) DO UPDATE
       SET settings = EXCLUDED.settings, secrets_enc = EXCLUDED.secrets_enc" >/dev/null
}

# start_fake NAME [ARGS…]: a fake provider; its base URL in FAKE_URL, record in NAME.rec.
start_fake() {
    local name=$1
    shift
    rm -f "$IMP_TEST_TMP/$name.port"
    : >"$IMP_TEST_TMP/$name.rec"
    start_bg "fake-$name" "$BIN/send_fake_provider" --port-file "$IMP_TEST_TMP/$name.port" \
        --record "$IMP_TEST_TMP/$name.rec" "$@"
    wait_for_file "$IMP_TEST_TMP/$name.port" 10 || fail "fake $name did not start"
    FAKE_URL="http://127.0.0.1:$(cat "$IMP_TEST_TMP/$name.port")"
}

# requests NAME: how many requests fake NAME received.
requests() { wc -l <"$IMP_TEST_TMP/$1.rec" | tr -d ' '; }
# request_field NAME INDEX PYEXPR: a field of request INDEX (r = the record) via python.
request_field() {
    python3 - "$IMP_TEST_TMP/$1.rec" "$2" "$3" <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])][int(sys.argv[2])]
v = eval(sys.argv[3])
print(json.dumps(v) if not isinstance(v, str) else v)
PY
}

# start_send [VAR=VALUE…]: the send worker in the background ($SEND_PID).
start_send() {
    start_bg send env IMP_PG_DSN="$IMP_PG_APP_DSN" IMP_LOG_LEVEL=info \
        IMP_WORKER_RETRY_BASE=200ms IMP_WORKER_RETRY_MAX=2s IMP_WORKER_RELAY_INTERVAL=200ms \
        IMP_WORKER_RELAY_GRACE=0 IMP_WORKER_INFRA_BACKOFF_MAX=1s IMP_SEND_TIMEOUT=2s \
        IMP_SEND_ALLOW_CIDRS=127.0.0.0/8 IMP_REDIS_URL="$IMP_REDIS_URL" \
        IMP_CHATFLOW_API_URL= IMP_WHATSAPP_API_URL= IMP_TELEGRAM_API_URL= \
        "$@" "$BIN/imperium-send"
    SEND_PID=$BG_PID
}

# send_event TENANT NAME CHANNEL [ARGS…]: publish an outbound event; prints its id.
send_event() {
    local t=$1 n=$2 c=$3
    shift 3
    "$BIN/send_feed" --tenant "$t" --name "$n" --channel "$c" "$@" || fail "send_feed failed"
}

# outbound ID COLUMN: a column of the outbound row.
outbound() { q "SELECT $2 FROM outbound WHERE operation_id = '$1'"; }
state_is() { [ "$(outbound "$1" state)" = "$2" ]; }
