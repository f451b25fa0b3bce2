UPDATE digest_sends SET sent_at = $3, last_error = NULL WHERE week = $1 AND holder = $2
