# deploy/demo.sh against the harness: seeds the demo tenant through imperium-control (five
# channels, secrets made once in demo.secrets), writes IMP_DEMO_* into the env file, prints a
# signed curl that a Standard Webhooks verifier accepts when pasted into a shell; a second
# run changes nothing.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/lib/common.sh"

BIN="$IMP_BUILD_DIR/bin"
CONTROL="$BIN/imperium-control"
UNSEAL="$BIN/control_unseal"
for b in "$CONTROL" "$UNSEAL"; do [ -x "$b" ] || die "$b is not built"; done
T=$IMP_TEST_TMP
DEV="$T/dev"
mkdir -p "$DEV"
export IMP_SECRET_KEY
IMP_SECRET_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

sql() { psql_owner -c "$1"; }

# A Standard Webhooks verifier standing in for the ingress: answers 202 to a request whose
# signature verifies with the secret in $DEMO_SECRET_FILE (the demo's generic secret), 401
# otherwise, and appends the verdict to $VERDICTS.
cat >"$T/verifier.py" <<'PY'
import base64, hashlib, hmac, http.server, os, sys, time
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
        secret = open(os.environ["DEMO_SECRET_FILE"]).read().strip()
        key = base64.b64decode(secret[len("whsec_"):])
        wid, ts = self.headers["webhook-id"], self.headers["webhook-timestamp"]
        mac = base64.b64encode(hmac.new(key, f"{wid}.{ts}.{body}".encode(), hashlib.sha256).digest()).decode()
        sigs = [s.split(",", 1)[1] for s in self.headers["webhook-signature"].split() if s.startswith("v1,")]
        ok = any(hmac.compare_digest(mac, s) for s in sigs) and abs(time.time() - int(ts)) <= 300
        ok = ok and self.path == "/v1/webhooks/generic/demo" and '"message"' in body
        with open(os.environ["VERDICTS"], "a") as f:
            f.write(("accepted" if ok else "rejected") + "\n")
        self.send_response(202 if ok else 401)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
PORT=$(free_port)
export VERDICTS="$T/verdicts" DEMO_SECRET_FILE="$T/generic.secret"
start_bg verifier python3 "$T/verifier.py" "$PORT"
wait_for_port "$PORT" 10 || fail "the verifier did not start"

start_bg control env IMP_PG_DSN="$IMP_PG_APP_DSN" IMP_LOG_LEVEL=info \
    IMP_WORKER_RELAY_INTERVAL=500ms "$CONTROL" serve
CONTROL_PID=$BG_PID

cat >"$DEV/env" <<EOF
# as deploy/dev.sh writes it
IMP_PG_DSN=$IMP_PG_APP_DSN
IMP_PG_APP_DSN=$IMP_PG_APP_DSN
IMP_KAFKA_BROKERS=$IMP_KAFKA_BROKERS
IMP_SECRET_KEY=$IMP_SECRET_KEY
IMP_INGRESS_URL=http://127.0.0.1:$PORT
IMP_LOG_LEVEL=info
EOF
echo "IMP_TELEGRAM_API_URL=http://127.0.0.1:9/telegram" >"$DEV/user.env"

demo() { # demo ARGS…: output in $OUT
    OUT=$(env -u IMP_SECRET_KEY IMP_DEMO_DIR="$DEV" bash "$IMP_SOURCE_DIR/deploy/demo.sh" "$@" \
        2>"$T/demo.err") || fail "demo.sh $* failed: $(cat "$T/demo.err")"
}

demo "$IMP_BUILD_DIR"
pass "demo.sh seeds"
A=$(sql "SELECT id FROM tenants WHERE slug = 'demo'")
assert_eq "tenant demo" "Demo salon|active" "$(sql "SELECT name, status FROM tenants WHERE id = '$A'")"
assert_eq "all five channels, enabled" "chatflow:true generic:true telegram:true test:true whatsapp:true" \
    "$(sql "SELECT string_agg(kind || ':' || enabled, ' ' ORDER BY kind) FROM channels WHERE tenant_id = '$A'")"
assert_eq "outbound URL from IMP_TELEGRAM_API_URL; none where unset" \
    'http://127.0.0.1:9/telegram|' \
    "$(sql "SELECT (SELECT settings->>'api_url' FROM channels WHERE tenant_id = '$A' AND kind = 'telegram') || '|' || coalesce((SELECT settings->>'api_url' FROM channels WHERE tenant_id = '$A' AND kind = 'chatflow'), '')")"
assert_eq "demo.secrets is private" 600 "$(stat -c %a "$DEV/demo.secrets")"

