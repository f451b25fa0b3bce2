UPDATE merge_jobs
SET last_error = $3, claimed_by = NULL, claimed_until = $4
WHERE id = $1 AND claimed_by = $2
