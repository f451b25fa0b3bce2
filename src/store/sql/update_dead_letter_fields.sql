UPDATE dead_letters SET fields = $2 WHERE id = $1
