-- The version of the last tenant snapshot published to imp.tenants.v1
-- (docs/tenant-directory.md). imperium-control sets it to the change's time in ms, or to the
-- previous version + 1 when the clock (of another control process, or after a step back)
-- would not move it forward: the ingress ignores a snapshot older than the one it holds, so
-- versions of one tenant must only grow.
ALTER TABLE tenants ADD COLUMN snapshot_version bigint NOT NULL DEFAULT 0;
