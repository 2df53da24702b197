# Shared by the end-to-end tests of the conversation path (it_e2e_*.sh) and the benchmark
# (tests/bench/e2e/run.sh). Source it after the harness has exported the environment.
#
# The whole fleet as processes: imperium-control (the tenant and its channels, which also
# publishes the snapshot the ingress reads), imperium-ingress, imperium-dialog, imperium-rag
# (extractive: no IMP_LLM_URL), imperium-qc, imperium-send, and four fake providers
# (progs/send_fake_provider.c) that record every request.
#
#   e2e_fakes                      fakes chatflow, whatsapp, telegram, generic: FAKE_<KIND>
#   e2e_control                    imperium-control serve ($CONTROL_PID)
#   e2e_tenant SLUG                the tenant, four channels at the fakes, manager chat
#                                  $MANAGER_CHAT; $TID; secrets in $E2E_* variables
#   e2e_settings SLUG JSON         merged into tenants.settings (coalesce_ms, qc, safe_reply)
#   e2e_kb                         the FAQ below as the tenant's stable KB version ($KB_VERSION)
#   e2e_ingress [VAR=VALUE…]       imperium-ingress (started after the tenant exists), ready
#   e2e_worker KIND [VAR=VALUE…]   one of dialog rag qc send; its pid in ${KIND^^}_PID
#   e2e_fleet                      all of the above for tenant "shop", window 0
#   e2e_post ARGS…                 the Python load driver (see $E2E_POST)
#   fake_bodies KIND               the recorded request bodies of fake KIND, one JSON per line
source "$IMP_SOURCE_DIR/tests/integration/send_lib.sh"
source "$IMP_SOURCE_DIR/tests/integration/ingress_lib.sh"

# ingress_lib set its own key; every process of the fleet must share one.
export IMP_SECRET_KEY=5e2e0c6b1e4a7d9c3b5e8f0a2c4d6e8f1a3b5c7d9e0f2a4b6c8d0e2f4a6b8c0d
export IMP_LOG_LEVEL=info
CONTROL="$BIN/imperium-control"
MANAGER_CHAT=-100777
E2E_BOT_TOKEN="123456:e2e-bot-token"
E2E_PHONE_ID=100000000000777

# The knowledge base: four sections, each becomes a chunk with a phrase that only it holds.
E2E_FAQ="$IMP_TEST_TMP/nova_faq.md"
cat >"$E2E_FAQ" <<'EOF'
# Nova Dental Clinic

## Prices

A dental check-up at Nova costs 9,000 tenge and professional teeth cleaning costs 15,000
tenge. A filling costs from 12,000 tenge depending on the tooth. The first consultation is
free of charge for new patients.

## Opening hours

Nova is open Monday to Saturday from 8 am to 8 pm. On Sunday the clinic is closed. The last
appointment of the day starts at 7 pm.

## Address

Nova Dental Clinic is at 12 Abay Avenue in Almaty, on the second floor, next to the
pharmacy. The nearest metro station is Abay.

## Parking

Patients park for free in the courtyard behind the building; the entrance to the parking is
from Seifullin Street.
EOF
# question → a phrase of the chunk that must answer it
E2E_Q_PRICE="How much does a dental check-up cost?"
E2E_A_PRICE="check-up at Nova costs 9,000 tenge"
E2E_Q_HOURS="What are your opening hours, when are you open?"
E2E_A_HOURS="open Monday to Saturday from 8 am to 8 pm"
E2E_Q_ADDRESS="What is the address of the clinic?"
E2E_A_ADDRESS="12 Abay Avenue in Almaty"
E2E_Q_PARKING="Where can I park my car, is there parking?"
E2E_A_PARKING="park for free in the courtyard"

FAKE_chatflow= FAKE_whatsapp= FAKE_telegram= FAKE_generic=
e2e_fakes() {
    local k
    for k in chatflow whatsapp telegram generic; do
        start_fake "$k" "$@"
        printf -v "FAKE_$k" '%s' "$FAKE_URL"
    done
}

