SELECT holder, expires_at FROM job_leases WHERE job = $1
