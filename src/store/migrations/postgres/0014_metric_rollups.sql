-- Metric roll-ups of the monitor, and the API calls the connectors counted (issue 4).
--
-- api_calls: one row per connector and endpoint each time a run (sync, reconciliation, price
-- read) ends: calls attempted and succeeded, and their latencies as JSON [[ms, calls], ...].
-- endpoint is NULL for calls made outside any endpoint's run.
CREATE TABLE api_calls (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        BIGINT NOT NULL,
    system    TEXT    NOT NULL,
    endpoint  TEXT,
    attempted BIGINT NOT NULL,
    succeeded BIGINT NOT NULL,
    latencies TEXT    NOT NULL
);

CREATE INDEX api_calls_at ON api_calls (at);

-- One row per resolution (minute, hour, day), scope (overall, endpoint:<e>, connector:<s>,
-- <e>:<s>) and bucket start (microseconds). Recomputed, never incremented, so maintenance is
-- idempotent. Latency histograms are JSON [[ms, count], ...].
CREATE TABLE metric_rollups (
    resolution            TEXT    NOT NULL,
    scope                 TEXT    NOT NULL,
    bucket_start          BIGINT NOT NULL,
    api_attempted         BIGINT NOT NULL,
    api_succeeded         BIGINT NOT NULL,
    api_latencies         TEXT    NOT NULL,
    writes_attempted      BIGINT NOT NULL,
    writes_failed         BIGINT NOT NULL,
    events                BIGINT NOT NULL,
    records               BIGINT NOT NULL,
    conflicts_opened      BIGINT NOT NULL,
    conflicts_resolved    BIGINT NOT NULL,
    reconcile_differences BIGINT NOT NULL,
    duplicates            BIGINT,
    last_success_at       BIGINT,
    sync_latencies        TEXT    NOT NULL,
    PRIMARY KEY (resolution, bucket_start, scope)
);

-- Where roll-up maintenance got to (the last event id and API-call id it has taken in).
CREATE TABLE rollup_progress (
    job     TEXT    PRIMARY KEY,
    last_id BIGINT NOT NULL
);
