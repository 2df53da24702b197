# Shared by the ingress integration tests (it_ingress_*.sh) and the ingress benchmark.
# Source it after the harness has exported the environment.
#
#   publish_tenants SPEC_JSON     snapshots onto imp.tenants.v1 (progs/ingress_tenants.c)
#   standard_tenants              tenants a and b (all four channels), c (disabled), d (generic
#                                 only); their ids and secrets are the variables below
#   start_ingress NAME [VAR=VALUE…]   imperium-ingress on a free port: $INGRESS_URL, $BG_PID
#   post_standard CH SLUG SECRET ID BODY [curl args…]   signed Standard Webhooks POST
#   post_meta SLUG APP_SECRET BODY, post_telegram SLUG TOKEN BODY, http METHOD PATH [args…]
#       each sets STATUS, RESP (body), HEADERS (file) and OPID (X-Operation-Id or "")
#   topic_events TOPIC            "id key type subject traceparent" per message on TOPIC
source "$IMP_SOURCE_DIR/tests/lib/common.sh"

BIN="$IMP_BUILD_DIR/bin"

export IMP_SECRET_KEY=8d2f0c6b1e4a7d9c3b5e8f0a2c4d6e8f1a3b5c7d9e0f2a4b6c8d0e2f4a6b8c0d
export IMP_LOG_LEVEL=info

TENANT_A=1a1a1a1a-0000-4000-8000-00000000000a
TENANT_B=2b2b2b2b-0000-4000-8000-00000000000b
TENANT_C=3c3c3c3c-0000-4000-8000-00000000000c
TENANT_D=4d4d4d4d-0000-4000-8000-00000000000d
# Standard Webhooks secrets: whsec_ + base64 of the HMAC key.
A_GENERIC=whsec_$(printf 'tenant-a-generic-key-0123456789' | base64)
A_CHATFLOW=whsec_$(printf 'tenant-a-chatflow-key-012345678' | base64)
A_WA_APP=a-whatsapp-app-secret
A_WA_VERIFY=a-verify-token
A_TG=a-telegram-secret-token
B_GENERIC=whsec_$(printf 'tenant-b-generic-key-0123456789' | base64)
B_CHATFLOW=whsec_$(printf 'tenant-b-chatflow-key-012345678' | base64)
B_WA_APP=b-whatsapp-app-secret
B_WA_VERIFY=b-verify-token
B_TG=b-telegram-secret-token
C_GENERIC=whsec_$(printf 'tenant-c-generic-key-0123456789' | base64)
D_GENERIC=whsec_$(printf 'tenant-d-generic-key-0123456789' | base64)

publish_tenants() {
    printf '%s' "$1" | "$BIN/ingress_tenants" - >/dev/null || fail "ingress_tenants failed"
}

# all_channels ID GENERIC CHATFLOW WA_APP WA_VERIFY TG: a channels object.
all_channels() {
    printf '{"generic": {"secrets": {"webhook_secret": "%s"}},
             "chatflow": {"secrets": {"webhook_secret": "%s"}},
             "whatsapp": {"secrets": {"app_secret": "%s", "verify_token": "%s"}},
             "telegram": {"secrets": {"secret_token": "%s"}}}' "$1" "$2" "$3" "$4" "$5"
}

# tenant SLUG ID STATUS VERSION CHANNELS: one snapshot spec.
tenant() {
    printf '{"slug": "%s", "tenant_id": "%s", "status": "%s", "version": %s, "channels": %s}' \
        "$1" "$2" "$3" "$4" "$5"
}

standard_tenants() {
    publish_tenants "[
        $(tenant a "$TENANT_A" active 1 "$(all_channels "$A_GENERIC" "$A_CHATFLOW" "$A_WA_APP" \
            "$A_WA_VERIFY" "$A_TG")"),
        $(tenant b "$TENANT_B" active 1 "$(all_channels "$B_GENERIC" "$B_CHATFLOW" "$B_WA_APP" \
            "$B_WA_VERIFY" "$B_TG")"),
        $(tenant c "$TENANT_C" disabled 1 "$(all_channels "$C_GENERIC" "$C_GENERIC" c-app c-verify \
            c-tg)"),
        $(tenant d "$TENANT_D" active 1 "{\"generic\": {\"secrets\": {\"webhook_secret\": \"$D_GENERIC\"}}}")
    ]"
}

INGRESS_URL=
start_ingress() { # start_ingress NAME [VAR=VALUE…]
    local name=$1 port
    shift
    port=$(free_port)
    INGRESS_URL="http://127.0.0.1:$port"
    start_bg "$name" env IMP_INGRESS_LISTEN="127.0.0.1:$port" "$@" "$BIN/imperium-ingress"
    wait_for_port "$port" 30 || fail "$name did not listen on $port"
}

ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "${1:-$INGRESS_URL}/readyz")" = 200 ]; }

