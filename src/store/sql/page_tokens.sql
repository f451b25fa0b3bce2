-- A keyset page of API tokens (never their hashes), oldest first.
SELECT id, name, role, created_at, expires_at, revoked_at
FROM api_tokens
WHERE id > $1
ORDER BY id
LIMIT $2
