DELETE FROM job_leases WHERE job = $1 AND holder = $2
