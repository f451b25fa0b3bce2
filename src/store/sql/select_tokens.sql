SELECT id, name, role, created_at, expires_at, revoked_at FROM api_tokens ORDER BY id
