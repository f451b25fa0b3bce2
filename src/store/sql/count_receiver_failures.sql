-- Failed attempts of a receiver since its last delivery.
SELECT COUNT(*) FROM notification_attempts
WHERE receiver = $1 AND outcome <> 'sent'
  AND id > COALESCE((SELECT MAX(id) FROM notification_attempts
                     WHERE receiver = $1 AND outcome = 'sent'), 0)
