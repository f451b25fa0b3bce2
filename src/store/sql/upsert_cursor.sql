INSERT INTO sync_cursors (endpoint, system, cursor_at)
VALUES ($1, $2, $3)
ON CONFLICT (endpoint, system) DO UPDATE SET cursor_at = excluded.cursor_at
