-- One statement under SQLite's single writer: no two workers can take the same row. A 'sending'
-- row whose claim expired was left by a worker that died mid-send and is taken again.
UPDATE notification_outbox
SET status = 'sending', claimed_by = $1, claimed_until = $2, attempts = attempts + 1
WHERE id IN (
    SELECT id FROM notification_outbox
    WHERE (status = 'pending' AND next_attempt_at <= $3)
       OR (status = 'sending' AND claimed_until <= $3)
    ORDER BY next_attempt_at, id
    LIMIT $4
)
RETURNING id, receiver, group_key, payload, status, attempts, next_attempt_at, created_at, sent_at,
          last_error
