SELECT id, receiver, group_key, payload, status, attempts, next_attempt_at, created_at, sent_at,
       last_error
FROM notification_outbox
WHERE $1 IS NULL OR status = $1
ORDER BY id
