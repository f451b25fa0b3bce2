SELECT receiver, group_key, hash, firing, resolved, sent_at FROM notification_log
