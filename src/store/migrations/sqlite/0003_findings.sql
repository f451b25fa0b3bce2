-- Findings of the monitor. One row per fingerprint: a repeat updates it (severity, evidence, last
-- seen, occurrences) and a recurrence after resolution reopens it, so the table never fills with
-- copies of one incident. Evidence is JSON text; timestamps are microseconds since the epoch.

CREATE TABLE findings (
    id              INTEGER PRIMARY KEY,
    kind            TEXT    NOT NULL,
    severity        TEXT    NOT NULL,
    fingerprint     TEXT    NOT NULL UNIQUE,
    title           TEXT    NOT NULL,
    evidence        TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    started_at      INTEGER NOT NULL,
    detected_at     INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL,
    occurrences     INTEGER NOT NULL,
    acknowledged_at INTEGER,
    resolved_at     INTEGER
);

CREATE INDEX findings_by_state ON findings (state, detected_at);
