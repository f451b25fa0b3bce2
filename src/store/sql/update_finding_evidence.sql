UPDATE findings SET evidence = $2 WHERE id = CAST($1 AS BIGINT)
