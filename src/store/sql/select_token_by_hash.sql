SELECT id, name, role, created_at, expires_at, revoked_at FROM api_tokens WHERE token_hash = $1
