#!/usr/bin/env bash
# Bot versions and release channels (docs/bot-versions.md), with imperium-control, imperium-rag
# (against a fake LLM that records every prompt) and imperium-qc as processes:
#
# - the client refuses bad settings, instructions and arguments before sending anything (exit
#   2, no outcome), the worker dead-letters a forged command with bad settings;
# - draft → publish stable → draft (pinned to a draft KB version) → publish canary; a first
#   draft copies tenants.settings, a later one copies what it is not given from the stable
#   version, --if-changed reuses an identical version; publish refuses what it must;
# - salon on the canary channel: its turn gets the canary's instruction and KB version, qc
#   applies the canary's rules (a forbidden topic only the canary has) and the canary's safe
#   reply; clinic, with the same canary but on the stable channel, gets the stable instruction
#   and KB version and its answer passes; a draft naming a version is judged by that version's
#   rules, one naming another tenant's version by the tenant's settings;
# - publish stable → rollback → rollback: the stable pointer moves back exactly (states,
#   bot_releases, the versions' rows unchanged), the turns follow; channel back to stable;
# - row-level security: another tenant's bots, versions and releases are invisible to the
#   application and API roles, and cannot be written; versions are immutable;
# - every change: one audit row, one outcome, one imp.control.v1 event (what "bot").
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/indexer_lib.sh"

OUTDIR="$T/bot"
mkdir -p "$OUTDIR"
FAKE_LOG="$OUTDIR/llm.jsonl"

# ---- a fake chat-completions server that logs each request's system message and question ----
cat >"$OUTDIR/fake_llm.py" <<'PY'
import http.server, json, sys, threading
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        msgs = body["messages"]
        question = [m["content"] for m in msgs if m["role"] == "user"][-1]
        with lock, open(sys.argv[2], "a") as f:
            f.write(json.dumps({"system": msgs[0]["content"], "question": question},
                               ensure_ascii=False) + "\n")
        out = json.dumps({"id": "x", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "LLM answer to: " + question}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY

# ---- helpers ------------------------------------------------------------------------------------

at_least() { [ "$(sql "$2")" -ge "$1" ]; }

# bot_states SLUG: "1:stable 2:canary"
bot_states() {
    sql "SELECT coalesce(string_agg(v.number || ':' || v.state, ' ' ORDER BY v.number), '')
         FROM bot_versions v JOIN tenants t ON t.id = v.tenant_id WHERE t.slug = '$1'"
}
bot_version_id() { # bot_version_id SLUG NUMBER
    sql "SELECT v.id FROM bot_versions v JOIN tenants t ON t.id = v.tenant_id
         WHERE t.slug = '$1' AND v.number = $2"
}
# The rows of a tenant's versions as they were drafted (what must never change).
bot_rows() {
    sql "SELECT md5(string_agg(v.number || '|' || coalesce(v.instruction, '-') || '|' ||
                v.settings::text || '|' || coalesce(v.kb_version_id::text, '-') || '|' ||
                v.created_at, E'\n' ORDER BY v.number))
         FROM bot_versions v JOIN tenants t ON t.id = v.tenant_id WHERE t.slug = '$1'"
}
releases() { # releases SLUG: "channel:action:version:previous …" in order
    sql "SELECT coalesce(string_agg(r.channel || ':' || r.action || ':' || v.number || ':' ||
                coalesce(p.number::text, '-'), ' ' ORDER BY r.id), '')
         FROM bot_releases r JOIN tenants t ON t.id = r.tenant_id
         JOIN bot_versions v ON v.id = r.version_id
         LEFT JOIN bot_versions p ON p.id = r.previous_version_id WHERE t.slug = '$1'"
}
ops_of() { sql "SELECT count(*) FROM operations WHERE tenant_id = '$1'"; }
bot_audits() { sql "SELECT count(*) FROM audit_log WHERE tenant_id = '$1' AND action LIKE 'bot.%'"; }
# imp.control.v1 events about a tenant's bot: "version…" in order ("-" when without one).
bot_changes() {
    kcat -C -b "$IMP_KAFKA_BROKERS" -t imp.control.v1 -o beginning -e -q 2>/dev/null |
        python3 -c 'import json, sys
out = []
for line in sys.stdin:
    if line.strip():
        ev = json.loads(line)
        d = ev["data"]
        if d.get("what") == "bot" and d["tenant_id"] == sys.argv[1]:
            assert ev["type"] == "imp.control.changed.v1" and ev["source"] == "imperium/control", ev
            out.append(str(d.get("version", "-")))
print(" ".join(out))' "$1"
}

