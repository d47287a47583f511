-- Identity vault, first schema (PostgreSQL). Times are unix seconds (UTC); booleans 0/1.
-- No column holds plaintext identity data: identities live only in `reporters.envelope`.

CREATE TABLE principals (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    jurisdiction  TEXT NOT NULL,
    age_recipient TEXT,
    token_hash    BYTEA NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);

CREATE TABLE reporters (
    id              TEXT PRIMARY KEY,
    jurisdiction    TEXT NOT NULL,
    blind_index     BYTEA UNIQUE,
    envelope        BYTEA,
    kek_version     BIGINT,
    anonymous       BIGINT NOT NULL,
    claim_code_hash TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    erased_at       BIGINT
);

CREATE TABLE pseudonyms (
    pseudonym                 TEXT PRIMARY KEY,
    reporter_id               TEXT NOT NULL REFERENCES reporters(id),
    jurisdiction              TEXT NOT NULL,
    case_ref                  TEXT NOT NULL,
    received_at               BIGINT NOT NULL,
    channel                   TEXT NOT NULL,
    employee_of_reported_unit BIGINT NOT NULL,
    anonymous                 BIGINT NOT NULL,
    status                    TEXT NOT NULL,
    created_at                BIGINT NOT NULL,
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
    approvals_required BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    approved_at        BIGINT,
    opened_at          BIGINT
);

CREATE TABLE disclosure_decisions (
    disclosure_id TEXT NOT NULL REFERENCES disclosures(id),
    principal_id  TEXT NOT NULL REFERENCES principals(id),
    approve       BIGINT NOT NULL,
    comment       TEXT NOT NULL,
    at            BIGINT NOT NULL,
    PRIMARY KEY (disclosure_id, principal_id)
);

CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    pseudonym       TEXT NOT NULL,
    reporter_id     TEXT NOT NULL,
    kind            TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT,
    lease_until     BIGINT,
    delivered_at    BIGINT,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox(next_attempt_at) WHERE delivered_at IS NULL;

-- The access trail. `leaf` is the exact canonical bytes that are hashed into the log.
CREATE TABLE audit_events (
    idx           BIGINT PRIMARY KEY,
    leaf          BYTEA NOT NULL,
    time          BIGINT NOT NULL,
    action        TEXT NOT NULL,
    actor_id      TEXT,
    disclosure_id TEXT,
    pseudonym     TEXT
);

-- Keyed MACs of disclosed values, indexed for leak tracing. Derived from the leaves.
CREATE TABLE audit_field_macs (
    idx   BIGINT NOT NULL REFERENCES audit_events(idx),
    field TEXT NOT NULL,
    mac   TEXT NOT NULL
);
CREATE INDEX audit_field_macs_lookup ON audit_field_macs(field, mac);

-- The trail is append-only, enforced by the database itself.
CREATE FUNCTION rv_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the access trail is append-only';
END;
$$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION rv_append_only();
CREATE TRIGGER audit_field_macs_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_field_macs
    FOR EACH STATEMENT EXECUTE FUNCTION rv_append_only();