fake_bodies() { # fake_bodies KIND: one JSON body per line, in arrival order
    python3 -c '
import json, sys
for l in open(sys.argv[1]):
    print(json.loads(l)["body"])' "$IMP_TEST_TMP/$1.rec"
}

e2e_control() {
    start_bg control env IMP_PG_DSN="$IMP_PG_APP_DSN" IMP_WORKER_RELAY_INTERVAL=200ms \
        "$CONTROL" serve
    CONTROL_PID=$BG_PID
}

# control ARGS…: the operator's client; fails the test on a non-zero exit.
control() {
    local out
    out=$(IMP_PG_DSN="$IMP_PG_APP_DSN" "$CONTROL" "$@" --timeout 60s 2>&1) ||
        fail "imperium-control $*: $out"
}

E2E_GENERIC= E2E_CHATFLOW= E2E_WA_APP=e2e-whatsapp-app-secret E2E_TG=e2e-telegram-secret-token
e2e_tenant() {
    local slug=$1 d="$IMP_TEST_TMP/secrets"
    mkdir -p "$d"
    E2E_GENERIC=whsec_$(printf 'e2e-generic-webhook-key-0123456' | base64)
    E2E_CHATFLOW=whsec_$(printf 'e2e-chatflow-webhook-key-012345' | base64)
    printf '%s' "$E2E_GENERIC" >"$d/gw"
    printf '%s' "$GEN_SECRET" >"$d/gc"
    printf '%s' "$E2E_CHATFLOW" >"$d/cw"
    printf 'cf-api-token' >"$d/ct"
    printf '%s' "$E2E_WA_APP" >"$d/wa"
    printf 'e2e-verify' >"$d/wv"
    printf 'EAA-e2e-access-token' >"$d/wt"
    printf '%s' "$E2E_TG" >"$d/ts"
    printf '%s' "$E2E_BOT_TOKEN" >"$d/tb"
    control tenant create "$slug" --name "E2E $slug"
    control channel set "$slug" generic --callback-url "$FAKE_generic/callback" \
        --secret "webhook_secret=@$d/gw" --secret "callback_secret=@$d/gc"
    control channel set "$slug" chatflow --api-url "$FAKE_chatflow" \
        --secret "webhook_secret=@$d/cw" --secret "api_token=@$d/ct"
    control channel set "$slug" whatsapp --api-url "$FAKE_whatsapp" \
        --phone-number-id "$E2E_PHONE_ID" --secret "app_secret=@$d/wa" \
        --secret "verify_token=@$d/wv" --secret "access_token=@$d/wt"
    control channel set "$slug" telegram --api-url "$FAKE_telegram" \
        --manager-chat-id "$MANAGER_CHAT" --secret "secret_token=@$d/ts" \
        --secret "bot_token=@$d/tb"
    TID=$(q "SELECT id FROM tenants WHERE slug = '$slug'")
    [ -n "$TID" ] || fail "tenant $slug was not created"
}

e2e_settings() { # e2e_settings SLUG JSON
    q "UPDATE tenants SET settings = coalesce(settings, '{}'::jsonb) || '$2'::jsonb
       WHERE slug = '$1'" >/dev/null
}

KB_VERSION=
e2e_kb() {
    KB_VERSION=$("$BIN/retrieval_tool" load --dsn "$IMP_PG_APP_DSN" --tenant "$TID" --promote \
        "$E2E_FAQ" 2>"$IMP_TEST_TMP/kb_load.log") || fail "KB load: $(cat "$IMP_TEST_TMP/kb_load.log")"
}

# chunk_of PHRASE: the id of the KB chunk that holds PHRASE.
chunk_of() {
    q "SELECT id FROM kb_chunks WHERE version_id = '$KB_VERSION' AND text LIKE '%$1%'"
}

e2e_ingress() {
    start_ingress ingress IMP_INGRESS_RATE=0 IMP_INGRESS_THREADS=2 \
        IMP_KAFKA_PRODUCER_PROPS=max.in.flight.requests.per.connection=1 "$@"
    INGRESS_PID=$BG_PID
    wait_ready 60
}

