# imperium-control end to end, against the harness's Postgres and devbroker: the worker
# (serve) as the application role, driven through its own client. Tenant creation, all five
# channels, rotation with and without grace, disable/enable, the tenant snapshots on
# imp.tenants.v1 (schema, key, versions, verification secrets only, sealed for the tenant),
# idempotent retries by operation id, a retry after a timeout, failed outcomes, dead letters,
# secrets absent from logs, audit rows, outcomes and topics, and row-level security.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/lib/common.sh"

BIN="$IMP_BUILD_DIR/bin"
CONTROL="$BIN/imperium-control"
UNSEAL="$BIN/control_unseal"
for b in "$CONTROL" "$UNSEAL"; do [ -x "$b" ] || die "$b is not built"; done

random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
whsec() { printf 'whsec_%s' "$(head -c 32 /dev/urandom | base64 -w0)"; }
uuid4() { python3 -c 'import uuid; print(uuid.uuid4())'; }

export IMP_SECRET_KEY
IMP_SECRET_KEY=$(random_hex 32)
OTHER_KEY=$(random_hex 32)
T=$IMP_TEST_TMP

start_control() {
    start_bg control env IMP_PG_DSN="$IMP_PG_APP_DSN" IMP_LOG_LEVEL=debug \
        IMP_WORKER_RELAY_INTERVAL=500ms IMP_WORKER_RELAY_GRACE=1s "$CONTROL" serve
    CONTROL_PID=$BG_PID
}

# ctl ARGS…: the client as the application role. stdout in $OUT, stderr in $ERR, exit status
# in $RC; never fails the script by itself. Every secret it prints is remembered.
ctl() {
    RC=0
    local t0
    t0=$(now_ms)
    OUT=$(IMP_PG_DSN="$IMP_PG_APP_DSN" IMP_CONTROL_ACTOR=it-operator IMP_LOG_LEVEL=warn \
        "$CONTROL" "$@" 2>"$T/ctl.err") || RC=$?
    echo "$(($(now_ms) - t0)) ms: $1 $2 $3" >>"$T/ctl.times"
    ERR=$(cat "$T/ctl.err")
    printf '%s\n%s\n' "$OUT" "$ERR" >>"$T/cli.out"
    printf '%s\n' "$OUT" | sed -n 's/^secret [a-z_]*=//p' >>"$T/secrets.list"
}

# expect NAME RC NEEDLE: the last ctl exited RC and its output contains NEEDLE.
expect() {
    assert_eq "$1: exit status" "$2" "$RC"
    assert_contains "$1: output" "$OUT $ERR" "$3"
}

generated() { printf '%s\n' "$OUT" | sed -n "s/^secret $1=//p"; }
remember() { printf '%s\n' "$@" >>"$T/secrets.list"; }
sql() { psql_owner -c "$1"; }

# The tenant snapshots on imp.tenants.v1 (kcat JSON lines), read again by wait_snapshots;
# snap CMD ARGS… looks at them (snap.py below).
read_snapshots() {
    kcat -C -b "$IMP_KAFKA_BROKERS" -t imp.tenants.v1 -o beginning -e -J -q 2>/dev/null \
        >"$T/snaps.new"
    mv "$T/snaps.new" "$T/snaps"
}
snap() { python3 "$T/snap.py" "$T/snaps" "$@"; }
snap_count() { snap count "$1"; }
wait_snapshots() { # wait_snapshots SLUG N
    wait_for 20 "$2 snapshots of $1" test_snapshots "$1" "$2" ||
        fail "snapshots of $1: expected $2, got $(snap_count "$1")"
}
test_snapshots() { read_snapshots && [ "$(snap_count "$1")" = "$2" ]; }

cat >"$T/snap.py" <<'PY'
import json, pathlib, sys
import jsonschema
src = pathlib.Path(sys.argv[0]).parent
path, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]
msgs = [json.loads(l) for l in open(path) if l.strip()]
def of(slug):
    return [json.loads(m["payload"]) for m in msgs if m.get("key") == slug]
if cmd == "count":
    print(len(of(args[0])))
elif cmd == "get":          # get SLUG PATH: a member of the latest snapshot's data (a.b.c)
    v = of(args[0])[-1]["data"]
    for k in args[1].split("."):
        v = v[k]
    print(v if isinstance(v, str) else json.dumps(v, sort_keys=True))
