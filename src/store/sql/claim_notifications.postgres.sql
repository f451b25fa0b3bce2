-- SKIP LOCKED: instances claiming at the same moment take disjoint rows instead of queueing on
-- each other's locks. A 'sending' row whose claim expired was left by a worker that died mid-send.
UPDATE notification_outbox
SET status = 'sending', claimed_by = $1, claimed_until = $2, attempts = attempts + 1
WHERE id IN (
    SELECT id FROM notification_outbox
    WHERE (status = 'pending' AND next_attempt_at <= $3)
       OR (status = 'sending' AND claimed_until <= $3)
    ORDER BY next_attempt_at, id
    LIMIT $4
    FOR UPDATE SKIP LOCKED
)
RETURNING id, receiver, group_key, payload, status, attempts, next_attempt_at, created_at, sent_at,
          last_error
