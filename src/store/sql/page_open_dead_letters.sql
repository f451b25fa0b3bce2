-- A keyset page of the dead letters waiting for a re-drive, oldest first.
SELECT id, endpoint, target, record_key, record_id, fields, error, attempts, created_at, resolved_at
FROM dead_letters
WHERE id > $1 AND resolved_at IS NULL AND ($2 IS NULL OR endpoint = $2)
ORDER BY id
LIMIT $3