elif cmd == "check":        # check SCHEMAS_DIR: every snapshot against the contract
    schemas = pathlib.Path(args[0])
    env = json.load(open(schemas / "envelope.v1.json"))
    data = json.load(open(schemas / "events/imp.tenant.snapshot.v1.json"))
    last = {}
    for m in msgs:
        ev = json.loads(m["payload"])
        jsonschema.validate(ev, env)
        jsonschema.validate(ev["data"], data)
        d = ev["data"]
        assert ev["type"] == "imp.tenant.snapshot.v1", ev["type"]
        assert ev["source"] == "imperium/control", ev["source"]
        assert m["key"] == d["slug"], (m["key"], d["slug"])
        assert ev["tenantid"] == d["tenant_id"], ev
        assert d["version"] > last.get(m["key"], 0), ("version went back", m["key"])
        last[m["key"]] = d["version"]
        for kind, ch in d["channels"].items():
            assert (ch["previous_secrets_enc"] is None) == (ch["previous_until_ms"] == 0), ch
    print(len(msgs))
PY

# ---- start -------------------------------------------------------------------------------

start_control
RUN_START_S=$(date +%s)

# ---- create ------------------------------------------------------------------------------

ctl tenant create demo --name "Demo salon"
expect "create demo" 0 "succeeded: tenant demo created"
A=$(sql "SELECT id FROM tenants WHERE slug = 'demo'")
EXPECTED_A=$(python3 -c 'import uuid,sys
ns = uuid.UUID("07da5cec-ed2a-4cf7-a0ae-43edb714bc16")
print(uuid.uuid5(ns, "tenant|demo"))')
assert_eq "demo's id is UUIDv5 of its slug" "$EXPECTED_A" "$A"
assert_eq "tenants row" "demo|Demo salon|free|active" \
    "$(sql "SELECT slug, name, plan, status FROM tenants WHERE id = '$A'")"
assert_eq "create: audit row" "it-operator|tenant.create|tenant:demo|" \
    "$(sql "SELECT actor, action, target, before FROM audit_log WHERE tenant_id = '$A'")"
assert_eq "create: operation succeeded" "imp.command.tenant.create.v1|succeeded|it-operator" \
    "$(sql "SELECT kind, status, actor FROM operations WHERE tenant_id = '$A'")"
wait_snapshots demo 1
assert_eq "first snapshot" "$A|demo|Demo salon|active|free|{}" \
    "$(snap get demo tenant_id)|$(snap get demo slug)|$(snap get demo name)|$(snap get demo status)|$(snap get demo plan)|$(snap get demo channels)"

ctl tenant create demo --name "Demo salon"
expect "create demo again (same name)" 0 "succeeded: tenant demo already exists"
ctl tenant create demo --name "Another salon"
expect "create demo with another name" 1 "failed: tenant demo already exists with another name"
ctl tenant create acme --name "Acme" --plan pro
expect "create acme" 0 "succeeded: tenant acme created"
B=$(sql "SELECT id FROM tenants WHERE slug = 'acme'")

# ---- channels: all five kinds --------------------------------------------------------------

GEN1=$(whsec)
TG1=$(random_hex 20)
APP=$(random_hex 16)
ACCESS=EAA$(random_hex 20)
BOT="123456:$(random_hex 16)"
CFTOKEN=cf_$(random_hex 16)
remember "$GEN1" "$TG1" "$APP" "$ACCESS" "$BOT" "$CFTOKEN"
printf '%s' "$BOT" >"$T/bot.token"

ctl channel set demo generic --callback-url http://127.0.0.1:9/hook --secret "webhook_secret=$GEN1"
expect "channel set generic" 0 "succeeded: channel demo/generic created"
CALLBACK=$(generated callback_secret)
assert_ne "generic: callback_secret generated and shown" "" "$CALLBACK"
assert_eq "generic: only callback_secret generated" 1 "$(printf '%s\n' "$OUT" | grep -c '^secret ')"

ctl channel set demo chatflow --api-url http://127.0.0.1:9/chatflow --secret "api_token=$CFTOKEN"
expect "channel set chatflow" 0 "succeeded: channel demo/chatflow created"
CF_SECRET=$(generated webhook_secret)
assert_contains "chatflow: webhook_secret generated (whsec_)" "$CF_SECRET" "whsec_"

ctl channel set demo whatsapp --phone-number-id 100200300 --secret "app_secret=$APP" \
    --secret "access_token=$ACCESS"
expect "channel set whatsapp" 0 "succeeded: channel demo/whatsapp created"
VERIFY=$(generated verify_token)
assert_ne "whatsapp: verify_token generated" "" "$VERIFY"

ctl channel set demo telegram --manager-chat-id -1001234 --secret "secret_token=$TG1" \
    --secret "bot_token=@$T/bot.token"
expect "channel set telegram (bot token from a file)" 0 "succeeded: channel demo/telegram created"
assert_eq "telegram: nothing generated" 0 "$(printf '%s\n' "$OUT" | grep -c '^secret ' || true)"

ctl channel set demo test
expect "channel set test" 0 "succeeded: channel demo/test created"
TEST_SECRET=$(generated webhook_secret)

ctl channel set acme generic
expect "channel set acme generic" 0 "succeeded: channel acme/generic created"

ctl channel set demo whatsapp --enabled false --secret "access_token=$ACCESS"
expect "whatsapp disabled (same token)" 0 "succeeded: channel demo/whatsapp updated"
ctl channel set demo whatsapp --enabled true
expect "whatsapp enabled again" 0 "succeeded: channel demo/whatsapp updated"
ctl channel set demo telegram --manager-chat-id -1001234
expect "telegram set to what it is" 0 "succeeded: channel demo/telegram unchanged"

assert_eq "demo has five channels" "chatflow generic telegram test whatsapp" \
    "$(sql "SELECT string_agg(kind, ' ' ORDER BY kind) FROM channels WHERE tenant_id = '$A'")"
assert_eq "settings are stored, secrets are not in them" \
    '{"api_url": "http://127.0.0.1:9/chatflow"}|{"callback_url": "http://127.0.0.1:9/hook"}|{"manager_chat_id": "-1001234"}|{}|{"phone_number_id": "100200300"}' \
    "$(sql "SELECT string_agg(settings::text, '|' ORDER BY kind) FROM channels WHERE tenant_id = '$A'")"
assert_eq "every channel's secrets are sealed at rest" 5 \
    "$(sql "SELECT count(*) FROM channels WHERE tenant_id = '$A' AND secrets_enc LIKE 'v1:%'")"
AT_REST=$(sql "SELECT secrets_enc FROM channels WHERE tenant_id = '$A' AND kind = 'telegram'")
assert_eq "telegram at rest holds the outbound token too" \
    "{\"bot_token\":\"$BOT\",\"secret_token\":\"$TG1\"}" "$(printf '%s' "$AT_REST" | "$UNSEAL" "$A")"

wait_snapshots demo 8 # create + 5 channels + whatsapp disabled + enabled
SNAP_ALL=$(snap get demo channels)
assert_eq "snapshot has the five kinds" '["chatflow", "generic", "telegram", "test", "whatsapp"]' \
    "$(python3 -c 'import json,sys; print(json.dumps(sorted(json.loads(sys.argv[1]))))' "$SNAP_ALL")"

# unseal SLUG KIND [previous_secrets_enc]: the verification secrets in the latest snapshot.
unseal() {
    snap get "$1" "channels.$2.${3:-secrets_enc}" | "$UNSEAL" "$(snap get "$1" tenant_id)"
}
assert_eq "snapshot generic: verification secret only" "{\"webhook_secret\":\"$GEN1\"}" \
    "$(unseal demo generic)"
assert_eq "snapshot chatflow: the generated webhook secret" \
    "{\"webhook_secret\":\"$CF_SECRET\"}" "$(unseal demo chatflow)"
assert_eq "snapshot whatsapp: app secret and verify token, no access token" \
    "{\"app_secret\":\"$APP\",\"verify_token\":\"$VERIFY\"}" "$(unseal demo whatsapp)"
assert_eq "snapshot telegram: secret token, no bot token" "{\"secret_token\":\"$TG1\"}" \
    "$(unseal demo telegram)"
assert_eq "snapshot test" "{\"webhook_secret\":\"$TEST_SECRET\"}" "$(unseal demo test)"
assert_eq "snapshot whatsapp enabled, no previous secrets" "true|null|0" \
    "$(snap get demo channels.whatsapp.enabled)|$(snap get demo channels.whatsapp.previous_secrets_enc)|$(snap get demo channels.whatsapp.previous_until_ms)"

TOKEN=$(snap get demo channels.generic.secrets_enc)
RC=0
printf '%s' "$TOKEN" | "$UNSEAL" "$B" >/dev/null 2>"$T/unseal.err" || RC=$?
assert_eq "a snapshot token does not open with another tenant as AAD" "1|secret_auth" \
    "$RC|$(cat "$T/unseal.err")"
RC=0
printf '%s' "$TOKEN" | IMP_SECRET_KEY=$OTHER_KEY "$UNSEAL" "$A" >/dev/null 2>"$T/unseal.err" || RC=$?
assert_eq "a snapshot token does not open with another key" "1|secret_auth" \
    "$RC|$(cat "$T/unseal.err")"

# ---- rotation --------------------------------------------------------------------------------

GEN2=$(whsec)
remember "$GEN2"
BEFORE_S=$(date +%s)
ctl secret rotate demo generic --grace 1h --secret "webhook_secret=$GEN2"
expect "rotate generic with a given secret, 1h grace" 0 "succeeded: channel demo/generic secrets rotated"
AFTER_S=$(date +%s)
assert_eq "nothing generated when the secret is given" 0 "$(printf '%s\n' "$OUT" | grep -c '^secret ' || true)"
wait_snapshots demo 9
assert_eq "rotated: current is the new secret" "{\"webhook_secret\":\"$GEN2\"}" "$(unseal demo generic)"
assert_eq "rotated: previous is the old secret" "{\"webhook_secret\":\"$GEN1\"}" \
    "$(unseal demo generic previous_secrets_enc)"
UNTIL=$(snap get demo channels.generic.previous_until_ms)
if [ "$UNTIL" -lt $(((BEFORE_S + 3600 - 2) * 1000)) ] || [ "$UNTIL" -gt $(((AFTER_S + 3600 + 2) * 1000)) ]; then
    fail "previous_until_ms $UNTIL is not about an hour after the rotation ($BEFORE_S..$AFTER_S)"
fi
pass "previous_until_ms is the rotation time + 1h"
assert_eq "at rest: previous_secrets_until matches the snapshot" "$UNTIL" \
    "$(sql "SELECT floor(extract(epoch FROM previous_secrets_until) * 1000)::bigint FROM channels WHERE tenant_id = '$A' AND kind = 'generic'")"
assert_eq "rotation keeps the callback secret" \
    "{\"callback_secret\":\"$CALLBACK\",\"webhook_secret\":\"$GEN2\"}" \
    "$(sql "SELECT secrets_enc FROM channels WHERE tenant_id = '$A' AND kind = 'generic'" | "$UNSEAL" "$A")"

ctl secret rotate demo telegram --grace 0
expect "rotate telegram, no grace" 0 "succeeded: channel demo/telegram secrets rotated"
TG2=$(generated secret_token)
assert_ne "telegram: a new secret token generated and shown" "" "$TG2"
assert_ne "telegram: it differs from the old one" "$TG1" "$TG2"
wait_snapshots demo 10
assert_eq "no grace: only the new secret token" "{\"secret_token\":\"$TG2\"}|null|0" \
    "$(unseal demo telegram)|$(snap get demo channels.telegram.previous_secrets_enc)|$(snap get demo channels.telegram.previous_until_ms)"
assert_eq "telegram rotation keeps the bot token" \
    "{\"bot_token\":\"$BOT\",\"secret_token\":\"$TG2\"}" \
    "$(sql "SELECT secrets_enc FROM channels WHERE tenant_id = '$A' AND kind = 'telegram'" | "$UNSEAL" "$A")"

ctl secret rotate demo test
expect "rotate test with the default grace" 0 "succeeded"
TEST_SECRET2=$(generated webhook_secret)
wait_snapshots demo 11
assert_eq "default grace is 24h" 86400 \
    "$(sql "SELECT round(extract(epoch FROM previous_secrets_until - updated_at)) FROM channels WHERE tenant_id = '$A' AND kind = 'test'")"
assert_eq "test rotated: previous is the first secret" "{\"webhook_secret\":\"$TEST_SECRET\"}" \
    "$(unseal demo test previous_secrets_enc)"
assert_ne "test rotated: a new current secret" "$TEST_SECRET" "$TEST_SECRET2"

ctl secret rotate acme telegram
expect "rotate a channel that does not exist" 1 "failed: channel acme/telegram does not exist"

# ---- disable / enable, and the same operation id twice ----------------------------------------

OPID=$(uuid4)
ctl tenant disable demo --operation-id "$OPID"
expect "disable demo" 0 "operation $OPID: succeeded: tenant demo disabled"
wait_snapshots demo 12
assert_eq "snapshot says disabled" disabled "$(snap get demo status)"
ctl tenant disable demo --operation-id "$OPID"
expect "the same disable again" 0 "operation $OPID: succeeded: tenant demo disabled"
sleep 2
read_snapshots
assert_eq "same operation id: one audit row" 1 \
    "$(sql "SELECT count(*) FROM audit_log WHERE operation_id = '$OPID'")"
assert_eq "same operation id: one outcome" 1 \
    "$(sql "SELECT count(*) FROM operations WHERE operation_id = '$OPID'")"
assert_eq "same operation id: one snapshot" 12 "$(snap_count demo)"
assert_eq "same operation id: two commands on the topic" 2 \
    "$(kcat -C -b "$IMP_KAFKA_BROKERS" -t imp.commands.v1 -o beginning -e -q 2>/dev/null | grep -c "\"id\":\"$OPID\"")"
