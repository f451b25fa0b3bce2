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
