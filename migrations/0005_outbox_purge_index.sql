-- The relay purges published outbox rows by age; a BRIN index on the insertion time finds
-- them without scanning the table, and costs next to nothing on the insert path.
CREATE INDEX outbox_created_at ON outbox USING brin (created_at);
