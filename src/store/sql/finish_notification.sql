-- Only the worker holding the claim may settle the row: one whose claim expired and was taken
-- over must not overwrite the new holder's result.
UPDATE notification_outbox
SET status = $3, next_attempt_at = $4, sent_at = $5, last_error = $6, claimed_by = NULL,
    claimed_until = NULL
WHERE id = $1 AND claimed_by = $2