# the env file: each IMP_DEMO_* once, with the secrets the channels hold
for v in IMP_DEMO_TENANT IMP_DEMO_SECRET_GENERIC IMP_DEMO_SECRET_CHATFLOW \
    IMP_DEMO_SECRET_WHATSAPP IMP_DEMO_SECRET_TELEGRAM; do
    assert_eq "$v once in env" 1 "$(grep -c "^$v=" "$DEV/env")"
done
envval() { sed -n "s/^$1=//p" "$DEV/env"; }
assert_eq "IMP_DEMO_TENANT" demo "$(envval IMP_DEMO_TENANT)"
assert_eq "env file kept its own lines" 1 "$(grep -c '^IMP_INGRESS_URL=' "$DEV/env")"
snapshot_secrets() { # snapshot_secrets KIND: verification secrets in the latest snapshot
    kcat -C -b "$IMP_KAFKA_BROKERS" -t imp.tenants.v1 -o beginning -e -q 2>/dev/null |
        python3 -c 'import json,sys
last = [json.loads(l) for l in sys.stdin if l.strip()][-1]
print(last["data"]["channels"][sys.argv[1]]["secrets_enc"])' "$1" | "$UNSEAL" "$A"
}
assert_eq "generic secret in env = the channel's" \
    "{\"webhook_secret\":\"$(envval IMP_DEMO_SECRET_GENERIC)\"}" "$(snapshot_secrets generic)"
assert_eq "chatflow secret in env = the channel's" \
    "{\"webhook_secret\":\"$(envval IMP_DEMO_SECRET_CHATFLOW)\"}" "$(snapshot_secrets chatflow)"
assert_eq "whatsapp app secret in env = the channel's" \
    "{\"app_secret\":\"$(envval IMP_DEMO_SECRET_WHATSAPP)\",\"verify_token\":\"$(envval IMP_DEMO_WHATSAPP_VERIFY_TOKEN)\"}" \
    "$(snapshot_secrets whatsapp)"
assert_eq "telegram secret token in env = the channel's" \
    "{\"secret_token\":\"$(envval IMP_DEMO_SECRET_TELEGRAM)\"}" "$(snapshot_secrets telegram)"

# the printed curl, pasted into a shell
envval IMP_DEMO_SECRET_GENERIC >"$DEMO_SECRET_FILE"
paste_curl() { printf '%s\n' "$OUT" | sed -n '/^curl /,/--data-raw/p' >"$T/curl.sh"; }
paste_curl
assert_eq "the printed curl is six lines" 6 "$(grep -c . "$T/curl.sh")"
assert_eq "pasted curl: 202" 202 "$(bash "$T/curl.sh" | head -n 1 | awk '{print $2}')"
echo "whsec_$(head -c 32 /dev/urandom | base64 -w0)" >"$DEMO_SECRET_FILE"
assert_eq "the same curl with another secret: 401 (the verifier is not a rubber stamp)" 401 \
    "$(bash "$T/curl.sh" | head -n 1 | awk '{print $2}')"
envval IMP_DEMO_SECRET_GENERIC >"$DEMO_SECRET_FILE"

# again: nothing changes
SUM=$(sha256sum <"$DEV/demo.secrets")
ENVSUM=$(sha256sum <"$DEV/env")
AUDIT=$(sql "SELECT count(*) FROM audit_log WHERE tenant_id = '$A'")
assert_eq "first run: six audit rows" 6 "$AUDIT"
demo "$IMP_BUILD_DIR"
pass "demo.sh runs again"
assert_eq "second run: same secrets" "$SUM" "$(sha256sum <"$DEV/demo.secrets")"
assert_eq "second run: same env file" "$ENVSUM" "$(sha256sum <"$DEV/env")"
assert_eq "second run: no change audited" "$AUDIT" "$(sql "SELECT count(*) FROM audit_log WHERE tenant_id = '$A'")"
assert_eq "second run: every outcome a success" "succeeded 12" \
    "$(sql "SELECT string_agg(status || ' ' || n, '|') FROM (SELECT status, count(*) n FROM operations WHERE tenant_id = '$A' GROUP BY 1) x")"
assert_eq "second run: no new snapshot" 6 \
    "$(kcat -C -b "$IMP_KAFKA_BROKERS" -t imp.tenants.v1 -o beginning -e -q 2>/dev/null | grep -c .)"

OUT=$(IMP_DEMO_DIR="$DEV" bash "$IMP_SOURCE_DIR/deploy/demo.sh" --curl 2>/dev/null) ||
    fail "demo.sh --curl failed"
paste_curl
assert_eq "demo.sh --curl: a fresh curl that verifies" 202 \
    "$(bash "$T/curl.sh" | head -n 1 | awk '{print $2}')"
assert_eq "verdicts" "accepted rejected accepted" "$(paste -sd' ' "$VERDICTS")"

stop_bg "$CONTROL_PID" || fail "imperium-control did not stop cleanly"
pass "imperium-control stopped cleanly"