ctl tenant disable acme --operation-id "$OPID"
expect "an operation id already used for another tenant" 1 \
    "rejected: operation id $OPID was already used by another command (tenant $A)"
assert_eq "acme untouched" active "$(sql "SELECT status FROM tenants WHERE id = '$B'")"
ctl tenant disable demo
expect "disable a disabled tenant (new operation)" 0 "succeeded: tenant demo is already disabled"
ctl tenant enable demo
expect "enable demo" 0 "succeeded: tenant demo enabled"
wait_snapshots demo 13
assert_eq "snapshot says active" active "$(snap get demo status)"

# ---- timeout, then a retry with the same operation id ----------------------------------------

stop_bg "$CONTROL_PID" || fail "imperium-control did not stop cleanly"
OPB=$(uuid4)
ctl tenant create beta --name Beta --operation-id "$OPB" --timeout 2s
expect "no worker: timeout" 3 "operation $OPB: unknown"
assert_contains "timeout: says how to wait again" "$ERR" "--operation-id $OPB"
ctl tenant create gamma --name Gamma --no-wait
expect "--no-wait" 0 "submitted"
start_control
ctl tenant create beta --name Beta --operation-id "$OPB"
expect "retry after the timeout" 0 "operation $OPB: succeeded: tenant beta created"
assert_eq "beta: created once" "1|1" \
    "$(sql "SELECT (SELECT count(*) FROM tenants WHERE slug = 'beta') || '|' || (SELECT count(*) FROM audit_log WHERE operation_id = '$OPB')")"
