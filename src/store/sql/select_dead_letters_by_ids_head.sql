SELECT id, endpoint, target, record_key, record_id, fields, error, attempts, created_at,
       resolved_at
FROM dead_letters
WHERE 1 = 1
