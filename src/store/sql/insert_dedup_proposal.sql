INSERT INTO dedup_proposals (endpoint, members, survivor, fields, before, min_probability, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT DO NOTHING
