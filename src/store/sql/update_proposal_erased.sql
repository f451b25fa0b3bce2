UPDATE dedup_proposals SET fields = $2, before = $3 WHERE id = $1