turn_event() { # turn_event ID TENANT QUESTION N
    python3 - "$@" <<'PY'
import json, sys, time
tid, tenant, question, n = sys.argv[1:5]
key = "telegram:%s" % n
print(json.dumps({"specversion": "1.0", "id": tid, "source": "imperium/dialog",
    "type": "imp.turn.requested.v1", "time": "2026-05-01T03:04:05.678Z", "subject": key,
    "tenantid": tenant, "attempt": 0, "data": {
        "conversation_id": None, "channel": "telegram", "conversation_key": key,
        "recipient": n, "message_ids": [tid], "question": question, "reply_to": "9",
        "history": [], "received_at_ms": int(time.time() * 1000)}}, ensure_ascii=False))
PY
}
produce_turn() { turn_event "$@" | kcat -P -b "$IMP_KAFKA_BROKERS" -t imp.turn.v1 -k "$2:telegram:$4"; }

draft_event() { # draft_event ID TENANT BOT_VERSION QUESTION N
    python3 - "$@" <<'PY'
import json, sys, uuid
did, tenant, bot, question, n = sys.argv[1:6]
key = "telegram:%s" % n
print(json.dumps({"specversion": "1.0", "id": did, "source": "imperium/rag",
    "type": "imp.draft.created.v1", "time": "2026-05-01T03:04:05.678Z", "subject": key,
    "tenantid": tenant, "causationid": str(uuid.uuid5(uuid.NAMESPACE_URL, did)), "attempt": 0,
    "data": {"conversation_id": None, "channel": "telegram", "conversation_key": key,
             "recipient": n, "question": question, "reply_to": None, "received_at_ms": None,
             "answer": "Yes, in the courtyard.", "mode": "extractive", "confidence": 0.9,
             "citations": [{"chunk_id": 1, "source": "faq_en.md", "heading": "Parking",
                            "score": 0.5}],
             "kb_version": None, "bot_version": bot or None,
             "timings": {"rag_ms": 3, "llm_ms": 0}}}, ensure_ascii=False))
PY
}
produce_draft() { draft_event "$@" | kcat -P -b "$IMP_KAFKA_BROKERS" -t imp.draft.v1 -k "$2:telegram:$5"; }

# draft_of TURN FIELD: a member of the draft rag made for a turn (JSON text)
draft_of() {
    sql "SELECT payload::jsonb->'data'->'$2' FROM outbox WHERE topic = 'imp.draft.v1'
         AND payload::jsonb->>'causationid' = '$1' ORDER BY id LIMIT 1"
}
# trace_of TURN: decision|reason|bot version id ('-' for none)
trace_of() {
    sql "SELECT decision || '|' || reason || '|' || coalesce(bot_version_id::text, '-')
         FROM message_traces WHERE operation_id = '$1'"
}
# outbound_of TURN PURPOSE: the text qc sent for the turn's draft
outbound_of() {
    sql "SELECT o.payload::jsonb->'data'->>'text' FROM outbox o JOIN outbox d
         ON d.operation_id = (o.payload::jsonb->>'causationid')::uuid AND d.topic = 'imp.draft.v1'
         WHERE o.topic = 'imp.outbound.v1' AND d.payload::jsonb->>'causationid' = '$1'
         AND o.payload::jsonb->'data'->>'purpose' = '$2'"
}
# instruction_for MARKER: the first line of the system message of the LLM request whose
# question holds MARKER; kb_for MARKER: CANARY-KB when the excerpts came from the pinned version
instruction_for() {
    python3 -c 'import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
hits = [r for r in rows if sys.argv[2] in r["question"]]
print(len(hits), hits[0]["system"].split("\n")[0] if hits else "")' "$FAKE_LOG" "$1"
}
kb_for() {
    python3 -c 'import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip() and sys.argv[2] in json.loads(l)["question"]]
s = rows[0]["system"]
print("CANARY-KB" if "CANARY-KB" in s else "FAQ" if "Free parking for salon guests" in s else "?")' "$FAKE_LOG" "$1"
}
decided() { at_least 1 "SELECT count(*) FROM message_traces WHERE operation_id = '$1'"; }
wait_decided() {
    wait_for 60 "the trace of $1" decided "$1" ||
        fail "turn $1 was not decided (rag: $(tail -n 3 "$T/logs/rag.log"); qc: $(tail -n 3 "$T/logs/qc.log"))"
}

# ---- tenants, knowledge bases, workers -------------------------------------------------------------

start_control
for t in salon clinic legacy broken; do
    ctl tenant create "$t" --name "${t^}"
    expect "tenant $t" 0 "created"
