UPDATE sync_intents SET event = $2 WHERE idempotency_key = $1
