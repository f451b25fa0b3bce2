-- A keyset page of silences, oldest first.
SELECT id, matchers, starts_at, ends_at, author, comment, created_at
FROM silences
WHERE id > $1
ORDER BY id
LIMIT $2
