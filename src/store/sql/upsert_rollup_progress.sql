INSERT INTO rollup_progress (job, last_id) VALUES ($1, $2)
ON CONFLICT (job) DO UPDATE SET last_id = excluded.last_id
