UPDATE merge_jobs
SET claimed_by = $1, claimed_until = $2, attempts = attempts + 1
WHERE id = (
    SELECT id FROM merge_jobs
    WHERE status = 'pending' AND (claimed_until IS NULL OR claimed_until <= $3)
    ORDER BY id
    LIMIT 1
)
AND status = 'pending' AND (claimed_until IS NULL OR claimed_until <= $3)
RETURNING id, proposal_id, kind, plan, next_step, results, status, attempts, last_error,
          created_by, created_at, finished_at
