UPDATE digest_sends SET claimed_until = $3, last_error = $4
WHERE week = $1 AND holder = $2 AND sent_at IS NULL
