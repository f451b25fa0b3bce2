-- The field-level event log (append-only), sync runs and the CRM <-> ERP id cross-reference.
-- Times are microseconds since the Unix epoch (UTC); field values are canonical JSON text.

CREATE TABLE field_events (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key TEXT   NOT NULL,
    run_id          TEXT,
    endpoint        TEXT   NOT NULL,
    crm_id          TEXT,
    erp_id          TEXT,
    field           TEXT   NOT NULL,
    old_value       TEXT,
    new_value       TEXT,
    source_system   TEXT   NOT NULL,
    target_system   TEXT   NOT NULL,
    outcome         TEXT   NOT NULL,
    error           TEXT,
    latency_ms      BIGINT,
    occurred_at     BIGINT NOT NULL,
    recorded_at     BIGINT NOT NULL
);

CREATE UNIQUE INDEX field_events_idempotency_key ON field_events (idempotency_key);
CREATE INDEX field_events_crm_id ON field_events (crm_id) WHERE crm_id IS NOT NULL;
CREATE INDEX field_events_erp_id ON field_events (erp_id) WHERE erp_id IS NOT NULL;
CREATE INDEX field_events_field ON field_events (endpoint, field, occurred_at);
CREATE INDEX field_events_occurred_at ON field_events (occurred_at);
CREATE INDEX field_events_run_id ON field_events (run_id) WHERE run_id IS NOT NULL;

CREATE FUNCTION field_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'field_events is append-only';
END;
$$;

CREATE TRIGGER field_events_no_update_or_delete BEFORE UPDATE OR DELETE ON field_events
    FOR EACH ROW EXECUTE FUNCTION field_events_append_only();

CREATE TABLE sync_runs (
    id               TEXT   PRIMARY KEY,
    endpoint         TEXT,
    started_at       BIGINT NOT NULL,
    ended_at         BIGINT,
    status           TEXT   NOT NULL,
    records_read     BIGINT NOT NULL DEFAULT 0,
    records_written  BIGINT NOT NULL DEFAULT 0,
    events           BIGINT NOT NULL DEFAULT 0,
    api_calls_ok     BIGINT NOT NULL DEFAULT 0,
    api_calls_failed BIGINT NOT NULL DEFAULT 0,
    error            TEXT
);

CREATE INDEX sync_runs_started_at ON sync_runs (started_at);

CREATE TABLE record_links (
    endpoint  TEXT   NOT NULL,
    crm_id    TEXT   NOT NULL,
    erp_id    TEXT   NOT NULL,
    linked_at BIGINT NOT NULL,
    PRIMARY KEY (endpoint, crm_id)
);

CREATE UNIQUE INDEX record_links_erp_id ON record_links (endpoint, erp_id);