done
A=$(tenant_id salon)
B=$(tenant_id clinic)
L=$(tenant_id legacy)
X=$(tenant_id broken)
sql "UPDATE tenants SET settings = '{\"bot_instruction\": \"LEGACY-INSTRUCTION\", \"qc\": {\"forbidden_topics\": [\"weapons\"]}, \"safe_reply\": \"Legacy reply.\", \"kb_min_hit_rate\": 0.9}' WHERE id = '$L';
     UPDATE tenants SET settings = '{\"qc\": {\"min_confidence\": \"high\"}}' WHERE id = '$X'" >/dev/null

cat >"$OUTDIR/canary_kb.md" <<'EOF'
# Parking

CANARY-KB: guests park for free in the underground garage of the building, level minus two,
entrance from Abay avenue. Parking for guests is free for three hours.
EOF
load_kb() { # load_kb TENANT [--promote] FILE: prints the version id
    "$BIN/retrieval_tool" load --dsn "$IMP_PG_APP_DSN" --tenant "$@" 2>>"$OUTDIR/load.log" ||
        fail "loading a KB: $(tail -n 3 "$OUTDIR/load.log")"
}
KA1=$(load_kb "$A" --promote "$IMP_SOURCE_DIR/deploy/demo/faq_en.md")
KA2=$(load_kb "$A" "$OUTDIR/canary_kb.md")
KB1=$(load_kb "$B" --promote "$IMP_SOURCE_DIR/deploy/demo/faq_en.md")
assert_eq "salon's KB: 1 stable (the FAQ), 2 draft (the canary's)" "1:stable 2:draft" "$(states salon)"
assert_eq "clinic's KB: 1 stable" "1:stable" "$(states clinic)"

ctl bot versions salon
expect "versions before any bot version" 0 "release channel: stable; no stable bot version: answered from tenants.settings"

# ---- the client refuses what the worker would refuse, before sending ------------------------------

OPS0=$(ops_of "$A")
printf '' >"$OUTDIR/blank.txt"
printf '{"qc": {"max_length": 0}}' >"$OUTDIR/bad_settings.json"
ctl bot draft salon --settings '{"tone": "friendly"}'
expect "unknown setting" 2 "settings.tone is not a bot setting (qc, safe_reply)"
ctl bot draft salon --settings '{"qc": {"min_confidence": "high"}}'
expect "a rule of the wrong type" 2 "settings.qc.min_confidence is not a number from 0 to 1"
ctl bot draft salon --settings '{"qc": {"forbiden_topics": ["x"]}}'
expect "a misspelt rule" 2 "settings.qc.forbiden_topics is not a QC rule"
ctl bot draft salon --settings "@$OUTDIR/bad_settings.json"
expect "bad settings from a file" 2 "settings.qc.max_length is not a whole number of characters from 1 to 100000"
ctl bot draft salon --settings '{"qc": '
expect "settings that are not JSON" 2 "--settings is not JSON"
ctl bot draft salon --settings "@$OUTDIR/missing.json"
expect "a settings file that is not there" 2 "cannot read $OUTDIR/missing.json"
ctl bot draft salon --instruction "@$OUTDIR/blank.txt"
expect "a blank instruction" 2 "--instruction is blank or holds control characters"
ctl bot draft salon --kb-version x
expect "a kb version that is not a number" 2 "--kb-version wants a knowledge-base version number"
ctl bot publish salon 1
expect "publish without a channel" 2 "bot publish: --canary or --stable?"
ctl bot channel salon beta
expect "an unknown release channel" 2 "\"beta\" is not a release channel (stable or canary)"
ctl bot rollback Salon
expect "a bad slug" 2 "\"Salon\" is not a tenant slug"
assert_eq "nothing was sent: no outcome" "$OPS0" "$(ops_of "$A")"

# The worker checks again: a forged command with bad settings is a dead letter.
F1=$(uuid4)
produce imp.commands.v1 "$A" "{\"specversion\": \"1.0\", \"id\": \"$F1\", \"source\": \"imperium/forged\", \"type\": \"imp.command.bot.draft.v1\", \"time\": \"2026-05-01T03:04:05.678Z\", \"tenantid\": \"$A\", \"data\": {\"slug\": \"salon\", \"settings\": {\"qc\": {\"max_length\": -1}}}}"
F2=$(uuid4)
produce imp.commands.v1 "$A" "{\"specversion\": \"1.0\", \"id\": \"$F2\", \"source\": \"imperium/forged\", \"type\": \"imp.command.bot.rollback.v1\", \"time\": \"2026-05-01T03:04:05.678Z\", \"tenantid\": \"$A\", \"data\": {\"slug\": \"clinic\"}}"
wait_sql 2 "SELECT count(*) FROM dead_letters WHERE worker = 'control' AND operation_id IN ('$F1', '$F2')"
assert_contains "forged bad settings: the reason names the member" \
    "$(sql "SELECT reason FROM dead_letters WHERE operation_id = '$F1'")" "data.settings.qc.max_length is not a whole number"
