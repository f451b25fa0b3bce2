-- Metric roll-ups of the monitor, and the API calls the connectors counted (issue 4).
--
-- api_calls: one row per connector and endpoint each time a run (sync, reconciliation, price
-- read) ends: calls attempted and succeeded, and their latencies as JSON [[ms, calls], ...].
-- endpoint is NULL for calls made outside any endpoint's run.
CREATE TABLE api_calls (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    system    TEXT    NOT NULL,
    endpoint  TEXT,
    attempted INTEGER NOT NULL,
    succeeded INTEGER NOT NULL,
    latencies TEXT    NOT NULL
);

CREATE INDEX api_calls_at ON api_calls (at);

-- One row per resolution (minute, hour, day), scope (overall, endpoint:<e>, connector:<s>,
-- <e>:<s>) and bucket start (microseconds). Recomputed, never incremented, so maintenance is
-- idempotent. Latency histograms are JSON [[ms, count], ...].
CREATE TABLE metric_rollups (
    resolution            TEXT    NOT NULL,
    scope                 TEXT    NOT NULL,
    bucket_start          INTEGER NOT NULL,
    api_attempted         INTEGER NOT NULL,
    api_succeeded         INTEGER NOT NULL,
    api_latencies         TEXT    NOT NULL,
    writes_attempted      INTEGER NOT NULL,
    writes_failed         INTEGER NOT NULL,
    events                INTEGER NOT NULL,
    records               INTEGER NOT NULL,
    conflicts_opened      INTEGER NOT NULL,
    conflicts_resolved    INTEGER NOT NULL,
    reconcile_differences INTEGER NOT NULL,
    duplicates            INTEGER,
    last_success_at       INTEGER,
    sync_latencies        TEXT    NOT NULL,
    PRIMARY KEY (resolution, bucket_start, scope)
);

-- Where roll-up maintenance got to (the last event id and API-call id it has taken in).
CREATE TABLE rollup_progress (
    job     TEXT    PRIMARY KEY,
    last_id INTEGER NOT NULL
);
