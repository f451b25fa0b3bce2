-- Merges and undos of the deduper as durable jobs (an outbox): each is a list of steps against the
-- CRM and the ERP, claimed by one worker at a time, its progress stored after every step so a
-- killed process resumes where it stopped. One merge and one undo per proposal at most.
CREATE TABLE merge_jobs (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    proposal_id   BIGINT NOT NULL,
    kind          TEXT    NOT NULL,
    plan          TEXT    NOT NULL,
    next_step     BIGINT NOT NULL DEFAULT 0,
    results       TEXT    NOT NULL DEFAULT '{}',
    status        TEXT    NOT NULL DEFAULT 'pending',
    attempts      BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT,
    claimed_by    TEXT,
    claimed_until BIGINT,
    created_by    TEXT    NOT NULL,
    created_at    BIGINT NOT NULL,
    finished_at   BIGINT
);

CREATE UNIQUE INDEX merge_jobs_once ON merge_jobs (proposal_id, kind);
CREATE INDEX merge_jobs_pending ON merge_jobs (status, id);
