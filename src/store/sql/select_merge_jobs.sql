SELECT id, proposal_id, kind, plan, next_step, results, status, attempts, last_error,
       created_by, created_at, finished_at
FROM merge_jobs
WHERE proposal_id = $1
ORDER BY id
