-- Sync state: the last agreed values of every synced record (the base of the three-way compare),
-- the incremental-pull cursor per endpoint and side, failed writes kept for re-drive, and conflicts
-- held for a human.

CREATE TABLE record_states (
    endpoint  TEXT    NOT NULL,
    record_key TEXT   NOT NULL,
    crm_id    TEXT,
    erp_id    TEXT,
    fields    TEXT    NOT NULL,
    synced_at BIGINT NOT NULL,
    PRIMARY KEY (endpoint, record_key)
);

CREATE TABLE sync_cursors (
    endpoint  TEXT    NOT NULL,
    system    TEXT    NOT NULL,
    cursor_at BIGINT NOT NULL,
    PRIMARY KEY (endpoint, system)
);

CREATE TABLE dead_letters (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint    TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    record_key  TEXT    NOT NULL,
    record_id   TEXT,
    fields      TEXT    NOT NULL,
    error       TEXT    NOT NULL,
    attempts    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    resolved_at BIGINT
);

CREATE INDEX dead_letters_open ON dead_letters (endpoint, resolved_at);

CREATE TABLE conflicts (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint    TEXT    NOT NULL,
    record_key  TEXT    NOT NULL,
    field       TEXT    NOT NULL,
    base_value  TEXT,
    crm_value   TEXT,
    erp_value   TEXT,
    opened_at   BIGINT NOT NULL,
    resolved_at BIGINT,
    resolution  TEXT
);

CREATE INDEX conflicts_open ON conflicts (endpoint, resolved_at);

-- Writes a run is about to make, stored before it makes them: after a crash the next run checks
-- which of them reached the target and records those events, so no write goes unrecorded.
CREATE TABLE sync_intents (
    idempotency_key TEXT    PRIMARY KEY,
    endpoint        TEXT    NOT NULL,
    event           TEXT    NOT NULL,
    created_at      BIGINT NOT NULL
);

CREATE INDEX sync_intents_endpoint ON sync_intents (endpoint);

-- Run-time switches per endpoint (pause, dry run) set by operators, on top of the configuration.
CREATE TABLE endpoint_controls (
    endpoint   TEXT    PRIMARY KEY,
    paused     BIGINT NOT NULL,
    dry_run    BIGINT NOT NULL,
    changed_at BIGINT NOT NULL,
    changed_by TEXT    NOT NULL
);
