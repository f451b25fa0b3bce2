SELECT id, endpoint, members, survivor, fields, before, min_probability, created_at, status,
       decided_at, decided_by
FROM dedup_proposals
WHERE id = $1
