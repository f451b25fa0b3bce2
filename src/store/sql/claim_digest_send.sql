INSERT INTO digest_sends (week, holder, claimed_until, attempts) VALUES ($1, $2, $3, 1)
ON CONFLICT (week) DO UPDATE SET holder = excluded.holder, claimed_until = excluded.claimed_until,
    attempts = digest_sends.attempts + 1
WHERE digest_sends.sent_at IS NULL AND digest_sends.claimed_until <= $4
RETURNING holder
