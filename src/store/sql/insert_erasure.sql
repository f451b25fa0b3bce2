INSERT INTO erasures (id, requested_by, reason, subject, fields, started_at)
VALUES ($1, $2, $3, $4, $5, $6)
