-- Identity vault, first schema (SQLite). Times are unix seconds (UTC); booleans 0/1.
-- No column holds plaintext identity data: identities live only in `reporters.envelope`.

CREATE TABLE principals (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    jurisdiction  TEXT NOT NULL,
    age_recipient TEXT,
    token_hash    BLOB NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
);

CREATE TABLE reporters (
    id              TEXT PRIMARY KEY,
    jurisdiction    TEXT NOT NULL,
    blind_index     BLOB UNIQUE,
    envelope        BLOB,
    kek_version     INTEGER,
    anonymous       INTEGER NOT NULL,
    claim_code_hash TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    erased_at       INTEGER
);

CREATE TABLE pseudonyms (
    pseudonym                 TEXT PRIMARY KEY,
    reporter_id               TEXT NOT NULL REFERENCES reporters(id),
    jurisdiction              TEXT NOT NULL,
    case_ref                  TEXT NOT NULL,
    received_at               INTEGER NOT NULL,
    channel                   TEXT NOT NULL,
    employee_of_reported_unit INTEGER NOT NULL,
    anonymous                 INTEGER NOT NULL,
    status                    TEXT NOT NULL,
    created_at                INTEGER NOT NULL,
    created_by                TEXT NOT NULL,
    origin                    TEXT NOT NULL,
    parent                    TEXT
);
CREATE INDEX pseudonyms_by_reporter ON pseudonyms(reporter_id, created_at);

CREATE TABLE disclosures (
    id                 TEXT PRIMARY KEY,
    pseudonym          TEXT NOT NULL REFERENCES pseudonyms(pseudonym),
    reporter_id        TEXT NOT NULL REFERENCES reporters(id),
    jurisdiction       TEXT NOT NULL,
    requester_id       TEXT NOT NULL REFERENCES principals(id),
    purpose            TEXT NOT NULL,
    justification      TEXT NOT NULL,
    fields             TEXT NOT NULL,
    status             TEXT NOT NULL,
    approvals_required INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    approved_at        INTEGER,
    opened_at          INTEGER
);

CREATE TABLE disclosure_decisions (
    disclosure_id TEXT NOT NULL REFERENCES disclosures(id),
    principal_id  TEXT NOT NULL REFERENCES principals(id),
    approve       INTEGER NOT NULL,
    comment       TEXT NOT NULL,
    at            INTEGER NOT NULL,
    PRIMARY KEY (disclosure_id, principal_id)
);

CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    pseudonym       TEXT NOT NULL,
    reporter_id     TEXT NOT NULL,
    kind            TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER,
    lease_until     INTEGER,
    delivered_at    INTEGER,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox(next_attempt_at) WHERE delivered_at IS NULL;

-- The access trail. `leaf` is the exact canonical bytes that are hashed into the log.
CREATE TABLE audit_events (
    idx           INTEGER PRIMARY KEY,
    leaf          BLOB NOT NULL,
    time          INTEGER NOT NULL,
    action        TEXT NOT NULL,
    actor_id      TEXT,
    disclosure_id TEXT,
    pseudonym     TEXT
);

-- Keyed MACs of disclosed values, indexed for leak tracing. Derived from the leaves.
CREATE TABLE audit_field_macs (
    idx   INTEGER NOT NULL REFERENCES audit_events(idx),
    field TEXT NOT NULL,
    mac   TEXT NOT NULL
);
CREATE INDEX audit_field_macs_lookup ON audit_field_macs(field, mac);

-- The trail is append-only, enforced by the database itself.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'the access trail is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'the access trail is append-only'); END;
CREATE TRIGGER audit_field_macs_no_update BEFORE UPDATE ON audit_field_macs
BEGIN SELECT RAISE(ABORT, 'the access trail is append-only'); END;
CREATE TRIGGER audit_field_macs_no_delete BEFORE DELETE ON audit_field_macs
BEGIN SELECT RAISE(ABORT, 'the access trail is append-only'); END;
