-- A keyset page of dedup proposals, oldest first.
SELECT id, endpoint, members, survivor, fields, before, min_probability, created_at, status,
       decided_at, decided_by
FROM dedup_proposals
WHERE id > $1
  AND ($2 IS NULL OR endpoint = $2)
  AND ($3 IS NULL OR status = $3)
ORDER BY id
LIMIT $4