wait_ready() { # wait_ready [TIMEOUT] [URL]
    wait_for "${1:-30}" "/readyz of ${2:-$INGRESS_URL}" ready "${2:-$INGRESS_URL}" ||
        fail "ingress not ready: $(curl -s "${2:-$INGRESS_URL}/readyz")"
}

metric() { # metric NAME_WITH_LABELS [URL]: the sample's value, or nothing
    curl -s "${2:-$INGRESS_URL}/metrics" | awk -v n="$1" '$1 == n {print $2}'
}

# ---- requests ---------------------------------------------------------------------------

STATUS= RESP= OPID= HEADERS=

# http METHOD PATH [curl args…]: against $INGRESS_URL (or $URL when set). The answer is kept
# in $RESP_FILES.{body,headers} (default $IMP_TEST_TMP/last; give each concurrent sender its
# own).
http() {
    local method=$1 path=$2 files=${RESP_FILES:-$IMP_TEST_TMP/last}
    shift 2
    HEADERS=$files.headers
    : >"$HEADERS"
    : >"$files.body"
    STATUS=$(curl -s -o "$files.body" -D "$HEADERS" -w '%{http_code}' -X "$method" \
        "${URL:-$INGRESS_URL}$path" "$@")
    RESP=$(cat "$files.body" 2>/dev/null)
    OPID=$(header x-operation-id)
}

header() { # header NAME: its value in the last answer
    awk -v n="$1" 'BEGIN {IGNORECASE = 1} {sub(/\r$/, "")} tolower($1) == tolower(n) ":" {print $2}' \
        "$HEADERS"
}

whsec_hex() { printf '%s' "${1#whsec_}" | base64 -d | od -An -tx1 | tr -d ' \n'; }

# sign_standard SECRET ID TS < BODY: the v1 signature (base64).
sign_standard() {
    { printf '%s.%s.' "$2" "$3" && cat; } |
        openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(whsec_hex "$1")" -binary | base64
}

# post_standard CHANNEL SLUG SECRET ID BODY [curl args…] (TS overrides the timestamp; a BODY
# of @FILE sends that file).
post_standard() {
    local ch=$1 slug=$2 secret=$3 id=$4 body=$5 ts=${TS:-$(date +%s)} sig
    shift 5
    if [ "${body:0:1}" = @ ]; then
        sig=$(sign_standard "$secret" "$id" "$ts" <"${body:1}")
    else
        sig=$(printf '%s' "$body" | sign_standard "$secret" "$id" "$ts")
    fi
    http POST "/v1/webhooks/$ch/$slug" -H "webhook-id: $id" -H "webhook-timestamp: $ts" \
        -H "webhook-signature: v1,$sig" -H 'content-type: application/json' \
        --data-binary "$body" "$@"
}

post_meta() { # post_meta SLUG APP_SECRET BODY [curl args…]
    local slug=$1 secret=$2 body=$3 sig
    shift 3
    sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)
    http POST "/v1/webhooks/whatsapp/$slug" -H "x-hub-signature-256: sha256=$sig" \
        -H 'content-type: application/json' --data-binary "$body" "$@"
}

post_telegram() { # post_telegram SLUG TOKEN BODY [curl args…]
    local slug=$1 token=$2 body=$3
    shift 3
    http POST "/v1/webhooks/telegram/$slug" -H "x-telegram-bot-api-secret-token: $token" \
        -H 'content-type: application/json' --data-binary "$body" "$@"
}

generic_body() { # generic_body MESSAGE_ID [CONVERSATION]
    printf '{"conversation": "%s", "sender": {"id": "u1", "name": "Ann"}, "message": {"id": "%s", "text": "hello"}}' \
        "${2:-conv-1}" "$1"
}

# ---- topics -----------------------------------------------------------------------------

# topic_events TOPIC: one line per message, "id key type subject traceparent tenantid".
topic_events() {
    kcat -C -b "$IMP_KAFKA_BROKERS" -t "$1" -o beginning -e -q -J 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    if not line.strip():
        continue
    m = json.loads(line)
    e = json.loads(m["payload"])
    print(e["id"], m["key"], e["type"], e.get("subject", "-"), e.get("traceparent", "-"),
          e["tenantid"])
'
}

topic_count() { topic_events "$1" | wc -l | tr -d ' '; }

# problem_shape: the last answer's body without its trace_id (for comparing answers).
problem_shape() {
    printf '%s' "$RESP" | python3 -c '
import json, sys
p = json.load(sys.stdin)
assert len(p["trace_id"]) == 32, p
del p["trace_id"]
print(json.dumps(p, sort_keys=True))'
}
