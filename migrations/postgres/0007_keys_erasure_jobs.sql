-- Key lifecycle, erasure, retention and background jobs (issue 6).

-- Every KEK version this deployment has used, so retired versions stay listed after the
-- provider destroyed them.
CREATE TABLE key_versions (
    version    BIGINT PRIMARY KEY,
    provider   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);
CREATE INDEX reporters_by_kek ON reporters(kek_version);

-- Erasure requests: approved by custodians like a disclosure, or made by the retention job.
CREATE TABLE erasures (
    id                 TEXT PRIMARY KEY,
    pseudonym          TEXT NOT NULL,
    reporter_id        TEXT NOT NULL REFERENCES reporters(id),
    jurisdiction       TEXT NOT NULL,
    requester_id       TEXT NOT NULL,
    reason             TEXT NOT NULL,
    justification      TEXT NOT NULL,
    status             TEXT NOT NULL,
    approvals_required BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    completed_at       BIGINT
);
CREATE TABLE erasure_decisions (
    erasure_id   TEXT NOT NULL REFERENCES erasures(id),
    principal_id TEXT NOT NULL,
    approve      BIGINT NOT NULL,
    comment      TEXT NOT NULL,
    at           BIGINT NOT NULL,
    PRIMARY KEY (erasure_id, principal_id)
);

-- When the case system closed a case; retention counts from the last closure of a reporter.
CREATE TABLE case_closures (
    pseudonym TEXT PRIMARY KEY REFERENCES pseudonyms(pseudonym),
    closed_on TEXT NOT NULL,
    closed_by TEXT NOT NULL,
    at        BIGINT NOT NULL
);

-- Background jobs (key rewrap), visible from every replica; the leader runs them.
CREATE TABLE jobs (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    total        BIGINT NOT NULL,
    done         BIGINT NOT NULL,
    failed       BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    error        TEXT
);
