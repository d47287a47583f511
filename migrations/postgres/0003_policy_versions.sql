-- The exact text of every reward policy version ever loaded, so a stored reward can be
-- recomputed and explained after its file changed. Append-only.
CREATE TABLE policy_versions (
    version   TEXT PRIMARY KEY,
    policy_id TEXT NOT NULL,
    file      TEXT NOT NULL,
    text      TEXT NOT NULL,
    loaded_at BIGINT NOT NULL
);
CREATE TRIGGER policy_versions_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON policy_versions
    FOR EACH STATEMENT EXECUTE FUNCTION rv_append_only();
