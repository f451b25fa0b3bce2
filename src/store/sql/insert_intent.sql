INSERT INTO sync_intents (idempotency_key, endpoint, event, created_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (idempotency_key) DO NOTHING
