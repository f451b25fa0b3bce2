INSERT INTO silences (matchers, starts_at, ends_at, author, comment, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, matchers, starts_at, ends_at, author, comment, created_at
