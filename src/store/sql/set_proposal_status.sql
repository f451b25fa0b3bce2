UPDATE dedup_proposals
SET status = $2, decided_at = COALESCE(decided_at, $3), decided_by = COALESCE(decided_by, $4)
WHERE id = $1
