-- The inbox forgets events after IMP_WORKER_INBOX_RETENTION; the purge walks this index from
-- its oldest entry and reads only the rows it deletes. A B-tree, not BRIN: deleted rows'
-- space is reused by new ones, so after the first purges every BRIN range would span old and
-- new rows alike and the purge would read the whole table. Its inserts go to the rightmost
-- leaf (processed_at grows), the cheapest place in a B-tree.
DROP INDEX inbox_processed_at;
CREATE INDEX inbox_processed_at ON inbox (processed_at);
