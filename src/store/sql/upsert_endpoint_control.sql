INSERT INTO endpoint_controls (endpoint, paused, dry_run, changed_at, changed_by)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (endpoint) DO UPDATE
SET paused = excluded.paused, dry_run = excluded.dry_run, changed_at = excluded.changed_at,
    changed_by = excluded.changed_by
