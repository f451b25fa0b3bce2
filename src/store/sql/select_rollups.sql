SELECT resolution, scope, bucket_start, api_attempted, api_succeeded, api_latencies,
       writes_attempted, writes_failed, events, records, conflicts_opened, conflicts_resolved,
       reconcile_differences, duplicates, last_success_at, sync_latencies
FROM metric_rollups
WHERE resolution = $1 AND bucket_start >= $2 AND bucket_start < $3
ORDER BY scope, bucket_start