wait_snapshots beta 1
V1=$(snap get beta version)
ctl tenant publish beta
expect "publish beta's snapshot again" 0 "succeeded: tenant beta published (snapshot version"
wait_snapshots beta 2
assert_eq "the published snapshot: a newer version, the same content" "t|t" \
    "$(python3 - "$T/snaps" "$V1" <<'PY'
import json, sys
snaps = [json.loads(json.loads(l)["payload"])["data"] for l in open(sys.argv[1])
         if l.strip() and json.loads(l).get("key") == "beta"]
a, b = snaps[-2], snaps[-1]
same = {k: v for k, v in a.items() if k != "version"} == {k: v for k, v in b.items() if k != "version"}
print(("t" if b["version"] > int(sys.argv[2]) else "f") + "|" + ("t" if same else "f"))
PY
)"
assert_eq "publish is audited" 1 \
    "$(sql "SELECT count(*) FROM audit_log a JOIN tenants t ON t.id = a.tenant_id WHERE t.slug = 'beta' AND a.action = 'tenant.publish'")"
gamma_exists() { [ "$(sql "SELECT count(*) FROM tenants WHERE slug = 'gamma'")" = 1 ]; }
wait_for 20 "gamma created (--no-wait)" gamma_exists || fail "gamma was not created"
pass "--no-wait: the command took effect"

