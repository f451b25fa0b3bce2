SELECT idempotency_key, event FROM sync_intents WHERE endpoint = $1 ORDER BY idempotency_key
