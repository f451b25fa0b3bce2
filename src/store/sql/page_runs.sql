-- A keyset page of sync runs, newest first: after the run ($1 started_at, $2 id); the first
-- condition alone bounds the scan of the started_at index, the second breaks ties.
SELECT id, endpoint, started_at, ended_at, status, records_read, records_written, events,
       api_calls_ok, api_calls_failed, error
FROM sync_runs
WHERE started_at <= $1 AND (started_at < $1 OR id < $2)
  AND ($3 IS NULL OR endpoint = $3)
ORDER BY started_at DESC, id DESC
LIMIT $4
