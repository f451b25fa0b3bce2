-- A keyset page of the run-time policy changes, oldest first.
SELECT id, endpoint, settings, changed_at, changed_by
FROM policy_changes
WHERE id > $1 AND ($2 IS NULL OR endpoint = $2)
ORDER BY id
LIMIT $3
