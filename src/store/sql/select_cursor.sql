SELECT cursor_at FROM sync_cursors WHERE endpoint = $1 AND system = $2