# Worker settings shared by the four workers: short retries, quick relay, loopback fakes.
# The dev broker never sets TCP_NODELAY: with more than one request in flight each produce
# waits ~40 ms (Nagle + delayed ACK, STACK-NOTES.md), which caps a batch-of-1 worker (send)
# at ~20 events/s. One in flight, as the ingress tests do.
# The dev broker holds an empty fetch for the whole fetch.wait.max.ms (docs/devbroker.md).
E2E_WORKER_ENV=(IMP_PG_DSN="$IMP_PG_APP_DSN" IMP_WORKER_RETRY_BASE=200ms
    IMP_KAFKA_CONSUMER_PROPS=fetch.wait.max.ms=5
    IMP_KAFKA_PRODUCER_PROPS=max.in.flight.requests.per.connection=1
    IMP_WORKER_RETRY_MAX=2s IMP_WORKER_RELAY_INTERVAL=200ms IMP_WORKER_RELAY_GRACE=1s
    IMP_WORKER_INFRA_BACKOFF_MAX=1s)

# With E2E_METRICS set, each worker also serves /metrics on a free port, written to
# $IMP_TEST_TMP/metrics.NAME (the benchmark reads its consumer-lag gauges when stuck).
e2e_worker() { # e2e_worker KIND [VAR=VALUE…] (a second call for KIND replaces the pid)
    local kind=$1 name=${E2E_NAME:-$1} extra=() port
    shift
    if [ -n "${E2E_METRICS:-}" ]; then
        port=$(free_port)
        printf '%s\n' "$port" >"$IMP_TEST_TMP/metrics.$name"
        set -- IMP_METRICS_PORT="$port" "$@"
    fi
    case $kind in
    send)
        extra=(IMP_SEND_TIMEOUT=5s IMP_SEND_ALLOW_CIDRS=127.0.0.0/8
            IMP_REDIS_URL="$IMP_REDIS_URL" IMP_CHATFLOW_API_URL= IMP_WHATSAPP_API_URL=
            IMP_TELEGRAM_API_URL=)
        ;;
    dialog) extra=(IMP_DIALOG_TICK=50ms) ;;
    esac
    start_bg "$name" env "${E2E_WORKER_ENV[@]}" "${extra[@]}" "$@" "$BIN/imperium-$kind"
    printf -v "${kind^^}_PID" '%s' "$BG_PID"
}

