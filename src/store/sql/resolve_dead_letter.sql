UPDATE dead_letters SET resolved_at = $2 WHERE id = $1 AND resolved_at IS NULL
