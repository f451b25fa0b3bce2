SELECT event FROM sync_intents WHERE endpoint = $1 ORDER BY created_at, idempotency_key
