INSERT INTO notification_attempts (outbox_id, receiver, attempted_at, outcome, error, latency_ms)
VALUES ($1, $2, $3, $4, $5, $6)
