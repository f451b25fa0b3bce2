UPDATE merge_jobs
SET status = $3, last_error = $4, finished_at = $5, claimed_by = NULL, claimed_until = NULL
WHERE id = $1 AND claimed_by = $2
