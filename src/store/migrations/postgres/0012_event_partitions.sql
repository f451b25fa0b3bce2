-- Scale: the event log partitioned by month of occurred_at, and how far a shared job has got.

-- How far a job that instances take turns at has got (the live monitor: the end of the last
-- minute whose findings are recorded), so the instance that takes it over goes on from there.
CREATE TABLE job_marks (
    job  TEXT   PRIMARY KEY,
    mark BIGINT NOT NULL
);

-- The idempotency keys of every event ever stored. A partitioned table can only enforce
-- uniqueness on keys that include the partition key, so the keys live here, unpartitioned; they
-- outlive retention, so a replay of an archived event is still a duplicate.
CREATE TABLE field_event_keys (
    idempotency_key TEXT PRIMARY KEY
);

ALTER TABLE field_events RENAME TO field_events_unpartitioned;
ALTER INDEX field_events_pkey RENAME TO field_events_unpartitioned_pkey;

CREATE TABLE field_events (
    id              BIGINT GENERATED ALWAYS AS IDENTITY,
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
    recorded_at     BIGINT NOT NULL,
    PRIMARY KEY (id, occurred_at)
) PARTITION BY RANGE (occurred_at);

-- Events outside every monthly partition (far past or far future) land here.
CREATE TABLE field_events_default PARTITION OF field_events DEFAULT;

-- Creates the monthly partitions (field_events_yYYYYmMM) of the `months` months from the one
-- holding `from_micros`, skipping those that exist. A month whose rows already sit in the default
-- partition is skipped too (creating it would fail); its events stay where they are, still found.
-- Returns the names created.
CREATE FUNCTION field_events_ensure_partitions(from_micros BIGINT, months INT)
RETURNS SETOF TEXT LANGUAGE plpgsql AS $$
DECLARE
    month_start TIMESTAMPTZ := date_trunc('month', to_timestamp(from_micros / 1000000.0) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    lo BIGINT;
    hi BIGINT;
    name TEXT;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        lo := (extract(epoch FROM month_start + make_interval(months => i)) * 1000000)::BIGINT;
        hi := (extract(epoch FROM month_start + make_interval(months => i + 1)) * 1000000)::BIGINT;
        name := 'field_events_' || to_char((month_start + make_interval(months => i)) AT TIME ZONE 'UTC', '"y"YYYY"m"MM');
        CONTINUE WHEN to_regclass(name) IS NOT NULL;
        IF EXISTS (SELECT 1 FROM field_events_default WHERE occurred_at >= lo AND occurred_at < hi) THEN
            RAISE NOTICE 'field_events: % has rows in the default partition; not created', name;
            CONTINUE;
        END IF;
        EXECUTE format('CREATE TABLE %I PARTITION OF field_events FOR VALUES FROM (%s) TO (%s)', name, lo, hi);
        RETURN NEXT name;
    END LOOP;
END;
$$;

-- Partitions for the months the log already covers (at most two years back) and three ahead.
DO $$
DECLARE
    now_micros BIGINT := (extract(epoch FROM now()) * 1000000)::BIGINT;
    first BIGINT := GREATEST(
        COALESCE((SELECT min(occurred_at) FROM field_events_unpartitioned), now_micros),
        now_micros - 731 * 86400 * 1000000::BIGINT);
    a TIMESTAMP := to_timestamp(first / 1000000.0) AT TIME ZONE 'UTC';
    b TIMESTAMP := now() AT TIME ZONE 'UTC';
BEGIN
    PERFORM field_events_ensure_partitions(first,
        ((extract(year FROM b) - extract(year FROM a)) * 12
         + extract(month FROM b) - extract(month FROM a))::INT + 4);
END;
$$;

INSERT INTO field_events OVERRIDING SYSTEM VALUE SELECT * FROM field_events_unpartitioned;
INSERT INTO field_event_keys SELECT idempotency_key FROM field_events_unpartitioned;
SELECT setval(pg_get_serial_sequence('field_events', 'id'),
              COALESCE((SELECT max(id) FROM field_events_unpartitioned), 0) + 1, false);
DROP TABLE field_events_unpartitioned;

-- The audit queries: by idempotency key (replays), record, field, time range and run; each index
-- is made on every partition, present and future.
CREATE INDEX field_events_idempotency_key ON field_events (idempotency_key);
CREATE INDEX field_events_crm_id ON field_events (crm_id, id) WHERE crm_id IS NOT NULL;
CREATE INDEX field_events_erp_id ON field_events (erp_id, id) WHERE erp_id IS NOT NULL;
CREATE INDEX field_events_field ON field_events (endpoint, field, occurred_at);
CREATE INDEX field_events_occurred_at ON field_events (occurred_at);
CREATE INDEX field_events_run_id ON field_events (run_id) WHERE run_id IS NOT NULL;

-- Append-only on every partition, present and future, and on the keys.
CREATE TRIGGER field_events_no_update_or_delete BEFORE UPDATE OR DELETE ON field_events
    FOR EACH ROW EXECUTE FUNCTION field_events_append_only();
CREATE TRIGGER field_event_keys_no_update_or_delete BEFORE UPDATE OR DELETE ON field_event_keys
    FOR EACH ROW EXECUTE FUNCTION field_events_append_only();