assert_contains "forged command for another tenant's slug" \
    "$(sql "SELECT reason FROM dead_letters WHERE operation_id = '$F2'")" "is not the tenant of slug clinic"
assert_eq "no version was drafted" "" "$(bot_states salon)"

# ---- drafts ------------------------------------------------------------------------------------------

printf 'CANARY-INSTRUCTION salon: answer in one sentence.\nSecond line of the canary instruction.\n' >"$OUTDIR/canary.txt"
ctl bot draft salon --instruction "STABLE-INSTRUCTION salon" \
    --settings '{"qc": {"min_confidence": 0, "forbidden_topics": ["refund"]}, "safe_reply": "Stable safe reply."}'
expect "salon: draft 1" 0 "succeeded: bot salon: version 1 drafted"
assert_eq "the client prints the version" "version 1" "$(printf '%s\n' "$OUT" | tail -n 1)"
ctl bot publish salon 1 --stable
expect "salon: publish 1 stable" 0 "bot salon: version 1 is stable"
ctl bot draft salon --instruction "@$OUTDIR/canary.txt" --kb-version 2 \
    --settings '{"qc": {"min_confidence": 0, "forbidden_topics": ["refund", "PARKING"]}, "safe_reply": "Canary safe reply."}'
expect "salon: draft 2, pinned to kb version 2" 0 "version 2 drafted"
assert_eq "the instruction file is kept whole but its last line break" \
    "$(printf 'CANARY-INSTRUCTION salon: answer in one sentence.\nSecond line of the canary instruction.')" \
    "$(sql "SELECT instruction FROM bot_versions WHERE id = '$(bot_version_id salon 2)'")"
assert_eq "version 2 pins the draft kb version" "$KA2" "$(sql "SELECT kb_version_id FROM bot_versions WHERE id = '$(bot_version_id salon 2)'")"
ctl bot publish salon 2 --canary
expect "salon: publish 2 canary" 0 "bot salon: version 2 is the canary, answering from kb version 2 (tenant salon is on the stable channel)"
ctl bot channel salon canary
expect "salon: canary channel" 0 "tenant salon is on the canary channel: answered by version 2 (canary)"
ctl bot channel salon canary
expect "salon: canary channel again" 0 "tenant salon is already on the canary channel"
assert_eq "salon: 1 stable, 2 canary" "1:stable 2:canary" "$(bot_states salon)"

ctl bot draft clinic --instruction "STABLE-INSTRUCTION clinic" --settings '{"qc": {"min_confidence": 0, "forbidden_topics": ["refund"]}}'
expect "clinic: draft 1" 0 "version 1 drafted"
ctl bot publish clinic 1 --stable
expect "clinic: publish 1" 0 "version 1 is stable"
ctl bot draft clinic --settings '{"qc": {"min_confidence": 0, "forbidden_topics": ["refund", "parking"]}}'
expect "clinic: draft 2 without an instruction" 0 "version 2 drafted"
assert_eq "clinic 2 copied the stable version's instruction" "STABLE-INSTRUCTION clinic" \
    "$(sql "SELECT instruction FROM bot_versions WHERE id = '$(bot_version_id clinic 2)'")"
ctl bot publish clinic 2 --canary
expect "clinic: publish 2 canary" 0 "version 2 is the canary (tenant clinic is on the stable channel)"

ctl bot draft clinic --if-changed --instruction "STABLE-INSTRUCTION clinic" --settings '{"qc": {"forbidden_topics": ["refund"], "min_confidence": 0.0}}'
expect "--if-changed finds the identical version" 0 "bot clinic: version 1 (stable) has this instruction, these settings and this kb version: no new version"
assert_eq "--if-changed prints the version found" "version 1" "$(printf '%s\n' "$OUT" | tail -n 1)"
ctl bot draft clinic --if-changed --instruction "STABLE-INSTRUCTION clinic" --settings '{"qc": {"forbidden_topics": ["refund"], "min_confidence": 0.0}}' --kb-version 1
expect "--if-changed with another kb version drafts" 0 "version 3 drafted"
assert_eq "clinic: 1 stable, 2 canary, 3 draft" "1:stable 2:canary 3:draft" "$(bot_states clinic)"

# A first version copies the tenant's settings; invalid ones are named.
ctl bot draft legacy
expect "legacy: a first draft from tenants.settings" 0 "version 1 drafted"
assert_eq "it carries bot_instruction, qc and safe_reply, nothing else" \
    'LEGACY-INSTRUCTION|{"qc": {"forbidden_topics": ["weapons"]}, "safe_reply": "Legacy reply."}' \
    "$(sql "SELECT instruction || '|' || settings::text FROM bot_versions WHERE tenant_id = '$L'")"
