SELECT id, endpoint, members, survivor, fields, before, min_probability, created_at, status,
       decided_at, decided_by
FROM dedup_proposals
WHERE ($1 IS NULL OR endpoint = $1) AND ($2 IS NULL OR status = $2)
ORDER BY id
