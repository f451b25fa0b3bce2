SELECT outbox_id, receiver, attempted_at, outcome, error, latency_ms
FROM notification_attempts
WHERE receiver = $1
ORDER BY id