ctl bot draft broken --instruction "x"
expect "broken settings in tenants.settings" 1 "bot broken: the settings copied from tenants.settings is not valid for a bot version (settings.qc.min_confidence is not a number from 0 to 1): give --settings"
ctl bot draft broken --settings '{}'
expect "with --settings it drafts" 0 "version 1 drafted"
assert_eq "and copies the (absent) instruction as the default" "-|{}" \
    "$(sql "SELECT coalesce(instruction, '-') || '|' || settings::text FROM bot_versions WHERE tenant_id = '$X'")"

# What publish refuses.
ctl bot publish salon 9 --stable
expect "a version that does not exist" 1 "failed: bot salon has no version 9"
ctl bot publish salon 2 --stable
expect "a version pinned to a kb version that is not stable" 1 "bot salon: version 2 answers from kb version 2, which is not the stable one (stable: 1): promote it first (kb promote salon 2)"
ctl bot publish salon 1 --canary
expect "the stable version as canary" 1 "version 1 is the stable version; a canary is another version"
ctl bot publish salon 1 --stable
expect "stable again: unchanged" 0 "bot salon: version 1 is already stable"
ctl bot draft salon --kb-version 7
expect "a kb version that does not exist" 1 "bot salon: kb version 7 does not exist"
ctl bot rollback salon
expect "nothing to roll back to" 1 "bot salon: nothing to roll back to: version 1 was its first stable version"
ctl bot rollback legacy
expect "no stable version" 1 "bot legacy has no stable version to roll back"
assert_eq "salon still 1 stable, 2 canary" "1:stable 2:canary" "$(bot_states salon)"

ctl bot versions salon --json
assert_eq "versions --json: channel, answering, states, pin, instruction" \
    "canary|2|1:stable:None:STABLE-INSTRUCTION salon 2:canary:2:CANARY-INSTRUCTION salon: answer in one sentence." \
    "$(printf '%s' "$OUT" | python3 -c 'import json, sys
d = json.load(sys.stdin)
vs = " ".join("%d:%s:%s:%s" % (v["version"], v["state"], v["kb_version"], (v["instruction"] or "").split("\n")[0]) for v in d["versions"])
print("%s|%s|%s" % (d["release_channel"], d["answering"], vs))')"
ctl bot versions clinic
expect "versions (text)" 0 "release channel: stable; answered by version 1"
assert_contains "versions (text) shows the settings" "$OUT" 'settings {"qc":{"forbidden_topics":["refund","parking"],"min_confidence":0}}'

# ---- the conversation path: rag picks the version, qc judges by it ---------------------------------

PORT=$(free_port)
start_bg fake_llm python3 "$OUTDIR/fake_llm.py" "$PORT" "$FAKE_LOG"
wait_for_port "$PORT" 10 || fail "the fake LLM did not start"
start_bg rag env IMP_PG_DSN="$IMP_PG_APP_DSN" IMP_LOG_LEVEL=info IMP_WORKER_RETRY_BASE=200ms \
    IMP_LLM_URL="http://127.0.0.1:$PORT/v1/chat/completions" IMP_LLM_MODEL=fake-1 \
    IMP_LLM_ALLOW_CIDRS=127.0.0.0/8 "$BIN/imperium-rag"
RAG_PID=$BG_PID
start_bg qc env IMP_PG_DSN="$IMP_PG_APP_DSN" IMP_LOG_LEVEL=info "$BIN/imperium-qc"
QC_PID=$BG_PID

TA1=$(uuid4)
TB1=$(uuid4)
TL1=$(uuid4)
produce_turn "$TA1" "$A" "Is there parking for guests? q-a1" 101
produce_turn "$TB1" "$B" "Is there parking for guests? q-b1" 201
produce_turn "$TL1" "$L" "Is there parking for guests? q-l1" 301
for t in "$TA1" "$TB1" "$TL1"; do wait_decided "$t"; done

VA1=$(bot_version_id salon 1)
VA2=$(bot_version_id salon 2)
VB1=$(bot_version_id clinic 1)
VB2=$(bot_version_id clinic 2)
assert_eq "salon (canary channel): the draft names the canary and its pinned KB version" \
    "\"$VA2\"|\"$KA2\"" "$(draft_of "$TA1" bot_version)|$(draft_of "$TA1" kb_version)"
assert_eq "salon: the LLM got the canary's instruction" "1 CANARY-INSTRUCTION salon: answer in one sentence." \
    "$(instruction_for q-a1)"