# ---- Kafka unreachable: nothing sent, the operation id to retry with ---------------------------

OPK=$(uuid4)
KAFKA=$IMP_KAFKA_BROKERS
IMP_KAFKA_BROKERS=127.0.0.1:$(free_port)
IMP_KAFKA_PRODUCER_PROPS=delivery.timeout.ms=1000 ctl tenant create delta --name Delta --operation-id "$OPK"
IMP_KAFKA_BROKERS=$KAFKA
expect "Kafka unreachable" 3 "could not send the command to Kafka"
assert_contains "Kafka unreachable: says how to retry" "$ERR" "retry with --operation-id $OPK"
assert_eq "Kafka unreachable: no operation recorded" 0 \
    "$(sql "SELECT count(*) FROM operations WHERE operation_id = '$OPK'")"
ctl tenant create delta --name Delta --operation-id "$OPK"
expect "the retry" 0 "operation $OPK: succeeded: tenant delta created"

# ---- bad usage (nothing is sent) --------------------------------------------------------------

SENT=$(kcat -C -b "$IMP_KAFKA_BROKERS" -t imp.commands.v1 -o beginning -e -q 2>/dev/null | grep -c . || true)
ctl tenant create Bad_Slug --name x
expect "bad slug" 2 "\"Bad_Slug\" is not a tenant slug"
ctl channel set demo sms
expect "unknown kind" 2 "\"sms\" is not a channel kind"
ctl channel set demo telegram --secret webhook_secret=whsec_x
expect "a secret the kind does not have" 2 "secret.webhook_secret is not a secret of a telegram channel"
ctl channel set demo generic --secret webhook_secret=notwhsec
expect "a malformed secret (its value is not echoed)" 2 "secret.webhook_secret is not whsec_"
assert_eq "the malformed value is not echoed" "" "$(printf '%s' "$OUT $ERR" | grep -o notwhsec || true)"
ctl channel set demo generic --callback-url ftp://x
expect "a bad URL" 2 "data.settings.callback_url is not an http:// or https:// URL"
ctl tenant create delta
expect "create without --name" 2 "tenant create needs --name"
ctl tenant frobnicate demo
expect "unknown command" 2 "unknown command"
KAFKA=$IMP_KAFKA_BROKERS
IMP_KAFKA_BROKERS=
ctl tenant create epsilon --name Epsilon
expect "no IMP_KAFKA_BROKERS" 2 "IMP_KAFKA_BROKERS is not set"
ctl tenant show demo
expect "tenant show needs no Kafka" 0 "demo"
IMP_KAFKA_BROKERS=$KAFKA
KEY=$IMP_SECRET_KEY
IMP_SECRET_KEY=
ctl channel set demo generic --secret "webhook_secret=$(whsec)"
expect "a --secret without IMP_SECRET_KEY" 2 "IMP_SECRET_KEY is not set: it seals --secret values"
IMP_SECRET_KEY=$KEY
assert_eq "bad usage sends nothing" "$SENT" \
    "$(kcat -C -b "$IMP_KAFKA_BROKERS" -t imp.commands.v1 -o beginning -e -q 2>/dev/null | grep -c . || true)"
