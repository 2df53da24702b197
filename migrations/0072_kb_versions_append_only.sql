-- A built knowledge-base version is a record of what answered: the application may move its
-- state (promote, archive) but not delete it or its chunks, as for bot versions. Versions
-- and chunks still go with their tenant (ON DELETE CASCADE).
REVOKE DELETE ON kb_versions, kb_chunks FROM imperium_app;
