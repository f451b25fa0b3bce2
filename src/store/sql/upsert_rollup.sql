INSERT INTO metric_rollups (resolution, scope, bucket_start, api_attempted, api_succeeded,
                            api_latencies, writes_attempted, writes_failed, events, records,
                            conflicts_opened, conflicts_resolved, reconcile_differences,
                            duplicates, last_success_at, sync_latencies)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
ON CONFLICT (resolution, bucket_start, scope) DO UPDATE SET
    api_attempted = excluded.api_attempted,
    api_succeeded = excluded.api_succeeded,
    api_latencies = excluded.api_latencies,
    writes_attempted = excluded.writes_attempted,
    writes_failed = excluded.writes_failed,
    events = excluded.events,
    records = excluded.records,
    conflicts_opened = excluded.conflicts_opened,
    conflicts_resolved = excluded.conflicts_resolved,
    reconcile_differences = excluded.reconcile_differences,
    -- A gauge sampled once: a later recomputation of the minute from the log keeps it.
    duplicates = COALESCE(excluded.duplicates, metric_rollups.duplicates),
    last_success_at = excluded.last_success_at,
    sync_latencies = excluded.sync_latencies