ctl channel set ghost generic
expect "a tenant that does not exist" 1 "failed: tenant ghost does not exist"

# ---- commands the worker rejects: dead letters with the reason --------------------------------

# raw TYPE TENANTID DATA: produce an envelope to imp.commands.v1 as another producer would;
# prints its operation id.
raw() {
    local id
    id=$(uuid4)
    python3 -c 'import json,sys
print(json.dumps({"specversion": "1.0", "id": sys.argv[1], "source": "imperium/api",
    "type": sys.argv[2], "time": "2026-05-01T03:00:00Z", "tenantid": sys.argv[3],
    "data": json.loads(sys.argv[4])}))' "$id" "$1" "$2" "$3" |
        kcat -P -b "$IMP_KAFKA_BROKERS" -t imp.commands.v1 -k "$2" -X acks=all 2>/dev/null ||
        fail "kcat could not produce"
    echo "$id"
}
R1=$(raw imp.command.tenant.create.v1 "$(uuid4)" '{"slug": "Bad Slug", "name": "x"}')
R2=$(raw imp.command.channel.set.v1 "$A" '{"slug": "demo", "kind": "sms"}')
R3=$(raw imp.command.tenant.delete.v1 "$A" '{"slug": "demo"}')
R4=$(raw imp.command.channel.set.v1 "$A" '{"slug": "demo", "kind": "telegram", "settings": {"bot_token": "1:x"}}')
R5=$(raw imp.command.tenant.status.v1 "$B" '{"slug": "demo", "status": "disabled"}')
dead_count() { sql "SELECT count(*) FROM dead_letters WHERE worker = 'control'"; }
test_dead() { [ "$(dead_count)" = "$1" ]; }
reason() { sql "SELECT class || ': ' || reason FROM dead_letters WHERE operation_id = '$1'"; }
wait_for 30 "5 dead letters" test_dead 5 || fail "dead letters: expected 5, got $(dead_count)"
assert_eq "dead letter: bad slug" \
    "poison: data.slug: \"Bad Slug\" is not a tenant slug (lowercase letters, digits and '-', 1 to 63 characters, not starting with '-')" \
    "$(reason "$R1")"
assert_eq "dead letter: unknown kind" \
    "poison: data.kind: \"sms\" is not a channel kind (chatflow, whatsapp, telegram, generic, test)" \
    "$(reason "$R2")"
assert_eq "dead letter: unknown command" \
    "poison: type imp.command.tenant.delete.v1 is not a command imperium-control applies" \
    "$(reason "$R3")"
