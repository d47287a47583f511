-- The leader lease's fencing row (PostgreSQL replicas; SQLite has one process and never uses
-- it). A replica that takes the advisory-lock lease bumps `epoch` and records the backend pid
-- of its lease session; the leader's own writes (periodic checkpoints, jobs) first check, in
-- their transaction, that the row still names them and that their lease session still holds
-- the lock. The check takes a share lock on the row, so a new leader's bump waits for an old
-- leader's in-flight write to finish: a write is either the old leader's, committed before the
-- new one starts, or refused.
CREATE TABLE rv_lease (
    id BIGINT PRIMARY KEY,
    epoch BIGINT NOT NULL,
    holder_pid BIGINT NOT NULL,
    taken_at BIGINT NOT NULL
);
INSERT INTO rv_lease (id, epoch, holder_pid, taken_at) VALUES (1, 0, 0, 0);
