-- Readiness writes here (and commits), so /readyz sees a database file that can no longer be
-- written, not only a connection that can still be opened.
CREATE TABLE rv_heartbeat (
    id BIGINT PRIMARY KEY,
    at BIGINT NOT NULL
);