assert_contains "dead letter: a token in settings" "$(reason "$R4")" \
    "data.settings.bot_token is not a channel setting"
assert_eq "dead letter: tenantid of another tenant" \
    "poison: tenantid $B is not the tenant of slug demo" "$(reason "$R5")"
assert_eq "a rejected command leaves no outcome" 0 \
    "$(sql "SELECT count(*) FROM operations WHERE operation_id IN ('$R1', '$R2', '$R3', '$R4', '$R5')")"
R6=$(raw imp.command.tenant.create.v1 "$A" '{"slug": "other", "name": "Other"}')
other_failed() { [ "$(sql "SELECT count(*) FROM operations WHERE operation_id = '$R6'")" = 1 ]; }
wait_for 20 "the outcome of a create with demo's id" other_failed || fail "no outcome for $R6"
assert_eq "create with the id of another slug: failed, not dead" \
    "failed|tenant id $A is already used by another slug|0" \
    "$(sql "SELECT status || '|' || error || '|' || (SELECT count(*) FROM tenants WHERE slug = 'other') FROM operations WHERE operation_id = '$R6'")"
ctl channel set demo generic --operation-id "$R2"
expect "the client reports a dead-lettered operation" 1 \
    "operation $R2: rejected: data.kind: \"sms\" is not a channel kind"

GEN3=$(whsec)
remember "$GEN3"
RC=0
OUT=$(IMP_SECRET_KEY=$OTHER_KEY IMP_PG_DSN="$IMP_PG_APP_DSN" "$CONTROL" channel set demo generic \
    --secret "webhook_secret=$GEN3" 2>"$T/ctl.err") || RC=$?
ERR=$(cat "$T/ctl.err")
expect "secrets sealed under another key: rejected" 1 "rejected: data.secrets_enc does not open"
assert_eq "6 dead letters in all" 6 "$(dead_count)"
assert_eq "generic still has the rotated secret" "{\"webhook_secret\":\"$GEN2\"}" "$(unseal demo generic)"

# ---- the record ------------------------------------------------------------------------------

assert_eq "demo's audit trail" \
    "tenant.create channel.create channel.create channel.create channel.create channel.create channel.update channel.update secret.rotate secret.rotate secret.rotate tenant.disable tenant.enable" \
    "$(sql "SELECT string_agg(action, ' ' ORDER BY id) FROM audit_log WHERE tenant_id = '$A'")"
assert_eq "every audit row has the actor and an operation id" 0 \
    "$(sql "SELECT count(*) FROM audit_log WHERE actor <> 'it-operator' OR operation_id IS NULL")"
assert_eq "no operation id is audited twice" 0 \
    "$(sql "SELECT count(*) FROM (SELECT operation_id FROM audit_log GROUP BY 1 HAVING count(*) > 1) x")"
assert_eq "audit of a rotation: names, no values" \
    '{"secrets": ["callback_secret", "webhook_secret"], "previous_until": null}|["webhook_secret"]|["callback_secret", "webhook_secret"]|3600|true' \
    "$(sql "SELECT before::text || '|' || (after->'rotated')::text || '|' || (after->'secrets')::text || '|' || (after->>'grace_s') || '|' || (after->>'previous_until' IS NOT NULL) FROM audit_log WHERE tenant_id = '$A' AND action = 'secret.rotate' ORDER BY id LIMIT 1")"
assert_eq "outcomes of demo" "failed 2|succeeded 16" \
    "$(sql "SELECT string_agg(status || ' ' || n, '|' ORDER BY status) FROM (SELECT status, count(*) n FROM operations WHERE tenant_id = '$A' GROUP BY 1) x")"
assert_eq "generated secrets were dropped once shown" 0 \
    "$(sql "SELECT count(*) FROM operations WHERE secrets_enc IS NOT NULL")"
outbox_published() { [ "$(sql "SELECT count(*) FROM outbox WHERE published_at IS NULL")" = 0 ]; }
wait_for 10 "outbox published" outbox_published || fail "outbox rows left unpublished"
read_snapshots
SNAPS=$(snap check "$IMP_SOURCE_DIR/schemas") || fail "a snapshot breaks the contract"
assert_eq "every snapshot keeps the contract (demo 13, acme 2, beta 2, gamma 1, delta 1)" 19 "$SNAPS"
assert_eq "invalidation events: one per snapshot" 19 \
    "$(kcat -C -b "$IMP_KAFKA_BROKERS" -t imp.control.v1 -o beginning -e -q 2>/dev/null | grep -c '"type":"imp.control.changed.v1"' || true)"

