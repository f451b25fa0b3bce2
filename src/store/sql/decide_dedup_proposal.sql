UPDATE dedup_proposals
SET status = $2, decided_at = $3, decided_by = $4
WHERE id = $1 AND status = 'open'
RETURNING id, endpoint, members, survivor, fields, before, min_probability, created_at, status,
          decided_at, decided_by