assert_eq "salon: the excerpts came from the canary's KB version" CANARY-KB "$(kb_for q-a1)"
assert_eq "salon: retrieval_log used the pinned version" "$KA2" \
    "$(sql "SELECT kb_version_id FROM retrieval_log WHERE operation_id = '$TA1'")"
assert_eq "salon: qc applied the canary's rules" "fail|forbidden_topic: parking|$VA2" "$(trace_of "$TA1")"
assert_eq "salon: the canary's safe reply" "Canary safe reply." "$(outbound_of "$TA1" safe_reply)"
assert_eq "salon: no answer" "" "$(outbound_of "$TA1" answer)"

assert_eq "clinic (stable channel): the stable version and the stable KB version" \
    "\"$VB1\"|\"$KB1\"" "$(draft_of "$TB1" bot_version)|$(draft_of "$TB1" kb_version)"
assert_eq "clinic: the LLM got the stable instruction" "1 STABLE-INSTRUCTION clinic" "$(instruction_for q-b1)"
assert_eq "clinic: the excerpts came from the stable FAQ" FAQ "$(kb_for q-b1)"
assert_eq "clinic: the stable rules pass it" "pass||$VB1" "$(trace_of "$TB1")"
assert_eq "clinic: the answer went out" "LLM answer to: Is there parking for guests? q-b1" "$(outbound_of "$TB1" answer)"

assert_eq "legacy (a draft only, no KB): no bot version, answered as before from tenants.settings" \
    "null|null|\"none\"|fail|no_answer: no_kb|-|Legacy reply." \
    "$(draft_of "$TL1" bot_version)|$(draft_of "$TL1" kb_version)|$(draft_of "$TL1" mode)|$(trace_of "$TL1")|$(outbound_of "$TL1" safe_reply)"

# A draft is judged by the version named in it, whatever the tenant's channel says now.
D1=$(uuid4)
D2=$(uuid4)
D3=$(uuid4)
produce_draft "$D1" "$B" "$VB2" "Is there parking? d1" 202
produce_draft "$D2" "$B" "$VA2" "Is there parking? d2" 203
produce_draft "$D3" "$B" "" "Is there parking? d3" 204
for d in "$D1" "$D2" "$D3"; do
    wait_for 30 "the trace of draft $d" at_least 1 "SELECT count(*) FROM message_traces WHERE draft_id = '$d'" ||
        fail "draft $d was not decided"
done
dtrace() { sql "SELECT decision || '|' || reason || '|' || coalesce(bot_version_id::text, '-') FROM message_traces WHERE draft_id = '$1'"; }
assert_eq "a clinic draft naming clinic's canary: its rules" "fail|forbidden_topic: parking|$VB2" "$(dtrace "$D1")"
assert_eq "a clinic draft naming salon's version: not visible, clinic's settings" "pass||-" "$(dtrace "$D2")"
assert_eq "a clinic draft naming none: clinic's settings" "pass||-" "$(dtrace "$D3")"

# ---- publish stable, rollback, rollback -----------------------------------------------------------------

ROWS_B=$(bot_rows clinic)
ctl bot publish clinic 2 --stable
expect "clinic: publish 2 stable" 0 "bot clinic: version 2 is stable (version 1 archived)"
assert_eq "clinic: 1 archived, 2 stable, 3 draft (the canary went stable)" "1:archived 2:stable 3:draft" "$(bot_states clinic)"
TB2=$(uuid4)
produce_turn "$TB2" "$B" "Is there parking for guests? q-b2" 205
wait_decided "$TB2"
assert_eq "clinic: now answered by version 2" "\"$VB2\"" "$(draft_of "$TB2" bot_version)"
assert_eq "clinic: and judged by it" "fail|forbidden_topic: parking|$VB2" "$(trace_of "$TB2")"

ctl bot rollback clinic
expect "clinic: rollback" 0 "bot clinic: rolled back to version 1 (version 2 archived)"
assert_eq "clinic: 1 stable again, 2 archived" "1:stable 2:archived 3:draft" "$(bot_states clinic)"
ctl bot rollback clinic
expect "clinic: rollback again" 1 "bot clinic: nothing to roll back to: version 1 was its first stable version"
assert_eq "clinic: unchanged by the failed rollback" "1:stable 2:archived 3:draft" "$(bot_states clinic)"
assert_eq "clinic: the release history" \
    "stable:publish:1:- canary:publish:2:- stable:publish:2:1 stable:rollback:1:2" "$(releases clinic)"
