INSERT INTO sync_intents (idempotency_key, endpoint, event, created_at)
