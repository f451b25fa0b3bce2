INSERT INTO dead_letters (endpoint, target, record_key, record_id, fields, error, attempts, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