assert_eq "clinic: no version row changed (only states)" "$ROWS_B" "$(bot_rows clinic)"
assert_eq "clinic: published_at kept, archived_at set" "true|true|true" \
    "$(sql "SELECT bool_and(published_at IS NOT NULL) || '|' || bool_and(archived_at IS NULL) FILTER (WHERE state = 'stable') || '|' || bool_and(archived_at IS NOT NULL) FILTER (WHERE state = 'archived') FROM bot_versions WHERE tenant_id = '$B' AND number IN (1, 2)")"
TB3=$(uuid4)
produce_turn "$TB3" "$B" "Is there parking for guests? q-b3" 206
wait_decided "$TB3"
assert_eq "clinic: answered by version 1 again" "\"$VB1\"" "$(draft_of "$TB3" bot_version)"
assert_eq "clinic: with its instruction and rules" "1 STABLE-INSTRUCTION clinic|pass||$VB1" \
    "$(instruction_for q-b3)|$(trace_of "$TB3")"

ctl bot channel salon stable
expect "salon: back to the stable channel" 0 "tenant salon is on the stable channel: answered by version 1 (stable)"
TA2=$(uuid4)
produce_turn "$TA2" "$A" "Is there parking for guests? q-a2" 102
wait_decided "$TA2"
assert_eq "salon (stable channel): the stable version and the stable KB" "\"$VA1\"|\"$KA1\"" \
    "$(draft_of "$TA2" bot_version)|$(draft_of "$TA2" kb_version)"
assert_eq "salon: the stable instruction and the stable FAQ" "1 STABLE-INSTRUCTION salon|FAQ" \
    "$(instruction_for q-a2)|$(kb_for q-a2)"
assert_eq "salon: the stable rules pass it" "pass||$VA1" "$(trace_of "$TA2")"

# ---- row-level security ------------------------------------------------------------------------------

as() { psql_app -c "BEGIN" -c "SELECT set_config('app.tenant_id', '$1', true)" -c "$2" -c "COMMIT" 2>&1 | sed 1d | head -n 1; }
as_api() { psql_api -c "BEGIN" -c "SELECT set_config('app.tenant_id', '$1', true)" -c "$2" -c "COMMIT" 2>&1 | sed 1d | head -n 1; }
assert_eq "salon sees its own bots, versions, releases" "1|2|2" \
    "$(as "$A" "SELECT (SELECT count(*) FROM bots) || '|' || (SELECT count(*) FROM bot_versions) || '|' || (SELECT count(*) FROM bot_releases)")"
assert_eq "salon sees none of clinic's" "0|0|0" \
    "$(as "$A" "SELECT (SELECT count(*) FROM bots WHERE tenant_id = '$B') || '|' || (SELECT count(*) FROM bot_versions WHERE tenant_id = '$B') || '|' || (SELECT count(*) FROM bot_releases WHERE tenant_id = '$B')")"
assert_eq "the API role under salon: the same" "2|0" \
    "$(as_api "$A" "SELECT (SELECT count(*) FROM bot_versions) || '|' || (SELECT count(*) FROM bot_versions WHERE id = '$VB1')")"
assert_eq "without a tenant: nothing" "0" "$(psql_app -c "SELECT count(*) FROM bot_versions")"
assert_eq "salon cannot archive clinic's stable version" 0 \
    "$(as "$A" "WITH u AS (UPDATE bot_versions SET state = 'archived' WHERE id = '$VB1' RETURNING 1) SELECT count(*) FROM u")"
assert_contains "salon cannot draft into clinic's bot" \
    "$(as "$A" "INSERT INTO bot_versions (tenant_id, bot_id, number) SELECT '$B', bot_id, 9 FROM bot_versions WHERE id = '$VA1'" || true)" \
    "row-level security"
assert_contains "salon cannot point a release at clinic's version" \
    "$(as "$A" "INSERT INTO bot_releases (tenant_id, bot_id, channel, action, version_id, operation_id, actor) SELECT '$A', bot_id, 'stable', 'publish', '$VB1', gen_random_uuid(), 'x' FROM bot_versions WHERE id = '$VA1'" || true)" \
    "violates foreign key constraint"
assert_contains "a version's instruction cannot be changed" \
    "$(as "$A" "UPDATE bot_versions SET instruction = 'x' WHERE id = '$VA1'" || true)" "permission denied"
assert_contains "the API role cannot write" \
    "$(as_api "$A" "UPDATE bot_versions SET state = 'archived' WHERE id = '$VA1'" || true)" "permission denied"
assert_eq "clinic's stable version is still stable" "1:stable 2:archived 3:draft" "$(bot_states clinic)"

# ---- audit, outcomes, events ---------------------------------------------------------------------------

