INSERT INTO sync_runs (id, endpoint, started_at, status)
VALUES ($1, $2, $3, $4)