# ---- secrets never leave sealed ---------------------------------------------------------------

sort -u "$T/secrets.list" | grep . >"$T/secrets.uniq"
NSECRETS=$(wc -l <"$T/secrets.uniq")
[ "$NSECRETS" -ge 14 ] || fail "only $NSECRETS secrets collected"
{
    cat "$IMP_TEST_TMP/logs/control.log"
    sql "SELECT coalesce(before::text, '') || coalesce(after::text, '') FROM audit_log"
    sql "SELECT coalesce(result::text, '') || coalesce(error, '') FROM operations"
    sql "SELECT reason || convert_from(envelope, 'UTF8') FROM dead_letters"
    sql "SELECT payload FROM outbox"
    sql "SELECT settings::text FROM channels"
    kcat -C -b "$IMP_KAFKA_BROKERS" -t imp.commands.v1 -o beginning -e -q 2>/dev/null
    kcat -C -b "$IMP_KAFKA_BROKERS" -t imp.tenants.v1 -o beginning -e -q 2>/dev/null
    kcat -C -b "$IMP_KAFKA_BROKERS" -t imp.dlq.control.v1 -o beginning -e -q 2>/dev/null
    grep -v '^secret ' "$T/cli.out"
} >"$T/haystack"
[ "$(wc -c <"$T/haystack")" -gt 10000 ] || fail "the haystack is too small to mean anything"
assert_eq "none of $NSECRETS secret values in logs, audit, outcomes, dead letters, outbox, topics" 0 \
    "$(grep -c -F -f "$T/secrets.uniq" "$T/haystack" || true)"

# ---- row-level security ----------------------------------------------------------------------

as_tenant() { # as_tenant TENANT SQL: run SQL as the app role under TENANT
    psql_app -c "SELECT set_config('app.tenant_id', '$1', false)" -c "$2" | tail -n 1
}
assert_eq "app role, tenant B: none of A's channels" 0 \
    "$(as_tenant "$B" "SELECT count(*) FROM channels WHERE tenant_id = '$A'")"
assert_eq "app role, tenant B: its own channel only" 1 "$(as_tenant "$B" "SELECT count(*) FROM channels")"
assert_eq "app role, tenant B: none of A's outcomes or audit rows" "0|0" \
    "$(as_tenant "$B" "SELECT (SELECT count(*) FROM operations WHERE tenant_id = '$A') || '|' || (SELECT count(*) FROM audit_log WHERE tenant_id = '$A')")"
assert_eq "app role, tenant A: its five channels" 5 "$(as_tenant "$A" "SELECT count(*) FROM channels")"
assert_eq "app role, no tenant: nothing" "0|0" \
    "$(psql_app -c "SELECT (SELECT count(*) FROM channels) || '|' || (SELECT count(*) FROM operations)")"
assert_fails "api role cannot read channel secrets" psql_api -c "SELECT secrets_enc FROM channels"
assert_fails "api role cannot read generated secrets" psql_api -c "SELECT secrets_enc FROM operations"
assert_eq "api role, tenant A: outcomes readable" 18 \
    "$(psql_api -c "SELECT set_config('app.tenant_id', '$A', false)" -c "SELECT count(*) FROM operations" | tail -n 1)"

# ---- show ------------------------------------------------------------------------------------

ctl tenant show demo --json
assert_eq "tenant show --json" "active chatflow:api_token,webhook_secret generic:callback_secret,webhook_secret telegram:bot_token,secret_token test:webhook_secret whatsapp:access_token,app_secret,verify_token" \
    "$(printf '%s' "$OUT" | python3 -c 'import json,sys
d = json.load(sys.stdin)
print(d["tenant"]["status"], " ".join(c["kind"] + ":" + ",".join(c["secrets"]) for c in d["channels"]))')"
ctl tenant show demo
expect "tenant show (text)" 0 "previous_secrets_until="
ctl tenant show nobody
expect "tenant show of a missing tenant" 1 "tenant nobody does not exist"
assert_eq "show prints no secret value" 0 "$(printf '%s' "$OUT" | grep -c -F -f "$T/secrets.uniq" || true)"

stop_bg "$CONTROL_PID" || fail "imperium-control did not stop cleanly"
pass "imperium-control stopped cleanly"
say "it_control_tenants: $(($(date +%s) - RUN_START_S)) s; slowest client calls:"
sort -rn "$T/ctl.times" | head -n 5 >&2
