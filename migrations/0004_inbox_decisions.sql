-- The inbox remembers what the runtime decided for an event, not only that it was done:
--   done      the handler's effects are committed; every later copy is a duplicate
--   retrying  attempt N failed retriably and attempt N+1 is on the retry topic; a copy of
--             attempt <= N is a duplicate, attempt N+1 is the retry itself
--   dead      dead-lettered; only a replay (imperium-dlq deletes the row) runs it again
ALTER TABLE inbox
    ADD COLUMN state text NOT NULL DEFAULT 'done' CHECK (state IN ('done', 'retrying', 'dead')),
    ADD COLUMN attempt integer NOT NULL DEFAULT 0;