# salon: draft, publish, draft, publish canary, channel canary, channel stable (6 changes; the
# unchanged and failed commands audit nothing)
assert_eq "salon: one audit row per change" 6 "$(bot_audits "$A")"
assert_eq "salon: the audit actions" "bot.draft bot.publish bot.draft bot.publish bot.channel bot.channel" \
    "$(sql "SELECT string_agg(action, ' ' ORDER BY id) FROM audit_log WHERE tenant_id = '$A' AND action LIKE 'bot.%'")"
assert_eq "salon: the audit rows name the actor, target and operation" "6|6" \
    "$(sql "SELECT count(*) FILTER (WHERE actor = 'it-operator' AND target = 'bot:salon/default') || '|' || count(*) FILTER (WHERE operation_id IN (SELECT operation_id FROM operations WHERE status = 'succeeded')) FROM audit_log WHERE tenant_id = '$A' AND action LIKE 'bot.%'")"
assert_eq "salon: outcomes (succeeded, failed)" "succeeded:8 failed:5" \
    "$(sql "SELECT string_agg(status || ':' || n, ' ' ORDER BY status DESC) FROM (SELECT status, count(*) n FROM operations WHERE tenant_id = '$A' AND kind LIKE 'imp.command.bot.%' GROUP BY 1) x")"
assert_eq "salon: imp.control.v1 events (what bot)" "1 2 2 1" "$(bot_changes "$A")"
assert_eq "clinic: imp.control.v1 events" "1 2 2 1" "$(bot_changes "$B")"
assert_eq "the publish audit row holds the pointers" '{"canary": 2, "stable": 1}|{"canary": null, "stable": 2}' \
    "$(sql "SELECT before::text || '|' || after::text FROM audit_log WHERE tenant_id = '$B' AND action = 'bot.publish' ORDER BY id DESC LIMIT 1")"
assert_eq "no dead letters but the two forged commands" 2 "$(sql "SELECT count(*) FROM dead_letters")"

# ---- deploy/demo.sh: the demo's bot version -------------------------------------------------------------

DEV="$T/dev"
mkdir -p "$DEV"
cat >"$DEV/env" <<EOF
IMP_PG_DSN=$IMP_PG_APP_DSN
IMP_PG_APP_DSN=$IMP_PG_APP_DSN
IMP_KAFKA_BROKERS=$IMP_KAFKA_BROKERS
IMP_SECRET_KEY=$IMP_SECRET_KEY
IMP_INGRESS_URL=http://127.0.0.1:9
EOF
demo() {
    env -u IMP_SECRET_KEY IMP_DEMO_DIR="$DEV" IMP_DEMO_KB=0 IMP_DEMO_BOT=1 \
        bash "$IMP_SOURCE_DIR/deploy/demo.sh" "$IMP_BUILD_DIR" >"$T/demo.out" 2>"$T/demo.err" ||
        fail "demo.sh failed: $(tail -n 20 "$T/demo.err")"
}
demo
D=$(tenant_id demo)
assert_contains "demo.sh says so" "$(cat "$T/demo.err")" "bot of demo: version 1 is stable"
assert_eq "demo: version 1 stable, with the demo's instruction and rules" \
    "1:stable|$(cat "$IMP_SOURCE_DIR/deploy/demo/bot_instruction.txt")|true" \
    "$(sql "SELECT number || ':' || state || '|' || instruction || '|' || (settings = '$(cat "$IMP_SOURCE_DIR/deploy/demo/bot_settings.json")'::jsonb) FROM bot_versions WHERE tenant_id = '$D'")"
assert_eq "demo: its instruction is imperium-rag's default one" \
    "$(python3 -c 'import re, sys
src = open(sys.argv[1]).read()
body = re.search(r"RAG_DEFAULT_INSTRUCTION\[\] =(.*?);", src, re.S).group(1)
print("".join(re.findall(r"\"((?:[^\"\\\\]|\\\\.)*)\"", body)))' "$IMP_SOURCE_DIR/workers/rag/answer_llm.c")" \
    "$(cat "$IMP_SOURCE_DIR/deploy/demo/bot_instruction.txt")"
DEMO_AUDIT=$(sql "SELECT count(*) FROM audit_log WHERE tenant_id = '$D'")
demo
assert_eq "demo.sh again: still one version" "1:stable" "$(bot_states demo)"
assert_eq "demo.sh again: nothing audited" "$DEMO_AUDIT" "$(sql "SELECT count(*) FROM audit_log WHERE tenant_id = '$D'")"
assert_contains "demo.sh again: the version is found" "$(cat "$T/demo.err")" "version 1 (stable) has this instruction"

stop_bg "$QC_PID" || fail "imperium-qc exited with an error"
stop_bg "$RAG_PID" || fail "imperium-rag exited with an error"
stop_bg "$CONTROL_PID" || fail "imperium-control did not stop cleanly"
pass "bot versions and release channels"
