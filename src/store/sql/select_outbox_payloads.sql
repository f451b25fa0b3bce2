-- Ids as text, so one erasure pass reads every free-text table alike.
SELECT CAST(id AS TEXT), payload FROM notification_outbox ORDER BY id
