-- The purge finds old published rows through the primary key (ids grow with insertion time),
-- not through the insertion time: a BRIN index on created_at leaves the ranges written since
-- the last summarization unsummarized, and the planner scanned the whole table every time
-- it found nothing to purge. Without it the insert and publish paths maintain one index less.
DROP INDEX outbox_created_at;
