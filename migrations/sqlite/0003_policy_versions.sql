-- The exact text of every reward policy version ever loaded, so a stored reward can be
-- recomputed and explained after its file changed. Append-only.
CREATE TABLE policy_versions (
    version   TEXT PRIMARY KEY,
    policy_id TEXT NOT NULL,
    file      TEXT NOT NULL,
    text      TEXT NOT NULL,
    loaded_at INTEGER NOT NULL
);
CREATE TRIGGER policy_versions_no_update BEFORE UPDATE ON policy_versions
BEGIN SELECT RAISE(ABORT, 'policy versions are append-only'); END;
CREATE TRIGGER policy_versions_no_delete BEFORE DELETE ON policy_versions
BEGIN SELECT RAISE(ABORT, 'policy versions are append-only'); END;
