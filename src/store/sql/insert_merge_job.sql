INSERT INTO merge_jobs (proposal_id, kind, plan, created_by, created_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT DO NOTHING
RETURNING id
