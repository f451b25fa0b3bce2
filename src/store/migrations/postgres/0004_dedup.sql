-- Merge proposals of the deduper: one per duplicate cluster, open until an admin approves or
-- rejects it. `before` keeps every member's fields as they were, for undo and for training.

CREATE TABLE dedup_proposals (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint        TEXT             NOT NULL,
    members         TEXT             NOT NULL,
    survivor        TEXT             NOT NULL,
    fields          TEXT             NOT NULL,
    before          TEXT             NOT NULL,
    min_probability DOUBLE PRECISION NOT NULL,
    created_at      BIGINT           NOT NULL,
    status          TEXT             NOT NULL DEFAULT 'open',
    decided_at      BIGINT,
    decided_by      TEXT
);

-- The same cluster found by a later scan is not proposed twice while it is open.
CREATE UNIQUE INDEX dedup_proposals_open ON dedup_proposals (endpoint, members) WHERE status = 'open';
CREATE INDEX dedup_proposals_status ON dedup_proposals (status, endpoint);
