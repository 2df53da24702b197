-- An outbox row's age counts from its insertion, not from the start of its transaction. The
-- runtime inserts a batch's events just before COMMIT, so a batch that ran for longer than
-- IMP_WORKER_RELAY_GRACE used to commit rows that were already "old": a relay in another
-- process could publish them before their own worker did, and a later event of the same
-- conversation could then reach the topic ahead of an earlier one still in that worker's
-- producer queue.
ALTER TABLE outbox ALTER COLUMN created_at SET DEFAULT clock_timestamp();
