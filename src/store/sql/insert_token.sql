INSERT INTO api_tokens (name, role, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)
RETURNING id
