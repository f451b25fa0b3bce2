SELECT COUNT(*) FROM job_leases WHERE job LIKE $1 AND expires_at > $2
