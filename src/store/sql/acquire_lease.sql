INSERT INTO job_leases (job, holder, expires_at) VALUES ($1, $2, $3)
ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE job_leases.holder = excluded.holder OR job_leases.expires_at <= $4
RETURNING holder
