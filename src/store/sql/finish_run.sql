UPDATE sync_runs
SET ended_at = $2, status = $3, records_read = $4, records_written = $5, events = $6,
    api_calls_ok = $7, api_calls_failed = $8, error = $9
WHERE id = $1
