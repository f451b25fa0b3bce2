SELECT id, matchers, starts_at, ends_at, author, comment, created_at FROM silences ORDER BY id