e2e_fleet() { # e2e_fleet [SETTINGS_JSON]: fakes, control, tenant "shop", KB, workers, ingress
    e2e_fakes
    e2e_control
    e2e_tenant shop
    e2e_settings shop "{\"coalesce_ms\": 0}"
    [ $# -gt 0 ] && e2e_settings shop "$1"
    e2e_kb
    local k
    for k in dialog rag qc send; do e2e_worker "$k"; done
    e2e_ingress
}

# ---- the load driver -------------------------------------------------------------------
# python3 $E2E_POST URL SLUG SECRET --convs N --msgs M [--copies 2] [--threads 64]
#   [--rate R] [--prefix P] [--acks FILE] [--questions Q1|Q2|…]
# Conversation i ("P-c<i>") sends message m (id "P-c<i>-m<m>", text Q[m mod len]) only after
# message m-1 was ACKed; each message is POSTed --copies times at once on separate
# connections; a non-200 is retried like a provider would. --rate paces the first copy of
# every message (messages/s offered). --acks: "message_id conversation ack_ms" per message
# (the first 200). Prints "sent N acked N retries N seconds S".
E2E_POST="$IMP_TEST_TMP/e2e_post.py"
cat >"$E2E_POST" <<'PY'
import argparse, base64, hashlib, hmac, http.client, json, queue, sys, threading, time
from urllib.parse import urlparse

ap = argparse.ArgumentParser()
ap.add_argument("url"); ap.add_argument("slug"); ap.add_argument("secret")
ap.add_argument("--convs", type=int, required=True); ap.add_argument("--msgs", type=int, default=1)
ap.add_argument("--copies", type=int, default=1); ap.add_argument("--threads", type=int, default=64)
ap.add_argument("--rate", type=float, default=0); ap.add_argument("--prefix", default="c")
ap.add_argument("--acks"); ap.add_argument("--questions", default="hello")
a = ap.parse_args()
u = urlparse(a.url)
key = base64.b64decode(a.secret[len("whsec_"):])
qs = a.questions.split("|")
path = "/v1/webhooks/generic/" + a.slug
lock = threading.Lock()
acks, stats = [], {"sent": 0, "acked": 0, "retries": 0}
start = time.time()
slot = [0]

def pace():
    if a.rate <= 0:
        return
    with lock:
        k = slot[0]; slot[0] += 1
    d = start + k / a.rate - time.time()
    if d > 0:
        time.sleep(d)

def conn():
    return http.client.HTTPConnection(u.hostname, u.port, timeout=30)

def post_all(conns, mid, body):
    ts = str(int(time.time()))
    sig = base64.b64encode(hmac.new(key, f"{mid}.{ts}.{body}".encode(), hashlib.sha256).digest()).decode()
    h = {"webhook-id": mid, "webhook-timestamp": ts, "webhook-signature": "v1," + sig,
         "content-type": "application/json"}
    for i, c in enumerate(conns):
        c.request("POST", path, body=body.encode(), headers=h)
    ok, t = False, None
    for i, c in enumerate(conns):
        try:
            r = c.getresponse(); r.read()
            if r.status == 200 and not ok:
                ok, t = True, time.time()
        except Exception:
            conns[i].close(); conns[i] = conn()
    return ok, t

def worker(work):
    conns = [conn() for _ in range(a.copies)]
    while True:
        try:
            i = work.get_nowait()
        except queue.Empty:
            return
        cid = f"{a.prefix}-c{i}"
        for m in range(a.msgs):
            mid = f"{cid}-m{m}"
            body = json.dumps({"conversation": cid, "sender": {"id": cid, "name": "Load"},
                               "message": {"id": mid, "text": qs[m % len(qs)]}})
            pace()
            tries = 0
            while True:
                try:
                    ok, t = post_all(conns, mid, body)
                except Exception:
                    ok, t = False, None
                    for j in range(len(conns)):
                        conns[j].close(); conns[j] = conn()
                with lock:
                    stats["sent"] += a.copies
                if ok:
                    break
                tries += 1
                with lock:
                    stats["retries"] += 1
                if tries > 50:
                    sys.exit(f"message {mid} never acked")
                time.sleep(0.5)
            with lock:
                stats["acked"] += 1
                acks.append(f"{mid} {cid} {int(t * 1000)}")

work = queue.Queue()
for i in range(a.convs):
    work.put(i)
ts = [threading.Thread(target=worker, args=(work,)) for _ in range(min(a.threads, a.convs))]
for t in ts: t.start()
for t in ts: t.join()
if a.acks:
    with open(a.acks, "w") as f:
        f.write("\n".join(acks) + "\n")
print(f"sent {stats['sent']} acked {stats['acked']} retries {stats['retries']} "
      f"seconds {time.time() - start:.1f}")
sys.exit(0 if stats["acked"] == a.convs * a.msgs else 1)
PY

e2e_post() { python3 "$E2E_POST" "$INGRESS_URL" "$@"; }

# generic_replies: "recipient<TAB>purpose<TAB>id<TAB>text" per request the generic fake got.
generic_replies() {
    fake_bodies generic | python3 -c '
import json, sys
for l in sys.stdin:
    b = json.loads(l)
    print("\t".join([b.get("recipient") or "", b.get("purpose") or "", b.get("id") or "",
                     (b.get("text") or "").replace("\n", " ").replace("\t", " ")]))'
}

# check_load_replies CONVS MSGS PREFIX: every conversation got exactly MSGS answers, in the
# order of its questions (answer m holds the phrase of question m), no outbound id twice.
# Prints "replies N distinct N duplicates N out_of_order N missing N".
check_load_replies() {
    generic_replies | python3 -c '
import sys
convs, msgs, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
phrases = sys.argv[4].split("|")
by, ids, n = {}, set(), 0
for l in sys.stdin:
    rcpt, purpose, oid, text = l.rstrip("\n").split("\t", 3)
    if not rcpt.startswith(prefix + "-c"):
        continue
    n += 1
    ids.add(oid)
    by.setdefault(rcpt, []).append((purpose, text))
bad_order = missing = extra = 0
for i in range(convs):
    got = by.get(f"{prefix}-c{i}", [])
    if len(got) < msgs: missing += msgs - len(got)
    if len(got) > msgs: extra += len(got) - msgs
    for m, (purpose, text) in enumerate(got[:msgs]):
        if purpose != "answer" or phrases[m % len(phrases)] not in text:
            bad_order += 1
print(f"replies {n} distinct {len(ids)} duplicates {n - len(ids) + extra} "
      f"out_of_order {bad_order} missing {missing}")' "$1" "$2" "$3" "$4"
}

at_least_requests() { [ "$(requests "${2:-generic}")" -ge "$1" ]; }

# ---- faults and bursts (it_e2e_burst.sh, it_e2e_provider_faults.sh, it_e2e_llm_faults.sh) ----
#   e2e_fake KIND [ARGS…]          one fake provider with its own knobs (send_fake_provider:
#                                  --script S,S,… --retry-after S --delay-ms D --fail-while F)
#   e2e_fake_llm                   progs/rag_fake_llm: $FAKE_LLM_URL, its log $FAKE_LLM_LOG
#   llm_requests KIND QUESTION     LLM requests answered as KIND (ok, slow, 500, garbage,
#                                  empty) whose last user message is QUESTION
#   e2e_generic ID CONV TEXT       a signed generic webhook from customer CONV, ACKed
#   fake_messages KIND             "recipient<TAB>text" per request fake KIND received
#   e2e_at_rest / e2e_settled T    the tenant's conversation path has nothing in flight
#   delivery_mismatches            outbound rows whose status dialog recorded differently
#   e2e_bad_customer_texts RE      customer-facing bodies that are blank or match RE

e2e_fake() { # e2e_fake KIND [ARGS…]
    local kind=$1
    shift
    start_fake "$kind" "$@"
    printf -v "FAKE_$kind" '%s' "$FAKE_URL"
}

FAKE_LLM_URL= FAKE_LLM_LOG=
e2e_fake_llm() {
    FAKE_LLM_LOG="$IMP_TEST_TMP/llm.log"
    : >"$FAKE_LLM_LOG"
    rm -f "$IMP_TEST_TMP/llm.port"
    start_bg fake-llm "$BIN/rag_fake_llm" "$IMP_TEST_TMP/llm.port" "$FAKE_LLM_LOG"
    wait_for_file "$IMP_TEST_TMP/llm.port" 10 || fail "the fake LLM did not start"
    FAKE_LLM_URL="http://127.0.0.1:$(cat "$IMP_TEST_TMP/llm.port")/v1/chat/completions"
}

llm_requests() { grep -cxF -- "$1|$2" "$FAKE_LLM_LOG" || true; }

e2e_generic() { # e2e_generic MESSAGE_ID CONVERSATION TEXT
    post_standard generic shop "$E2E_GENERIC" "$1" "$(python3 -c '
import json, sys
print(json.dumps({"conversation": sys.argv[2], "sender": {"id": sys.argv[2], "name": "Ann"},
                  "message": {"id": sys.argv[1], "text": sys.argv[3]}}))' "$1" "$2" "$3")"
    [ "$STATUS" = 200 ] || fail "generic webhook $1: $STATUS $RESP"
}

fake_messages() { # fake_messages KIND: newlines and tabs of the text as spaces
    fake_bodies "$1" | python3 -c '
import json, sys
kind = sys.argv[1]
for l in sys.stdin:
    b = json.loads(l)
    if kind == "whatsapp":
        r, t = b.get("to"), (b.get("text") or {}).get("body")
    elif kind == "generic":
        r, t = b.get("recipient"), b.get("text")
    else:
        r, t = b.get("chat_id"), b.get("text")
    t = "" if t is None else str(t)
    print("%s\t%s" % (r, t.replace("\n", " ").replace("\t", " ")))' "$1"
}

# At rest: no burst pending, every emitted turn decided by qc, the outbox published, every
# outbound message the pipeline emitted settled by imperium-send (sent, failed or unknown),
# and every delivery report consumed by dialog. A reply still on its way keeps this false,
# so counts taken after it are final.
e2e_at_rest() {
    [ "$(q "SELECT NOT EXISTS (SELECT 1 FROM turns WHERE tenant_id = '$TID' AND state = 'pending')
        AND (SELECT count(*) FROM turns WHERE tenant_id = '$TID' AND state = 'emitted')
            = (SELECT count(*) FROM message_traces WHERE tenant_id = '$TID')
        AND NOT EXISTS (SELECT 1 FROM outbox WHERE published_at IS NULL)
        AND NOT EXISTS (
            SELECT 1 FROM (SELECT DISTINCT operation_id FROM outbox
                           WHERE topic = 'imp.outbound.v1'
                             AND payload::jsonb->>'tenantid' = '$TID') o
            LEFT JOIN outbound b ON b.operation_id = o.operation_id
            WHERE b.state IS NULL OR b.state NOT IN ('sent', 'failed', 'unknown'))
        AND NOT EXISTS (
            SELECT 1 FROM outbox o WHERE o.topic = 'imp.delivery.v1'
               AND o.payload::jsonb->>'tenantid' = '$TID'
               AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.worker = 'dialog'
                               AND i.operation_id = o.operation_id AND i.state = 'done'))")" = t ]
}

