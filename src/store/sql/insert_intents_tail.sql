 ON CONFLICT (idempotency_key) DO NOTHING
