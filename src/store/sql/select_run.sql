SELECT id, endpoint, started_at, ended_at, status, records_read, records_written, events,
       api_calls_ok, api_calls_failed, error
FROM sync_runs
WHERE id = $1