# delivery_mismatches: outbound rows whose delivery status in dialog's messages differs from
# imperium-send's final state, "channel purpose state/dialog status" per line.
delivery_mismatches() {
    q "SELECT b.channel || ' ' || b.purpose || ' ' || b.state || '/' || coalesce(m.delivery_status, '-')
       FROM outbound b LEFT JOIN messages m ON m.operation_id = b.operation_id
       WHERE b.tenant_id = '$TID' AND b.conversation_id IS NOT NULL
         AND m.delivery_status IS DISTINCT FROM b.state ORDER BY b.id"
}

e2e_settled() { # e2e_settled TIMEOUT
    wait_for "$1" "the conversation path at rest" e2e_at_rest ||
        fail "not at rest after $1 s: $(q "SELECT 'pending turns ' || count(*) FILTER (WHERE state = 'pending')
            || ', emitted ' || count(*) FILTER (WHERE state = 'emitted') FROM turns WHERE tenant_id = '$TID'"),
            traces $(q "SELECT count(*) FROM message_traces WHERE tenant_id = '$TID'"),
            unpublished $(q "SELECT count(*) FROM outbox WHERE published_at IS NULL"),
            outbound $(q "SELECT coalesce(string_agg(purpose || ':' || state, ' '), '-') FROM outbound WHERE tenant_id = '$TID'"),
            deliveries dialog has not consumed $(q "SELECT count(*) FROM outbox o WHERE o.topic = 'imp.delivery.v1'
                AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.worker = 'dialog'
                                AND i.operation_id = o.operation_id AND i.state = 'done')"),
            delivery statuses (send/dialog) $(q "SELECT coalesce(string_agg(b.channel || ':' || b.state || '/'
                || coalesce(m.delivery_status, '-'), ' ' ORDER BY b.id), '-') FROM outbound b
                LEFT JOIN messages m ON m.operation_id = b.operation_id WHERE b.tenant_id = '$TID'")"
}

# e2e_bad_customer_texts RE: every body a customer received (all four fakes; Telegram
# messages to the manager chat excluded) whose text is blank or matches the Python regular
# expression RE (case-insensitive), one per line; nothing when all are clean.
e2e_bad_customer_texts() {
    local k
    for k in chatflow whatsapp telegram generic; do
        fake_messages "$k" | python3 -c '
import re, sys
kind, manager, bad = sys.argv[1], sys.argv[2], re.compile(sys.argv[3], re.I)
for l in sys.stdin:
    r, t = l.rstrip("\n").split("\t", 1)
    if kind == "telegram" and r == manager:
        continue
    if not t.strip() or bad.search(t):
        print("%s to %s: %r" % (kind, r, t))' "$k" "$MANAGER_CHAT" "$1"
    done
}
