UPDATE dead_letters SET attempts = attempts + 1, error = $2 WHERE id = $1
