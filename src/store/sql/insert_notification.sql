INSERT INTO notification_outbox (receiver, group_key, payload, status, attempts, next_attempt_at,
                                 created_at)
VALUES ($1, $2, $3, 'pending', 0, $4, $4)
RETURNING id
