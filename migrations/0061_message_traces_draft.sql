-- imperium-send fills message_traces.send_ms of the turn a reply belongs to; it knows the
-- reply's draft (the outbound event's causationid), not the turn: look-ups by draft_id.
CREATE INDEX message_traces_draft ON message_traces (tenant_id, draft_id);
