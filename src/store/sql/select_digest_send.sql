SELECT week, holder, attempts, sent_at, last_error FROM digest_sends WHERE week = $1
