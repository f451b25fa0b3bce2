UPDATE dead_letters SET resolved_at = $1 WHERE resolved_at IS NULL
