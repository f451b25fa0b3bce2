UPDATE conflicts SET resolved_at = $1, resolution = $2 WHERE resolved_at IS NULL
