INSERT INTO notification_log (receiver, group_key, hash, firing, resolved, sent_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (receiver, group_key) DO UPDATE SET
    hash = excluded.hash,
    firing = excluded.firing,
    resolved = excluded.resolved,
    sent_at = excluded.sent_at
