#!/usr/bin/env bash
# The value constraints of the tables written at every reply (migrations/0076): domains, not
# CHECK constraints. The application role's out-of-range values are refused with the domain's
# constraint named; an UPDATE checks what it sets; no CHECK constraint a domain could hold
# comes back on those tables.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/lib/common.sh"

A=aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa
psql_owner -c "INSERT INTO tenants (id, slug, name) VALUES ('$A', 'tenant-a', 'A')" >/dev/null

# as_app SQL: SQL as the application role, in a transaction of tenant A.
as_app() {
    psql_app <<SQL
BEGIN;
SELECT set_config('app.tenant_id', '$A', true) \g /dev/null
$1;
COMMIT;
SQL
}

# refused NAME CONSTRAINT SQL: SQL fails as a check violation of CONSTRAINT.
refused() {
    assert_fails "$1" as_app "$3"
    assert_contains "  by $2" "$ASSERT_OUTPUT" "violates check constraint \"$2\""
}

trace() { # trace COLUMN=VALUE…: a message_traces insert with the given columns overridden
    local -A v=([mode]="'extractive'" [decision]="'pass'" [ingress_ms]=3 [rag_ms]=1 [llm_ms]=0
        [qc_ms]=1 [confidence]=0.5)
    local kv
    for kv in "$@"; do v[${kv%%=*}]=${kv#*=}; done
    printf "INSERT INTO message_traces (tenant_id, operation_id, draft_id, mode, decision,
        ingress_ms, rag_ms, llm_ms, qc_ms, confidence) VALUES ('%s', gen_random_uuid(),
        '00000000-0000-4000-8000-000000000001', %s, %s, %s, %s, %s, %s, %s)" "$A" \
        "${v[mode]}" "${v[decision]}" "${v[ingress_ms]}" "${v[rag_ms]}" "${v[llm_ms]}" \
        "${v[qc_ms]}" "${v[confidence]}"
}

# ---- message_traces ---------------------------------------------------------------------
refused "trace: a negative stage time" imp_nonneg_int_check "$(trace ingress_ms=-1)"
refused "trace: a negative qc time" imp_nonneg_int_check "$(trace qc_ms=-5)"
refused "trace: an unknown mode" imp_trace_mode_check "$(trace mode="'bogus'")"
refused "trace: an unknown decision" imp_trace_decision_check "$(trace decision="'maybe'")"
refused "trace: a confidence above 1" imp_fraction_check "$(trace confidence=1.5)"
refused "trace: a confidence below 0" imp_fraction_check "$(trace confidence=-0.01)"
assert_eq "trace: a valid row is written" "" "$(as_app "$(trace)")"
assert_eq "trace: NULL times are allowed" "" "$(as_app "$(trace rag_ms=NULL confidence=NULL)")"
refused "trace: send_ms set negative" imp_nonneg_int_check \
    "UPDATE message_traces SET send_ms = -1 WHERE draft_id = '00000000-0000-4000-8000-000000000001'"
assert_eq "trace: send_ms set" "" "$(as_app "UPDATE message_traces SET send_ms = 7
    WHERE draft_id = '00000000-0000-4000-8000-000000000001'")"
assert_eq "trace: two rows with send_ms 7" "2|7" \
    "$(psql_owner -c "SELECT count(*) || '|' || min(send_ms) FROM message_traces")"

# ---- outbound ---------------------------------------------------------------------------
outbound() { # outbound CHANNEL STATE
    printf "INSERT INTO outbound (tenant_id, operation_id, channel, recipient, purpose, text,
        state) VALUES ('%s', gen_random_uuid(), '%s', 'r', 'answer', 'hi', '%s')" "$A" "$1" "$2"
}
refused "outbound: an unknown channel" imp_channel_kind_check "$(outbound fax pending)"
refused "outbound: an unknown state" imp_outbound_state_check "$(outbound generic lost)"
for ch in chatflow whatsapp telegram generic test; do
    assert_eq "outbound: channel $ch" "" "$(as_app "$(outbound "$ch" pending)")"
done
refused "outbound: settled to an unknown state" imp_outbound_state_check \
    "UPDATE outbound SET state = 'done' WHERE channel = 'generic'"
for st in sending sent failed unknown; do
    assert_eq "outbound: settled $st" "" \
        "$(as_app "UPDATE outbound SET state = '$st' WHERE channel = 'generic'")"
done

# ---- retrieval_log and llm_turns (the domains refuse before the foreign key is checked) --
log() { # log CHUNKS CONFIDENCE
    printf "INSERT INTO retrieval_log (tenant_id, operation_id, kb_version_id, query, chunks,
        confidence) VALUES ('%s', gen_random_uuid(), gen_random_uuid(), 'q', '%s', %s)" \
        "$A" "$1" "$2"
}
refused "retrieval log: chunks not an array" imp_json_array_check "$(log '{"a":1}' 0.5)"
refused "retrieval log: a confidence above 1" imp_fraction_check "$(log '[]' 2)"
assert_fails "retrieval log: valid values reach the foreign key" as_app "$(log '[]' 0.5)"
assert_contains "  (its version does not exist)" "$ASSERT_OUTPUT" "violates foreign key constraint"

llm() { # llm COMPLETION PROMPT_TOKENS
    printf "INSERT INTO llm_turns (tenant_id, operation_id, completion, model, prompt_tokens)
        VALUES ('%s', gen_random_uuid(), '%s', 'm', %s)" "$A" "$1" "$2"
}
refused "llm turn: an empty completion" imp_nonempty_text_check "$(llm '' 3)"
refused "llm turn: negative tokens" imp_nonneg_int_check "$(llm 'an answer' -3)"
assert_eq "llm turn: a valid row is written" "" "$(as_app "$(llm 'an answer' 3)")"

# ---- the catalog ------------------------------------------------------------------------
assert_eq "no CHECK constraints on the reply path's domain-constrained tables" "" \
    "$(psql_owner -c "SELECT string_agg(conrelid::regclass || '.' || conname, ',') FROM pg_constraint
        WHERE contype = 'c' AND conrelid::regclass::text IN
            ('message_traces', 'outbound', 'retrieval_log', 'llm_turns')")"
assert_eq "every domain constraint of 0076 is validated" "8|8" \
    "$(psql_owner -c "SELECT count(*) || '|' || count(*) FILTER (WHERE c.convalidated)
        FROM pg_constraint c JOIN pg_type t ON t.oid = c.contypid
        WHERE t.typname IN ('imp_nonneg_int', 'imp_fraction', 'imp_json_array',
            'imp_channel_kind', 'imp_outbound_state', 'imp_trace_mode', 'imp_trace_decision',
            'imp_nonempty_text')")"
