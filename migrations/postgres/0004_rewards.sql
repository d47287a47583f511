-- Reward settlement. `doc` is the reward as the domain models it (JSON, no plaintext
-- identity: pseudonyms and vault record ids only); indexed columns are copies for queries.
-- `version` makes every transition a compare-and-set, so two officers acting at once
-- produce one outcome.
CREATE TABLE rewards (
    id             TEXT PRIMARY KEY,
    jurisdiction   TEXT NOT NULL,
    status         TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    claim_deadline BIGINT,
    doc            TEXT NOT NULL,
    version        BIGINT NOT NULL
);
CREATE INDEX rewards_by_status ON rewards(status, claim_deadline);
CREATE INDEX rewards_by_created ON rewards(created_at);

-- One row per positive award, for per-reporter monthly caps across cases.
CREATE TABLE reward_awards (
    reward_id   TEXT NOT NULL REFERENCES rewards(id),
    reporter_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    month       TEXT NOT NULL,
    amount      TEXT NOT NULL,
    PRIMARY KEY (reward_id, reporter_id)
);
CREATE INDEX reward_awards_cap ON reward_awards(reporter_id, kind, month);

-- At most one payment per reward, by construction.
CREATE TABLE reward_payments (
    reward_id   TEXT PRIMARY KEY REFERENCES rewards(id),
    payment_ref TEXT NOT NULL,
    amount      TEXT NOT NULL,
    paid_on     TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);

-- Idempotency-Key answers (per principal).
CREATE TABLE idempotency (
    principal_id TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       BIGINT NOT NULL,
    body         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (principal_id, key)
);
