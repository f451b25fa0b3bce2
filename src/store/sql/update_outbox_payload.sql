UPDATE notification_outbox SET payload = $2 WHERE id = CAST($1 AS BIGINT)
