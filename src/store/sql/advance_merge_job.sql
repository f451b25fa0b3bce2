UPDATE merge_jobs
SET next_step = $3, results = $4, claimed_until = $5
WHERE id = $1 AND claimed_by = $2
