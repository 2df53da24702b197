-- The value constraints of the tables written at every reply become domains.
--
-- Postgres 15 prepares a table's CHECK constraints again at the first row of every INSERT and
-- UPDATE statement: each stored expression is deserialized and planned (ExecConstraints),
-- and an UPDATE checks all of them whatever columns it sets. The reply path writes these
-- tables one row per statement, so that preparation is paid per row: with its eight CHECK
-- constraints a single-row INSERT into message_traces cost about a third more than the same
-- table without them (pgbench, docs/round-trip.md § Speed). A domain's constraints are
-- prepared once per connection (the type cache), and only a value being assigned to a column
-- of the domain is checked: imperium-send's `UPDATE … SET send_ms` checks send_ms alone.
--
-- No table is rewritten. Each domain is created without its constraint, so the columns take it
-- as a relabelling (no scan); the old CHECK constraints go in the same statement; then each
-- domain's constraint is added NOT VALID and validated, one scan of the tables using it, which
-- the old constraints guarantee passes. All of it is one transaction.
--
-- Left as CHECK constraints: turns (one of its two relates two columns) and the single
-- constraint of messages and conversations, whose tables are the largest.
CREATE DOMAIN imp_nonneg_int AS integer;
CREATE DOMAIN imp_fraction AS real;
CREATE DOMAIN imp_json_array AS jsonb;
CREATE DOMAIN imp_channel_kind AS text;
CREATE DOMAIN imp_outbound_state AS text;
CREATE DOMAIN imp_trace_mode AS text;
CREATE DOMAIN imp_trace_decision AS text;
CREATE DOMAIN imp_nonempty_text AS text;

ALTER TABLE message_traces
    DROP CONSTRAINT message_traces_mode_check,
    DROP CONSTRAINT message_traces_ingress_ms_check,
    DROP CONSTRAINT message_traces_rag_ms_check,
    DROP CONSTRAINT message_traces_llm_ms_check,
    DROP CONSTRAINT message_traces_qc_ms_check,
    DROP CONSTRAINT message_traces_send_ms_check,
    DROP CONSTRAINT message_traces_confidence_check,
    DROP CONSTRAINT message_traces_decision_check,
    ALTER COLUMN mode TYPE imp_trace_mode,
    ALTER COLUMN ingress_ms TYPE imp_nonneg_int,
    ALTER COLUMN rag_ms TYPE imp_nonneg_int,
    ALTER COLUMN llm_ms TYPE imp_nonneg_int,
    ALTER COLUMN qc_ms TYPE imp_nonneg_int,
    ALTER COLUMN send_ms TYPE imp_nonneg_int,
    ALTER COLUMN confidence TYPE imp_fraction,
    ALTER COLUMN decision TYPE imp_trace_decision;

ALTER TABLE outbound
    DROP CONSTRAINT outbound_channel_check,
    DROP CONSTRAINT outbound_state_check,
    ALTER COLUMN channel TYPE imp_channel_kind,
    ALTER COLUMN state TYPE imp_outbound_state;

ALTER TABLE retrieval_log
    DROP CONSTRAINT retrieval_log_chunks_check,
    DROP CONSTRAINT retrieval_log_confidence_check,
    ALTER COLUMN chunks TYPE imp_json_array,
    ALTER COLUMN confidence TYPE imp_fraction;

ALTER TABLE llm_turns
    DROP CONSTRAINT llm_turns_completion_check,
    DROP CONSTRAINT llm_turns_prompt_tokens_check,
    DROP CONSTRAINT llm_turns_completion_tokens_check,
    DROP CONSTRAINT llm_turns_llm_ms_check,
    ALTER COLUMN completion TYPE imp_nonempty_text,
    ALTER COLUMN prompt_tokens TYPE imp_nonneg_int,
    ALTER COLUMN completion_tokens TYPE imp_nonneg_int,
    ALTER COLUMN llm_ms TYPE imp_nonneg_int;

ALTER DOMAIN imp_nonneg_int ADD CONSTRAINT imp_nonneg_int_check CHECK (VALUE >= 0) NOT VALID;
ALTER DOMAIN imp_fraction ADD CONSTRAINT imp_fraction_check
    CHECK (VALUE BETWEEN 0 AND 1) NOT VALID;
ALTER DOMAIN imp_json_array ADD CONSTRAINT imp_json_array_check
    CHECK (jsonb_typeof(VALUE) = 'array') NOT VALID;
ALTER DOMAIN imp_channel_kind ADD CONSTRAINT imp_channel_kind_check
    CHECK (VALUE IN ('chatflow', 'whatsapp', 'telegram', 'generic', 'test')) NOT VALID;
ALTER DOMAIN imp_outbound_state ADD CONSTRAINT imp_outbound_state_check
    CHECK (VALUE IN ('pending', 'sending', 'sent', 'failed', 'unknown')) NOT VALID;
ALTER DOMAIN imp_trace_mode ADD CONSTRAINT imp_trace_mode_check
    CHECK (VALUE IN ('llm', 'extractive', 'none')) NOT VALID;
ALTER DOMAIN imp_trace_decision ADD CONSTRAINT imp_trace_decision_check
    CHECK (VALUE IN ('pass', 'fail')) NOT VALID;
ALTER DOMAIN imp_nonempty_text ADD CONSTRAINT imp_nonempty_text_check
    CHECK (VALUE <> '') NOT VALID;

ALTER DOMAIN imp_nonneg_int VALIDATE CONSTRAINT imp_nonneg_int_check;
ALTER DOMAIN imp_fraction VALIDATE CONSTRAINT imp_fraction_check;
ALTER DOMAIN imp_json_array VALIDATE CONSTRAINT imp_json_array_check;
ALTER DOMAIN imp_channel_kind VALIDATE CONSTRAINT imp_channel_kind_check;
ALTER DOMAIN imp_outbound_state VALIDATE CONSTRAINT imp_outbound_state_check;
ALTER DOMAIN imp_trace_mode VALIDATE CONSTRAINT imp_trace_mode_check;
ALTER DOMAIN imp_trace_decision VALIDATE CONSTRAINT imp_trace_decision_check;
ALTER DOMAIN imp_nonempty_text VALIDATE CONSTRAINT imp_nonempty_text_check;
